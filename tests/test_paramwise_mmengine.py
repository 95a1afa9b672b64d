"""OPTIMIZER.paramwise against MMEngine's own DefaultOptimWrapperConstructor: the LR and weight
decay of every parameter, on several models, across many option combinations."""

import itertools
import logging

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from vissl_lite.config.schema import OptimizerConfig
from vissl_lite.optim import build_optimizer, build_param_groups
from vissl_lite.optim.group_scheduler import GroupScheduler

mmengine_optim = pytest.importorskip("mmengine.optim")
from mmengine.logging import MMLogger  # noqa: E402

BASE_LR, BASE_WD = 0.1, 0.01


class ResNetish(nn.Module):
    """Convs with and without bias, BatchNorm and GroupNorm, a linear classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(),
                                   nn.Conv2d(8, 16, 1, stride=2), nn.BatchNorm2d(16))
        self.fc = nn.Linear(16, 10)


class DepthwiseNet(nn.Module):
    """Depthwise convs (with bias, 1-channel, via groups == in_channels), a grouped conv that is
    not depthwise, a depthwise Conv1d (not depthwise to MMEngine: Conv2d only)."""

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(8, 8, 3, groups=8)
        self.dw_mult = nn.Conv2d(4, 8, 3, groups=4, bias=False)  # channel multiplier 2: still depthwise
        self.one = nn.Conv2d(1, 1, 3)  # groups == in_channels == 1
        self.grouped = nn.Conv2d(8, 8, 1, groups=2)
        self.dw1d = nn.Conv1d(4, 4, 3, groups=4)
        self.pw = nn.Conv2d(8, 16, 1)
        self.bn = nn.BatchNorm2d(16)


class Transformerish(nn.Module):
    """LayerNorm, an embedding, a root-level parameter (MMEngine matches it as '.scale'),
    InstanceNorm with affine, a frozen parameter."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(4))
        self.embed = nn.Embedding(10, 4)
        self.norm = nn.LayerNorm(4)
        self.attn = nn.Linear(4, 12)
        self.inorm = nn.InstanceNorm1d(4, affine=True)
        self.frozen = nn.Linear(4, 4)
        self.frozen.weight.requires_grad_(False)


class Shared(nn.Module):
    """A module used twice and a weight tied across two modules of different types."""

    def __init__(self):
        super().__init__()
        block = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.encoder = nn.Sequential(block, nn.Linear(4, 4))
        self.decoder = nn.Sequential(nn.Linear(4, 4), block)
        self.embed = nn.Embedding(4, 4)
        self.out = nn.Linear(4, 4, bias=True)
        self.out.weight = self.embed.weight


MODELS = {"resnetish": ResNetish, "depthwise": DepthwiseNet, "transformerish": Transformerish, "shared": Shared}

MULT_CHOICES = {
    "bias_lr_mult": (None, 2.0),
    "bias_decay_mult": (None, 0.5),
    "norm_decay_mult": (None, 0.0),
    "dwconv_decay_mult": (None, 0.25),
    "flat_decay_mult": (None, 3.0),
}
CUSTOM_KEYS = {
    "none": {},
    "overlapping": {"block": {"lr_mult": 0.5}, "block.1": {"lr_mult": 0.1, "decay_mult": 4.0},
                    "norm": {"decay_mult": 0.0},
                    "dw": {"lr_mult": 3.0, "decay_mult": 2.0}},
    # "bias" and ".bia" match every bias with equal lengths: the alphabetically first, ".bia", wins;
    # ".sca" matches the root parameter "scale" only as MMEngine spells it, ".scale"
    "ties": {"bias": {"lr_mult": 5.0}, ".bia": {"lr_mult": 7.0}, "weig": {"decay_mult": 0.3}, ".sca": {"lr_mult": 9.0}},
}


def mmengine_values(model, paramwise):
    """{parameter: (lr, weight decay)} as MMEngine's constructor builds them."""
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # it logs every parameter
    constructor = mmengine_optim.DefaultOptimWrapperConstructor(
        dict(optimizer=dict(type="SGD", lr=BASE_LR, weight_decay=BASE_WD)), {**paramwise, "bypass_duplicate": True})
    groups = constructor(model).optimizer.param_groups
    return {p: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


def our_groups(model, paramwise, **changes):
    cfg = OmegaConf.structured(OptimizerConfig)
    OmegaConf.update(cfg, "paramwise", paramwise, merge=True)
    for key, value in {"weight_decay": BASE_WD, "regularize_bn": True, "regularize_bias": True, **changes}.items():
        OmegaConf.update(cfg, key, value, merge=True)
    return build_param_groups(cfg, model)


def our_values(model, paramwise, **changes):
    """{parameter: (lr, weight decay)}: the scheduled LR is BASE_LR x lr_mult."""
    return {p: (BASE_LR * g["lr_mult"], g["weight_decay"]) for g in our_groups(model, paramwise, **changes)
            for p in g["params"]}


def named(model, values):
    names = {p: n for n, p in model.named_parameters()}
    return {names[p]: v for p, v in values.items()}


def assert_same_values(got, expected, rel=1e-12):
    """{name: (lr, weight_decay)} equal in names and, per parameter, to `rel` (pytest >= 9.2's
    approx takes no dict of tuples)."""
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        assert got[name] == pytest.approx(values, rel=rel), name


MULT_COMBOS = [dict(zip(MULT_CHOICES, values)) for values in itertools.product(*MULT_CHOICES.values())]


@pytest.mark.filterwarnings("ignore:OPTIMIZER.paramwise.custom_keys")
@pytest.mark.parametrize("custom", list(CUSTOM_KEYS))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_per_parameter_lr_and_wd_match_mmengine(model_name, custom):
    model = MODELS[model_name]()
    for mults in MULT_COMBOS:  # all 32 combinations of set / unset type multipliers
        paramwise = {**{k: v for k, v in mults.items() if v is not None}, "custom_keys": CUSTOM_KEYS[custom]}
        expected = named(model, mmengine_values(model, paramwise))
        got = named(model, our_values(model, paramwise))
        assert got.keys() == expected.keys(), (mults, custom)
        for name in expected:
            assert got[name] == pytest.approx(expected[name], rel=1e-12, abs=0), (name, mults, custom)


def test_every_parameter_once_and_frozen_ones_skipped_like_mmengine():
    for model in (Shared(), Transformerish()):
        expected = mmengine_values(model, {"bias_lr_mult": 2.0})
        ours = [p for g in our_groups(model, {"bias_lr_mult": 2.0}) for p in g["params"]]
        assert len(ours) == len(set(ours)) and set(map(id, ours)) == set(map(id, expected))
    assert model.frozen.weight not in set(ours) and model.frozen.bias in set(ours)


def test_through_the_schedules_the_optimizer_sees_mmengine_values():
    """Full path: build_optimizer + the per-step schedule application, constant LR schedule."""
    model = ResNetish()
    paramwise = {"bias_lr_mult": 2.0, "norm_decay_mult": 0.0, "flat_decay_mult": 0.5,
                 "custom_keys": {"block.0": {"lr_mult": 0.1}}}
    cfg = OmegaConf.structured(OptimizerConfig)
    OmegaConf.update(cfg, "paramwise", paramwise, merge=True)
    for key, value in {"weight_decay": BASE_WD, "regularize_bn": True,
                       "param_schedulers.lr": {"name": "constant", "value": BASE_LR}}.items():
        OmegaConf.update(cfg, key, value, merge=True)
    optimizer = build_optimizer(cfg, model)
    GroupScheduler(cfg, steps_per_epoch=1).apply(optimizer, 0)
    got = {p: (g["lr"], g["weight_decay"]) for g in optimizer.param_groups for p in g["params"]}
    expected = mmengine_values(model, paramwise)
    assert_same_values(named(model, got), named(model, expected))


@pytest.mark.filterwarnings("ignore:OPTIMIZER.paramwise.custom_keys")
@pytest.mark.parametrize("flags", [dict(regularize_bn=False), dict(regularize_bias=False),
                                   dict(non_regularized_parameters=["attn", "pw"])])
def test_vissl_hard_rules_apply_after_mmengine_rules(flags):
    """MMEngine's values, then weight decay 0 wherever VISSL's flag says so (the test walks the
    modules itself to find norm layers and biases)."""
    paramwise = {"bias_lr_mult": 2.0, "dwconv_decay_mult": 0.25, "flat_decay_mult": 3.0,
                 "custom_keys": {"norm": {"lr_mult": 0.5, "decay_mult": 2.0}}}
    norms = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm1d)
    for model in (ResNetish(), DepthwiseNet(), Transformerish()):
        expected = named(model, mmengine_values(model, paramwise))
        for module_name, module in model.named_modules():
            for local, _ in module.named_parameters(recurse=False):
                name = f"{module_name}.{local}" if module_name else local
                if name not in expected:
                    continue
                if ((isinstance(module, norms) and not flags.get("regularize_bn", True))
                        or (local == "bias" and not flags.get("regularize_bias", True))
                        or any(s in name for s in flags.get("non_regularized_parameters", []))):
                    expected[name] = (expected[name][0], 0.0)
        got = named(model, our_values(model, paramwise, **{"regularize_bn": True, **flags}))
        assert_same_values(got, expected)


def test_rmsnorm_is_a_norm_layer_here_and_a_flat_parameter_to_mmengine():
    """The one documented difference: MMEngine 0.10.7 predates nn.RMSNorm."""
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.RMSNorm(4))
    paramwise = {"norm_decay_mult": 0.0, "flat_decay_mult": 3.0}
    assert named(model, mmengine_values(model, paramwise))["1.weight"] == (BASE_LR, 3 * BASE_WD)
    assert named(model, our_values(model, paramwise))["1.weight"] == (BASE_LR, 0.0)

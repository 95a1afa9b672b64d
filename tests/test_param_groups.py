"""Parameter groups on a ResNet-50 trunk with an MLP head, counted independently in the test;
VISSL's flags, the constructor registry, layer-wise decay and the config rules between keys.
(MMEngine's paramwise rules are compared with MMEngine itself in test_paramwise_mmengine.py.)"""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from vissl_lite.config.schema import OptimizerConfig
from vissl_lite.errors import ConfigError
from vissl_lite.models import ResNet, SSLModel
from vissl_lite.models.heads import MLP
from vissl_lite.optim import PARAM_GROUP_CONSTRUCTORS, build_param_groups, register_param_group_constructor
from vissl_lite.optim.param_groups import default_param_groups

CONTRACT = {"params", "param_names", "name", "lr", "weight_decay", "lr_schedule", "wd_schedule", "regularized",
            "lr_mult", "decay_mult"}


def opt_cfg(**changes):
    cfg = OmegaConf.structured(OptimizerConfig)
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value, merge=True)
    return cfg


@pytest.fixture(scope="module")
def model():
    return SSLModel(ResNet(50), nn.Sequential(MLP([2048, 2048, 128], use_bn=True, use_relu=True)))


def independent_counts(model):
    """Count by walking the architecture as documented, not by the code under test."""
    bn_trunk = [m for m in model.trunk.modules() if isinstance(m, nn.BatchNorm2d)]
    convs = [m for m in model.trunk.modules() if isinstance(m, nn.Conv2d)]
    head_linears = [m for m in model.heads.modules() if isinstance(m, nn.Linear)]
    head_bns = [m for m in model.heads.modules() if isinstance(m, nn.BatchNorm1d)]
    return {
        "trunk_conv": (len(convs), sum(m.weight.numel() for m in convs)),
        "trunk_bn": (2 * len(bn_trunk), sum(2 * m.num_features for m in bn_trunk)),
        "head_weight": (len(head_linears), sum(m.weight.numel() for m in head_linears)),
        "head_bias": (len(head_linears), sum(m.bias.numel() for m in head_linears)),
        "head_bn": (2 * len(head_bns), sum(2 * m.num_features for m in head_bns)),
    }


def summary(groups):
    return {g["name"]: (len(g["params"]), sum(p.numel() for p in g["params"])) for g in groups}


def add(*pairs):
    return tuple(map(sum, zip(*pairs)))


def per_param(groups, key):
    return {n: g[key] for g in groups for n in g["param_names"]}


def test_resnet50_default_groups(model):
    c = independent_counts(model)
    assert c["trunk_conv"][0] == 53 and c["trunk_bn"][0] == 106  # ResNet-50: 53 convs, 53 BNs
    groups = build_param_groups(opt_cfg(), model)
    assert summary(groups) == {
        "trunk_regularized": c["trunk_conv"],
        "trunk_unregularized": c["trunk_bn"],
        "head_regularized": add(c["head_weight"], c["head_bias"]),
        "head_unregularized": c["head_bn"],
    }
    assert all(set(g) == CONTRACT for g in groups)
    # lr 0 until the schedules are applied; weight decay = base x decay_mult, 0 when unregularized
    assert [(g["lr"], g["lr_mult"], g["weight_decay"], g["decay_mult"]) for g in groups] == [
        (0.0, 1.0, 1e-4, 1.0), (0.0, 1.0, 0.0, 0.0), (0.0, 1.0, 1e-4, 1.0), (0.0, 1.0, 0.0, 0.0)]
    assert [g["lr_schedule"] for g in groups] == ["lr"] * 4
    assert [g["wd_schedule"] for g in groups] == ["weight_decay"] * 4
    assert sum(n for n, _ in summary(groups).values()) == len(list(model.parameters()))
    # param_names are the first names, in model order within each group
    names = [n for n, _ in model.named_parameters()]
    for g in groups:
        assert g["param_names"] == sorted(g["param_names"], key=names.index)
        assert [dict(model.named_parameters())[n] for n in g["param_names"]] == g["params"]


def test_regularize_bn_and_bias(model):
    c = independent_counts(model)
    groups = build_param_groups(opt_cfg(regularize_bn=True, regularize_bias=False), model)
    # every BN weight is regularized now, but BN biases and linear biases are not
    bn_w = (c["trunk_bn"][0] // 2, c["trunk_bn"][1] // 2)
    hbn_w = (c["head_bn"][0] // 2, c["head_bn"][1] // 2)
    assert summary(groups) == {
        "trunk_regularized": add(c["trunk_conv"], bn_w),
        "trunk_unregularized": bn_w,
        "head_regularized": add(c["head_weight"], hbn_w),
        "head_unregularized": add(c["head_bias"], hbn_w),
    }


def test_every_norm_layer_counts():
    class Norms(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.GroupNorm(2, 4), nn.LayerNorm(4), nn.InstanceNorm2d(4, affine=True),
                                         nn.SyncBatchNorm(4), nn.RMSNorm(4), nn.BatchNorm3d(4)])
            self.fc = nn.Linear(4, 4, bias=False)

    groups = build_param_groups(opt_cfg(), Norms())
    assert summary(groups) == {"trunk_regularized": (1, 16), "trunk_unregularized": (11, 44)}  # RMSNorm has no bias


def test_frozen_and_non_regularized(model):
    c = independent_counts(model)
    model.trunk.conv1.weight.requires_grad_(False)
    try:
        groups = build_param_groups(opt_cfg(non_regularized_parameters=["layer4"]), model,
                                    non_trainable_params=["trunk.layer1.0.conv1.weight"])
    finally:
        model.trunk.conv1.weight.requires_grad_(True)
    names = {g["name"]: g for g in groups}
    all_names = [n for g in groups for n in g["param_names"]]
    assert "trunk.conv1.weight" not in all_names and "trunk.layer1.0.conv1.weight" not in all_names
    layer4 = [n for n, _ in model.trunk.layer4.named_parameters()]
    unreg = names["trunk_unregularized"]["param_names"]
    assert all(f"trunk.layer4.{n}" in unreg for n in layer4)
    assert names["trunk_unregularized"]["lr_mult"] == 1.0 and names["trunk_unregularized"]["lr_schedule"] == "lr"
    expected_reg = c["trunk_conv"][0] - 2 - sum(1 for n in layer4 if "conv" in n or "downsample.0" in n)
    assert len(names["trunk_regularized"]["params"]) == expected_reg


def test_unknown_non_trainable_name_is_refused(model):
    with pytest.raises(ConfigError, match="MODEL.NON_TRAINABLE_PARAMS"):
        build_param_groups(opt_cfg(), model, non_trainable_params=["trunk.conv9.weight"])


class Tied(nn.Module):
    """The trunk's first linear layer is also the head (weight tying), and a shared block."""

    def __init__(self):
        super().__init__()
        block = nn.Linear(3, 3)
        self.trunk = nn.Sequential(block, nn.ReLU(), block)
        self.heads = nn.Sequential(block)


def test_shared_parameter_is_optimised_once_by_its_first_name():
    groups = build_param_groups(opt_cfg(), Tied())
    # first names trunk.0.weight / trunk.0.bias: trunk, although the heads module holds them too
    assert summary(groups) == {"trunk_regularized": (2, 12)}
    assert groups[0]["param_names"] == ["trunk.0.weight", "trunk.0.bias"]


def test_shared_parameter_with_bypass_duplicate_false_names_both_places():
    with pytest.raises(ConfigError, match=r"paramwise.bypass_duplicate.*trunk.0.weight is also trunk.2.weight"):
        build_param_groups(opt_cfg(**{"paramwise.bypass_duplicate": False}), Tied())


def test_single_group_carries_the_contract(model):
    groups = build_param_groups(opt_cfg(construct_single_param_group_only=True, weight_decay=0.3), model)
    assert len(groups) == 1 and set(groups[0]) == CONTRACT
    assert groups[0]["param_names"] == [n for n, _ in model.named_parameters()]
    assert groups[0]["weight_decay"] == 0.3 and groups[0]["regularized"] and groups[0]["lr"] == 0.0


@pytest.mark.parametrize("key, value", [("paramwise.bias_lr_mult", 2.0), ("param_group_constructor", "lr_decay"),
                                        ("paramwise.custom_keys", {"heads": {"lr_mult": 2.0}})])
def test_single_group_refuses_per_parameter_options(model, key, value):
    cfg = opt_cfg(construct_single_param_group_only=True, **{key: value})
    with pytest.raises(ConfigError, match=f"construct_single_param_group_only.*{key.split('.')[-1]}"):
        build_param_groups(cfg, model)


def test_head_lr_and_wd(model):
    cfg = opt_cfg(**{"head_optimizer_params": {"use_different_lr": True, "use_different_wd": True,
                                               "weight_decay": 0.5}})
    groups = {g["name"]: g for g in build_param_groups(cfg, model)}
    assert groups["head_regularized"]["weight_decay"] == 0.5
    assert (groups["head_regularized"]["lr_schedule"], groups["head_regularized"]["wd_schedule"]) == \
        ("lr_head", "weight_decay_head")
    assert groups["trunk_regularized"]["weight_decay"] == 1e-4
    assert (groups["trunk_regularized"]["lr_schedule"], groups["trunk_regularized"]["wd_schedule"]) == \
        ("lr", "weight_decay")


def test_custom_keys_longest_match_wins_and_unused_keys_warn(model):
    cfg = opt_cfg(**{"paramwise.custom_keys": {"layer4": {"lr_mult": 0.1, "decay_mult": 2.0},
                                               "layer4.2.conv3": {"lr_mult": 0.0},
                                               "no_such_layer": {"lr_mult": 3.0}}})
    with pytest.warns(UserWarning, match="custom_keys.no_such_layer decides no"):
        groups = {g["name"]: g for g in build_param_groups(cfg, model)}
    g4 = groups["trunk_regularized/custom:layer4"]
    assert (g4["lr_mult"], g4["decay_mult"], g4["weight_decay"]) == (0.1, 2.0, pytest.approx(2e-4))
    assert groups["trunk_regularized/custom:layer4.2.conv3"]["param_names"] == ["trunk.layer4.2.conv3.weight"]
    assert groups["trunk_regularized/custom:layer4.2.conv3"]["lr_mult"] == 0.0
    # BN stays unregularized (VISSL's hard rule comes last) but keeps the key's LR multiplier
    assert groups["trunk_unregularized/custom:layer4"]["weight_decay"] == 0.0
    assert groups["trunk_unregularized/custom:layer4"]["lr_mult"] == 0.1


def test_equal_length_custom_keys_break_ties_alphabetically():
    net = nn.Sequential(nn.Linear(2, 2))  # names 0.weight, 0.bias
    cfg = opt_cfg(**{"paramwise.custom_keys": {"ias": {"lr_mult": 3.0}, "0.b": {"lr_mult": 2.0}}})
    with pytest.warns(UserWarning, match="custom_keys.ias"):
        groups = build_param_groups(cfg, net)
    assert per_param(groups, "lr_mult") == {"0.weight": 1.0, "0.bias": 2.0}  # "0.b" < "ias"


@pytest.mark.parametrize("mult, flag", [("norm_decay_mult", "regularize_bn"), ("bias_decay_mult", "regularize_bias")])
def test_decay_mult_under_a_vissl_hard_rule_is_an_error(model, mult, flag):
    cfg = opt_cfg(**{f"paramwise.{mult}": 0.5, flag: False})
    with pytest.raises(ConfigError, match=rf"OPTIMIZER.paramwise.{mult}: got 0.5.*set OPTIMIZER.{flag}=true"):
        build_param_groups(cfg, model)


def test_layer_wise_lr_decay_asks_the_trunk(model):
    cfg = opt_cfg(param_group_constructor="lr_decay", **{"layer_wise_lr_decay.decay": 0.5})
    groups = build_param_groups(cfg, model)
    lr_mult = per_param(groups, "lr_mult")
    assert lr_mult["trunk.conv1.weight"] == 0.5**5  # stem: depth 0 of num_layers 4
    assert lr_mult["trunk.layer1.0.conv1.weight"] == 0.5**4
    assert lr_mult["trunk.layer3.5.bn2.bias"] == 0.5**2
    assert lr_mult["trunk.layer4.2.conv3.weight"] == 0.5
    assert lr_mult["heads.0.layers.0.weight"] == 1.0
    assert {g["name"] for g in groups} >= {"trunk_regularized/depth0", "trunk_unregularized/depth4",
                                           "head_regularized/depth5"}


class TinyViTTrunk(nn.Module):
    """A trunk of another family implementing the depth protocol: tokens 0, block i -> i + 1."""

    num_layers = 2

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(4))
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])

    def param_depth(self, name):
        return 0 if name == "cls_token" else int(name.split(".")[1]) + 1


def test_layer_wise_lr_decay_with_custom_keys_on_another_trunk():
    net = SSLModel(TinyViTTrunk(), nn.Sequential(nn.Linear(4, 2)))
    cfg = opt_cfg(param_group_constructor="lr_decay", **{"layer_wise_lr_decay.decay": 0.1,
                                                          "paramwise.custom_keys": {"blocks.1": {"lr_mult": 3.0}}})
    lr_mult = per_param(build_param_groups(cfg, net), "lr_mult")
    assert lr_mult == pytest.approx({"trunk.cls_token": 1e-3,
                                     "trunk.blocks.0.weight": 1e-2, "trunk.blocks.0.bias": 1e-2,
                                     "trunk.blocks.1.weight": 3 * 0.1, "trunk.blocks.1.bias": 3 * 0.1,
                                     "heads.0.weight": 1.0, "heads.0.bias": 1.0})


def test_layer_wise_lr_decay_needs_the_protocol():
    net = SSLModel(nn.Sequential(nn.Linear(3, 3)), nn.Sequential(nn.Linear(3, 2)))
    with pytest.raises(ConfigError, match="param_group_constructor: got 'lr_decay'.*Sequential.*param_depth"):
        build_param_groups(opt_cfg(param_group_constructor="lr_decay"), net)


def test_plain_module_is_all_trunk():
    groups = build_param_groups(opt_cfg(), nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    assert summary(groups) == {"trunk_regularized": (2, 12), "trunk_unregularized": (2, 6)}


def test_registered_constructor_and_unknown_name(model):
    @register_param_group_constructor("test_heads_frozen_lr")
    def heads_at_zero(net, options):
        groups = default_param_groups(net, options)
        for g in groups:
            g["lr_mult"] = 0.0 if g["name"].startswith("head") else g["lr_mult"]
        return groups

    try:
        groups = build_param_groups(opt_cfg(param_group_constructor="test_heads_frozen_lr"), model)
        assert [g["lr_mult"] for g in groups] == [1.0, 1.0, 0.0, 0.0]
    finally:
        del PARAM_GROUP_CONSTRUCTORS["test_heads_frozen_lr"]
    with pytest.raises(ConfigError, match="param_group_constructor: got 'lr_decy'; allowed: one of default, .*lr_decay"):
        build_param_groups(opt_cfg(param_group_constructor="lr_decy"), model)


def test_a_constructor_missing_contract_keys_is_refused(model):
    @register_param_group_constructor("test_bare")
    def bare(net, options):
        return [{"params": list(net.parameters()), "name": "bare"}]

    try:
        with pytest.raises(ConfigError, match="group 'bare' lacks param_names"):
            build_param_groups(opt_cfg(param_group_constructor="test_bare"), model)
    finally:
        del PARAM_GROUP_CONSTRUCTORS["test_bare"]

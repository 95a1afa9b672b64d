"""Parameter groups on a ResNet-50 trunk with an MLP head, counted independently in the test."""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from vissl_lite.errors import ConfigError
from vissl_lite.config.schema import OptimizerConfig
from vissl_lite.models import ResNet, SSLModel
from vissl_lite.models.heads import MLP
from vissl_lite.optim import build_optimizer, build_param_groups


def opt_cfg(**changes):
    cfg = OmegaConf.structured(OptimizerConfig)
    OmegaConf.update(cfg, "param_schedulers.lr", {"name": "constant", "value": 0.4}, merge=True)
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
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0, 1e-4, 0.0]
    assert all(g["lr"] == 0.4 for g in groups)
    assert sum(n for n, _ in summary(groups).values()) == len(list(model.parameters()))


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


def test_frozen_shared_and_non_regularized(model):
    c = independent_counts(model)
    tied = nn.Linear(3, 3)
    m = SSLModel(nn.Sequential(tied, nn.ReLU(), tied), nn.Sequential(nn.Linear(3, 2)))  # shared module
    groups = build_param_groups(opt_cfg(), m)
    assert summary(groups) == {"trunk_regularized": (2, 12), "head_regularized": (2, 8)}

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
    assert names["trunk_unregularized"]["lr"] == 0.4  # keeps the trunk LR
    expected_reg = c["trunk_conv"][0] - 2 - sum(1 for n in layer4 if "conv" in n or "downsample.0" in n)
    assert len(names["trunk_regularized"]["params"]) == expected_reg


def test_unknown_non_trainable_name_is_refused(model):
    with pytest.raises(ConfigError, match="MODEL.NON_TRAINABLE_PARAMS"):
        build_param_groups(opt_cfg(), model, non_trainable_params=["trunk.conv9.weight"])


def test_single_group(model):
    groups = build_param_groups(opt_cfg(construct_single_param_group_only=True), model)
    assert len(groups) == 1 and len(groups[0]["params"]) == len(list(model.parameters()))


def test_head_lr_and_wd(model):
    cfg = opt_cfg(**{"head_optimizer_params": {"use_different_lr": True, "use_different_wd": True,
                                               "weight_decay": 0.5},
                     "param_schedulers.lr_head": {"name": "constant", "value": 0.01}})
    groups = {g["name"]: g for g in build_param_groups(cfg, model)}
    assert groups["head_regularized"]["lr"] == 0.01 and groups["head_regularized"]["weight_decay"] == 0.5
    assert groups["head_regularized"]["lr_schedule"] == "lr_head"
    assert groups["trunk_regularized"]["lr"] == 0.4 and groups["trunk_regularized"]["weight_decay"] == 1e-4


def test_custom_keys_longest_match_wins(model):
    cfg = opt_cfg(**{"paramwise.custom_keys": {"layer4": {"lr_mult": 0.1, "decay_mult": 2.0},
                                               "layer4.2.conv3": {"lr_mult": 0.0},
                                               "no_such_layer": {"lr_mult": 3.0}}})
    with pytest.warns(UserWarning, match="custom_keys.no_such_layer matches no"):
        groups = {g["name"]: g for g in build_param_groups(cfg, model)}
    g4 = groups["trunk_regularized/custom:layer4"]
    assert g4["lr"] == pytest.approx(0.04) and g4["weight_decay"] == pytest.approx(2e-4)
    assert groups["trunk_regularized/custom:layer4.2.conv3"]["param_names"] == ["trunk.layer4.2.conv3.weight"]
    assert groups["trunk_regularized/custom:layer4.2.conv3"]["lr"] == 0.0
    assert groups["trunk_unregularized/custom:layer4"]["weight_decay"] == 0.0  # BN stays unregularized


def test_layer_wise_lr_decay(model):
    cfg = opt_cfg(param_group_constructor="lr_decay", **{"layer_wise_lr_decay.decay": 0.5})
    groups = build_param_groups(cfg, model)
    by_param = {n: g["lr"] for g in groups for n in g["param_names"]}
    assert by_param["trunk.conv1.weight"] == pytest.approx(0.4 * 0.5**5)  # stem: depth 0
    assert by_param["trunk.layer1.0.conv1.weight"] == pytest.approx(0.4 * 0.5**4)
    assert by_param["trunk.layer3.5.bn2.bias"] == pytest.approx(0.4 * 0.5**2)
    assert by_param["trunk.layer4.2.conv3.weight"] == pytest.approx(0.4 * 0.5)
    assert by_param["heads.0.layers.0.weight"] == pytest.approx(0.4)


def test_plain_module_is_all_trunk():
    groups = build_param_groups(opt_cfg(), nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)))
    assert summary(groups) == {"trunk_regularized": (2, 12), "trunk_unregularized": (2, 6)}


def test_optimizer_registry_and_names(model):
    from vissl_lite.optim import OPTIMIZERS, register_optimizer

    @register_optimizer("test_plain_sgd")
    def _plain(groups, cfg):
        return torch.optim.SGD(groups, lr=0.0)

    try:
        opt = build_optimizer(opt_cfg(name="test_plain_sgd"), model)
        assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["name"] == "trunk_regularized"
    finally:
        del OPTIMIZERS["test_plain_sgd"]
    with pytest.raises(ConfigError, match="adam, adamw, lars, rmsprop, sgd"):
        build_optimizer(opt_cfg(name="nadam_typo"), model)
    for name, cls in [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                      ("rmsprop", torch.optim.RMSprop)]:
        opt = build_optimizer(opt_cfg(name=name), model)
        assert type(opt) is cls and opt.defaults["foreach"] is True

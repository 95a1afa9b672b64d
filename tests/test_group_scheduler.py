"""Per-step application of schedules to parameter groups, against the formulas by hand."""

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vissl_lite.config.schema import OptimizerConfig
from vissl_lite.errors import ConfigError
from vissl_lite.optim import build_optimizer
from vissl_lite.optim.group_scheduler import GroupScheduler


def opt_cfg(**changes):
    cfg = OmegaConf.structured(OptimizerConfig)
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value, merge=True)
    return cfg


class TwoPart(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
        self.heads = torch.nn.Sequential(torch.nn.Linear(4, 2))


COSINE = {"name": "cosine", "start_value": 1.0, "end_value": 0.0}


def cos(w):
    return 0.5 * (1 + math.cos(math.pi * w))


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_trajectory(interval):
    cfg = opt_cfg(num_epochs=3, **{"param_schedulers.lr": {**COSINE, "update_interval": interval}})
    optimizer = build_optimizer(cfg, TwoPart())
    sched = GroupScheduler(cfg, steps_per_epoch=4)
    for k in range(12):
        sched.apply(optimizer, k)
        w = k / 12 if interval == "step" else (k // 4) / 3
        assert all(g["lr"] == pytest.approx(cos(w), abs=1e-15) for g in optimizer.param_groups)


def test_head_lr_weight_decay_and_momentum_schedules():
    cfg = opt_cfg(num_epochs=2, weight_decay=0.5, **{
        "head_optimizer_params.use_different_lr": True,
        "param_schedulers.lr": COSINE,
        "param_schedulers.lr_head": {"name": "constant", "value": 0.25},
        "param_schedulers.weight_decay": {"name": "linear", "start_value": 0.1, "end_value": 0.3},
        "param_schedulers.momentum": {"name": "linear", "start_value": 0.8, "end_value": 0.9},
        "paramwise.custom_keys": {"heads": {"lr_mult": 2.0, "decay_mult": 0.5}},
    })
    optimizer = build_optimizer(cfg, TwoPart())
    sched = GroupScheduler(cfg, steps_per_epoch=5)
    sched.apply(optimizer, 4)  # where = 0.4
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["trunk_regularized"]["lr"] == pytest.approx(cos(0.4))
    assert groups["trunk_regularized"]["weight_decay"] == pytest.approx(0.18)
    assert groups["trunk_unregularized"]["weight_decay"] == 0.0  # BatchNorm: stays 0
    assert groups["head_regularized/custom:heads"]["lr"] == pytest.approx(0.5)  # 0.25 x lr_mult 2
    assert groups["head_regularized/custom:heads"]["weight_decay"] == pytest.approx(0.09)  # x decay_mult .5
    assert all(g["momentum"] == pytest.approx(0.84) for g in optimizer.param_groups)


def test_adam_beta1_follows_the_momentum_schedule():
    cfg = opt_cfg(name="adamw", num_epochs=1, **{"param_schedulers.lr": COSINE,
                                                  "param_schedulers.momentum": {"name": "constant", "value": 0.7}})
    optimizer = build_optimizer(cfg, TwoPart())
    GroupScheduler(cfg, steps_per_epoch=3).apply(optimizer, 1)
    assert all(g["betas"] == (0.7, 0.999) for g in optimizer.param_groups)


def test_resume_at_any_step_sees_the_same_values():
    cfg = opt_cfg(num_epochs=4, **{"param_schedulers.lr": {
        "name": "composite", "lengths": [0.25, 0.75],
        "schedulers": [{"name": "linear", "start_value": 0.1, "end_value": 1.0}, COSINE]}})
    straight = build_optimizer(cfg, TwoPart())
    sched = GroupScheduler(cfg, steps_per_epoch=7)
    history = []
    for k in range(28):
        sched.apply(straight, k)
        history.append([g["lr"] for g in straight.param_groups])
    resumed = build_optimizer(cfg, TwoPart())
    later = GroupScheduler(cfg, steps_per_epoch=7)  # a new process: only the step counter carries over
    for k in range(17, 28):
        later.apply(resumed, k)
        assert [g["lr"] for g in resumed.param_groups] == history[k]


MMENGINE_WARMUP_COSINE = {"name": "mmengine", "base_value": 0.4, "schedulers": [
    {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "end": 4},
    {"type": "CosineAnnealingLR", "eta_min": 0.0, "begin": 1, "by_epoch": True, "convert_to_iter_based": True}]}


def test_mmengine_schedule_times_each_groups_multiplier():
    cfg = opt_cfg(num_epochs=3, **{"param_schedulers.lr": MMENGINE_WARMUP_COSINE,
                                   "paramwise.custom_keys": {"heads": {"lr_mult": 2.0}}})
    optimizer = build_optimizer(cfg, TwoPart())
    sched = GroupScheduler(cfg, steps_per_epoch=4)
    # warmup: 0.4 x (0.1 + 0.9 l / 3) for iterations 0-3; then a cosine over iterations 4-11
    expected = [0.04, 0.16, 0.28, 0.4] + [0.4 * cos(l / 8) for l in range(8)]
    for k in range(12):
        sched.apply(optimizer, k)
        groups = {g["name"]: g["lr"] for g in optimizer.param_groups}
        assert groups["trunk_regularized"] == pytest.approx(expected[k], rel=1e-12)
        assert groups["head_regularized/custom:heads"] == pytest.approx(2 * expected[k], rel=1e-12)


def test_momentum_schedules_start_from_optimizer_momentum():
    mmengine = {"name": "mmengine", "schedulers": [{"type": "CosineAnnealingMomentum", "eta_min": 0.85,
                                                    "by_epoch": False}]}
    cfg = opt_cfg(num_epochs=2, momentum=0.95, **{"param_schedulers.lr": COSINE, "param_schedulers.momentum": mmengine})
    optimizer = build_optimizer(cfg, TwoPart())
    sched = GroupScheduler(cfg, steps_per_epoch=5)
    for k in (0, 3, 9):
        sched.apply(optimizer, k)
        assert all(g["momentum"] == pytest.approx(0.85 + 0.1 * cos(k / 10)) for g in optimizer.param_groups)
    cyclic = {"name": "mmcv", "policy": "cyclic", "base_value": 0.95, "target_ratio": [0.85 / 0.95, 1.0]}
    cfg = opt_cfg(name="adamw", num_epochs=1, **{"param_schedulers.lr": COSINE, "param_schedulers.momentum": cyclic})
    optimizer = build_optimizer(cfg, TwoPart())
    GroupScheduler(cfg, steps_per_epoch=100).apply(optimizer, 40)  # the bottom of mmcv's cyclic momentum
    assert all(g["betas"] == (pytest.approx(0.85), 0.999) for g in optimizer.param_groups)


@pytest.mark.parametrize("lr", [MMENGINE_WARMUP_COSINE, {
    "name": "mmcv", "base_value": 0.1, "policy": "step", "step": [2, 3], "warmup": "exp", "warmup_iters": 9}])
def test_resume_is_exact_in_every_dialect(lr):
    cfg = opt_cfg(num_epochs=4, **{"param_schedulers.lr": lr})
    straight, history = build_optimizer(cfg, TwoPart()), []
    sched = GroupScheduler(cfg, steps_per_epoch=4)
    for k in range(16):
        sched.apply(straight, k)
        history.append([g["lr"] for g in straight.param_groups])
    resumed, later = build_optimizer(cfg, TwoPart()), GroupScheduler(cfg, steps_per_epoch=4)
    for k in range(9, 16):
        later.apply(resumed, k)
        assert [g["lr"] for g in resumed.param_groups] == history[k]
    later.apply(resumed, 16)  # a finished run that resumes keeps the last step's values
    assert [g["lr"] for g in resumed.param_groups] == history[15]


def test_bad_schedule_is_a_config_error_naming_the_key():
    bad = {"name": "mmengine", "base_value": 0.1, "schedulers": [{"type": "LinearLR", "by_epoch": False,
                                                                  "begin": 50}]}
    cfg = opt_cfg(num_epochs=2, **{"param_schedulers.lr": bad})
    with pytest.raises(ConfigError, match=r"^OPTIMIZER\.param_schedulers\.lr\.schedulers\[0\]\.begin: got 50"):
        GroupScheduler(cfg, steps_per_epoch=10)  # 20 iterations: the default end comes before begin


def test_weight_decay_schedules_start_from_the_optimizers_weight_decay():
    mmengine = {"name": "mmengine", "schedulers": [{"type": "LinearParamScheduler", "start_factor": 0.5,
                                                    "by_epoch": False, "end": 3}]}
    cfg = opt_cfg(num_epochs=1, weight_decay=0.04, **{"param_schedulers.lr": COSINE,
                                                       "param_schedulers.weight_decay": mmengine})
    sched = GroupScheduler(cfg, steps_per_epoch=4)
    assert sched.schedule_values("weight_decay", np.arange(4)) == pytest.approx([0.02, 0.03, 0.04, 0.04])

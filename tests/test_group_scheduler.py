"""Per-step application of schedules to parameter groups, against the formulas by hand."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from vissl_lite.config.schema import OptimizerConfig
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

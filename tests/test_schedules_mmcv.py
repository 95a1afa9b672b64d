"""name: mmcv against mmcv 1.x's LrUpdaterHook / MomentumUpdaterHook behaviour, written out here
as its runner drives it (mmcv 1.x cannot be installed), and against hand-computed values."""

import math

import numpy as np
import pytest

from vissl_lite.errors import ConfigError
from vissl_lite.optim.schedules import build_step_schedule


def cos_anneal(start, end, t):
    return end + 0.5 * (start - end) * (math.cos(math.pi * t) + 1)


def lin_anneal(start, end, t):
    return start + (end - start) * t


def policy_value(cfg, base, progress, max_progress, momentum):
    """mmcv 1.x get_lr / get_momentum for one progress value."""
    policy = cfg["policy"].lower()
    if policy == "step":
        steps = cfg["step"]
        if isinstance(steps, int):
            n = progress // steps
        else:
            n = next((i for i, s in enumerate(steps) if progress < s), len(steps))
        value = base * cfg.get("gamma", 0.1) ** n
        return value if cfg.get("min_lr") is None else max(value, cfg["min_lr"])
    if policy == "poly":
        min_lr = cfg.get("min_lr", 0.0)
        return (base - min_lr) * (1 - progress / max_progress) ** cfg.get("power", 1.0) + min_lr
    if policy == "exp":
        return base * cfg["gamma"] ** progress
    if policy == "cosineannealing":
        target = base * cfg["min_lr_ratio"] if cfg.get("min_lr_ratio") is not None else cfg["min_lr"]
        return cos_anneal(base, target, progress / max_progress)
    assert policy == "cyclic"
    ratio = cfg.get("target_ratio", (0.85 / 0.95, 1.0) if momentum else (10, 1e-4))
    ratio = (ratio, ratio / 1e5) if isinstance(ratio, (int, float)) else tuple(ratio)
    length = max_progress // cfg.get("cyclic_times", 1)
    up = int(cfg.get("step_ratio_up", 0.4) * length)
    position, scale = progress % length, cfg.get("gamma", 1.0) ** (progress // length)
    anneal = lin_anneal if cfg.get("anneal_strategy") == "linear" else cos_anneal
    if position < up:
        return anneal(base, base * (1 - scale + ratio[0] * scale), position / up)
    return anneal(base * (1 - scale + ratio[0] * scale), base * ratio[1], (position - up) / (length - up))


def mmcv_values(cfg, num_epochs, steps_per_epoch, momentum=False):
    """What the optimizer sees at each iteration of mmcv's EpochBasedRunner: before_train_epoch
    sets the regular value when by_epoch; before_train_iter sets the regular value (iteration
    policies) or the warmup value while iter < warmup_iters."""
    base = cfg["base_value"]
    by_epoch = cfg.get("by_epoch", cfg["policy"].lower() != "cyclic")
    warmup, ratio = cfg.get("warmup"), cfg.get("warmup_ratio", 0.9 if momentum else 0.1)
    warmup_iters = cfg.get("warmup_iters", 0) * (steps_per_epoch if cfg.get("warmup_by_epoch") else 1)
    max_iters = num_epochs * steps_per_epoch

    def warmed(k, regular):
        if warmup == "constant":
            factor = ratio
        elif warmup == "linear":
            factor = 1 - (1 - k / warmup_iters) * (1 - ratio)
        else:
            factor = ratio ** (1 - k / warmup_iters)
        return regular / factor if momentum else regular * factor

    seen, current, regular = [], None, None
    for epoch in range(num_epochs):
        if by_epoch:
            regular = current = policy_value(cfg, base, epoch, num_epochs, momentum)
        for i in range(steps_per_epoch):
            k = epoch * steps_per_epoch + i
            if not by_epoch:
                regular = policy_value(cfg, base, k, max_iters, momentum)
                current = regular if warmup is None or k >= warmup_iters else warmed(k, regular)
            elif warmup is not None and k <= warmup_iters:
                current = regular if k == warmup_iters else warmed(k, regular)
            seen.append(current)
    return np.array(seen)


def ours(cfg, num_epochs, steps_per_epoch, momentum=False):
    key = "OPTIMIZER.param_schedulers." + ("momentum" if momentum else "lr")
    schedule = build_step_schedule({"name": "mmcv", **cfg}, key, num_epochs, steps_per_epoch,
                                   "momentum" if momentum else "lr")
    return schedule.values(np.arange(num_epochs * steps_per_epoch))


CASES = {
    "step_1x_warmup": {"base_value": 0.02, "policy": "step", "step": [8, 11], "warmup": "linear",
                       "warmup_iters": 50, "warmup_ratio": 0.001},
    "step_period_min_lr": {"base_value": 0.1, "policy": "Step", "step": 3, "gamma": 0.5, "min_lr": 0.02},
    "step_unsorted_list": {"base_value": 0.1, "policy": "step", "step": [11, 4]},
    "step_by_iter_exp_warmup": {"base_value": 0.1, "policy": "step", "step": [30, 70], "by_epoch": False,
                                "warmup": "exp", "warmup_iters": 25, "warmup_ratio": 0.01},
    "poly_by_iter": {"base_value": 0.01, "policy": "poly", "power": 0.9, "min_lr": 1e-4, "by_epoch": False},
    "poly_by_epoch_constant_warmup": {"base_value": 0.01, "policy": "poly", "warmup": "constant",
                                      "warmup_iters": 2, "warmup_by_epoch": True, "warmup_ratio": 0.5},
    "exp_by_epoch": {"base_value": 0.1, "policy": "exp", "gamma": 0.8},
    "cosine_warmup_min_lr_ratio": {"base_value": 0.02, "policy": "CosineAnnealing", "warmup": "linear",
                                   "warmup_iters": 30, "warmup_ratio": 0.1, "min_lr_ratio": 1e-5},
    "cosine_by_iter_min_lr": {"base_value": 0.02, "policy": "CosineAnnealing", "min_lr": 1e-4, "by_epoch": False},
    "cyclic_defaults": {"base_value": 0.0018, "policy": "cyclic"},
    "cyclic_two_cycles_gamma_linear": {"base_value": 0.001, "policy": "cyclic", "target_ratio": [5, 0.01],
                                       "cyclic_times": 3, "step_ratio_up": 0.25, "gamma": 0.5,
                                       "anneal_strategy": "linear", "warmup": "linear", "warmup_iters": 10},
    "cyclic_single_ratio": {"base_value": 0.001, "policy": "cyclic", "target_ratio": 4.0, "step_ratio_up": 0.0},
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_mmcv_hooks_at_every_step(name):
    np.testing.assert_allclose(ours(CASES[name], 12, 13), mmcv_values(CASES[name], 12, 13), rtol=1e-12, atol=1e-18)


MOMENTUM = {
    "cyclic_partner": {"base_value": 0.95, "policy": "cyclic", "target_ratio": [0.85 / 0.95, 1], "cyclic_times": 1,
                       "step_ratio_up": 0.4},
    "cyclic_warmup_divides": {"base_value": 0.9, "policy": "cyclic", "warmup": "linear", "warmup_iters": 20,
                              "cyclic_times": 2},
}


@pytest.mark.parametrize("name", list(MOMENTUM))
def test_momentum_matches_mmcv(name):
    np.testing.assert_allclose(ours(MOMENTUM[name], 12, 13, momentum=True),
                               mmcv_values(MOMENTUM[name], 12, 13, momentum=True), rtol=1e-12)


def test_worked_values_by_hand():
    # mmdet 2.x schedule_1x, 100 iterations per epoch: linear warmup over 500 iterations from 0.001
    step = ours(CASES["step_1x_warmup"] | {"warmup_iters": 500}, 12, 100)
    assert step[0] == pytest.approx(2e-5, rel=1e-12)
    assert step[250] == pytest.approx(0.02 * (1 - 0.5 * 0.999), rel=1e-12)  # 0.01001
    assert step[500] == pytest.approx(0.02) and step[799] == pytest.approx(0.02)
    assert step[800] == pytest.approx(0.002) and step[1099] == pytest.approx(0.002)
    assert step[1100] == pytest.approx(0.0002) and step[-1] == pytest.approx(0.0002)
    # poly 0.9 by iteration to 1e-4: half-way (0.01 - 1e-4) x 0.5 ** 0.9 + 1e-4 = 0.0054048
    poly = ours(CASES["poly_by_iter"], 8, 10)
    assert poly[40] == pytest.approx(0.0054048, rel=1e-4) and poly[0] == pytest.approx(0.01)
    # cyclic (10, 1e-4) over 100 iterations: 40 up, 60 down
    cyclic = ours(CASES["cyclic_defaults"], 1, 100)
    assert cyclic[0] == pytest.approx(0.0018) and cyclic[20] == pytest.approx(0.0099)
    assert cyclic[40] == pytest.approx(0.018) and cyclic[70] == pytest.approx(0.00900009)
    momentum = ours(MOMENTUM["cyclic_partner"], 1, 100, momentum=True)
    assert momentum[0] == pytest.approx(0.95) and momentum[40] == pytest.approx(0.85)
    assert momentum[70] == pytest.approx(0.9)
    # CosineAnnealing by epoch: 0.02 in epoch 0, 0.0100001 in epoch 6, 3.4074e-4 in epoch 11
    cosine = ours({"base_value": 0.02, "policy": "CosineAnnealing", "min_lr_ratio": 1e-5}, 12, 3)
    assert cosine[0] == cosine[2] == pytest.approx(0.02) and cosine[18] == pytest.approx(0.0100001)
    assert cosine[33] == pytest.approx(0.02 * (1 - 1e-5) * (1 + math.cos(11 * math.pi / 12)) / 2 + 2e-7)


BAD = [
    ({"policy": "OneCycle", "max_lr": 0.1}, "lr.policy", "one of Step, Poly, Exp, CosineAnnealing, Cyclic"),
    ({"policy": "fixed"}, "lr.policy", "one of Step"),
    ({"policy": "step", "step": [8, 11], "warmup": "cosine", "warmup_iters": 5}, "lr.warmup", "constant, linear, exp"),
    ({"policy": "step", "step": [8, 11], "warmup": "linear"}, "lr.warmup_iters", ">= 1 when warmup is set"),
    ({"policy": "step", "step": [8, 11], "warmup": "linear", "warmup_iters": 5, "warmup_ratio": 0.0},
     "lr.warmup_ratio", "(0, 1]"),
    ({"policy": "step"}, "lr.step", "required by Step"),
    ({"policy": "step", "step": [8, 0]}, "lr.step", "integer > 0"),
    ({"policy": "CosineAnnealing", "min_lr": 0.0, "min_lr_ratio": 0.01}, "lr.min_lr", "exactly one"),
    ({"policy": "CosineAnnealing"}, "lr.min_lr", "exactly one"),
    ({"policy": "cyclic", "by_epoch": True}, "lr.by_epoch", "counts iterations"),
    ({"policy": "cyclic", "target_ratio": [1, 2, 3]}, "lr.target_ratio", "one or two numbers"),
    ({"policy": "cyclic", "step_ratio_up": 1.0}, "lr.step_ratio_up", "[0, 1)"),
    ({"policy": "exp"}, "lr.gamma", "required by Exp"),
]


@pytest.mark.parametrize("section,key,allowed", BAD, ids=[f"{b[1]}:{b[2]}" for b in BAD])
def test_bad_configs_name_the_full_key(section, key, allowed):
    with pytest.raises(ConfigError) as err:
        build_step_schedule({"name": "mmcv", "base_value": 0.1, **section}, "OPTIMIZER.param_schedulers.lr", 12, 10)
    assert str(err.value).startswith(f"OPTIMIZER.param_schedulers.{key}:") and allowed in str(err.value)


def test_momentum_config_is_mmcv_momentum_hook():
    with pytest.raises(ConfigError, match=r"momentum\.policy: got 'step'; allowed: cyclic"):
        build_step_schedule({"name": "mmcv", "base_value": 0.9, "policy": "step", "step": [3]},
                            "OPTIMIZER.param_schedulers.momentum", 4, 4, "momentum")
    with pytest.raises(ConfigError, match=r"momentum\.warmup_by_epoch: .*counts warmup in iterations"):
        build_step_schedule({"name": "mmcv", "base_value": 0.9, "policy": "cyclic", "warmup": "linear",
                             "warmup_iters": 1, "warmup_by_epoch": True},
                            "OPTIMIZER.param_schedulers.momentum", 4, 4, "momentum")


MMDET = {  # (preset, its optimizer lr, lr_config as mmdet 2.x / mmdet3d write it, momentum_config)
    "mmcv_step_1x": (0.02, dict(policy="step", warmup="linear", warmup_iters=500, warmup_ratio=0.001, step=[8, 11]),
                     None),
    "mmcv_poly": (0.01, dict(policy="poly", power=0.9, min_lr=1e-4, by_epoch=False), None),
    "mmcv_cosine": (0.02, dict(policy="CosineAnnealing", warmup="linear", warmup_iters=1000, warmup_ratio=1.0 / 10,
                               min_lr_ratio=1e-5), None),
    "mmcv_cyclic": (0.0018, dict(policy="cyclic", target_ratio=(10, 1e-4), cyclic_times=1, step_ratio_up=0.4),
                    dict(policy="cyclic", target_ratio=(0.85 / 0.95, 1), cyclic_times=1, step_ratio_up=0.4)),
}


@pytest.mark.parametrize("preset", list(MMDET))
def test_mmdet_presets_step_by_step(preset):
    from vissl_lite.config.load import compose, resolve
    from vissl_lite.optim.group_scheduler import GroupScheduler

    cfg, _ = resolve(compose([f"+config/optimization={preset}", "engine_name=explain"]))
    lr, lr_config, momentum_config = MMDET[preset]
    scheduler = GroupScheduler(cfg.OPTIMIZER, steps_per_epoch=110)  # warmups end inside the run
    steps, epochs = np.arange(scheduler.total_steps), cfg.OPTIMIZER.num_epochs
    np.testing.assert_allclose(scheduler.schedule_values("lr", steps),
                               mmcv_values({"base_value": lr, **lr_config}, epochs, 110), rtol=1e-12, atol=1e-18)
    if momentum_config is not None:
        beta1 = cfg.OPTIMIZER.betas[0]  # mmcv's momentum hook starts from Adam's beta1
        np.testing.assert_allclose(scheduler.schedule_values("momentum", steps),
                                   mmcv_values({"base_value": beta1, **momentum_config}, epochs, 110, momentum=True),
                                   rtol=1e-12)


@pytest.mark.parametrize("preset,start", [("mmcv_step_1x", "2e-05"), ("mmcv_poly", "0.01"), ("mmcv_cosine", "0.002"),
                                          ("mmcv_cyclic", "0.0018")])
def test_mmdet_presets_explain(cli_in_process, preset, start):
    status, output = cli_in_process(f"+config/optimization={preset}", "engine_name=explain")
    assert status == 0, output
    assert f"lr: start {start}," in output

"""name: mmengine against MMEngine's own schedulers (mmengine-lite), stepped as its runner steps
them, compared at every optimizer step."""

import copy

import numpy as np
import pytest
import torch

from vissl_lite.errors import ConfigError
from vissl_lite.optim.schedules import build_step_schedule, check_schedule

mmengine_registry = pytest.importorskip("mmengine.registry")
pytest.importorskip("mmengine.optim")  # registers MMEngine's schedulers


def mmengine_values(base_value, schedulers, num_epochs, steps_per_epoch, param_name="lr"):
    """The value each optimizer step sees under MMEngine's Runner + EpochBasedTrainLoop +
    ParamSchedulerHook: schedulers built in list order with the runner's default `end`,
    iteration-based ones stepped after every iteration, epoch-based ones after every epoch."""
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=base_value if param_name == "lr" else 0.1,
                                momentum=base_value if param_name == "momentum" else 0.9)
    built = []
    for cfg in copy.deepcopy(schedulers):
        # Runner._build_param_scheduler: the default end is max_epochs or max_iters.
        cfg.setdefault("end", num_epochs if cfg.get("by_epoch", True) else num_epochs * steps_per_epoch)
        built.append(mmengine_registry.PARAM_SCHEDULERS.build(
            cfg, default_args=dict(optimizer=optimizer, epoch_length=steps_per_epoch)))
    seen = []
    for _ in range(num_epochs):
        for _ in range(steps_per_epoch):
            seen.append(optimizer.param_groups[0][param_name])
            optimizer.step()
            for scheduler in built:  # ParamSchedulerHook.after_train_iter
                if not scheduler.by_epoch:
                    scheduler.step()
        for scheduler in built:  # ParamSchedulerHook.after_train_epoch
            if scheduler.by_epoch:
                scheduler.step()
    return np.array(seen)


def ours(base_value, schedulers, num_epochs, steps_per_epoch, param_name="lr"):
    section = {"name": "mmengine", "base_value": base_value, "schedulers": schedulers}
    schedule = build_step_schedule(section, "OPTIMIZER.param_schedulers.lr", num_epochs, steps_per_epoch, param_name)
    return schedule.values(np.arange(num_epochs * steps_per_epoch))


E, B = 6, 5  # 30 optimizer steps

SINGLE = {
    "ConstantLR": {"factor": 0.5},
    "LinearLR": {"start_factor": 0.1, "end_factor": 0.9},
    "ExponentialLR": {"gamma": 0.8},
    "StepLR": {"step_size": 2, "gamma": 0.5},
    "MultiStepLR": {"milestones": [1, 3, 3, 4], "gamma": 0.3},
    "CosineAnnealingLR": {"eta_min": 0.01},
    "PolyLR": {"eta_min": 0.005, "power": 2.0},
    "OneCycleLR": {"eta_max": 0.5, "pct_start": 0.4, "div_factor": 10.0, "final_div_factor": 100.0},
    "CosineRestartLR": {"periods": [2, 3], "restart_weights": [1.0, 0.6], "eta_min": 0.001},
}


@pytest.mark.parametrize("by_epoch", [True, False])
@pytest.mark.parametrize("kind", list(SINGLE))
def test_each_type_alone(kind, by_epoch):
    entry = {"type": kind, "by_epoch": by_epoch, **SINGLE[kind]}
    if not by_epoch and kind in ("StepLR", "CosineRestartLR"):
        entry.update(step_size=7) if kind == "StepLR" else entry.update(periods=[10, 12])
    if not by_epoch and kind == "MultiStepLR":
        entry["milestones"] = [4, 11, 11, 20]
    np.testing.assert_allclose(ours(0.2, [entry], E, B), mmengine_values(0.2, [entry], E, B), rtol=1e-12, atol=1e-15)


CONVERTED = [
    {"type": "StepLR", "step_size": 2, "gamma": 0.5, "begin": 1},
    {"type": "MultiStepLR", "milestones": [1, 3], "gamma": 0.1, "end": 5},
    {"type": "CosineAnnealingLR", "T_max": 4, "eta_min": 0.002, "begin": 1, "end": 5},
    {"type": "CosineRestartLR", "periods": [2, 2], "restart_weights": [1.0, 0.5], "eta_min_ratio": 0.1},
    {"type": "OneCycleLR", "eta_max": 0.3, "total_steps": 6, "three_phase": True, "anneal_strategy": "linear"},
    {"type": "LinearLR", "start_factor": 0.2, "end": 2},
    {"type": "PolyLR", "power": 0.9, "begin": 2},
]


@pytest.mark.parametrize("entry", CONVERTED, ids=[c["type"] for c in CONVERTED])
def test_convert_to_iter_based(entry):
    entry = {**entry, "by_epoch": True, "convert_to_iter_based": True}
    np.testing.assert_allclose(ours(0.1, [entry], E, B), mmengine_values(0.1, [entry], E, B), rtol=1e-12, atol=1e-15)


COMBINED = {
    # mmdet 3.x's schedule_1x: iteration warmup over epoch milestones
    "warmup_over_multistep": [
        {"type": "LinearLR", "start_factor": 0.001, "by_epoch": False, "begin": 0, "end": 8},
        {"type": "MultiStepLR", "by_epoch": True, "begin": 0, "end": 6, "milestones": [1, 4], "gamma": 0.1}],
    # warmup still running when the first epoch-based decay happens (both step at an epoch end)
    "warmup_across_an_epoch_end": [
        {"type": "MultiStepLR", "milestones": [1, 2], "gamma": 0.5},
        {"type": "LinearLR", "start_factor": 0.25, "by_epoch": False, "end": 13}],
    # a cosine that starts later picks up the warmed-up value
    "cosine_starting_later": [
        {"type": "LinearLR", "start_factor": 0.01, "by_epoch": False, "end": 7},
        {"type": "CosineAnnealingLR", "eta_min": 0.001, "begin": 2, "end": 6}],
    # RTMDet: iteration warmup, then a cosine over the second half converted to iterations
    "rtmdet": [
        {"type": "LinearLR", "start_factor": 1.0e-5, "by_epoch": False, "begin": 0, "end": 9},
        {"type": "CosineAnnealingLR", "eta_min": 0.0002, "begin": 3, "end": 6, "T_max": 3, "by_epoch": True,
         "convert_to_iter_based": True}],
    # affine and multiplicative forms overlapping, iteration and epoch based
    "poly_under_linear_and_exp": [
        {"type": "PolyLR", "eta_min": 0.01, "power": 1.5, "by_epoch": False},
        {"type": "LinearLR", "start_factor": 0.5, "end_factor": 1.0, "by_epoch": False, "begin": 3, "end": 20},
        {"type": "ExponentialLR", "gamma": 0.9, "begin": 1}],
    "cosine_under_step": [
        {"type": "CosineAnnealingLR", "eta_min_ratio": 0.05, "by_epoch": False},
        {"type": "StepLR", "step_size": 4, "gamma": 0.7, "by_epoch": False, "begin": 2, "end": 25}],
    # a cosine whose T_max is shorter than its window climbs back up (MMEngine's second branch)
    "cosine_past_t_max": [{"type": "CosineAnnealingLR", "T_max": 4, "eta_min": 0.01, "by_epoch": False}],
    # OneCycleLR replaces the initial value of the schedulers built after it
    "one_cycle_then_cosine_ratio": [
        {"type": "OneCycleLR", "eta_max": 1.0, "by_epoch": False, "end": 12},
        {"type": "CosineAnnealingLR", "eta_min_ratio": 0.5, "by_epoch": False, "begin": 12}],
    "constant_then_restarts": [
        {"type": "ConstantLR", "factor": 0.25, "end": 2},
        {"type": "CosineRestartLR", "periods": [6, 9], "restart_weights": [0.8, 0.4], "eta_min": 0.0,
         "by_epoch": False, "begin": 10}],
    "windows_past_the_run": [
        {"type": "LinearLR", "start_factor": 0.3, "by_epoch": False, "end": 100},
        {"type": "MultiStepLR", "milestones": [2, 30], "begin": 3, "end": 50}],
}


@pytest.mark.parametrize("name", list(COMBINED))
def test_chained_and_overlapping_windows(name):
    schedulers = COMBINED[name]
    np.testing.assert_allclose(ours(0.1, schedulers, E, B), mmengine_values(0.1, schedulers, E, B),
                               rtol=1e-12, atol=1e-15)


def test_a_long_run_stays_exact():
    schedulers = [{"type": "LinearLR", "start_factor": 1e-3, "by_epoch": False, "end": 500},
                  {"type": "CosineAnnealingLR", "eta_min": 1e-5, "begin": 5, "by_epoch": True,
                   "convert_to_iter_based": True},
                  {"type": "MultiStepLR", "milestones": [7, 9], "gamma": 0.5}]
    np.testing.assert_allclose(ours(0.4, schedulers, 12, 250), mmengine_values(0.4, schedulers, 12, 250),
                               rtol=1e-10, atol=1e-15)


MOMENTUM = [
    [{"type": "CosineAnnealingMomentum", "eta_min": 0.85, "by_epoch": False}],
    [{"type": "LinearMomentum", "start_factor": 0.9, "by_epoch": False, "end": 10},
     {"type": "StepMomentum", "step_size": 2, "gamma": 0.99}],
    [{"type": "PolyMomentum", "eta_min": 0.5, "power": 2.0, "begin": 2},
     {"type": "ConstantMomentum", "factor": 0.9, "end": 2}],
    [{"type": "CosineRestartMomentum", "periods": [3, 3], "restart_weights": [1.0, 0.98], "eta_min": 0.8},
     {"type": "ExponentialMomentum", "gamma": 0.999, "by_epoch": False},
     {"type": "MultiStepMomentum", "milestones": [4], "gamma": 0.9}],
]


@pytest.mark.parametrize("schedulers", MOMENTUM, ids=[s[0]["type"] for s in MOMENTUM])
def test_momentum_variants(schedulers):
    np.testing.assert_allclose(ours(0.95, schedulers, E, B, "momentum"),
                               mmengine_values(0.95, schedulers, E, B, "momentum"), rtol=1e-12, atol=1e-15)


def test_worked_values_by_hand():
    # LinearLR start 0.25 over 5 iterations: base x (0.25 + 0.75 l / 4), then held
    linear = ours(0.1, [{"type": "LinearLR", "start_factor": 0.25, "by_epoch": False, "end": 5}], 1, 7)
    np.testing.assert_allclose(linear, [0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1, 0.1], rtol=1e-12)
    # mmdet 1x: 0.02 for epochs 0-7, 0.002 for 8-10, 0.0002 for 11
    multistep = ours(0.02, [{"type": "MultiStepLR", "milestones": [8, 11]}], 12, 1)
    np.testing.assert_allclose(multistep, [0.02] * 8 + [0.002] * 3 + [0.0002], rtol=1e-12)
    # CosineRestartLR periods [2, 2], weights [1, 0.5]: 1, 0.5 | 0.5, 0.25 | held
    restarts = ours(1.0, [{"type": "CosineRestartLR", "periods": [2, 2], "restart_weights": [1.0, 0.5],
                           "eta_min": 0.0}], 5, 1)
    np.testing.assert_allclose(restarts, [1.0, 0.5, 0.5, 0.25, 0.25], rtol=1e-12)


BAD = [
    ({"base_value": 0.1, "schedulers": [{"type": "ReduceOnPlateauLR"}]}, "lr.schedulers[0].type", "one of ConstantLR"),
    ({"base_value": 0.1, "schedulers": [{"type": "LinearLR"}, {"type": "LinearLR", "start_factor": 0.0}]},
     "lr.schedulers[1].start_factor", "(0, 1]"),
    ({"base_value": 0.1, "schedulers": [{"type": "StepLR", "gamma": 0.5}]}, "lr.schedulers[0].step_size",
     "required by StepLR"),
    ({"base_value": 0.1, "schedulers": [{"type": "CosineRestartLR", "periods": [2]}]}, "lr.schedulers[0].eta_min",
     "eta_min_ratio instead"),
    ({"base_value": 0.1, "schedulers": [{"type": "CosineAnnealingLR", "eta_min": 0.0, "eta_min_ratio": 0.1}]},
     "lr.schedulers[0].eta_min_ratio", "null when eta_min is set"),
    ({"base_value": 0.1, "schedulers": [{"type": "LinearLR", "begin": 4, "end": 4}]}, "lr.schedulers[0].end",
     "> begin = 4"),
    ({"base_value": 0.1, "schedulers": [{"type": "LinearLR", "by_epoch": False, "convert_to_iter_based": True}]},
     "lr.schedulers[0].convert_to_iter_based", "false when by_epoch is false"),
    ({"base_value": 0.1, "schedulers": [{"type": "LinearLR", "begin": 9}]}, "lr.schedulers[0].begin",
     "< 6, the default end"),
    ({"schedulers": [{"type": "LinearLR"}]}, "lr.base_value", "required by mmengine"),
    ({"base_value": 0.1, "schedulers": []}, "lr.schedulers", "non-empty list"),
    ({"base_value": 0.1, "schedulers": [{"type": "OneCycleLR", "eta_max": 1.0, "total_steps": 3, "by_epoch": False}]},
     "lr.schedulers[0].total_steps", ">= 29"),
]


@pytest.mark.parametrize("section,key,allowed", BAD, ids=[b[1] for b in BAD])
def test_bad_configs_name_the_full_key(section, key, allowed):
    with pytest.raises(ConfigError) as err:
        build_step_schedule({"name": "mmengine", **section}, "OPTIMIZER.param_schedulers.lr", E, B)
    assert str(err.value).startswith(f"OPTIMIZER.param_schedulers.{key}:") and allowed in str(err.value)


def test_checks_before_the_steps_per_epoch_are_known():
    good = {"name": "mmengine", "base_value": 0.1,
            "schedulers": [{"type": "LinearLR", "by_epoch": False, "begin": 0, "end": 1000}]}
    check_schedule(good, "lr", num_epochs=2)  # iterations unknown yet: checked when built
    with pytest.raises(ConfigError, match=r"lr\.schedulers\[0\]\.start_factor"):
        check_schedule({**good, "schedulers": [{"type": "LinearLR", "start_factor": 2.0}]}, "lr", num_epochs=2)
    with pytest.raises(ConfigError, match=r"momentum\.schedulers\[0\]\.type.*learning rate only"):
        check_schedule({**good, "schedulers": [{"type": "OneCycleLR", "eta_max": 1.0}]}, "momentum", 2, "momentum")


def test_sscma_rtmdet_preset_step_by_step():
    from vissl_lite.config.load import compose, resolve
    from vissl_lite.optim.group_scheduler import GroupScheduler

    cfg, _ = resolve(compose(["+config/optimization=sscma_rtmdet", "engine_name=explain"]))
    opt = cfg.OPTIMIZER
    assert (opt.name, opt.weight_decay, opt.num_epochs) == ("adamw", 0.05, 300)
    paramwise = opt.paramwise
    assert (paramwise.norm_decay_mult, paramwise.bias_decay_mult, paramwise.bypass_duplicate) == (0, 0, True)
    base_lr, max_epochs = 0.004, 300
    sscma = [  # Seeed-Studio/ModelAssistant configs/rtmdet_l_8xb32_300e_coco.py, param_scheduler
        dict(type="LinearLR", start_factor=1.0e-5, by_epoch=False, begin=0, end=1000),
        dict(type="CosineAnnealingLR", eta_min=base_lr * 0.05, begin=max_epochs // 2, end=max_epochs,
             T_max=max_epochs // 2, by_epoch=True, convert_to_iter_based=True)]
    scheduler = GroupScheduler(opt, steps_per_epoch=7)
    steps = np.arange(scheduler.total_steps)
    np.testing.assert_allclose(scheduler.schedule_values("lr", steps), mmengine_values(base_lr, sscma, 300, 7),
                               rtol=1e-10, atol=1e-15)


def test_sscma_rtmdet_preset_explains(cli_in_process):
    status, output = cli_in_process("+config/optimization=sscma_rtmdet", "engine_name=explain")
    assert status == 0, output
    assert "lr: start 4e-08," in output and "final 0.000200017" in output

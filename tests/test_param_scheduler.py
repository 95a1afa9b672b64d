"""Where-fraction schedules against fvcore's own classes, VISSL-only types against hand
computation; the registry, the refusal of `where` outside [0, 1) and the error layering."""

import math
from dataclasses import dataclass

import numpy as np
import pytest
from fvcore.common import param_scheduler as fv

from vissl_lite.errors import ConfigError
from vissl_lite.optim.schedules import SCHEDULES, arg, build_step_schedule, check_schedule
from vissl_lite.optim.schedules.fractions import CosineWarmRestartParamScheduler, ParamScheduler


def build_param_scheduler(cfg, key="OPTIMIZER.param_schedulers.lr"):
    """The where-function a config writes (num_epochs, when given, is OPTIMIZER.num_epochs)."""
    cfg = dict(cfg)
    return check_schedule(cfg, key, cfg.pop("num_epochs", 90))

# Many points, including exact boundaries and points within 1e-6 of them.
WHERE = sorted(set(np.linspace(0, 0.999, 1000).tolist() + [0.1 - 1e-7, 0.1, 0.1 + 1e-7, 0.3 - 5e-7, 0.3,
                                                             0.5 - 2e-6, 0.5, 0.7, 0.9 - 1e-7, 0.9]))

CASES = [
    ({"name": "constant", "value": 0.3}, fv.ConstantParamScheduler(0.3)),
    ({"name": "linear", "start_value": 0.01, "end_value": 1.0}, fv.LinearParamScheduler(0.01, 1.0)),
    ({"name": "cosine", "start_value": 1.0, "end_value": 0.001}, fv.CosineParamScheduler(1.0, 0.001)),
    ({"name": "multistep", "values": [1.0, 0.1, 0.01], "milestones": [3, 7], "num_epochs": 10},
     fv.MultiStepParamScheduler([1.0, 0.1, 0.01], num_updates=10, milestones=[3, 7])),
    ({"name": "multistep", "values": [1.0, 0.1, 0.01], "milestones": [], "num_epochs": 10},
     fv.MultiStepParamScheduler([1.0, 0.1, 0.01], num_updates=10)),
    ({"name": "step", "values": [1.0, 0.5, 0.25, 0.125]}, fv.StepParamScheduler(10, [1.0, 0.5, 0.25, 0.125])),
    ({"name": "step_with_fixed_gamma", "base_value": 2.0, "gamma": 0.1, "num_decays": 3, "num_epochs": 12},
     fv.StepWithFixedGammaParamScheduler(2.0, 3, 0.1, 12)),
    ({"name": "step_with_fixed_gamma", "base_value": 0.1, "gamma": 0.5, "num_decays": 4, "num_epochs": 90},
     fv.StepWithFixedGammaParamScheduler(0.1, 4, 0.5, 90)),
    ({"name": "exponential", "start_value": 2.0, "decay": 0.02}, fv.ExponentialParamScheduler(2.0, 0.02)),
    ({"name": "polynomial", "base_value": 0.5, "power": 2.0}, fv.PolynomialDecayParamScheduler(0.5, 2.0)),
    ({"name": "composite", "lengths": [0.1, 0.9], "interval_scaling": ["rescaled", "fixed"],
      "schedulers": [{"name": "linear", "start_value": 0.6, "end_value": 4.8},
                     {"name": "cosine", "start_value": 4.8, "end_value": 0.0048}]},
     fv.CompositeParamScheduler([fv.LinearParamScheduler(0.6, 4.8), fv.CosineParamScheduler(4.8, 0.0048)],
                                [0.1, 0.9], ["rescaled", "fixed"])),
    ({"name": "composite", "lengths": [0.3, 0.2, 0.5],
      "schedulers": [{"name": "constant", "value": 0.1},
                     {"name": "composite", "lengths": [0.5, 0.5],
                      "schedulers": [{"name": "linear", "start_value": 0.1, "end_value": 1.0},
                                     {"name": "step", "values": [1.0, 0.5]}]},
                     {"name": "polynomial", "base_value": 0.5, "power": 1.0}]},
     fv.CompositeParamScheduler(
         [fv.ConstantParamScheduler(0.1),
          fv.CompositeParamScheduler([fv.LinearParamScheduler(0.1, 1.0), fv.StepParamScheduler(2, [1.0, 0.5])],
                                     [0.5, 0.5], ["rescaled", "rescaled"]),
          fv.PolynomialDecayParamScheduler(0.5, 1.0)],
         [0.3, 0.2, 0.5], ["rescaled"] * 3)),
]


@pytest.mark.parametrize("cfg,reference", CASES, ids=[c["name"] + str(i) for i, (c, _) in enumerate(CASES)])
def test_matches_fvcore(cfg, reference):
    sched = build_param_scheduler(cfg)
    for w in WHERE:
        assert sched(w) == pytest.approx(reference(w), rel=1e-12, abs=1e-15), w
    # the vectorised form used by explain agrees with the scalar one
    np.testing.assert_allclose(sched(np.array(WHERE)), [sched(w) for w in WHERE], rtol=1e-15, atol=0)


def test_default_update_intervals_follow_classyvision():
    expected = {"constant": "epoch", "linear": "step", "cosine": "step", "multistep": "epoch", "step": "epoch",
                "step_with_fixed_gamma": "step", "polynomial": "step"}
    for name, interval in expected.items():
        assert SCHEDULES[name].default_update_interval == interval
    for cfg, _ in CASES:
        if cfg["name"] in expected:
            assert build_param_scheduler(cfg).interval == expected[cfg["name"]]
    assert build_param_scheduler({"name": "cosine", "start_value": 1, "end_value": 0,
                                  "update_interval": "epoch"}).interval == "epoch"


def test_step_with_fixed_gamma_uses_equal_buckets_of_where():
    # ClassyVision: 90 epochs, 3 decays -> changes at where 0.25 / 0.5 / 0.75
    cfg = {"name": "step_with_fixed_gamma", "base_value": 0.1, "gamma": 0.1, "num_decays": 3}
    by_step = build_step_schedule(cfg, "lr", num_epochs=90, steps_per_epoch=2).values(np.arange(180))
    changes = np.flatnonzero(np.diff(by_step)) + 1
    assert changes.tolist() == [45, 90, 135]  # mid-epoch 22.5, epoch 45, mid-epoch 67.5
    assert by_step[[0, 45, 90, 135]] == pytest.approx([0.1, 0.01, 0.001, 0.0001])
    by_epoch = build_step_schedule({**cfg, "update_interval": "epoch"}, "lr", 90, 1).values(np.arange(90))
    assert (np.flatnonzero(np.diff(by_epoch)) + 1).tolist() == [23, 45, 68]


def test_where_outside_training_is_refused():
    sched = build_param_scheduler({"name": "cosine", "start_value": 1.0, "end_value": 0.0})
    for where in (1.0, 1.5, -0.01):
        with pytest.raises(ValueError, match=r"where .* in \[0, 1\)"):
            sched(where)
    with pytest.raises(ValueError):
        sched(np.array([0.5, 1.0]))
    assert isinstance(sched, ParamScheduler) and sched(0.999999) == pytest.approx(0.0, abs=1e-10)


def test_steps_past_the_run_hold_the_last_value():
    schedule = build_step_schedule({"name": "linear", "start_value": 0.0, "end_value": 1.0}, "lr", 2, 5)
    assert schedule.values(10) == schedule.values(9) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="start at 0"):
        schedule.values(-1)


def test_inverse_sqrt_by_hand():
    s = build_param_scheduler({"name": "inverse_sqrt", "start_value": 4.8, "warmup_interval_length": 0.25})
    # d = 4.8 * sqrt(0.25) = 2.4; s(w) = 2.4 / sqrt(w)
    assert s(0.0) == pytest.approx(2.4)
    assert s(0.25) == pytest.approx(4.8)
    assert s(0.64) == pytest.approx(2.4 / 0.8)
    assert s(0.81) == pytest.approx(2.4 / 0.9)
    s0 = build_param_scheduler({"name": "inverse_sqrt", "start_value": 1.0, "warmup_interval_length": 0.0})
    assert s0(0.0) == 1.0 and s0(0.25) == pytest.approx(2.0)


def cosine(start, end, x):
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * x))


def test_cosine_warm_restart_half_waves_by_hand():
    s = build_param_scheduler({"name": "cosine_warm_restart", "start_value": 1.0, "end_value": 0.0,
                               "restart_interval_length": 0.25, "wave_type": "half", "lr_multiplier": 0.5})
    # restarts at 0, .25, .5, .75 with peaks 1, .5, .25, .125; inside a wave u = (w mod .25)/.25
    assert s(0.0) == pytest.approx(1.0)
    assert s(0.125) == pytest.approx(0.5)  # half-way down the first wave
    assert s(0.25) == pytest.approx(0.5)
    assert s(0.375) == pytest.approx(0.25)
    assert s(0.8) == pytest.approx(cosine(0.125, 0.0, 0.05 / 0.25))


def test_cosine_warm_restart_full_waves_by_hand():
    s = build_param_scheduler({"name": "cosine_warm_restart", "start_value": 2.0, "end_value": 0.0,
                               "restart_interval_length": 0.25, "wave_type": "full"})
    # restarts at 0, .25, .75 (full waves go down and back up); peaks stay 2.0; u = w / .25
    assert s(0.0) == pytest.approx(2.0)
    assert s(0.25) == pytest.approx(0.0, abs=1e-12)  # bottom of the first wave
    assert s(0.5) == pytest.approx(2.0)
    assert s(0.6) == pytest.approx(cosine(2.0, 0.0, 0.6 / 0.25))


def test_cosine_warm_restart_adaptive_by_hand():
    s = build_param_scheduler({"name": "cosine_warm_restart", "start_value": 1.0, "end_value": 0.0,
                               "restart_interval_length": 0.5, "wave_type": "half", "is_adaptive": True})
    # second peak = the single cosine over the whole run at w = 0.5: 0.5
    assert s(0.5) == pytest.approx(0.5)
    assert s(0.75) == pytest.approx(cosine(0.5, 0.0, 0.5))
    full = build_param_scheduler({"name": "cosine_warm_restart", "start_value": 1.0, "end_value": 0.0,
                                  "restart_interval_length": 0.25, "wave_type": "full", "is_adaptive": True})
    # restarts 0 and .25 (next at .75); the peak after restart .25 is the cosine at .25 + .25 = .5
    assert full(0.25) == pytest.approx(cosine(0.5, 0.0, 1.0))
    assert full(0.8) == pytest.approx(cosine(cosine(1.0, 0.0, 1.0), 0.0, 0.8 / 0.25))


BAD = [
    ({"name": "cosinus"}, "lr.name", "one of constant"),
    ({"name": "composite", "schedulers": [{"name": "constant", "value": 1}], "lengths": [0.5, 0.5]},
     "lr.lengths", "1 numbers, one per entry"),
    ({"name": "composite", "schedulers": [{"name": "constant", "value": 1}] * 2, "lengths": [0.5, 0.6]},
     "lr.lengths", "summing to 1"),
    ({"name": "composite", "schedulers": [{"name": "constant", "value": 1}] * 2, "lengths": [0.5, 0.5],
      "interval_scaling": ["rescaled"]}, "lr.interval_scaling", "2 words"),
    ({"name": "composite", "schedulers": [{"name": "constant", "value": 1}] * 2, "lengths": [0.5, 0.5],
      "interval_scaling": ["rescaled", "stretched"]}, "lr.interval_scaling", "rescaled or fixed"),
    ({"name": "multistep", "values": [1, 0.1, 0.01], "milestones": [5, 3], "num_epochs": 10},
     "lr.milestones", "strictly increasing"),
    ({"name": "multistep", "values": [1, 0.1, 0.01], "milestones": [3, 10], "num_epochs": 10},
     "lr.milestones", "below num_epochs=10"),
    ({"name": "multistep", "values": [1, 0.1, 0.01], "milestones": [3], "num_epochs": 10},
     "lr.milestones", "one fewer than values"),
    ({"name": "multistep", "values": [], "num_epochs": 10}, "lr.values", "non-empty"),
    ({"name": "step", "values": []}, "lr.values", "non-empty"),
    ({"name": "step_with_fixed_gamma", "base_value": 1, "gamma": 0, "num_decays": 2, "num_epochs": 9},
     "lr.gamma", "> 0"),
    ({"name": "step_with_fixed_gamma", "base_value": 1, "gamma": 0.1, "num_decays": 0, "num_epochs": 9},
     "lr.num_decays", "> 0"),
    ({"name": "step_with_fixed_gamma", "base_value": -1, "gamma": 0.1, "num_decays": 2, "num_epochs": 9},
     "lr.base_value", "> 0"),
    ({"name": "polynomial", "base_value": 0, "power": 1}, "lr.base_value", "> 0"),
    ({"name": "cosine_warm_restart", "start_value": 1, "end_value": 0, "restart_interval_length": 0.5,
      "wave_type": "quarter"}, "lr.wave_type", "one of half, full"),
    ({"name": "cosine_warm_restart", "start_value": 1, "end_value": 0, "restart_interval_length": 1.5},
     "lr.restart_interval_length", "(0, 1]"),
    ({"name": "cosine_warm_restart", "start_value": 1, "end_value": 0, "restart_interval_length": 0},
     "lr.restart_interval_length", "(0, 1]"),
    ({"name": "cosine", "start_value": 1}, "lr.end_value", "required by cosine"),
    ({"name": "exponential", "start_value": 1, "decay": 0}, "lr.decay", "> 0"),
    ({"name": "cosine", "start_value": 1, "end_value": 0, "update_interval": "batch"}, "lr.update_interval",
     "one of step, epoch"),
    ({"name": "composite", "lengths": [1.0], "schedulers": [{"name": "mmcv", "policy": "poly"}]},
     "lr.schedulers[0].name", "a where-fraction type"),
]


@pytest.mark.parametrize("cfg,key,allowed", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_schedules_name_the_key(cfg, key, allowed):
    with pytest.raises(ConfigError) as err:
        build_param_scheduler(cfg, "OPTIMIZER.param_schedulers.lr")
    assert str(err.value).startswith(f"OPTIMIZER.param_schedulers.{key}:")
    assert allowed in str(err.value)


def test_composite_child_key_is_named():
    cfg = {"name": "composite", "lengths": [0.5, 0.5],
           "schedulers": [{"name": "constant", "value": 1}, {"name": "linear", "start_value": 1}]}
    with pytest.raises(ConfigError, match=r"lr\.schedulers\[1\]\.end_value"):
        build_param_scheduler(cfg, "lr")


def test_the_maths_raise_plain_value_errors():
    # Only the builder knows the config key: the schedule classes raise ValueError naming the argument.
    with pytest.raises(ValueError) as err:
        CosineWarmRestartParamScheduler(1.0, 0.0, restart_interval_length=1.5)
    assert not isinstance(err.value, ConfigError) and str(err.value).startswith("restart_interval_length:")
    assert "OPTIMIZER" not in str(err.value)


def test_users_register_their_own_type():
    # The constructor is the config: a dataclass whose fields are its arguments.
    @SCHEDULES.register
    @dataclass
    class SquareRootDecay(ParamScheduler):
        """s(w) = base_value * sqrt(1 - w)."""

        name, value_fields = "test_sqrt_decay", ("base_value",)
        base_value: float = arg(gt=0, doc="value at w = 0")

        def _values(self, w):
            return self.base_value * np.sqrt(1 - w)

    try:
        schedule = build_step_schedule({"name": "test_sqrt_decay", "base_value": 2.0}, "lr", 1, 4)
        assert schedule.values(np.arange(4)) == pytest.approx([2.0, 2 * 0.75**0.5, 2 * 0.5**0.5, 1.0])
        with pytest.raises(ValueError, match="already registered"):
            SCHEDULES.register(SquareRootDecay)
        with pytest.raises(ConfigError, match=r"lr\.base_value: got -1"):
            build_step_schedule({"name": "test_sqrt_decay", "base_value": -1}, "lr", 1, 4)
        with pytest.raises(ConfigError, match=r"lr\.power: got 2; allowed: test_sqrt_decay takes base_value, update_interval"):
            build_step_schedule({"name": "test_sqrt_decay", "base_value": 1, "power": 2}, "lr", 1, 4)
    finally:
        del SCHEDULES["test_sqrt_decay"]

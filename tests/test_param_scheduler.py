"""Schedules against fvcore's own classes, and VISSL-only types against hand computation."""

import math

import numpy as np
import pytest
from fvcore.common import param_scheduler as fv

from vissl_lite.errors import ConfigError
from vissl_lite.optim.param_scheduler import build_param_scheduler

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
    for cfg, _ in CASES:
        if cfg["name"] in expected:
            assert build_param_scheduler(cfg).update_interval == expected[cfg["name"]]
    assert build_param_scheduler({"name": "cosine", "start_value": 1, "end_value": 0,
                                  "update_interval": "epoch"}).update_interval == "epoch"


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
     "lr.milestones", "below OPTIMIZER.num_epochs=10"),
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
      "wave_type": "quarter"}, "lr.wave_type", "half or full"),
    ({"name": "cosine_warm_restart", "start_value": 1, "end_value": 0, "restart_interval_length": 1.5},
     "lr.restart_interval_length", "(0, 1]"),
    ({"name": "cosine_warm_restart", "start_value": 1, "end_value": 0, "restart_interval_length": 0},
     "lr.restart_interval_length", "(0, 1]"),
    ({"name": "cosine", "start_value": 1}, "lr.end_value", "required by cosine"),
    ({"name": "multistep", "values": [1, 0.1]}, "lr.num_epochs", "OPTIMIZER.num_epochs"),
]


@pytest.mark.parametrize("cfg,key,allowed", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_schedules_name_the_key(cfg, key, allowed):
    with pytest.raises(ConfigError) as err:
        build_param_scheduler(cfg, "OPTIMIZER.param_schedulers.lr")
    assert f"OPTIMIZER.param_schedulers.{key}" in str(err.value)
    assert allowed in str(err.value)


def test_composite_child_key_is_named():
    cfg = {"name": "composite", "lengths": [0.5, 0.5],
           "schedulers": [{"name": "constant", "value": 1}, {"name": "linear", "start_value": 1}]}
    with pytest.raises(ConfigError, match=r"lr\.schedulers\[1\]\.end_value"):
        build_param_scheduler(cfg, "lr")

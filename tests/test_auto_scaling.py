"""Auto LR scaling: one rule (peak -> base_value x factor, shape kept) checked by hand per type."""

import json
import math

import numpy as np
import pytest

from vissl_lite.errors import ConfigError
from vissl_lite.config.infer import infer_config
from vissl_lite.config.load import compose, resolve
from vissl_lite.optim.auto_scaling import auto_scale_schedule

SCALING = {"auto_scale": True, "base_value": 0.1, "base_lr_batch_size": 256, "scaling_type": "linear"}


def scale(schedule, batch, scaling_type="linear", base_value=0.1):
    schedule = {**schedule, "auto_lr_scaling": {**SCALING, "scaling_type": scaling_type, "base_value": base_value}}
    return auto_scale_schedule(schedule, "lr", batch)


@pytest.mark.parametrize("scaling_type,factor", [("linear", 4.0), ("sqrt", 2.0)])
def test_each_type(scaling_type, factor):
    peak = 0.1 * factor  # base_value 0.1 at 256, batch 1024
    cases = [
        ({"name": "constant", "value": 0.5}, {"value": peak}),
        ({"name": "cosine", "start_value": 0.5, "end_value": 0.005}, {"start_value": peak, "end_value": peak / 100}),
        ({"name": "linear", "start_value": 0.05, "end_value": 0.5}, {"start_value": peak / 10, "end_value": peak}),
        ({"name": "multistep", "values": [0.5, 0.05, 0.01]}, {"values": [peak, peak / 10, peak / 50]}),
        ({"name": "step", "values": [0.2, 0.4]}, {"values": [peak / 2, peak]}),
        ({"name": "polynomial", "base_value": 0.3, "power": 2}, {"base_value": peak}),
        ({"name": "step_with_fixed_gamma", "base_value": 0.3, "gamma": 0.1}, {"base_value": peak, "gamma": 0.1}),
        ({"name": "inverse_sqrt", "start_value": 0.7, "warmup_interval_length": 0.1},
         {"start_value": peak, "warmup_interval_length": 0.1}),
        ({"name": "cosine_warm_restart", "start_value": 0.8, "end_value": 0.0}, {"start_value": peak, "end_value": 0.0}),
    ]
    for schedule, expected in cases:
        scaled, report = scale(schedule, 1024, scaling_type)
        assert report.factor == pytest.approx(factor)
        for k, v in expected.items():
            assert scaled[k] == pytest.approx(v, rel=1e-12), (schedule["name"], k)


def test_composite_keeps_a_lower_second_cycle_and_the_warmup_ratio():
    schedule = {"name": "composite", "lengths": [0.1, 0.4, 0.5], "schedulers": [
        {"name": "linear", "start_value": 0.02, "end_value": 0.2},
        {"name": "cosine", "start_value": 0.2, "end_value": 0.0},
        {"name": "cosine", "start_value": 0.1, "end_value": 0.0}]}
    scaled, report = scale(schedule, 512, base_value=0.3)  # peak -> 0.6, r = 3
    children = scaled["schedulers"]
    assert children[0]["start_value"] == pytest.approx(0.06) and children[0]["end_value"] == pytest.approx(0.6)
    assert children[1]["start_value"] == pytest.approx(0.6)
    assert children[2]["start_value"] == pytest.approx(0.3)  # the second peak stays half the first
    assert [c[0] for c in report.changes] == [
        "lr.schedulers[0].start_value", "lr.schedulers[0].end_value", "lr.schedulers[1].start_value",
        "lr.schedulers[1].end_value", "lr.schedulers[2].start_value", "lr.schedulers[2].end_value"]
    assert schedule["schedulers"][0]["end_value"] == 0.2  # the input is not modified


def test_mmengine_scales_the_base_only_as_auto_scale_lr_does():
    # MMEngine's Runner multiplies the optimizer's lr by the factor before building the
    # schedulers: an absolute eta_min stays, an eta_min_ratio follows the scaled base.
    schedule = {"name": "mmengine", "base_value": 0.004, "schedulers": [
        {"type": "LinearLR", "start_factor": 1e-5, "by_epoch": False, "end": 1000},
        {"type": "CosineAnnealingLR", "eta_min": 0.0002, "begin": 150, "end": 300},
        {"type": "CosineRestartLR", "periods": [5], "eta_min_ratio": 0.1}]}
    scaled, report = scale(schedule, 1024, base_value=0.004)  # factor 4: base 0.004 -> 0.016
    assert scaled["base_value"] == pytest.approx(0.016)
    assert scaled["schedulers"][1]["eta_min"] == 0.0002
    assert scaled["schedulers"][0]["start_factor"] == 1e-5 and scaled["schedulers"][2]["eta_min_ratio"] == 0.1
    assert [(k, b) for k, b, _ in report.changes] == [("lr.base_value", 0.004)]
    assert report.lines()[1:] == ["  lr.base_value: 0.004 -> 0.016"]


def test_mmengine_one_cycle_peak_stays_absolute():
    schedule = {"name": "mmengine", "base_value": 0.01, "schedulers": [{"type": "OneCycleLR", "eta_max": 0.1}]}
    scaled, _ = auto_scale_schedule({**schedule, "auto_lr_scaling": {"auto_scale": True}}, "lr", 512)
    assert scaled["schedulers"][0]["eta_max"] == 0.1 and scaled["base_value"] == pytest.approx(0.02)
    with pytest.raises(ConfigError, match=r"lr\.auto_lr_scaling\.base_value: got 0\.3; allowed: unset or 0\.01"):
        scale(schedule, 512, base_value=0.3)


def test_mmcv_base_value_and_min_lr_scale_ratios_stay():
    schedule = {"name": "mmcv", "base_value": 0.02, "policy": "step", "step": [8, 11], "min_lr": 0.001,
                "warmup": "linear", "warmup_iters": 500, "warmup_ratio": 0.001}
    scaled, report = scale(schedule, 64, base_value=0.02)  # factor 1/4
    assert scaled["base_value"] == pytest.approx(0.005) and scaled["min_lr"] == pytest.approx(0.00025)
    assert scaled["warmup_ratio"] == 0.001 and len(report.changes) == 2
    cosine = {"name": "mmcv", "base_value": 0.02, "policy": "CosineAnnealing", "min_lr_ratio": 1e-5}
    scaled, report = scale(cosine, 512, base_value=0.02)
    assert scaled["base_value"] == pytest.approx(0.04) and scaled["min_lr_ratio"] == 1e-5


def test_missing_values_are_refused():
    with pytest.raises(ConfigError, match="lr.auto_lr_scaling.auto_scale"):
        scale({"name": "cosine"}, 512)
    with pytest.raises(ConfigError, match="positive"):
        scale({"name": "constant", "value": 0.0}, 512)


VISSL_SIMCLR = [  # VISSL's published SimCLR schedule: base 0.3 at 256, warmup 0.6 -> 4.8, then cosine
    "OPTIMIZER.param_schedulers.lr.name=composite",
    "OPTIMIZER.param_schedulers.lr.update_interval=step",
    "OPTIMIZER.param_schedulers.lr.schedulers=[{name:linear,start_value:0.6,end_value:4.8},"
    "{name:cosine,start_value:4.8,end_value:0.0048}]",
    "OPTIMIZER.param_schedulers.lr.lengths=[0.1,0.9]",
    "OPTIMIZER.param_schedulers.lr.interval_scaling=[rescaled,fixed]",
    "OPTIMIZER.param_schedulers.lr.auto_lr_scaling.auto_scale=true",
    "OPTIMIZER.param_schedulers.lr.auto_lr_scaling.base_value=0.3",
    "DATA.TRAIN.BATCHSIZE_PER_REPLICA=64",
]


def test_vissl_simclr_recipe_on_64_gpus():
    from vissl_lite.config.validate import validate_config

    cfg = validate_config(compose(VISSL_SIMCLR))
    resolved, inferred = infer_config(cfg, world_size=64)
    lr = resolved.OPTIMIZER.param_schedulers.lr
    assert inferred.global_batch_size == 4096
    assert lr.schedulers[0].start_value == pytest.approx(0.6) and lr.schedulers[0].end_value == pytest.approx(4.8)
    assert lr.schedulers[1].start_value == pytest.approx(4.8)
    assert resolved.OPTIMIZER.param_schedulers.lr_head == lr  # lr_head follows lr


def test_accumulation_counts_in_the_global_batch():
    from vissl_lite.config.validate import validate_config

    cfg = validate_config(compose(VISSL_SIMCLR + ["OPTIMIZER.accumulation_steps=4"]))
    resolved, inferred = infer_config(cfg, world_size=16)
    assert inferred.global_batch_size == 64 * 16 * 4
    assert resolved.OPTIMIZER.param_schedulers.lr.schedulers[1].start_value == pytest.approx(4.8)


def test_different_head_lr_is_scaled_on_its_own():
    from vissl_lite.config.validate import validate_config

    cfg = validate_config(compose(VISSL_SIMCLR + [
        "OPTIMIZER.head_optimizer_params.use_different_lr=true",
        "OPTIMIZER.param_schedulers.lr_head={name:constant,value:1.0,auto_lr_scaling:{auto_scale:true,base_value:0.05}}",
    ]))
    resolved, inferred = infer_config(cfg, world_size=8)  # 512 images: factor 2
    assert resolved.OPTIMIZER.param_schedulers.lr_head.value == pytest.approx(0.1)
    assert resolved.OPTIMIZER.param_schedulers.lr.schedulers[1].start_value == pytest.approx(0.6)


@pytest.mark.parametrize("nodes,procs", [(1, 1), (1, 2), (2, 4)])
def test_explain_previews_the_world_size(tmp_path, monkeypatch, capsys, nodes, procs):
    from vissl_lite.engine.explain import explain

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    overrides = VISSL_SIMCLR + ["engine_name=explain", f"DISTRIBUTED.NUM_NODES={nodes}",
                                f"DISTRIBUTED.NUM_PROC_PER_NODE={procs}", "DATA.TRAIN.DATA_SOURCES=[synthetic]",
                                "DATA.TRAIN.NUM_SAMPLES_SYNTHETIC=8192", "OPTIMIZER.num_epochs=4"]
    cfg, inferred = resolve(compose(overrides))
    world = nodes * procs
    report = explain(cfg, inferred, str(tmp_path))
    peak = 0.3 * 64 * world / 256
    assert report["world_size"] == world and report["global_batch_size"] == 64 * world
    assert report["steps_per_epoch"] == 8192 // (64 * world)
    assert report["lr_scaling"][0]["scaled_peak"] == pytest.approx(peak, rel=1e-12)
    # the warmup keeps its 1:8 ratio; the sampled run peaks just below `peak` (the linear
    # warmup reaches it at 10%, where the fixed-interval cosine already starts lower)
    assert report["schedule_summary"]["lr"]["start"] == pytest.approx(peak / 8, rel=1e-12)
    assert peak * 0.97 < report["schedule_summary"]["lr"]["peak"] <= peak
    saved = json.loads((tmp_path / "explain.json").read_text())
    assert len(np.load(tmp_path / saved["schedules_file"])["lr"]) == 4 * (8192 // (64 * world))
    assert math.isclose(saved["groups"][0]["lr_start"], peak / 8, rel_tol=1e-12)
    assert (tmp_path / "schedule.png").stat().st_size > 10_000
    assert f"factor {64 * world / 256:g}" in capsys.readouterr().out

"""engine_name=explain shows every dialect from the one shared GroupScheduler, and handles a
1000-epoch x 5000-step run (the MMEngine dialect, whose recursion is the costliest to compile;
scripts/bench_explain.py times it)."""

import contextlib
import io
import json

import numpy as np
import pytest

from vissl_lite.config.load import compose, resolve
from vissl_lite.engine.explain import explain



def lr_warmup_cosine(num_epochs):
    """MMEngine LR: 1000 warmup iterations, a cosine over the second half converted to iterations."""
    return ("OPTIMIZER.param_schedulers.lr={name:mmengine,base_value:0.004,schedulers:["
            "{type:LinearLR,start_factor:1.0e-5,by_epoch:false,end:1000},"
            f"{{type:CosineAnnealingLR,eta_min:2.0e-4,begin:{num_epochs // 2},by_epoch:true,"
            "convert_to_iter_based:true}],auto_lr_scaling:{auto_scale:false}}")


def run_of(num_epochs, steps_per_epoch):
    return [f"OPTIMIZER.num_epochs={num_epochs}", "DATA.TRAIN.DATA_SOURCES=[synthetic]",
            f"DATA.TRAIN.NUM_SAMPLES_SYNTHETIC={steps_per_epoch}", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=1",
            "engine_name=explain"]


def run_explain(overrides, run_dir):
    cfg, inferred = resolve(compose(overrides))
    with contextlib.redirect_stdout(io.StringIO()) as out:
        report = explain(cfg, inferred, str(run_dir))
    return report, out.getvalue()


def test_every_dialect_is_explained(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cyclic_momentum = "OPTIMIZER.param_schedulers.momentum={name:mmcv,policy:cyclic}"
    cosine_wd = "OPTIMIZER.param_schedulers.weight_decay={name:cosine,start_value:0.04,end_value:0.4}"
    report, printed = run_explain([lr_warmup_cosine(4), cyclic_momentum, cosine_wd, *run_of(4, 600)], tmp_path)
    saved = json.loads((tmp_path / "explain.json").read_text())
    arrays = np.load(tmp_path / saved["schedules_file"])
    assert sorted(saved["schedules"]) == sorted(arrays.files)
    lr, momentum, wd = (arrays[k] for k in ("lr", "momentum", "weight_decay"))
    assert len(lr) == len(momentum) == len(wd) == report["total_steps"] == 2400
    # by hand: LinearLR reaches the base at iteration 999; the cosine runs over epochs 2-3
    # (iterations 1200-2399) from there to 2e-4; mmcv's cyclic momentum (default 0.85 / 0.95, 1)
    # starts at OPTIMIZER.momentum 0.9 and bottoms out at 0.9 x 0.85 / 0.95 after 40% of the run.
    assert lr[0] == pytest.approx(0.004 * 1e-5) and lr[999] == lr[1200] == pytest.approx(0.004)
    assert lr[1800] == pytest.approx(2e-4 + 0.5 * (0.004 - 2e-4), rel=1e-9)
    assert momentum[0] == pytest.approx(0.9) and momentum[960] == pytest.approx(0.9 * 0.85 / 0.95)
    assert wd[0] == pytest.approx(0.04) and wd[1200] == pytest.approx(0.22)
    assert "momentum: start 0.9" in printed and (tmp_path / "schedule.png").stat().st_size > 10_000


def test_a_1000_epoch_5000_step_schedule_explains(tmp_path, monkeypatch):
    # Its time is measured by scripts/bench_explain.py, not here.
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    report, _ = run_explain([lr_warmup_cosine(1000), *run_of(1000, 5000)], tmp_path)
    assert report["total_steps"] == 5_000_000
    lr = report["schedules"][report["groups"][0]["lr_schedule"]]
    # LinearLR reaches the base at iteration 999; the cosine (epochs 500-999, per iteration)
    # is halfway down at epoch 750 and ends one iteration short of eta_min
    assert lr[999] == lr[2_500_000] == pytest.approx(0.004)
    assert lr[3_750_000] == pytest.approx(2e-4 + 0.5 * (0.004 - 2e-4), rel=1e-9)
    assert lr[-1] == pytest.approx(2e-4, abs=1e-12)

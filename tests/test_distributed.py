"""torchrun on CPU (gloo): training, checkpoint and resume with 2 processes, and the
equivalence of N processes x batch b with 1 process x batch N*b."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, finish, start_cli

# GroupNorm everywhere (no batch statistics) and deterministic views: both runs see the same
# images through the same network, so only the data split over processes differs.
EQUIV = [
    "MODEL.TRUNK.RESNETS.NORM=GroupNorm", "MODEL.TRUNK.RESNETS.GROUPNORM_GROUPS=4",
    "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125",
    "DATA.TRAIN.TRANSFORMS.CROP_SCALE=[1.0,1.0]", "DATA.TRAIN.TRANSFORMS.COLOR_JITTER_P=0.0",
    "DATA.TRAIN.DATA_LIMIT=48", "OPTIMIZER.num_epochs=1", "OPTIMIZER.use_larc=true",
    "HOOKS.PROGRESS_BAR=false", "HOOKS.LOG_FREQUENCY=1", "HOOKS.KNN_MONITOR.ENABLED=false",
    "OPTIMIZER.param_schedulers.lr.auto_lr_scaling.auto_scale=false",
]
LOSSES = {
    "simclr": ["LOSS.name=simclr_info_nce_loss", "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,64,32],use_relu:true}]]"],
    # No biases, as in the Barlow Twins projector: standardisation makes the loss blind to the
    # last bias, and LARC would turn its rounding-noise gradient into a full-size step.
    "barlow": ["LOSS.name=barlow_twins_loss", "LOSS.barlow_twins_loss.embedding_dim=32",
               "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,64,32],use_relu:true,use_bias:false}]]"],
    "supervised": ["LOSS.name=cross_entropy", "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,10]}]]"],
}


def logged_losses(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r["loss"] for r in map(json.loads, lines) if "loss" in r]


def final_weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "model_final.torch", weights_only=True)["model"]


def assert_close_runs(a, b):
    for x, y in zip(logged_losses(a), logged_losses(b), strict=True):
        assert x == pytest.approx(y, rel=1e-5)
    wa, wb = final_weights(a), final_weights(b)
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-7, msg=key)


@pytest.mark.parametrize("loss", ["simclr", "barlow"])
def test_two_processes_equal_one_with_the_global_batch(tmp_path, loss):
    two = start_cli(tmp_path / "two", *EQUIV, *LOSSES[loss], "DATA.TRAIN.BATCHSIZE_PER_REPLICA=8", nproc=2)
    finish(start_cli(tmp_path / "one", *EQUIV, *LOSSES[loss], "DATA.TRAIN.BATCHSIZE_PER_REPLICA=16"))
    finish(two)
    assert len(logged_losses(tmp_path / "one")) == 3  # 48 images / 16 = 3 optimizer steps
    assert_close_runs(tmp_path / "two", tmp_path / "one")


def test_accumulation_under_ddp_equals_the_full_batch(tmp_path):
    two = start_cli(tmp_path / "two", *EQUIV, *LOSSES["supervised"], "DATA.TRAIN.BATCHSIZE_PER_REPLICA=4",
                    "OPTIMIZER.accumulation_steps=2", nproc=2)
    finish(start_cli(tmp_path / "one", *EQUIV, *LOSSES["supervised"], "DATA.TRAIN.BATCHSIZE_PER_REPLICA=16"))
    finish(two)
    assert_close_runs(tmp_path / "two", tmp_path / "one")


def test_two_process_run_checkpoints_and_resumes(tmp_path):
    common = ["DATA.TRAIN.DATA_LIMIT=128", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=16", "HOOKS.PROGRESS_BAR=false",
              "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125",
              "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,64,32],use_bn:true,use_relu:true}]]"]
    first = finish(start_cli(tmp_path / "run", *common, "OPTIMIZER.num_epochs=1", nproc=2))
    assert "world size 2 (WORLD_SIZE), global batch 32" in first
    state = torch.load(tmp_path / "run" / "checkpoints" / "model_final.torch", weights_only=True)
    assert state["step"] == 4 and state["world_size"] == 2 and len(state["rng"]) == 2
    # asking for more epochs: every rank resumes from the same checkpoint at step 4
    out = finish(start_cli(tmp_path / "run", *common, "OPTIMIZER.num_epochs=2", nproc=2))
    assert "resumed from" in out and "at optimizer step 4 of 8" in out
    assert torch.load(tmp_path / "run" / "checkpoints" / "model_final.torch", weights_only=True)["step"] == 8
    assert out.count("final kNN top-1") == 1  # the main process alone reports


def test_sync_bn_on_cpu_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(ROOT / "run.py"),
         f"hydra.run.dir={tmp_path}", "MODEL.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN=true", "DATA.TRAIN.DATA_LIMIT=64",
         "DATA.TRAIN.BATCHSIZE_PER_REPLICA=16"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode != 0
    assert "MODEL.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN: got True" in result.stderr
    assert "CUDA devices only" in result.stderr


def test_a_hanging_rank_ends_the_others_with_a_clear_error(tmp_path):
    """SIGSTOP one rank mid-training: the other gives up after DISTRIBUTED.TIMEOUT_MINUTES."""
    import signal
    import time

    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(ROOT / "run.py"),
           f"hydra.run.dir={run_dir}", "DISTRIBUTED.TIMEOUT_MINUTES=0.05", "HOOKS.PROGRESS_BAR=false",
           "HOOKS.LOG_FREQUENCY=1", "OPTIMIZER.num_epochs=50", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=64",
           "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125",
           "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,64,32],use_bn:true,use_relu:true}]]"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    ranks = subprocess.run(["pgrep", "-f", f"hydra.run.dir={run_dir}"], capture_output=True, text=True).stdout.split()
    *others, worker = [int(pid) for pid in ranks if int(pid) != proc.pid]
    os.kill(worker, signal.SIGSTOP)
    try:
        # Once the live rank has given up, wake the stopped one so that it takes torchrun's
        # SIGTERM now rather than after torchrun's 30 s grace period.
        deadline = time.time() + 120
        while time.time() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in others):
            time.sleep(0.2)
    finally:
        try:
            os.kill(worker, signal.SIGCONT)
        except ProcessLookupError:  # torchrun already ended it
            pass
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "a collective did not complete within DISTRIBUTED.TIMEOUT_MINUTES=0.05" in out

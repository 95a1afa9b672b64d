"""SwAV and MoCo end to end: a run killed with SIGKILL and rerun ends bitwise identical to one
that never stopped (queues, frozen prototypes, key encoder included), and under torchrun 2
processes x 8 images train as 1 process x 16 (CPU, gloo)."""

import json

import pytest
import torch

from conftest import finish, sigkill_after_steps, start_cli

COMMON = ["DATA.TRAIN.DATA_LIMIT=256", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=32", "OPTIMIZER.num_epochs=2",
          "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125", "HOOKS.PROGRESS_BAR=false", "HOOKS.LOG_FREQUENCY=1",
          "HOOKS.KNN_MONITOR.ENABLED=false"]
MOCO_HEAD = "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,32],use_relu:true,skip_last_layer_relu_bn:false}],[mlp,{dims:[32,16]}]]"
METHODS = {
    # A queue of 64 per process that starts filling at step 3 (full, and used, from step 5) and
    # prototypes frozen for 4 steps.
    "swav": ["config=pretrain/swav/swav_digits", "DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER=2",
             "DATA.TRAIN.TRANSFORMS.LOCAL_CROP_SIZE=4",
             "MODEL.HEAD.PARAMS=[[swav_head,{dims:[64,32,16],use_bn:true,num_clusters:[20]}]]",
             "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP=[[prototypes0,4]]", "LOSS.swav_loss.queue.queue_length=64",
             "LOSS.swav_loss.queue.start_iter=3"],
    # A queue of 48 keys (wraps around mid-batch) and a scheduled key momentum.
    "moco": ["config=pretrain/moco/moco_digits", "LOSS.moco_loss.embedding_dim=16", "LOSS.moco_loss.queue_size=48",
             MOCO_HEAD,
             "LOSS.moco_loss.momentum={name:cosine,start_value:0.9,end_value:1.0}"],
}


def final_state(run_dir):
    return torch.load(run_dir / "checkpoints" / "model_final.torch", weights_only=True)


def assert_bitwise_equal(a, b, where="state"):
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_bitwise_equal(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bitwise_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


@pytest.mark.parametrize("method", sorted(METHODS))
def test_sigkill_then_the_same_command_ends_bitwise_identical(tmp_path, method):
    args = [*METHODS[method], *COMMON, "CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=1"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = start_cli(straight, *args)  # trains beside the run that gets killed
    assert sigkill_after_steps(start_cli(killed, *args), killed, 6) < 16, "the run finished before the kill"
    finish(start_cli(killed, *args))
    finish(reference)
    a, b = final_state(straight), final_state(killed)
    assert a["step"] == b["step"] == 16
    for part in ("model", "optim_wrappers", "method"):
        assert_bitwise_equal(a[part], b[part], part)
    assert a["method"]  # the queue (and MoCo's key encoder) are in the checkpoint
    if method == "swav":
        assert a["method"]["queue"]["filled"] == 64


# GroupNorm (no batch statistics), no BatchNorm in the heads and deterministic crops: both runs
# see the same images through the same network, so only the split over processes differs.
EQUIV = ["MODEL.TRUNK.RESNETS.NORM=GroupNorm", "MODEL.TRUNK.RESNETS.GROUPNORM_GROUPS=4",
         "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125", "DATA.TRAIN.TRANSFORMS.CROP_SCALE=[1.0,1.0]",
         "DATA.TRAIN.TRANSFORMS.LOCAL_CROP_SCALE=[1.0,1.0]", "DATA.TRAIN.TRANSFORMS.COLOR_JITTER_P=0.0",
         "DATA.TRAIN.DATA_LIMIT=48", "OPTIMIZER.num_epochs=1", "HOOKS.PROGRESS_BAR=false", "HOOKS.LOG_FREQUENCY=1",
         "HOOKS.KNN_MONITOR.ENABLED=false", "OPTIMIZER.param_schedulers.lr.auto_lr_scaling.auto_scale=false"]
EQUIV_METHODS = {
    # 3 steps of 16 images; a global queue of 32 (16 per process under 2) is full after 2 steps,
    # so the third step's targets come from 48 samples: the queue's Sinkhorn sums span processes.
    "swav": ["config=pretrain/swav/swav_digits", "DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER=2",
             "DATA.TRAIN.TRANSFORMS.LOCAL_CROP_SIZE=4",
             "MODEL.HEAD.PARAMS=[[swav_head,{dims:[64,32,16],num_clusters:[20]}]]",
             "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP=[[prototypes0,1]]", "LOSS.swav_loss.queue.queue_length=32"],
    # keys gathered from both processes, shuffled over them (a no-op for GroupNorm, up to rounding)
    "moco": ["config=pretrain/moco/moco_digits", "LOSS.moco_loss.embedding_dim=16", "LOSS.moco_loss.queue_size=40",
             MOCO_HEAD],
}


def logged_losses(run_dir):
    return [r["loss"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.parametrize("method", sorted(EQUIV_METHODS))
def test_two_processes_equal_one_with_the_global_batch(tmp_path, method):
    two = start_cli(tmp_path / "two", *EQUIV_METHODS[method], *EQUIV, "DATA.TRAIN.BATCHSIZE_PER_REPLICA=8", nproc=2)
    finish(start_cli(tmp_path / "one", *EQUIV_METHODS[method], *EQUIV, "DATA.TRAIN.BATCHSIZE_PER_REPLICA=16"))
    finish(two)
    two, one = logged_losses(tmp_path / "two"), logged_losses(tmp_path / "one")
    assert len(one) == 3
    assert two == pytest.approx(one, rel=1e-5)
    wa, wb = final_state(tmp_path / "two")["model"], final_state(tmp_path / "one")["model"]
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6, msg=key)

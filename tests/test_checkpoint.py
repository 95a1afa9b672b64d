"""Checkpoints: exact resume (bitwise on CPU), preemption, damaged files, refusals."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import SigtermAt, finish, sigkill_after_steps, start_cli
from vissl_lite.config.load import compose, resolve
from vissl_lite.engine import checkpoint as ckpt
from vissl_lite.engine.train import train

TINY = [
    "OPTIMIZER.num_epochs=2",  # 256 images / 32 = 8 optimizer steps per epoch, 16 in all
    "DATA.TRAIN.DATA_LIMIT=256",
    "DATA.TRAIN.BATCHSIZE_PER_REPLICA=32",
    "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125",
    "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,64,32],use_bn:true,use_relu:true}]]",
    "HOOKS.PROGRESS_BAR=false",
    "HOOKS.LOG_FREQUENCY=1",
    "HOOKS.KNN_MONITOR.ENABLED=false",
    "CHECKPOINT.CHECKPOINT_FREQUENCY=1",  # every epoch (the digits experiment writes every 10)
]


def run(run_dir, *overrides):
    cfg, inferred = resolve(compose(TINY + ["LOSS.name=test_sigterm", *overrides]))
    return train(cfg, inferred, str(run_dir))


def final_state(run_dir):
    return torch.load(run_dir / "checkpoints" / ckpt.FINAL, weights_only=True)


def losses(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}


def assert_bitwise_equal(a, b):
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["optim_wrappers"].keys() == b["optim_wrappers"].keys() == {"model", "online_linear_probe"}
    for wrapper, saved in a["optim_wrappers"].items():
        other = b["optim_wrappers"][wrapper]
        assert (saved["step_count"], saved["inner_count"]) == (other["step_count"], other["inner_count"])
        for index, state in saved["optimizer"]["state"].items():
            for name, value in state.items():
                assert torch.equal(value, other["optimizer"]["state"][index][name]), (wrapper, index, name)
    for key in a["online_linear_probe"]:
        assert torch.equal(a["online_linear_probe"][key], b["online_linear_probe"][key]), key


@pytest.mark.parametrize("stop_at", [5, 8])  # mid-epoch, and the last step of epoch 1
def test_preempted_run_resumes_bitwise(tmp_path, sigterm_loss, stop_at):
    sigterm_loss["loss"] = SigtermAt(None)
    run(tmp_path / "straight")
    sigterm_loss["loss"] = SigtermAt(stop_at)
    first = run(tmp_path / "stopped")
    assert first["preempted"] and first["steps"] == stop_at
    saved = torch.load(tmp_path / "stopped" / "checkpoints" / ckpt.step_file(stop_at), weights_only=True)
    assert saved["step"] == stop_at
    sigterm_loss["loss"] = SigtermAt(None)
    second = run(tmp_path / "stopped")  # the same command again
    assert second["steps"] == 16 and not second["preempted"]
    assert_bitwise_equal(final_state(tmp_path / "straight"), final_state(tmp_path / "stopped"))
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "stopped")
    assert all(resumed[k] == straight[k] for k in range(1, 17))


def test_corrupted_latest_falls_back(tmp_path, sigterm_loss, caplog):
    sigterm_loss["loss"] = SigtermAt(None)
    run(tmp_path, "CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=3", "CHECKPOINT.MAX_KEEP=0")
    folder = tmp_path / "checkpoints"
    assert [p.name for p, _ in ckpt.list_checkpoints(folder)] == [
        ckpt.FINAL, ckpt.step_file(15), ckpt.step_file(12), ckpt.step_file(9), ckpt.step_file(8),
        ckpt.step_file(6), ckpt.step_file(3)]
    final = folder / ckpt.FINAL
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])  # truncated
    with caplog.at_level("WARNING"):
        state, path = ckpt.load_latest(folder)
    assert path.name == ckpt.step_file(15) and state["step"] == 15
    assert "model_final.torch cannot be loaded" in caplog.text
    result = run(tmp_path)  # resumes from step 15 and finishes
    assert result["steps"] == 16


def test_max_keep(tmp_path, sigterm_loss):
    sigterm_loss["loss"] = SigtermAt(None)
    run(tmp_path, "CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=2", "CHECKPOINT.MAX_KEEP=2")
    names = sorted(p.name for p, _ in ckpt.list_checkpoints(tmp_path / "checkpoints"))
    assert names == sorted([ckpt.FINAL, ckpt.step_file(14)])


def test_different_model_is_refused_with_keys(tmp_path, sigterm_loss):
    from vissl_lite.errors import CheckpointError

    sigterm_loss["loss"] = SigtermAt(None)
    run(tmp_path, "OPTIMIZER.num_epochs=1")
    with pytest.raises(CheckpointError, match=r"does not fit this model: .*shape mismatches"):
        run(tmp_path, "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.25",
            "MODEL.HEAD.PARAMS=[[mlp,{dims:[128,64,32],use_bn:true,use_relu:true}]]")
    with pytest.raises(CheckpointError, match=r"different optimizer layout: .*group trunk_unregularized: no longer has"):
        run(tmp_path, "OPTIMIZER.regularize_bn=true")
    result = run(tmp_path, "OPTIMIZER.regularize_bn=true", "CHECKPOINT.LOAD_WEIGHTS_ONLY=true")
    assert result["steps"] == 16  # the weights, and the step count, carried over


def test_changed_batch_size_keeps_the_fraction(tmp_path, sigterm_loss, caplog):
    sigterm_loss["loss"] = SigtermAt(4)
    run(tmp_path)  # stops after step 4 of 16 (a quarter)
    sigterm_loss["loss"] = SigtermAt(None)
    with caplog.at_level("WARNING"):
        result = run(tmp_path, "DATA.TRAIN.BATCHSIZE_PER_REPLICA=64")  # 4 steps per epoch, 8 in all
    assert "step 4 of 16" in caplog.text and "step 2 of 8" in caplog.text
    assert result["steps"] == 8


def test_sigkill_during_a_write_keeps_the_previous_checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    ckpt.save_checkpoint(folder, {"step": 1, "epoch": 0, "w": torch.ones(3)}, ckpt.step_file(1), 0)
    writer = (
        "import sys, torch; from pathlib import Path; from vissl_lite.engine import checkpoint as c;"
        "c.save_checkpoint(Path(sys.argv[1]), {'step': 2, 'epoch': 0, 'w': torch.ones(150_000_000)},"
        " c.step_file(2), 0)"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer, str(folder)], cwd=os.path.dirname(os.path.dirname(__file__)))
    deadline = time.time() + 60
    while not list(folder.glob(".*.tmp")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (folder / ckpt.step_file(2)).exists(), "the write finished before the kill; make it bigger"
    state, path = ckpt.load_latest(folder)
    assert path.name == ckpt.step_file(1) and torch.equal(state["w"], torch.ones(3))


def test_checkpoint_loads_with_weights_only(tmp_path, sigterm_loss):
    sigterm_loss["loss"] = SigtermAt(None)
    run(tmp_path, "OPTIMIZER.num_epochs=1")
    state = torch.load(tmp_path / "checkpoints" / ckpt.FINAL, weights_only=True)
    assert {"model", "optim_wrappers", "method", "step", "epoch", "rng", "config"} <= set(state)
    assert state["rng"][0]["augment"].dtype == torch.uint8 and "OPTIMIZER" in state["config"]


def test_weights_init_and_linear_eval(tmp_path, sigterm_loss):
    from vissl_lite.errors import ConfigError

    sigterm_loss["loss"] = SigtermAt(None)
    run(tmp_path / "pre", "OPTIMIZER.num_epochs=1")
    weights = tmp_path / "pre" / "checkpoints" / ckpt.FINAL
    cfg, inferred = resolve(compose(["config=benchmark/linear_eval/linear_eval_digits", *TINY[1:4],
                                     "OPTIMIZER.num_epochs=1", "HOOKS.PROGRESS_BAR=false",
                                     f"MODEL.WEIGHTS_INIT.PARAMS_FILE={weights}",
                                     "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,10]}]]"]))
    result = train(cfg, inferred, str(tmp_path / "linear"))
    assert 0.1 < result["test_top1"] <= 1.0
    trained = torch.load(tmp_path / "linear" / "checkpoints" / ckpt.FINAL, weights_only=True)["model"]
    pretrained = torch.load(weights, weights_only=True)["model"]
    assert torch.equal(trained["trunk.layer1.0.conv1.weight"], pretrained["trunk.layer1.0.conv1.weight"])  # frozen
    missing = str(tmp_path / "none.torch")
    cfg.MODEL.WEIGHTS_INIT.PARAMS_FILE = missing
    with pytest.raises(ConfigError, match="MODEL.WEIGHTS_INIT.PARAMS_FILE"):
        train(cfg, inferred, str(tmp_path / "linear2"))


def test_sigkill_then_the_same_command_ends_bitwise_identical(tmp_path):
    """A run killed with no warning after some iteration, rerun with the same command."""
    args = [*TINY, "LOSS.name=simclr_info_nce_loss", "CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=1", "OPTIMIZER.num_epochs=3"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = start_cli(straight, *args)  # trains beside the run that gets killed
    assert sigkill_after_steps(start_cli(killed, *args), killed, 5) < 24, "the run finished before the kill"
    finish(start_cli(killed, *args))
    finish(reference)
    assert_bitwise_equal(final_state(straight), final_state(killed))

"""The run-directory lock: one live run per run directory, with real processes.

A second `run.py` (or torchrun job) on a directory in use exits at once, on every rank, naming
the holder; a holder killed with SIGKILL leaves a lock file that does not block the rerun.
"""

import datetime
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, clean_env, run_cli, start_cli
from vissl_lite.distributed import DistEnv
from vissl_lite.engine import run_lock
from vissl_lite.errors import ConfigError, TrainingError

TINY = [  # 256 images / 32 = 8 optimizer steps per epoch
    "DATA.TRAIN.DATA_LIMIT=256", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=32",
    "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125",
    "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,64,32],use_bn:true,use_relu:true}]]",
    "HOOKS.PROGRESS_BAR=false", "HOOKS.LOG_FREQUENCY=1", "HOOKS.KNN_MONITOR.ENABLED=false",
]
HOST = socket.gethostname()


def start_training(run_dir, *overrides):
    """`python run.py` in the background, its output in RUN_DIR.log (a pipe nobody reads could fill up)."""
    proc = start_cli(run_dir, *TINY, *overrides)
    proc.output = lambda: proc.log_path.read_text()[-3000:]
    return proc


def wait_for(condition, proc, timeout=60):
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, proc.output()
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.05)


def logged_steps(run_dir):
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().split("\n")[:-1] if path.exists() else []  # whole lines only: it may be mid-write
    return [r["step"] for r in map(json.loads, lines) if "loss" in r]


# --- the module, in this process -------------------------------------------------------------

def test_holder_identity_is_written_and_a_stale_file_does_not_block(tmp_path):
    run_dir = tmp_path / "a" / "b"
    run_dir.mkdir(parents=True)
    (run_dir / run_lock.LOCK_NAME).write_text('{"pid": 999999, "host": "gone", "since": "x", "command": "old"}')
    with run_lock.hold(run_dir, DistEnv()):
        who = run_lock.holder(run_dir)
        assert (who["pid"], who["host"]) == (os.getpid(), HOST)
        since = datetime.datetime.fromisoformat(who["since"])
        assert abs((datetime.datetime.now().astimezone() - since).total_seconds()) < 60
        assert sys.argv[0] in who["command"]
    assert run_lock.holder(run_dir) is None  # released: no identity left to mislead
    with run_lock.hold(run_dir, DistEnv()):
        pass


def test_the_directory_is_created(tmp_path):
    with run_lock.hold(tmp_path / "x" / "y" / "z", DistEnv()):
        assert (tmp_path / "x" / "y" / "z" / run_lock.LOCK_NAME).is_file()


def test_a_checkpoint_dir_shared_by_two_run_directories_is_held_too(tmp_path):
    shared = tmp_path / "shared_checkpoints"
    with run_lock.hold(tmp_path / "run_a", DistEnv(), shared):
        with pytest.raises(TrainingError) as refused:
            with run_lock.hold(tmp_path / "run_b", DistEnv(), shared):
                pytest.fail("two runs writing one checkpoint folder")
        # the refused run let go of its own run directory again
        with run_lock.hold(tmp_path / "run_b", DistEnv()):
            pass
    message = str(refused.value)
    assert message.startswith(f"checkpoint folder {shared} (CHECKPOINT.DIR) is in use by pid {os.getpid()} ")
    assert "CHECKPOINT.DIR=<another folder>" in message
    # a CHECKPOINT.DIR inside the run directory is covered by the run directory's lock
    with run_lock.hold(tmp_path / "run_c", DistEnv(), tmp_path / "run_c" / "ckpt"):
        assert not (tmp_path / "run_c" / "ckpt").exists()


def test_a_second_holder_fails_at_once_naming_the_first(tmp_path):
    with run_lock.hold(tmp_path, DistEnv()):
        start = time.perf_counter()
        with pytest.raises(TrainingError) as refused:
            with run_lock.hold(tmp_path, DistEnv()):
                pytest.fail("two holders")
        assert time.perf_counter() - start < 1.0
    message = str(refused.value)
    assert f"run directory {tmp_path} is in use by pid {os.getpid()} on host {HOST} since " in message
    assert f"kill {os.getpid()} on {HOST}" in message and "hydra.run.dir=<another directory>" in message


def test_a_holder_that_has_not_written_its_identity_yet(tmp_path):
    import fcntl

    with open(tmp_path / run_lock.LOCK_NAME, "w") as other:  # locked, empty: caught between flock and write
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(TrainingError, match="in use by another process .it has not written its identity yet"):
            with run_lock.hold(tmp_path, DistEnv()):
                pass


@pytest.mark.parametrize("where, error", [("file", "FileExistsError"), ("file/run", "NotADirectoryError")])
def test_a_file_in_the_way_is_a_config_error(tmp_path, where, error):
    (tmp_path / "file").write_text("")
    path = tmp_path / where
    with pytest.raises(ConfigError) as refused:
        with run_lock.hold(path, DistEnv()):
            pass
    assert str(refused.value).startswith(
        f"hydra.run.dir: got '{path}'; allowed: a directory this process can create and write ({error}: ")


# --- real processes ----------------------------------------------------------------------------

def test_a_second_run_exits_at_once_while_the_first_trains_on(tmp_path):
    run_dir = tmp_path / "run"
    first = start_training(run_dir, "OPTIMIZER.num_epochs=40")  # 320 steps: a few seconds
    try:
        wait_for(lambda: run_lock.holder(run_dir) is not None, first)
        second = run_cli(f"hydra.run.dir={run_dir}", *TINY, "OPTIMIZER.num_epochs=40", "SEED_VALUE=7", cwd=tmp_path,
                         env_extra={"OMP_NUM_THREADS": "1"}, timeout=60)
        assert first.poll() is None, "the first run ended before the second was refused; make it longer"
        steps_when_refused = len(logged_steps(run_dir))
        first.wait(timeout=120)
    finally:
        first.kill()
    assert second.returncode == 1, second.stderr[-3000:]
    assert second.stderr.startswith(f"vissl_lite: error: run directory {run_dir} is in use by pid {first.pid} "
                                    f"on host {HOST} since ")
    assert "hydra.run.dir=<another directory>" in second.stderr and "Traceback" not in second.stderr
    assert first.returncode == 0, first.output()
    assert logged_steps(run_dir) == list(range(1, 321))  # every step once: the second wrote nothing
    assert "SEED_VALUE=7" not in (run_dir / ".hydra" / "overrides.yaml").read_text()  # nor its config
    assert "OPTIMIZER.num_epochs=40" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert steps_when_refused < 320


def test_a_run_killed_with_sigkill_does_not_block_the_rerun(tmp_path):
    run_dir = tmp_path / "run"
    args = ["OPTIMIZER.num_epochs=8", "CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=1"]  # 64 steps
    killed = start_training(run_dir, *args)
    wait_for(lambda: len(logged_steps(run_dir)) >= 3, killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert run_lock.holder(run_dir)["pid"] == killed.pid  # the stale file is still there
    rerun = run_cli(f"hydra.run.dir={run_dir}", *TINY, *args, cwd=tmp_path,
                    env_extra={"OMP_NUM_THREADS": "1"}, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed_at = int(re.search(r"resumed from \S+ at optimizer step (\d+) of 64", rerun.stdout).group(1))
    assert 2 <= resumed_at < 64  # from a step checkpoint written before the kill
    assert torch.load(run_dir / "checkpoints" / "model_final.torch", weights_only=True)["step"] == 64
    assert run_lock.holder(run_dir) is None


def test_a_second_torchrun_fails_on_every_rank(tmp_path):
    holder_script = ("import sys; from pathlib import Path; from vissl_lite.distributed import DistEnv; "
                     "from vissl_lite.engine import run_lock\n"
                     "with run_lock.hold(Path(sys.argv[1]), DistEnv()):\n"
                     "    print('locked', flush=True); sys.stdin.read()")
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", holder_script, str(run_dir)], cwd=ROOT, env=clean_env(OMP_NUM_THREADS="1"),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        job = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                              str(ROOT / "run.py"), f"hydra.run.dir={run_dir}", *TINY],
                             cwd=tmp_path, env=clean_env(OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=120)
    finally:
        holder.communicate("")  # end of stdin: the holder releases and exits
    assert job.returncode != 0
    message = f"vissl_lite: error: run directory {run_dir} is in use by pid {holder.pid} on host {HOST} since "
    assert job.stderr.count(message) == 2, job.stderr[-3000:]  # rank 0 and rank 1
    assert not (run_dir / "metrics.jsonl").exists()

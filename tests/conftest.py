import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # pytest.ini's -n: the workers share the cores
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


def clean_env(**extra):
    """This environment without torchrun's and Hydra's variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "HYDRA_FULL_ERROR")}
    env.update(extra)
    return env


def start_cli(run_dir, *overrides, nproc=1):
    """Start `python run.py OVERRIDES hydra.run.dir=RUN_DIR` (under torchrun --standalone when
    nproc > 1) with one thread per process, so that two runs share this machine's cores; the
    output goes to RUN_DIR.log."""
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    log_path = Path(f"{run_dir}.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([*launcher, str(ROOT / "run.py"), *overrides, f"hydra.run.dir={run_dir}"],
                                cwd=Path(run_dir).parent, env=clean_env(OMP_NUM_THREADS="1"), stdout=log,
                                stderr=subprocess.STDOUT)
    proc.log_path = log_path
    return proc


def finish(proc, timeout=300):
    """Wait for a process from start_cli and return its output; fail with its end if it failed."""
    proc.wait(timeout=timeout)
    output = proc.log_path.read_text()
    assert proc.returncode == 0, output[-3000:]
    return output


def sigkill_after_steps(proc, run_dir, steps, timeout=120):
    """SIGKILL `proc` as soon as RUN_DIR/metrics.jsonl holds `steps` lines; return the count."""
    import signal
    import time

    metrics = Path(run_dir) / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= steps):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return metrics.read_text().count("\n")


def run_cli(*args, cwd, env_extra=None, timeout=300):
    """Run `python run.py ARGS` as a user would, in `cwd` (where Hydra puts outputs/)."""
    env = clean_env(**(env_extra or {}))
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli(tmp_path):
    return lambda *args, **kw: run_cli(*args, cwd=tmp_path, **kw)


@pytest.fixture
def cli_in_process(tmp_path, monkeypatch):
    """`run.py ARGS` through the same `vissl_lite.cli.main`, in this process (no interpreter
    and torch start-up per case). Returns (exit status, stderr + stdout)."""
    import contextlib
    import io
    import logging

    from hydra.core.global_hydra import GlobalHydra

    from vissl_lite.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # Hydra configures logging on every call

    def run(*args):
        monkeypatch.setattr(sys, "argv", [str(ROOT / "run.py"), *args])
        out = io.StringIO()
        status = 0
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
            try:
                main()
            except SystemExit as stop:
                status = stop.code
        return status, out.getvalue()

    yield run
    GlobalHydra.instance().clear()
    for handler in set(root.handlers) - set(handlers):
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


class SigtermAt:
    """The SimCLR loss, plus a SIGTERM to this process at call number `at` (preemption)."""

    def __init__(self, at=None):
        from vissl_lite.losses import SimCLRInfoNCELoss

        self.calls, self.at, self.loss = 0, at, SimCLRInfoNCELoss(0.5)

    def __call__(self, embeddings, labels):
        import signal

        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.loss(embeddings, labels)


@pytest.fixture
def sigterm_loss():
    """LOSS.name=test_sigterm is whatever loss the test puts in the returned holder["loss"]."""
    from vissl_lite.losses import LOSSES, register_loss

    holder = {}
    register_loss("test_sigterm")(lambda cfg: holder["loss"])
    yield holder
    del LOSSES["test_sigterm"]

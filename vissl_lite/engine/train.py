"""engine_name=train: device, processes, the run-directory lock and preemption around the
Trainer (trainer.py), which runs the loop itself."""

import logging
import os
import random
import signal
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from ..config.infer import Inferred
from ..errors import ConfigError, TrainingError
from . import run_lock
from .checkpoint import checkpoint_folder
from .trainer import Trainer

log = logging.getLogger("vissl_lite")


def pick_device(machine_cfg, local_rank: int) -> torch.device:
    wanted = machine_cfg.DEVICE
    if wanted == "gpu" and not torch.cuda.is_available():
        raise ConfigError("MACHINE.DEVICE", "gpu", "cpu or null (no CUDA device is visible here)")
    if wanted == "gpu" or (wanted is None and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _StopRequest:
    """SIGTERM (preemption) asks for a checkpoint at the next step boundary and a clean exit."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread: no handler, no preemption support
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def train(cfg, inferred: Inferred, run_dir: str, on_lock=None) -> dict:
    """Train in `run_dir`; `on_lock()` runs on the main process once it holds the directory."""
    device = pick_device(cfg.MACHINE, int(os.environ.get("LOCAL_RANK", 0)))
    env = distributed.init_distributed(cfg.DISTRIBUTED, device.type)
    try:
        with run_lock.hold(Path(run_dir), env, checkpoint_folder(cfg.CHECKPOINT, run_dir)), \
                _StopRequest() as stop:  # one live run per run directory and checkpoint folder
            if on_lock is not None and env.is_main:
                on_lock()
            return _train(cfg, inferred, Path(run_dir), device, env, stop)
    except RuntimeError as err:
        if env.active and (isinstance(err, torch.distributed.DistError) or "timed out" in str(err).lower()):
            raise TrainingError(
                f"rank {env.rank}: a collective did not complete within DISTRIBUTED.TIMEOUT_MINUTES="
                f"{cfg.DISTRIBUTED.TIMEOUT_MINUTES} (another process died or hangs): {str(err).splitlines()[0]}; "
                f"torchrun --max-restarts with CHECKPOINT.AUTO_RESUME continues from the last checkpoint") from err
        raise
    finally:
        distributed.destroy(env)


def _train(cfg, inferred, run_dir, device, env, stop) -> dict:
    seed_everything(cfg.SEED_VALUE)
    if not env.is_main:  # rank 0 alone logs progress; the others speak up only for problems
        logging.getLogger().setLevel(logging.WARNING)
    return Trainer(cfg, inferred, run_dir, device, env, stop).run()

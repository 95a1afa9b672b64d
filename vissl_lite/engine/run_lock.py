"""One live run per run directory: an advisory lock on `<run dir>/.run.lock` (and on
`<CHECKPOINT.DIR>/.run.lock` when the checkpoints go to a folder outside the run directory).

Guarantees: while a training process holds the lock, a second process asking for the same
directory fails at once (it never waits) with a TrainingError naming the holder (pid, host,
since when, command) and what to do instead. The lock is `flock(LOCK_EX | LOCK_NB)`, which the
kernel drops when the holder's last descriptor closes, i.e. also when it is killed with SIGKILL:
a lock file left behind by a dead run is just a file and never blocks the rerun. (Processes
forked without exec, e.g. DataLoader workers, share the descriptor: after a SIGKILL the lock
goes when they notice their parent is gone, within seconds.) On NFS, Linux emulates flock with
fcntl locks held by the server, so this also holds across hosts; those drop when the holder
closes any descriptor of the file, which is why nothing here reads it in the holding process.

Under torchrun rank 0 alone takes the lock and broadcasts the verdict, so every rank raises the
same error and the whole job stops, not rank 0 alone.
"""

import contextlib
import datetime
import fcntl
import functools
import json
import os
import shlex
import socket
import sys
from pathlib import Path

from .. import distributed
from ..errors import ConfigError, TrainingError

LOCK_NAME = ".run.lock"


def _try_lock(run_dir: Path, key: str = "hydra.run.dir"):
    """Create `run_dir` (the folder `key` names) and lock it: (the descriptor holding the lock,
    None), or (None, the error to raise as a zero-argument callable, picklable so rank 0 can hand
    it to every rank)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        # Opened without O_TRUNC and never unlinked: the lock lives on this inode, and a file
        # replaced or removed under a waiting process would let two processes each lock their own.
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        return None, functools.partial(ConfigError, key, str(run_dir),
                                       "a directory this process can create and write", f"{type(err).__name__}: {err}")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None, functools.partial(TrainingError, held_message(run_dir, key))
    except OSError as err:  # e.g. ENOLCK: a filesystem without locks
        os.close(fd)
        return None, functools.partial(ConfigError, key, str(run_dir),
                                       "a directory on a filesystem with file locks (flock)",
                                       f"{type(err).__name__}: {err}")
    identity = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "command": shlex.join([sys.executable, *sys.argv])}
    os.ftruncate(fd, 0)  # a killed holder's identity may still be there
    os.pwrite(fd, json.dumps(identity).encode(), 0)
    return fd, None


def _release(fd: int) -> None:
    """Forget the identity, then close: closing the last descriptor drops the lock."""
    os.ftruncate(fd, 0)
    os.close(fd)


def holder(run_dir: Path):
    """The identity the lock's holder wrote (pid, host, since, command), or None if there is none yet."""
    try:
        return json.loads((run_dir / LOCK_NAME).read_text())
    except (OSError, ValueError):  # absent, or read between the holder's lock and its write
        return None


def held_message(run_dir: Path, key: str = "hydra.run.dir") -> str:
    who = holder(run_dir)
    if who is None:
        by = "another process (it has not written its identity yet)"
        stop = "stop that process"
    else:
        by = f"pid {who['pid']} on host {who['host']} since {who['since']} (command: {who['command']})"
        stop = f"stop it (kill {who['pid']} on {who['host']})"
    if key == "CHECKPOINT.DIR":
        return (f"checkpoint folder {run_dir} (CHECKPOINT.DIR) is in use by {by}; a second run there would "
                f"overwrite its checkpoints. Wait for it to finish or {stop}, or set CHECKPOINT.DIR=<another folder>")
    return (f"run directory {run_dir} is in use by {by}; a second run there would overwrite its checkpoints "
            f"and metrics.jsonl. Wait for it to finish or {stop} and rerun to resume, or train elsewhere: "
            f"hydra.run.dir=<another directory> or different overrides")


@contextlib.contextmanager
def hold(run_dir: Path, env: distributed.DistEnv, checkpoint_dir: Path = None):
    """Hold the run directory's lock for the body (rank 0 takes it), and the checkpoint folder's
    when CHECKPOINT.DIR puts it elsewhere; every rank raises the same TrainingError (held
    elsewhere) or ConfigError (directory unusable) when rank 0 could not."""
    folders = [(Path(run_dir), "hydra.run.dir")]
    if checkpoint_dir is not None and not Path(checkpoint_dir).resolve().is_relative_to(Path(run_dir).resolve()):
        folders.append((Path(checkpoint_dir), "CHECKPOINT.DIR"))
    fds, refusal = [], None
    if env.is_main:
        for folder, key in folders:
            fd, refusal = _try_lock(folder, key)
            if refusal is not None:
                break
            fds.append(fd)
    refusal = distributed.broadcast_object(env, refusal)
    try:
        if refusal is not None:
            raise refusal()
        yield
    finally:
        for fd in reversed(fds):
            _release(fd)

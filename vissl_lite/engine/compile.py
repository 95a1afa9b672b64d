"""MODEL.COMPILE: torch.compile of the trunk's and the heads' forward, in place (`nn.Module.compile`:
parameter names, state dicts and checkpoints are unchanged), with static shapes (dynamic=False):
each input shape compiles once and is then looked up, so multi-crop's two crop sizes cost two
graphs per module, a last short batch one more, and no step after the first recompiles (a guard
failure on every step would show as a growing graph count; tests/test_compile_ckpt.py counts them).

The losses stay eager: they gather over ranks and run Sinkhorn or queue updates with data-dependent
control flow, where dynamo would break the graph for little gain next to the trunk. Evaluation
(features.py) runs eager too.

Before compiling, a one-line function is compiled and run with the chosen backend on the training
device; where that fails (no C++ compiler for inductor on CPU, no Triton on a GPU) the run goes
on eager with one warning saying why.
"""

import logging
import time
from typing import Optional

import torch

from ..errors import ConfigError

log = logging.getLogger("vissl_lite")


def check_backend_name(backend: str) -> None:
    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        raise ConfigError("MODEL.COMPILE_BACKEND", backend, " | ".join(known))


def backend_problem(backend: str, device) -> Optional[str]:
    """None when `backend` compiles and runs a tiny function on `device`; otherwise why not."""
    probe = torch.compile(lambda x: torch.relu(x) * 2 + 1, backend=backend, dynamic=False)
    try:
        probe(torch.ones(4, device=device))
    except Exception as err:  # any backend failure means "cannot compile here"
        lines = str(err).strip().splitlines()
        return f"{type(err).__name__}: {lines[0] if lines else ''}"
    return None


def compile_model(model: torch.nn.Module, backend: str, device) -> bool:
    """Compile `model.trunk` and `model.heads` in place; False (and one warning) when the backend
    cannot run here, leaving the model eager."""
    check_backend_name(backend)
    problem = backend_problem(backend, device)
    if problem is not None:
        log.warning("MODEL.COMPILE: torch.compile backend %r is unavailable on %s (%s); training eagerly",
                    backend, torch.device(device).type, problem)
        return False
    for module in (model.trunk, model.heads):
        module.compile(backend=backend, dynamic=False)
    return True


def compiled_graphs() -> int:
    """Graphs dynamo has compiled in this process so far."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


class FirstStepTimer:
    """Logs, once, how long the first optimizer step took: with MODEL.COMPILE that is mostly
    compilation (every graph of a step is compiled on its first call)."""

    def __init__(self, backend: str):
        self.backend, self.start, self.graphs = backend, None, compiled_graphs()

    def before_step(self) -> None:
        if self.start is None:
            self.start = time.perf_counter()

    def after_step(self) -> Optional["FirstStepTimer"]:
        """Log and return None (the timer is done)."""
        log.info("MODEL.COMPILE: first optimizer step %.1f s including compilation (%s backend, %d graphs)",
                 time.perf_counter() - self.start, self.backend, compiled_graphs() - self.graphs)
        return None

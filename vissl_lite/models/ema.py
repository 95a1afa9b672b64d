"""Momentum (EMA) teachers: a frozen copy of the model whose parameters follow the student's.

    teacher <- m teacher + (1 - m) student      after every optimizer step (parameters only)

Buffers (BatchNorm statistics) are the teacher's own, updated by its forwards, as in DINO/BYOL.
"""

import torch
from torch import nn

from ..distributed import copy_module, local
from .vit import DropPath


def momentum_teacher(student: nn.Module) -> nn.Module:
    """A copy of `student` (same device, weights, norm layers) that takes no gradient and skips
    no block: stochastic depth is off in the teacher (VISSL's DINO builds it with
    DROP_PATH_RATE 0). It stays in train mode, like DINO's, so BatchNorm trunks normalise teacher
    batches with their own statistics. A sharded student (fsdp) gets a teacher sharded alike."""
    teacher = copy_module(student)
    teacher.requires_grad_(False)
    for m in teacher.modules():
        if isinstance(m, DropPath):
            m.p = 0.0
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher = momentum x teacher + (1 - momentum) x student, parameter by parameter (DINO's
    param_k.mul_(m).add_((1 - m) * param_q), as one multi-tensor kernel). Sharded teacher and
    student hold the same rows on each process: the update runs on the local shards."""
    t = [local(p) for p in teacher.parameters()]
    s = [local(p.detach()) for p in student.parameters()]
    if len(t) != len(s):
        raise ValueError(f"teacher has {len(t)} parameters, student {len(s)}")
    torch._foreach_mul_(t, momentum)
    torch._foreach_add_(t, s, alpha=1 - momentum)

"""Activation checkpointing (MODEL.ACTIVATION_CHECKPOINTING): each ViT block / ResNet stage keeps
only its input from the forward and recomputes its inner activations during the backward
(torch.utils.checkpoint, non-reentrant). Gradients are those of the plain forward; activation
memory falls to the units' inputs plus one unit's activations at a time, for about one more
forward of compute.

Each unit's forward is replaced on the instance, so parameter names, `blocks` and the module tree
are unchanged (checkpoints, parameter groups and a per-unit FSDP wrapping see the same model), and
a deep copy (an EMA teacher) checkpoints its own units. The recomputation repeats the forward
exactly: torch.utils.checkpoint replays the RNG state (dropout, stochastic depth), and the unit's
buffers (BatchNorm running statistics, which a second training-mode forward would update again)
are put back as the first forward left them.
"""

import contextlib
import functools
import types
from typing import List

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .resnet import ResNet
from .vit import VisionTransformer


def checkpoint_units(trunk: nn.Module) -> List[nn.Module]:
    """The modules recomputed as a whole: a ViT's blocks, a ResNet's four stages."""
    if isinstance(trunk, VisionTransformer):
        return list(trunk.blocks)
    if isinstance(trunk, ResNet):
        return [trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4]
    raise ValueError(f"activation checkpointing knows the units of VisionTransformer and ResNet, not "
                     f"{type(trunk).__name__}")


def enable_activation_checkpointing(trunk: nn.Module) -> int:
    """Checkpoint every unit of `trunk` (idempotent); returns the number of units."""
    units = checkpoint_units(trunk)
    for unit in units:
        unit.forward = types.MethodType(_checkpointed_forward, unit)
    return len(units)


def _checkpointed_forward(self, *args, **kwargs):
    plain = type(self).forward.__get__(self)
    if not torch.is_grad_enabled():  # nothing is kept for a backward anyway (an EMA teacher)
        return plain(*args, **kwargs)
    if torch.compiler.is_compiling() or next(self.buffers(), None) is None:
        # Compiled, the recomputation is planned on the functional graph, where a buffer's update
        # is applied once (and checkpoint accepts no other contexts there).
        return checkpoint(plain, *args, use_reentrant=False, **kwargs)
    return checkpoint(plain, *args, use_reentrant=False, context_fn=functools.partial(_contexts, self), **kwargs)


def _contexts(unit: nn.Module):
    """(around the forward, around the recomputation)."""
    return contextlib.nullcontext(), _buffers_kept(unit)


@contextlib.contextmanager
def _buffers_kept(unit: nn.Module):
    saved = [(buffer, buffer.clone()) for buffer in unit.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)

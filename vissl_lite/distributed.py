"""Processes, collectives and sharded tensors: the ground floor every layer may use.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them the run is one process and every
function here is a no-op. Sharded tensors (DTensors, under DISTRIBUTED.STRATEGY=fsdp) are read
through `local`, `full_tensor` and `global_norms`; how a model is sharded is
engine/strategy.py's, how sharded checkpoints are written engine/checkpoint.py's.
"""

import copy
import datetime
import os
import weakref
from dataclasses import dataclass
from typing import Callable, List

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor, Shard


@dataclass
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(dist_cfg, device_type: str) -> DistEnv:
    """The process group under torchrun. fsdp needs one even for a single torchrun process
    (its parameters are DTensors on a device mesh); plain `python run.py` runs without."""
    env = DistEnv(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                  int(os.environ.get("WORLD_SIZE", 1)))
    under_torchrun = "RANK" in os.environ and "MASTER_ADDR" in os.environ
    wants_group = env.active or (dist_cfg.STRATEGY == "fsdp" and under_torchrun)
    if wants_group and not dist.is_initialized():
        backend = dist_cfg.BACKEND or ("nccl" if device_type == "cuda" else "gloo")
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=dist_cfg.TIMEOUT_MINUTES))
    return env


def barrier(env: DistEnv) -> None:
    if env.active:
        dist.barrier()


def gather_object(env: DistEnv, obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not env.active:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(env: DistEnv, obj):
    """Rank 0's obj (any picklable object) on every rank; the others' obj is ignored."""
    if not env.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _sum_over_ranks(value: float) -> float:
    t = torch.tensor([value], dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    return t.item()


def any_rank(env: DistEnv, flag: bool) -> bool:
    """True on every rank when `flag` is true on any (so all ranks stop at the same step)."""
    return _sum_over_ranks(float(flag)) > 0 if env.active else flag


def mean_over_ranks(env: DistEnv, value: float) -> float:
    return _sum_over_ranks(value) / env.world_size if env.active else value


def destroy(env: DistEnv) -> None:
    if env.active and dist.is_initialized():
        dist.destroy_process_group()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each rank the gradient of its own slice, summed over ranks."""

    @staticmethod
    def forward(ctx, x):
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.cat(out)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        n = grad.shape[0] // dist.get_world_size()
        return grad[dist.get_rank() * n: (dist.get_rank() + 1) * n]


class _AllReduceWithGrad(torch.autograd.Function):
    """all_reduce(sum) whose backward all-reduces the gradient (the sum's Jacobian is identity
    per rank, and every rank's loss depends on every rank's input)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    return _GatherWithGrad.apply(x)


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    return _AllReduceWithGrad.apply(x)


def current_rank() -> int:
    """This process's rank under torchrun, 0 otherwise."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


@torch.no_grad()
def all_reduce_max(x: torch.Tensor) -> torch.Tensor:
    """The elementwise maximum of `x` over ranks, no gradient (a shift for log-sum-exp)."""
    x = x.clone()
    dist.all_reduce(x, op=dist.ReduceOp.MAX)
    return x


def current_world_size() -> int:
    """The number of processes under torchrun, 1 otherwise."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def all_gather_stacked(env: DistEnv, x: torch.Tensor) -> torch.Tensor:
    """[world_size, *x.shape]: every rank's `x` (the same shape everywhere), in rank order."""
    if not env.active:
        return x.unsqueeze(0)
    out = x.new_empty((env.world_size, *x.shape))
    dist.all_gather(list(out.unbind(0)), x.contiguous())
    return out


def sum_over_ranks(env: DistEnv, value: float) -> float:
    return _sum_over_ranks(value) if env.active else value


@torch.no_grad()
@torch.no_grad()
def broadcast_buffers(env: DistEnv, module: torch.nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics) on every rank, as DDP broadcasts them before a
    forward: one broadcast per dtype of the buffers flattened in module order (the same on every rank)."""
    if not env.active:
        return
    buffers = list(module.buffers())
    for dtype in dict.fromkeys(b.dtype for b in buffers):
        same = [b for b in buffers if b.dtype == dtype]
        flat = torch.cat([b.reshape(-1) for b in same])
        dist.broadcast(flat, src=0)
        torch._foreach_copy_(same, [part.view_as(b) for part, b in zip(flat.split([b.numel() for b in same]), same)])


# ----------------------------------------------------------------------------- sharded tensors


def local(t: torch.Tensor) -> torch.Tensor:
    """This process's part of a sharded tensor (a DTensor under fsdp); a plain tensor itself."""
    return t.to_local() if isinstance(t, DTensor) else t


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole of a sharded tensor on every process (a collective); a plain tensor itself."""
    return t.full_tensor() if isinstance(t, DTensor) else t


def sum_over_shards(tensors: List[torch.Tensor], local_sums: torch.Tensor) -> torch.Tensor:
    """Whole-tensor sums from per-shard ones. `local_sums[..., i]` is an additive quantity (a
    squared norm) of the local part of tensors[i]; a DTensor's entry becomes the sum over the
    processes holding its shards (one all-reduce for all of them), a plain tensor's (a replica)
    stays as it is. Sharding on a one-dimensional mesh (fully_shard's) is what is supported."""
    sharded = [isinstance(t, DTensor) for t in tensors]
    if not any(sharded):
        return local_sums
    meshes = {t.device_mesh for t in tensors if isinstance(t, DTensor)}
    for t in tensors:
        if isinstance(t, DTensor) and (t.device_mesh.ndim != 1 or not isinstance(t.placements[0], Shard)):
            raise ValueError(f"global norms need tensors sharded on a one-dimensional mesh (fully_shard's); "
                             f"got placements {t.placements} on a {t.device_mesh.ndim}-D mesh")
    if len(meshes) != 1:
        raise ValueError(f"global norms need every sharded tensor on one device mesh; got {len(meshes)}")
    mask = torch.tensor(sharded, device=local_sums.device)
    summed = torch.where(mask, local_sums, torch.zeros_like(local_sums))
    dist.all_reduce(summed, group=meshes.pop().get_group())
    return torch.where(mask, summed, local_sums)


def global_norms(tensors: List[torch.Tensor], local_norms: torch.Tensor) -> torch.Tensor:
    """||t|| of every whole tensor from the norms of its local parts (local_norms[..., i] for
    tensors[i]): sqrt(sum over shards of ||shard||^2) for a DTensor, the norm itself for a plain
    tensor (bitwise unchanged)."""
    if not any(isinstance(t, DTensor) for t in tensors):
        return local_norms
    return sum_over_shards(tensors, local_norms.square()).sqrt()


# ----------------------------------------------------------------------------- copies of modules

# Sharded modules cannot be deep-copied (FSDP refuses); the strategy that shards a module
# registers here how to make a sharded copy of it (an EMA teacher, a key encoder).
_COPIERS: "weakref.WeakKeyDictionary[nn.Module, Callable[[nn.Module], nn.Module]]" = weakref.WeakKeyDictionary()


def register_copier(module: nn.Module, copier: Callable[[nn.Module], nn.Module]) -> None:
    _COPIERS[module] = copier


def copy_module(module: nn.Module) -> nn.Module:
    """An independent copy of `module` with its current weights and buffers, sharded as it is."""
    copier = _COPIERS.get(module)
    return copier(module) if copier is not None else copy.deepcopy(module)

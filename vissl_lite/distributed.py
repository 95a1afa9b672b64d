"""The only module that talks to torch.distributed.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them the run is one process and every
function here is a no-op.
"""

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


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
    env = DistEnv(int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
                  int(os.environ.get("WORLD_SIZE", 1)))
    if env.active and not dist.is_initialized():
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

"""Parameter + gradient + optimizer-state bytes held by each process, ddp against fsdp, after
one AdamW step of a ViT-S/16 (trunk + a 384 -> 2048 -> 256 projection), counted as the bytes of
the tensors each process owns: whole tensors under ddp, the local shards under fsdp.

    torchrun --nproc_per_node=2 scripts/fsdp_memory.py [--image-size 32]

Prints one JSON line (rank 0): bytes per rank under each strategy and their ratio. Counting
storage, not allocator peaks, makes the number a property of the sharding (the same on CPU and
GPU); the image size only changes the activations, which are not counted.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vissl_lite.distributed import DistEnv, local  # noqa: E402
from vissl_lite.engine.strategy import DDPStrategy, FSDPStrategy  # noqa: E402
from vissl_lite.models.model import SSLModel  # noqa: E402
from vissl_lite.models.vit import VisionTransformer  # noqa: E402


def build(image_size: int) -> SSLModel:
    torch.manual_seed(0)
    trunk = VisionTransformer.from_preset("small", image_size=image_size)
    heads = nn.Sequential(nn.Linear(384, 2048), nn.GELU(), nn.Linear(2048, 256))
    return SSLModel(trunk, heads)


def owned_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    params = list(model.parameters())
    count = lambda tensors: sum(local(t).numel() * local(t).element_size() for t in tensors)  # noqa: E731
    state = [v for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor) and v.ndim > 0]
    return {"parameters": count(params), "gradients": count(p.grad for p in params if p.grad is not None),
            "optimizer": count(state)}


def measure(strategy, image_size: int) -> dict:
    model = strategy.shard(build(image_size))
    trained = strategy.wrap_model(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    images = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(dist.get_rank()))
    trained(images).square().mean().backward()
    optimizer.step()
    counted = owned_bytes(model, optimizer)
    counted["total"] = sum(counted.values())
    return counted


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    dist.init_process_group("gloo")
    env = DistEnv(dist.get_rank(), dist.get_rank(), dist.get_world_size())
    device = torch.device("cpu")
    ddp = measure(DDPStrategy(env, device), args.image_size)
    fsdp = measure(FSDPStrategy(env, device, reshard_after_forward=True), args.image_size)
    # The most any rank holds (shards of tensors smaller than the world size are uneven).
    peak = torch.tensor([fsdp["total"]], dtype=torch.float64)
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    if env.is_main:
        print(json.dumps({"world_size": env.world_size, "ddp_bytes_per_rank": ddp, "fsdp_bytes_per_rank": fsdp,
                          "fsdp_max_total_over_ranks": int(peak.item()),
                          "ratio": round(peak.item() / ddp["total"], 4)}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

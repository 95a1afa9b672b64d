"""Median optimizer step time: plain SGD (foreach), SGD in vissl_lite's LARC, and the same LARC
on its single-tensor path (apex's per-parameter loop as written), stepped in turn in one process.

    python scripts/bench_optim.py [--steps 100] [--device cpu|cuda]

Prints JSON. Shapes: (a) ResNet-50's parameters, (b) 2,000 tensors of 1,000 elements.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vissl_lite.models.resnet import ResNet  # noqa: E402
from vissl_lite.optim.larc import LARC  # noqa: E402


def make_params(shapes, device):
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).to(device).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen).to(device) * 1e-2
    return params


def sgd(params):
    return torch.optim.SGD([{"params": params}], lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=True)


def time_interleaved(makers, shapes, device, steps):
    """Median step time of each optimizer, stepping them in turn round by round so that clock
    and allocator drift hit all of them alike. Each has its own copy of the parameters."""
    setups = []
    for make in makers:
        params = make_params(shapes, device)
        setups.append((make(params), params, [p.grad.clone() for p in params]))
    times = [[] for _ in makers]
    for i in range(steps + 5):
        for (opt, params, grads), bucket in zip(setups, times):
            torch._foreach_copy_([p.grad for p in params], grads)  # LARC rescales grads in place
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            opt.step()
            if device == "cuda":
                torch.cuda.synchronize()
            if i >= 5:  # warm-up
                bucket.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    cases = {
        "resnet50": [tuple(p.shape) for p in ResNet(50).parameters()],
        "2000x1000": [(1000,)] * 2000,
    }
    report = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads(), "steps": args.steps}
    for case, shapes in cases.items():
        sgd_s, larc_s, loop_s = time_interleaved(
            [sgd, lambda ps: LARC(sgd(ps)), lambda ps: LARC(sgd(ps), foreach=False)], shapes, args.device, args.steps)
        report[case] = {
            "tensors": len(shapes),
            "sgd_ms": round(sgd_s * 1e3, 3),
            "larc_ms": round(larc_s * 1e3, 3),
            "loop_larc_ms": round(loop_s * 1e3, 3),
            "larc_over_sgd": round(larc_s / sgd_s, 3),
            "loop_over_larc": round(loop_s / larc_s, 3),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

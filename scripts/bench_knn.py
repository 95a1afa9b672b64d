"""The kNN monitor's search at ImageNet scale: a synthetic bank of 1.28M x 384 features (ViT-S)
and 50k queries, k=20, through vissl_lite.engine.knn (chunked top-k; float16 bank on CUDA).

    python scripts/bench_knn.py [--device cuda] [--bank 1280000] [--queries 50000] [--dim 384]

Prints one line: seconds of the search (the bank already built), queries/s, and the peak memory
(CUDA: the allocator's peak during the search, the bank included; CPU: the process's peak
resident set). The queries are noisy copies of bank rows, so the top-1 printed beside it is a
plausibility check, not a benchmark of features. The search time grows linearly with --queries;
on a CPU a smaller --queries gives the rate without an hour's wait.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vissl_lite.engine.knn import bank_dtype, knn_top1  # noqa: E402


def synthetic_bank(n: int, dim: int, classes: int, dtype, device, chunk: int = 65536, seed: int = 0):
    """(L2-normalised bank [n, dim] in `dtype`, labels [n]) built chunk by chunk, so that no float32
    copy of the whole bank exists: class c's rows scatter around a random unit direction."""
    gen = torch.Generator(device=device).manual_seed(seed)
    centers = torch.nn.functional.normalize(torch.randn(classes, dim, generator=gen, device=device), dim=1)
    labels = torch.randint(classes, (n,), generator=gen, device=device)
    bank = torch.empty(n, dim, dtype=dtype, device=device)
    for start in range(0, n, chunk):
        rows = centers[labels[start: start + chunk]] + 0.08 * torch.randn(
            min(chunk, n - start), dim, generator=gen, device=device)
        bank[start: start + chunk] = torch.nn.functional.normalize(rows, dim=1).to(dtype)
    return bank, labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bank", type=int, default=1_280_000)
    parser.add_argument("--queries", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--dtype", choices=("auto", "float16", "float32"), default="auto",
                        help="the bank's dtype; auto: the monitor's choice (float16 on CUDA, float32 on CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = bank_dtype(device) if args.dtype == "auto" else getattr(torch, args.dtype)
    bank, labels = synthetic_bank(args.bank, args.dim, args.classes, dtype, device)
    gen = torch.Generator(device=device).manual_seed(1)
    pick = torch.randint(args.bank, (args.queries,), generator=gen, device=device)
    queries = bank[pick].float() + 0.02 * torch.randn(args.queries, args.dim, generator=gen, device=device)
    query_labels = labels[pick]
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    top1 = knn_top1(bank, labels, queries, query_labels, k=args.k, temperature=0.07)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    else:
        peak = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    bank_gib = bank.numel() * bank.element_size() / 2**30
    print(f"bench_knn: bank {args.bank}x{args.dim} {str(dtype).replace('torch.', '')} on {device} "
          f"({bank_gib:.2f} GiB), {args.queries} queries, k={args.k}: {seconds:.2f} s "
          f"({args.queries / seconds:.0f} queries/s), {peak}, top-1 {100 * top1:.1f}% "
          f"[torch {torch.__version__}, {torch.get_num_threads()} threads]")


if __name__ == "__main__":
    main()

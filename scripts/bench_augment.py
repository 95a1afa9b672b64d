"""SimCLR augmentation of one batch: vissl_lite's batched torch ops against kornia.augmentation
with the same transforms, stepped in turn in one process (median of --steps).

    pip install kornia && python scripts/bench_augment.py [--device cpu|cuda] [--steps 20]

Prints JSON per image size: milliseconds per batch of each and kornia / vissl_lite.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vissl_lite.config.schema import TransformsConfig  # noqa: E402
from vissl_lite.data.augment import SSLAugment  # noqa: E402


def kornia_pipeline(size: int, s: float = 1.0):
    import kornia.augmentation as K

    return torch.nn.Sequential(
        K.RandomResizedCrop((size, size), scale=(0.08, 1.0)),
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((size // 10) * 2 + 1, (0.1, 2.0), p=0.5),
        K.Normalize(mean=torch.tensor([0.485, 0.456, 0.406]), std=torch.tensor([0.229, 0.224, 0.225])),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    report = {"device": args.device, "torch": torch.__version__, "threads": torch.get_num_threads()}
    for size, batch in ((32, 256), (96, 64), (224, 32)):
        images = torch.rand(batch, 3, round(size * 256 / 224), round(size * 256 / 224), device=args.device)
        ours = SSLAugment(OmegaConf.structured(TransformsConfig(CROP_SIZE=size)), channels=3)
        gen = torch.Generator(device=args.device).manual_seed(0)
        theirs = kornia_pipeline(size).to(args.device)
        candidates = {"vissl_lite": lambda: ours(images, gen), "kornia": lambda: theirs(images)}
        times = {name: [] for name in candidates}
        for i in range(args.steps + 3):
            for name, run in candidates.items():
                if args.device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                run()
                if args.device == "cuda":
                    torch.cuda.synchronize()
                if i >= 3:
                    times[name].append(time.perf_counter() - start)
        ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
        report[f"{batch}x{size}px"] = {**{f"{k}_ms": round(v, 2) for k, v in ms.items()},
                                       "kornia_over_vissl_lite": round(ms["kornia"] / ms["vissl_lite"], 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

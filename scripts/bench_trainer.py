"""Steady-state training throughput: the vissl_lite engine against a minimal hand-written
PyTorch loop with the same model, batch, augmentation, loss and optimizer (LARC included),
side by side in one process, data already in memory.

    python scripts/bench_trainer.py [--epochs 8] [--repeats 3] [overrides ...]

Prints JSON: images/s of each (epochs after the first; best of --repeats, since a shared 2-core
machine drifts by +-15% between runs), every sample, and the ratio of the bests. Repeats run in
ABBA order: measured here, whichever loop runs first in a pair is 5-10% faster, so a fixed order
(raw first) read as a 0.92x engine.
"""

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vissl_lite.config.load import compose, resolve  # noqa: E402
from vissl_lite.data import SSLAugment, build_split  # noqa: E402
from vissl_lite.engine.train import pick_device, seed_everything, train  # noqa: E402
from vissl_lite.losses import build_loss  # noqa: E402
from vissl_lite.models import build_model  # noqa: E402
from vissl_lite.optim import build_optimizer  # noqa: E402


def raw_loop(cfg, device, epochs):
    """The loop a researcher would write by hand: no schedules, logs or checks."""
    seed_everything(cfg.SEED_VALUE)
    channels = cfg.MODEL.TRUNK.RESNETS.INPUT_CHANNELS
    data = build_split(cfg.DATA.TRAIN, "TRAIN", channels)
    images = data.images.to(device)
    model = build_model(cfg.MODEL).to(device)
    optimizer = build_optimizer(cfg.OPTIMIZER, model)
    for group in optimizer.param_groups:  # the constant LR the engine's schedule also gives
        group["lr"] = cfg.OPTIMIZER.param_schedulers.lr.value * group["lr_mult"]
    loss_fn = build_loss(cfg.LOSS)
    augment = SSLAugment(cfg.DATA.TRAIN.TRANSFORMS, channels)
    gen = torch.Generator(device=device).manual_seed(0)
    bs = cfg.DATA.TRAIN.BATCHSIZE_PER_REPLICA
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(images), device=device)
        for i in range(len(images) // bs):
            x = images[order[i * bs:(i + 1) * bs]]
            loss = loss_fn(model(torch.cat([augment(x, gen), augment(x, gen)])), None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return (len(images) // bs) * bs * (epochs - 1) / sum(seconds[1:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # A constant LR: the hand-written loop has no schedule, and different LR trajectories train
    # into different numbers (denormals on a CPU cost time), which is not what is measured here.
    overrides = ["DATA.TRAIN.DATA_SOURCES=[synthetic]", "DATA.TRAIN.NUM_SAMPLES_SYNTHETIC=4096",
                 "OPTIMIZER.param_schedulers.lr.name=constant", "OPTIMIZER.param_schedulers.lr.value=0.3",
                 "OPTIMIZER.param_schedulers.lr.auto_lr_scaling.auto_scale=false",
                 f"OPTIMIZER.num_epochs={args.epochs}", "HOOKS.KNN_MONITOR.ENABLED=false",
                 "HOOKS.ONLINE_LINEAR_PROBE.ENABLED=false", "HOOKS.PROGRESS_BAR=false", "CHECKPOINT.CHECKPOINT_FREQUENCY=1000", *args.overrides]
    cfg, inferred = resolve(compose(overrides))
    device = pick_device(cfg.MACHINE, 0)
    raw, engine = [], []

    def run_raw():
        raw.append(raw_loop(cfg, device, args.epochs))

    def run_engine():
        with tempfile.TemporaryDirectory() as run_dir:
            r = train(cfg, inferred, run_dir)
        engine.append(r["images_per_epoch"] * (args.epochs - 1) / sum(r["epoch_seconds"][1:]))

    for repeat in range(args.repeats):  # ABBA order: neither side always runs first
        for run in (run_raw, run_engine) if repeat % 2 == 0 else (run_engine, run_raw):
            run()
    report = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "overrides": overrides, "raw_loop_images_per_s": round(max(raw), 1),
              "engine_images_per_s": round(max(engine), 1), "engine_over_raw": round(max(engine) / max(raw), 3),
              "samples": {"raw": [round(x) for x in raw], "engine": [round(x) for x in engine]}}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

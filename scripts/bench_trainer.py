"""Steady-state training throughput: the vissl_lite engine against a minimal hand-written
PyTorch loop with the same model, batch, augmentation, loss and optimizer (LARC included),
side by side in one process, data already in memory.

    python scripts/bench_trainer.py [--epochs 8] [--repeats 3] [overrides ...]

Prints JSON: images/s of each (epochs after the first; best of --repeats, since a shared 2-core
machine drifts by +-15% between runs), every sample, and the ratio of the bests. Repeats run in
ABBA order: measured here, whichever loop runs first in a pair is 5-10% faster, so a fixed order
(raw first) read as a 0.92x engine.

Two more measurements of one training step (forward, backward, SGD step of trunk + heads on a fixed
batch; the loss is the mean square of the heads' output, since what changes is the model's
forward), for the digits ViT (dino_digits) and ViT-S/16 (dino_vits16_in1k) at float32:

    python scripts/bench_trainer.py --compile [--backend inductor] [--device cuda]
        MODEL.COMPILE: compiled / eager images per second (steps alternate ABAB after the
        compiled model's warm-up, whose time is reported as compile seconds) and the relative
        difference of the first step's loss;
    python scripts/bench_trainer.py --activation-memory [--device cuda]
        MODEL.ACTIVATION_CHECKPOINTING: activation memory and step time, checkpointed / plain,
        also for ResNet-50. On CUDA the memory is the allocator's peak during forward + backward
        above what the model and batch hold; on CPU it is the bytes of the distinct tensors the
        autograd graph keeps for the backward (parameters excluded), plus, checkpointed, each
        unit's input, which torch.utils.checkpoint keeps instead.
    python scripts/bench_trainer.py --memory-format [--device cuda]
        the engine's channels_last (on every device): step images/s channels_last / contiguous,
        ABAB, for the same models and the narrow ResNet-18 of simclr_folder_small (10 px views).
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


# (name, overrides, images per step on CPU, on CUDA). No stochastic depth: compiled code draws
# other random numbers than eager, and the first losses are compared.
NO_DROP_PATH = "MODEL.TRUNK.VISION_TRANSFORMERS.DROP_PATH_RATE=0.0"
STEP_MODELS = [
    ("digits_vit", ["config=pretrain/dino/dino_digits", NO_DROP_PATH], 256, 256),
    ("vit_s16", ["config=pretrain/dino/dino_vits16_in1k", NO_DROP_PATH], 8, 64),
]
RESNET50 = ("resnet50", ["config=pretrain/simclr/simclr_resnet50_in1k", "MODEL.TRUNK.RESNETS.NORM=BatchNorm"], 8, 64)
FOLDER_SMALL = ("folder_small_resnet18", ["config=pretrain/simclr/simclr_folder_small", "DATA.TRAIN.DATA_PATHS=[]",
                                          "DATA.TEST.DATA_PATHS=[]"], 410, 410)


def step_setup(overrides, batch, device):
    """(model, a fixed batch of the model's crop size) built from an experiment's MODEL section."""
    from vissl_lite.models.trunks import input_channels

    cfg, _ = resolve(compose([*overrides, "DATA.TRAIN.DATA_SOURCES=[synthetic]", "DATA.TEST.DATA_SOURCES=[synthetic]"]))
    torch.manual_seed(0)
    model = build_model(cfg.MODEL).to(device)
    size = cfg.DATA.TRAIN.TRANSFORMS.CROP_SIZE
    x = torch.rand(batch, input_channels(cfg.MODEL.TRUNK), size, size, generator=torch.Generator().manual_seed(1))
    return model, x.to(device)


def train_step(model, optimizer, x):
    loss = model(x).float().pow(2).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def timed_steps(model, optimizer, x, steps: int) -> float:
    """Images per second over `steps` steps."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, x)
    sync()
    return steps * len(x) / (time.perf_counter() - start)


def compile_bench(device, backend: str, steps: int, repeats: int) -> dict:
    import copy

    from vissl_lite.engine.compile import compile_model

    report = {}
    for name, overrides, cpu_batch, cuda_batch in STEP_MODELS:
        eager, x = step_setup(overrides, cuda_batch if device.type == "cuda" else cpu_batch, device)
        compiled = copy.deepcopy(eager)
        if not compile_model(compiled, backend, device):
            report[name] = "backend unavailable (see the warning)"
            continue
        opt_e, opt_c = (torch.optim.SGD(m.parameters(), lr=1e-4) for m in (eager, compiled))
        start = time.perf_counter()
        first_c = train_step(compiled, opt_c, x).item()
        train_step(compiled, opt_c, x)  # the step after the first may still specialise
        compile_seconds = time.perf_counter() - start
        first_e = train_step(eager, opt_e, x).item()
        train_step(eager, opt_e, x)
        samples = {"eager": [], "compiled": []}
        for _ in range(repeats):  # alternating, so drift on a shared machine hits both
            samples["eager"].append(timed_steps(eager, opt_e, x, steps))
            samples["compiled"].append(timed_steps(compiled, opt_c, x, steps))
        report[name] = {"batch": len(x), "compile_seconds": round(compile_seconds, 1),
                        "eager_images_per_s": round(max(samples["eager"]), 1),
                        "compiled_images_per_s": round(max(samples["compiled"]), 1),
                        "compiled_over_eager": round(max(samples["compiled"]) / max(samples["eager"]), 3),
                        "first_loss_rel_diff": abs(first_c - first_e) / abs(first_e)}
    return report


def activation_bytes(model, x, units) -> int:
    """Bytes kept for the backward after a forward (see the module docstring)."""
    if x.is_cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        model(x).float().pow(2).mean().backward()
        torch.cuda.synchronize()
        model.zero_grad(set_to_none=True)
        return torch.cuda.max_memory_allocated() - base
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    hooks = [u.register_forward_pre_hook(lambda m, args: pack(args[0])) for u in units]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x).float().pow(2).mean()
    for h in hooks:
        h.remove()
    out.backward()
    model.zero_grad(set_to_none=True)
    return sum(kept.values())


def activation_memory_bench(device, steps: int) -> dict:
    import copy

    from vissl_lite.models.activation_checkpointing import checkpoint_units, enable_activation_checkpointing

    report = {}
    for name, overrides, cpu_batch, cuda_batch in [*STEP_MODELS, RESNET50]:
        plain, x = step_setup(overrides, cuda_batch if device.type == "cuda" else cpu_batch, device)
        checkpointed = copy.deepcopy(plain)
        enable_activation_checkpointing(checkpointed.trunk)
        memory = {"plain": activation_bytes(plain, x, []),
                  "checkpointed": activation_bytes(checkpointed, x, checkpoint_units(checkpointed.trunk))}
        speed = {}
        for label, model in (("plain", plain), ("checkpointed", checkpointed)):
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
            train_step(model, optimizer, x)
            speed[label] = timed_steps(model, optimizer, x, steps)
        report[name] = {"batch": len(x), "plain_MiB": round(memory["plain"] / 2**20, 1),
                        "checkpointed_MiB": round(memory["checkpointed"] / 2**20, 1),
                        "memory_ratio": round(memory["checkpointed"] / memory["plain"], 3),
                        "step_time_ratio": round(speed["plain"] / speed["checkpointed"], 3)}
    return report


def memory_format_bench(device, steps: int, repeats: int) -> dict:
    import copy

    report = {}
    for name, overrides, cpu_batch, cuda_batch in [*STEP_MODELS, RESNET50, FOLDER_SMALL]:
        plain, x = step_setup(overrides, cuda_batch if device.type == "cuda" else cpu_batch, device)
        last = copy.deepcopy(plain).to(memory_format=torch.channels_last)
        inputs = {"contiguous": x, "channels_last": x.contiguous(memory_format=torch.channels_last)}
        speed = {"contiguous": [], "channels_last": []}
        optimizers = {k: torch.optim.SGD(m.parameters(), lr=1e-4) for k, m in (("contiguous", plain), ("channels_last", last))}
        models = {"contiguous": plain, "channels_last": last}
        for label in models:  # warm-up: oneDNN picks its kernels on the first call
            train_step(models[label], optimizers[label], inputs[label])
        for _ in range(repeats):
            for label in models:
                speed[label].append(timed_steps(models[label], optimizers[label], inputs[label], steps))
        report[name] = {"batch": len(x), "contiguous_images_per_s": round(max(speed["contiguous"]), 1),
                        "channels_last_images_per_s": round(max(speed["channels_last"]), 1),
                        "channels_last_over_contiguous": round(max(speed["channels_last"]) / max(speed["contiguous"]), 3)}
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="compiled / eager step throughput (MODEL.COMPILE)")
    parser.add_argument("--backend", default="inductor", help="with --compile: torch.compile's backend")
    parser.add_argument("--activation-memory", action="store_true",
                        help="activation memory, checkpointed / plain (MODEL.ACTIVATION_CHECKPOINTING)")
    parser.add_argument("--memory-format", action="store_true", help="step throughput, channels_last / contiguous")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per sample (--compile, --activation-memory)")
    parser.add_argument("--device", default=None,
                        help="cpu | cuda (--compile, --activation-memory); default: cuda if present")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.compile or args.activation_memory or args.memory_format:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        report = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
        if args.compile:
            report.update(backend=args.backend, compile=compile_bench(device, args.backend, args.steps, args.repeats))
        if args.activation_memory:
            report["activation_checkpointing"] = activation_memory_bench(device, args.steps)
        if args.memory_format:
            report["memory_format"] = memory_format_bench(device, args.steps, args.repeats)
        print(json.dumps(report, indent=2))
        return
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

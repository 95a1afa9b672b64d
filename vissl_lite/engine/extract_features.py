"""engine_name=extract_features: a trunk's features of the DATA splits' evaluation view, written
for downstream code to <run dir>/features/:

    <SPLIT>_features.npy       float32 [N, D], in dataset order
    <SPLIT>_labels.npy         int64 [N] (-1: an unlabelled folder)
    <SPLIT>_paths.txt          one image path a line, in the same order (folder sources)
    <SPLIT>_patch_tokens.npy   float16 [N, T, D], a ViT's final-norm patch tokens (EXTRACT_FEATURES.PATCH_TOKENS)

for every SPLIT of EXTRACT_FEATURES.SPLITS. The weights are the run's latest checkpoint
(EXTRACT_FEATURES.PART: its model's trunk, or its EMA teacher's / key encoder's), else
MODEL.WEIGHTS_INIT.PARAMS_FILE read by init_weights (any layout it knows). The evaluation view is
the kNN monitor's: DATA.TEST.TRANSFORMS' center crop and normalisation, trunk in eval mode.

Under torchrun each rank extracts its shard and rank 0 writes every gathered batch at its place
(features.py), so the files hold every image once, in dataset order, equal to one process's. The
files are written into a temporary folder renamed to features/ at the end: an interrupted
extraction leaves no features folder behind, and an existing one is replaced only with
EXTRACT_FEATURES.OVERWRITE.
"""

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from .. import distributed
from ..data import build_split
from ..errors import CheckpointError, ConfigError
from ..models import build_model
from ..models.trunks import input_channels
from . import checkpoint as ckpt
from . import run_lock
from .evaluation import eval_view
from .features import extract_in_order, trunk_forward
from .restore import init_weights
from .train import pick_device, seed_everything

log = logging.getLogger("vissl_lite")

FOLDER = "features"
# Where each method keeps its momentum copy of the model in a checkpoint's "method" state.
TEACHER_KEYS = ("teacher", "key_encoder")


def extract_features(cfg, inferred, run_dir: str) -> dict:
    """Write the features of every split in EXTRACT_FEATURES.SPLITS to <run dir>/features.

    The run directory is usually a training run's: it is locked for the extraction (not while it
    trains), and its recorded config (.hydra/) is left as the training wrote it."""
    device = pick_device(cfg.MACHINE, int(os.environ.get("LOCAL_RANK", 0)))
    env = distributed.init_distributed(cfg.DISTRIBUTED, device.type)
    try:
        with run_lock.hold(Path(run_dir), env, ckpt.checkpoint_folder(cfg.CHECKPOINT, run_dir)):
            return _extract(cfg, Path(run_dir), device, env)
    finally:
        distributed.destroy(env)


def _extract(cfg, run_dir: Path, device, env) -> dict:
    options = cfg.EXTRACT_FEATURES
    target = run_dir / FOLDER
    if target.exists() and not options.OVERWRITE:
        raise ConfigError("EXTRACT_FEATURES.OVERWRITE", False, f"true to replace the existing {target}")
    if options.PATCH_TOKENS and cfg.MODEL.TRUNK.NAME != "vision_transformer":
        raise ConfigError("EXTRACT_FEATURES.PATCH_TOKENS", True, f"false for MODEL.TRUNK.NAME={cfg.MODEL.TRUNK.NAME} "
                          "(patch tokens come from a vision_transformer)")
    seed_everything(cfg.SEED_VALUE)
    if not env.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    trunk = load_trunk(cfg, run_dir).to(device).eval().to(memory_format=torch.channels_last)
    forward = trunk_forward(trunk, options.PATCH_TOKENS)
    partial = run_dir / f".{FOLDER}.partial"
    if env.is_main:
        shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted extraction
        partial.mkdir(parents=True)
    shapes = {}
    for name in options.SPLITS:
        split = build_split(cfg.DATA[name], name, input_channels(cfg.MODEL.TRUNK),
                            eval_transforms=cfg.DATA.TEST.TRANSFORMS)
        shapes[name] = _extract_split(forward, split, name, partial, cfg, device, env)
    if env.is_main:
        if target.exists():
            shutil.rmtree(target)
        os.replace(partial, target)
        log.info("features of %s written to %s", ", ".join(f"{k} {v}" for k, v in shapes.items()), target)
        print(f"features: {target}")
    distributed.barrier(env)
    return {"features_dir": str(target), "shapes": shapes}


def _extract_split(forward, split, name: str, folder: Path, cfg, device, env) -> list:
    """Write one split's files (rank 0) from the rows every rank gathers; return the features' shape."""
    n = split.num_samples
    files = {}

    def write(start, outputs, labels):
        if not env.is_main:
            return
        if not files:  # shapes are known from the first rows
            files["features"] = np.lib.format.open_memmap(
                folder / f"{name}_features.npy", mode="w+", dtype=np.float32, shape=(n, outputs[0].shape[1]))
            files["labels"] = np.lib.format.open_memmap(folder / f"{name}_labels.npy", mode="w+", dtype=np.int64,
                                                        shape=(n,))
            if len(outputs) > 1:
                files["patch_tokens"] = np.lib.format.open_memmap(
                    folder / f"{name}_patch_tokens.npy", mode="w+", dtype=np.float16, shape=(n, *outputs[1].shape[1:]))
        stop = start + len(labels)
        files["features"][start:stop] = outputs[0].cpu().numpy()
        files["labels"][start:stop] = labels.cpu().numpy()
        if "patch_tokens" in files:
            files["patch_tokens"][start:stop] = outputs[1].cpu().numpy()

    unreadable = extract_in_order(forward, split, eval_view(cfg), cfg.DATA.TEST.BATCHSIZE_PER_REPLICA, env, device,
                                  write, progress=cfg.HOOKS.PROGRESS_BAR, desc=f"{name} features")
    if unreadable and env.is_main:  # counted on the gathered rows: the same on every rank
        log.warning("%s: %d unreadable images entered the features as black images", name, unreadable)
    shape = []
    if env.is_main:
        for array in files.values():
            array.flush()
        shape = list(files["features"].shape)
        image_files = getattr(split, "files", None)  # disk_folder, disk_filelist, manifest
        if image_files is not None:
            (folder / f"{name}_paths.txt").write_text("".join(f"{path}\n" for path in image_files.paths))
        log.info("%s: features %s%s", name, shape,
                 f", patch tokens {list(files['patch_tokens'].shape)}" if "patch_tokens" in files else "")
    return shape


def load_trunk(cfg, run_dir: Path) -> torch.nn.Module:
    """The trunk with the weights EXTRACT_FEATURES.PART names: from the run's latest checkpoint,
    else from MODEL.WEIGHTS_INIT.PARAMS_FILE."""
    part = cfg.EXTRACT_FEATURES.PART
    model = build_model(cfg.MODEL)
    folder = ckpt.checkpoint_folder(cfg.CHECKPOINT, run_dir)
    found = ckpt.load_latest(folder)
    if found is not None:
        state, path = found
        weights = state["model"]
        if part == "teacher":
            method_state = state.get("method") or {}
            key = next((k for k in TEACHER_KEYS if k in method_state), None)
            if key is None:
                raise ConfigError("EXTRACT_FEATURES.PART", "teacher", f"trunk: {path} holds no EMA teacher or key "
                                  "encoder (DINO and MoCo runs have one)")
            weights = method_state[key]
        trunk_weights = {k[len("trunk."):]: v for k, v in weights.items() if k.startswith("trunk.")}
        ckpt.load_model_weights(model.trunk, trunk_weights, f"{path} ({part})", strict=True)
        log.info("extracting with the %s of %s (step %d)", part, path, state.get("step", -1))
        return model.trunk
    if not cfg.MODEL.WEIGHTS_INIT.PARAMS_FILE:
        raise CheckpointError(f"no weights to extract with: {folder} holds no checkpoint and "
                              "MODEL.WEIGHTS_INIT.PARAMS_FILE is empty (point hydra.run.dir at a training run, or "
                              "set MODEL.WEIGHTS_INIT.PARAMS_FILE=<weights file>)")
    if part == "teacher":
        raise ConfigError("EXTRACT_FEATURES.PART", "teacher", "trunk with MODEL.WEIGHTS_INIT.PARAMS_FILE (the part "
                          "of a DINO file is chosen by MODEL.WEIGHTS_INIT.PART)")
    init_weights(model, cfg.MODEL.WEIGHTS_INIT)
    return model.trunk

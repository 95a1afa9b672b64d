"""Checkpoint files: atomic writes, a pointer to the latest good one, fallback past a damaged
one, and RNG state in a form `torch.load(weights_only=True)` accepts (no pickled objects)."""

import json
import logging
import os
import random
import re
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from ..errors import CheckpointError

log = logging.getLogger("vissl_lite")

POINTER = "latest.json"
FINAL = "model_final.torch"
_STEP_FILE = re.compile(r"^checkpoint_step(\d+)\.torch$")


def checkpoint_folder(checkpoint_cfg, run_dir: Path) -> Path:
    """CHECKPOINT.DIR, or <run dir>/checkpoints when it is empty."""
    return Path(checkpoint_cfg.DIR) if checkpoint_cfg.DIR else Path(run_dir) / "checkpoints"


def step_file(step: int) -> str:
    return f"checkpoint_step{step:08d}.torch"


def _write_atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(folder: Path, state: dict, name: str, max_keep: int) -> Path:
    """Write `state` as folder/name, then point latest.json at it, then drop step files beyond
    the newest `max_keep` (0 keeps all; the final checkpoint is never dropped)."""
    path = folder / name
    _write_atomic(path, lambda f: torch.save(state, f))
    pointer = {"file": name, "step": state["step"], "epoch": state["epoch"]}
    _write_atomic(folder / POINTER, lambda f: f.write(json.dumps(pointer).encode()))
    if max_keep > 0:
        for old, _ in list_checkpoints(folder)[max_keep:]:
            if old.name != FINAL:
                old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: Path) -> List[Tuple[Path, int]]:
    """(path, step) of every complete checkpoint file, newest first."""
    found = []
    for path in folder.glob("*.torch"):
        match = _STEP_FILE.match(path.name)
        if match:
            found.append((path, int(match.group(1))))
        elif path.name == FINAL:
            found.append((path, 1 << 62))  # after every step file
    return sorted(found, key=lambda item: -item[1])


def load_latest(folder: Path) -> Optional[Tuple[dict, Path]]:
    """The newest checkpoint that loads: the pointer's file first, then older ones. A damaged
    file is reported and skipped, never deleted."""
    if not folder.is_dir():
        return None
    candidates = [path for path, _ in list_checkpoints(folder)]
    pointer = folder / POINTER
    if pointer.exists():
        try:
            named = folder / json.loads(pointer.read_text())["file"]
            candidates = [named] + [c for c in candidates if c != named]
        except (ValueError, KeyError) as err:
            log.warning("checkpoint pointer %s is unreadable (%s); looking at the files", pointer, err)
    for path in candidates:
        try:
            return torch.load(path, map_location="cpu", weights_only=True), path
        except Exception as err:  # truncated, corrupted or missing: try the previous one
            log.warning("checkpoint %s cannot be loaded (%s: %s); trying the previous one",
                        path, type(err).__name__, str(err).splitlines()[0][:200])
    return None


# ----------------------------------------------------------------------------- RNG state


def capture_rng(augment_generator: torch.Generator) -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": random.getstate(),
        "augment": augment_generator.get_state(),
    }


def restore_rng(rng: dict, augment_generator: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
    n = rng["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    augment_generator.set_state(rng["augment"])


# ----------------------------------------------------------------------------- fitting a model


def load_model_weights(module: torch.nn.Module, weights: dict, source: str, strict: bool) -> None:
    """Load `weights` into `module`; strict refuses missing, unexpected or reshaped keys and
    lists them, non-strict loads what fits and logs the rest."""
    own = module.state_dict()
    missing = sorted(k for k in own if k not in weights)
    unexpected = sorted(k for k in weights if k not in own)
    reshaped = sorted(f"{k} {tuple(weights[k].shape)} -> {tuple(own[k].shape)}"
                      for k in own if k in weights and weights[k].shape != own[k].shape)
    problems = [f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
                for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("shape mismatches", reshaped)) if keys]
    if problems and strict:
        raise CheckpointError(f"{source} does not fit this model: " + "; ".join(problems))
    if problems:
        log.warning("loading %s non-strictly: %s", source, "; ".join(problems))
    fitting = {k: v for k, v in weights.items() if k in own and v.shape == own[k].shape}
    module.load_state_dict(fitting, strict=False)


def optimizer_layout(optimizer) -> List[Tuple[str, List[str]]]:
    return [(g["name"], list(g["param_names"])) for g in optimizer.param_groups]


def check_optimizer_layout(saved: dict, optimizer, source: str) -> None:
    """Refuse an optimizer state whose groups differ from this run's, naming the differences."""
    old = [(g.get("name"), list(g.get("param_names", []))) for g in saved["param_groups"]]
    new = optimizer_layout(optimizer)
    if old == new:
        return
    old_names, new_names = dict(old), dict(new)
    lines = []
    for name in sorted(set(old_names) | set(new_names)):
        before, after = set(old_names.get(name, [])), set(new_names.get(name, []))
        if before != after:
            gone, came = sorted(before - after), sorted(after - before)
            lines.append(f"group {name}: " + ", ".join(
                part for part in (f"no longer has {gone[:5]}" if gone else "", f"now has {came[:5]}" if came else "")
                if part))
    raise CheckpointError(f"{source} has a different optimizer layout: " + "; ".join(lines or ["group order"]) +
                          " (set CHECKPOINT.LOAD_WEIGHTS_ONLY=true to take the model weights only)")

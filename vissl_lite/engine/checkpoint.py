"""Checkpoints: atomic writes, a pointer to the latest good one, fallback past a damaged one, and
RNG state in a form `torch.load(weights_only=True)` accepts (no pickled objects).

Two forms, one nested state dict: a single file written by rank 0 (ddp), or a folder written by
torch.distributed.checkpoint (fsdp), where every rank writes its shards of each DTensor and rank
0 the replicated rest. Either loads under either strategy and any world size: a folder is read
into whatever shardings the loading run has (whole tensors in one process or under ddp)."""

import json
import logging
import os
import random
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from ..errors import CheckpointError
from ..models.weight_files import read_weights

log = logging.getLogger("vissl_lite")

POINTER = "latest.json"
FINAL = "model_final.torch"
FINAL_SHARDED = "model_final.dcp"
_STEP_FILE = re.compile(r"^checkpoint_step(\d+)\.(torch|dcp)$")
# For a saved tensor (its path in the nested checkpoint, e.g. ("model", "trunk.conv1.weight")),
# the live tensor whose sharding it should be read into, or None for a whole plain tensor.
ShardingOf = Callable[[tuple], Optional[torch.Tensor]]


def checkpoint_folder(checkpoint_cfg, run_dir: Path) -> Path:
    """CHECKPOINT.DIR, or <run dir>/checkpoints when it is empty."""
    return Path(checkpoint_cfg.DIR) if checkpoint_cfg.DIR else Path(run_dir) / "checkpoints"


def step_file(step: int) -> str:
    return f"checkpoint_step{step:08d}.torch"


def sharded_name(name: str) -> str:
    """The folder name of a sharded checkpoint: model_final.torch -> model_final.dcp."""
    return name[: -len(".torch")] + ".dcp" if name.endswith(".torch") else name


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
    _point_and_prune(folder, name, state, max_keep)
    return path


def _point_and_prune(folder: Path, name: str, state: dict, max_keep: int) -> None:
    """Point latest.json at folder/name, then drop step checkpoints beyond the newest `max_keep`."""
    pointer = {"file": name, "step": state["step"], "epoch": state["epoch"]}
    _write_atomic(folder / POINTER, lambda f: f.write(json.dumps(pointer).encode()))
    if max_keep > 0:
        for old, _ in list_checkpoints(folder)[max_keep:]:
            if old.name not in (FINAL, FINAL_SHARDED):
                shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


TRUNK_FILE = "trunk.safetensors"


def save_trunk_weights(folder: Path, model_state: dict, source: str) -> Path:
    """folder/trunk.safetensors: the trunk's tensors alone under their own names (torchvision's /
    timm's), for downstream code and MODEL.WEIGHTS_INIT; `source` is noted in its metadata."""
    from ..models.weight_files import write_weights

    trunk = {k[len("trunk."):]: v for k, v in model_state.items() if k.startswith("trunk.")}
    path = folder / TRUNK_FILE
    write_weights(path, trunk, metadata={"source": source})
    return path


def list_checkpoints(folder: Path) -> List[Tuple[Path, int]]:
    """(path, step) of every complete checkpoint, files (ddp) and folders (fsdp), newest first.
    A sharded folder still being written has a hidden temporary name and is not listed."""
    found = []
    for path in folder.iterdir() if folder.is_dir() else ():
        match = _STEP_FILE.match(path.name)
        if match:
            found.append((path, int(match.group(1))))
        elif path.name in (FINAL, FINAL_SHARDED):
            found.append((path, 1 << 62))  # after every step checkpoint
    # Two final checkpoints (a ddp run continued under fsdp): the newer written first.
    return sorted(found, key=lambda item: (-item[1], -item[0].stat().st_mtime))


def load_latest(folder: Path, sharding_of: Optional[ShardingOf] = None) -> Optional[Tuple[dict, Path]]:
    """The newest checkpoint that loads: the pointer's first, then older ones. A damaged one is
    reported and skipped, never deleted. A sharded folder is read with load_sharded(path,
    sharding_of), into this run's shardings."""
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
            if path.is_dir():
                return load_sharded(path, sharding_of), path
            return _shard_like(torch.load(path, map_location="cpu", weights_only=True), sharding_of), path
        except Exception as err:  # truncated, corrupted or missing: try the previous one
            log.warning("checkpoint %s cannot be loaded (%s: %s); trying the previous one",
                        path, type(err).__name__, str(err).splitlines()[0][:200])
    return None


# ----------------------------------------------------------------------------- sharded folders


def save_sharded(folder: Path, state: dict, name: str, max_keep: int, env) -> Path:
    """Every rank writes its shards of `state` (torch.distributed.checkpoint) into a hidden
    temporary folder; once all ranks are done rank 0 renames it to folder/name and points
    latest.json at it. A run killed while writing leaves only the temporary folder, which is
    never listed and is removed by the next save. Replicated tensors (buffers, the RNG list)
    are written by rank 0, as a ddp checkpoint holds rank 0's."""
    import torch.distributed.checkpoint as dcp

    from .. import distributed

    path, tmp = folder / name, folder / f".{name}.tmp"
    if env.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".*.tmp"):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        tmp.mkdir()
    distributed.barrier(env)
    dcp.save(state, storage_writer=dcp.FileSystemWriter(tmp, sync_files=True),
             planner=dcp.DefaultSavePlanner(dedup_save_to_lowest_rank=True))
    distributed.barrier(env)
    if env.is_main:
        if path.exists():  # a final checkpoint written again after more epochs
            old = folder / f".{name}.old.tmp"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
        _fsync_dir(folder)
        _point_and_prune(folder, name, state, max_keep)
    distributed.barrier(env)
    return path


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_sharded(path: Path, sharding_of: Optional[ShardingOf] = None, keys: Optional[set] = None,
                 alone: bool = False) -> dict:
    """The nested state saved by save_sharded. Each saved tensor is read into the sharding of
    the live tensor `sharding_of` names for it (same global shape and dtype), else whole into a
    plain tensor, so any world size and either strategy can read any folder. `keys` restricts
    the read to those top-level entries (e.g. {"model"}). With `alone`, or without a process
    group, this process reads by itself (no collective)."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    reader = dcp.FileSystemReader(path)
    metadata = reader.read_metadata()
    template = {}
    for key, meta in metadata.state_dict_metadata.items():
        where = metadata.planner_data[key]
        if keys is not None and where[0] not in keys:
            continue
        value = None  # a saved object (a number, a string, a list of numbers): read in as it was
        if isinstance(meta, TensorStorageMetadata):
            live = sharding_of(where) if sharding_of is not None else None
            if live is not None and tuple(live.shape) == tuple(meta.size) and live.dtype == meta.properties.dtype:
                value = torch.empty_like(live)
            else:
                value = torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
        _set_path(template, where, value)
    alone = alone or not dist.is_initialized()
    with warnings.catch_warnings():  # torch says it assumes one process: that is the intent here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(template, storage_reader=reader, no_dist=alone)
    # torch.distributed.checkpoint writes dictionary keys as strings and leaves out empty
    # dictionaries; optimizer states are keyed by parameter index, and a method may keep nothing.
    for wrapper in template.get("optim_wrappers", {}).values():
        optimizer = wrapper["optimizer"]
        optimizer["state"] = {int(k): v for k, v in optimizer.get("state", {}).items()}
    if keys is None or "method" in keys:
        template.setdefault("method", {})
    return template


def _set_path(root: dict, where: tuple, value) -> None:
    """root[where[0]][where[1]]... = value, making dicts (string keys) and lists (int keys)."""
    node = root
    for here, below in zip(where[:-1], where[1:]):
        fresh = [] if isinstance(below, int) else {}
        if isinstance(node, list):
            node.extend([None] * (here + 1 - len(node)))
            if node[here] is None:
                node[here] = fresh
        else:
            node.setdefault(here, fresh)
        node = node[here]
    if isinstance(node, list):
        node.extend([None] * (where[-1] + 1 - len(node)))
    node[where[-1]] = value


def live_sharding(model: torch.nn.Module, wrappers) -> ShardingOf:
    """The live tensor each saved tensor of a run's checkpoint belongs to: the model's tensor of
    its name (under "model", and under "method" for a method's copies of the model, DINO's
    teacher or MoCo's key encoder, which keep the model's names), or for optimizer state the
    parameter at its index in the wrapper's groups."""
    named = model.state_dict()
    params = {name: [p for group in w.param_groups for p in group["params"]] for name, w in wrappers.items()}

    def sharding_of(where: tuple) -> Optional[torch.Tensor]:
        if where[0] in ("model", "method"):
            return named.get(where[-1])
        if where[0] == "optim_wrappers" and len(where) > 4 and tuple(where[2:4]) == ("optimizer", "state"):
            group = params.get(where[1], [])
            index = int(where[4])
            return group[index] if index < len(group) else None
        return None

    return sharding_of


def _shard_like(state, sharding_of: Optional[ShardingOf], where: tuple = ()):
    """A single-file checkpoint's whole tensors cut to the live shardings (a ddp checkpoint
    resumed under fsdp); every rank holds the file, so each keeps its own rows, no communication."""
    if sharding_of is None:
        return state
    if isinstance(state, dict):
        return {k: _shard_like(v, sharding_of, where + (k,)) for k, v in state.items()}
    if isinstance(state, list):
        return [_shard_like(v, sharding_of, where + (i,)) for i, v in enumerate(state)]
    if isinstance(state, torch.Tensor):
        from torch.distributed.tensor import DTensor, distribute_tensor

        live = sharding_of(where)
        if isinstance(live, DTensor) and live.shape == state.shape:
            return distribute_tensor(state.to(live.device, live.dtype), live.device_mesh, live.placements,
                                     src_data_rank=None)
    return state


def load_checkpoint_model_state(path: Path) -> dict:
    """The model's weights as whole tensors, {name: tensor}, from a vissl_lite checkpoint: a
    single file (ddp) or a sharded folder (fsdp, any world size), read in this process alone."""
    path = Path(path)
    if path.is_dir():
        return load_sharded(path, keys={"model"}, alone=True)["model"]
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def read_checkpoint_content(path: Path) -> dict:
    """What MODEL.WEIGHTS_INIT and vissl_lite.export read: a weights file in any layout, or a
    sharded checkpoint folder (fsdp) as the model, the method's state (teachers), step and config."""
    path = Path(path)
    if path.is_dir():
        return load_sharded(path, keys={"model", "method", "step", "config"}, alone=True)
    return read_weights(path)


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

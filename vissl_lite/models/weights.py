"""Fitting a checkpoint's tensors (already in our names, models/layouts.py) to a trunk or heads:
what loads, what is missing, mis-shaped or unused, and the ViT position grid resized to the
trunk's. Plain values in, plain values out: the config layer (engine/restore.py) decides what a
problem means for the run and names the keys.

Counting: a trunk's tensors are its state dict entries except BatchNorm's num_batches_tracked
(a step counter that older torchvision files lack and that changes no output); those load when
the file has them and keep their value otherwise.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .layouts import State, is_state_dict
from .vit import grid_side, resize_pos_embed

COUNTER = "num_batches_tracked"


@dataclass
class TensorFit:
    """What fitting a file's tensors to a module found; `tensors` is what will load."""

    tensors: State
    total: int                                   # the module's tensors, counters excluded
    missing: List[str] = field(default_factory=list)
    mis_shaped: List[str] = field(default_factory=list)   # "name (file shape) -> (trunk shape)"
    unused: List[str] = field(default_factory=list)       # in the file, not in this module
    skipped: List[str] = field(default_factory=list)      # SKIP_LAYERS: kept at their initial values
    resized: Optional[str] = None                         # "37x37 -> 16x16" when pos_embed was resized

    @property
    def loaded(self) -> int:
        return sum(1 for name in self.tensors if not name.endswith(COUNTER))

    @property
    def problems(self) -> List[Tuple[str, List[str]]]:
        return [(label, names) for label, names in (("missing", self.missing), ("mis-shaped", self.mis_shaped),
                                                    ("unused", self.unused)) if names]


def fit_tensors(module: nn.Module, tensors: State, skip: Sequence[str] = (), prefix: str = "trunk.") -> TensorFit:
    """Match `tensors` (module-local names) against `module`'s state dict (a trunk, or the heads).

    A ViT's pos_embed [1, 1 + g*g, D] for another square grid g is resized bicubically to the
    trunk's grid, the class token's row kept (vit.resize_pos_embed). `skip`: substrings of the
    model-level name (prefix + name, VISSL's SKIP_LAYERS) whose tensors are not loaded.
    """
    own = module.state_dict()
    tensors = dict(tensors)
    resized = None
    if "pos_embed" in tensors and "pos_embed" in own and tensors["pos_embed"].shape != own["pos_embed"].shape:
        theirs, ours = tensors["pos_embed"], own["pos_embed"]
        old, new = grid_side(theirs.shape[1] - 1), grid_side(ours.shape[1] - 1)
        if theirs.ndim == 3 and theirs.shape[-1] == ours.shape[-1] and old and new:
            tensors["pos_embed"] = resize_pos_embed(theirs.float(), (old, old), (new, new)).to(theirs.dtype)
            resized = f"{old}x{old} -> {new}x{new}"
    fit = TensorFit(tensors={}, total=sum(1 for name in own if not name.endswith(COUNTER)), resized=resized)
    for name, value in own.items():
        if any(s in prefix + name for s in skip):
            fit.skipped.append(name)
        elif name not in tensors:
            if not name.endswith(COUNTER):
                fit.missing.append(name)
        elif tensors[name].shape != value.shape:
            fit.mis_shaped.append(f"{name} {tuple(tensors[name].shape)} -> {tuple(value.shape)}")
        else:
            fit.tensors[name] = tensors[name]
    fit.unused = sorted(name for name in tensors if name not in own)
    return fit


def load_fitted(module: nn.Module, fit: TensorFit) -> None:
    """Copy the fitted tensors into the module (in its dtype and device)."""
    with torch.no_grad():
        module.load_state_dict(fit.tensors, strict=False)


def apply_vissl_keys(content, state_dict_key_name: str = "", remove_prefix: str = "", append_prefix: str = ""):
    """VISSL's MODEL.WEIGHTS_INIT renaming (init_model_from_consolidated_weights): take
    content[state_dict_key_name]; for 'classy_state_dict' VISSL's own nesting is read as it is,
    otherwise remove_prefix is taken off every name that starts with it, then append_prefix is
    put before every name."""
    if state_dict_key_name:
        if not isinstance(content, dict) or state_dict_key_name not in content:
            keys = list(content)[:8] if isinstance(content, dict) else type(content).__name__
            raise ValueError(f"the file has no top-level key {state_dict_key_name!r} (it has {keys})")
        content = content[state_dict_key_name]
        if state_dict_key_name == "classy_state_dict":
            return {"classy_state_dict": content}
    if not (remove_prefix or append_prefix):
        return content
    if not is_state_dict(content):
        raise ValueError("REMOVE_PREFIX / APPEND_PREFIX rename a state dict; set STATE_DICT_KEY_NAME to the key "
                         "that holds it")
    renamed = {(k[len(remove_prefix):] if remove_prefix and k.startswith(remove_prefix) else k): v
               for k, v in content.items()}
    return {f"{append_prefix}{k}": v for k, v in renamed.items()}

"""VISSL's parameter-group rules (vissl/optimizers/param_groups: default, dino, lr_decay),
restated and applied to a vissl_lite model, so the converter can compare every parameter's
LR and weight decay with what vissl_lite's groups give it.

A parameter's `Place` names where its values come from, in words both sides share:

    lr        "lr" or "lr_head" (a schedule of OPTIMIZER.param_schedulers), times lr_scale
    wd        "trunk" (OPTIMIZER.weight_decay, or the weight_decay schedule when there is one),
              "head" (the head's weight decay, see `head_weight_decay`) or "none" (0)

VISSL's default constructor, by module:
  - Linear / Conv (weight-normalised ones included) whose module name contains "head": head LR,
    head weight decay; a bias is unregularized when regularize_bias is false;
  - BatchNorm*, SyncBatchNorm and LayerNorm (not GroupNorm, not InstanceNorm): weight
    regularized only with regularize_bn, bias only with regularize_bn and regularize_bias;
    head LR and weight decay inside a "head" module;
  - the same outside "head" modules with the trunk's LR and weight decay;
  - every other parameter (GroupNorm, class token, position embedding, a custom head layer) is
    "remaining": the trunk's LR and weight decay, even inside the heads;
  - non_regularized_parameters (substrings of names) move a regularized parameter to a
    remaining group with the trunk's LR and weight decay 0.
dino: weight decay 0 for names ending in ".bias" or containing "norm", the trunk's otherwise;
the trunk's LR for all. lr_decay: the same names unregularized for a ViT (biases and ".bnN."
modules by regularize_bias / regularize_bn for a ResNet), the trunk's LR x decay ** (num_layers +
1 - depth), the trunk's weight decay. construct_single_param_group_only: one group, the trunk's.
"""

import re
from dataclasses import dataclass, field
from typing import Dict

from torch import nn

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
# VISSL's _NORM_TYPES: GroupNorm and InstanceNorm are missing, so they fall to "remaining".
VISSL_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm)


@dataclass(frozen=True)
class Place:
    lr: str = "lr"
    lr_scale: float = 1.0
    wd: str = "trunk"
    rule: str = field(default="", compare=False)  # which of VISSL's rules placed it, for the report


def _trainable(model: nn.Module, frozen_names) -> Dict[str, nn.Parameter]:
    frozen = set(frozen_names)
    return {n: p for n, p in model.named_parameters() if p.requires_grad and n not in frozen}


def default_places(model: nn.Module, opt: dict, frozen_names=()) -> Dict[str, Place]:
    trainable = _trainable(model, frozen_names)
    reg_bias, reg_bn = opt.get("regularize_bias", True), opt.get("regularize_bn", False)
    places: Dict[str, Place] = {}
    for module_name, module in model.named_modules():
        part = ("lr_head", "head") if "head" in module_name else ("lr", "trunk")
        own = {local: f"{module_name}.{local}" if module_name else local
               for local, _ in module.named_parameters(recurse=False)}
        linear_like = isinstance(module, (nn.Linear,) + CONV) or _weight_normed_linear(module)
        for local, name in own.items():
            if linear_like:
                regularized = local != "bias" or reg_bias
                places[name] = Place(part[0], 1.0, part[1] if regularized else "none", f"{part[1]} layer")
            elif isinstance(module, VISSL_NORMS):
                regularized = reg_bn and (local != "bias" or reg_bias)
                places[name] = Place(part[0], 1.0, part[1] if regularized else "none", f"{part[1]} norm layer")
            else:  # "remaining": the trunk's values wherever it sits
                places[name] = Place("lr", 1.0, "trunk", f"remaining:{type(module).__name__}")
    for name, place in places.items():
        if place.wd != "none" and any(s in name for s in opt.get("non_regularized_parameters") or []):
            places[name] = Place("lr", 1.0, "none", "non_regularized_parameters")
    return {n: places[n] for n in trainable}


def _weight_normed_linear(module: nn.Module) -> bool:
    """A weight-normalised linear layer (weight_v, weight_g) whose norm g is trained: VISSL builds
    it with torch's weight_norm on an nn.Linear. With g fixed (DINO's normalize_last_layer) VISSL
    uses a layer of its own, which its rules put with the "remaining" parameters."""
    g = getattr(module, "weight_g", None)
    return hasattr(module, "weight_v") and isinstance(g, nn.Parameter) and g.requires_grad


def dino_places(model: nn.Module, opt: dict, frozen_names=()) -> Dict[str, Place]:
    return {n: Place("lr", 1.0, "none" if _bias_or_norm_name(n) else "trunk", "dino")
            for n in _trainable(model, frozen_names)}


def _bias_or_norm_name(name: str) -> bool:
    return name.endswith(".bias") or "norm" in name


def lr_decay_places(model: nn.Module, opt: dict, trunk_name: str, frozen_names=()) -> Dict[str, Place]:
    decay = (opt.get("layer_wise_lr_decay") or {}).get("decay", 0.9)
    num_layers = model.trunk.num_layers
    places = {}
    for name in _trainable(model, frozen_names):
        if trunk_name == "vision_transformer":
            regularized = not _bias_or_norm_name(name)
            depth = _vit_depth(name, num_layers)
        else:
            regularized = (opt.get("regularize_bias", True) if name.endswith(".bias")
                           else opt.get("regularize_bn", False) if re.search(r"\.bn[0-9]*\.", name) else True)
            depth = _resnet_depth(name, num_layers)
        places[name] = Place("lr", decay ** (num_layers + 1 - depth), "trunk" if regularized else "none", "lr_decay")
    return places


def _vit_depth(name: str, num_layers: int) -> int:
    if "heads" in name:
        return num_layers + 1
    if any(s in name for s in ("patch_embed", "pos_embed", "cls_token")):
        return 0
    block = re.search(r"blocks\.([0-9]+)\.", name)
    return int(block.group(1)) + 1 if block else num_layers


def _resnet_depth(name: str, num_layers: int) -> int:
    # VISSL's names are trunk._feature_blocks.<torchvision name>; vissl_lite's trunk.<torchvision name>.
    if name.startswith(("trunk.conv1.", "trunk.bn1.")):
        return 0
    stage = re.search(r"\.layer([0-9]*)\.", name)
    return int(stage.group(1)) if stage else num_layers + 1


def vissl_places(model: nn.Module, opt: dict, trunk_name: str, frozen_names=()) -> Dict[str, Place]:
    """Every trainable parameter's Place under VISSL's rules for the OPTIMIZER section `opt`
    (VISSL's keys, VISSL's defaults where absent)."""
    if opt.get("construct_single_param_group_only"):
        return {n: Place(rule="single group") for n in _trainable(model, frozen_names)}
    constructor = opt.get("param_group_constructor", "default")
    if constructor == "dino":
        return dino_places(model, opt, frozen_names)
    if constructor == "lr_decay":
        return lr_decay_places(model, opt, trunk_name, frozen_names)
    return default_places(model, opt, frozen_names)


def vissl_lite_places(groups) -> Dict[str, Place]:
    """The same words for vissl_lite's parameter groups (vissl_lite.optim.param_groups)."""
    places = {}
    for g in groups:
        if not g["regularized"] or g["decay_mult"] == 0:
            wd = "none"
        else:
            wd = "head" if g["wd_schedule"] == "weight_decay_head" else "trunk"
        for name in g["param_names"]:
            places[name] = Place(g["lr_schedule"], g["lr_mult"], wd)
    return places

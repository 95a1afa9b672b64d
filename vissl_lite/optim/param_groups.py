"""Parameter groups: trunk vs head, regularized vs not, plus per-parameter LR/decay multipliers.

Each group is a dict torch.optim understands (`params`, `lr`, `weight_decay`) plus what the
per-step schedule application needs:
  name          readable, e.g. trunk_unregularized or head_regularized/custom:bn
  lr_schedule   which schedule drives its LR ("lr" or "lr_head")
  wd_schedule   which schedule drives its weight decay ("weight_decay" or "weight_decay_head")
  regularized   False pins weight decay at 0 whatever the schedule says
  lr_mult       multiplies the scheduled LR (custom_keys lr_mult x layer-wise decay)
  decay_mult    multiplies the scheduled weight decay (custom_keys decay_mult)
"""

import logging
import re
import warnings
from typing import Dict, List, Sequence, Tuple

from torch import nn

from ..errors import ConfigError
from ..config.plain import plain
from .param_scheduler import build_param_scheduler

NORM_LAYERS: Tuple[type, ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*d, SyncBatchNorm, InstanceNorm*d, LazyBatchNorm
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
    nn.CrossMapLRN2d,
)

_LAYER_INDEX = re.compile(r"(?:^|\.)layer(\d+)\.")

log = logging.getLogger(__name__)


def schedule_start(schedule_cfg, num_epochs: int, key: str) -> float:
    """The value of one `param_schedulers` entry at the start of training."""
    return build_param_scheduler({**plain(schedule_cfg), "num_epochs": num_epochs}, key)(0.0)


def head_uses(optimizer_cfg) -> Tuple[str, str, float]:
    """(LR schedule, weight-decay schedule, base weight decay) that drive head groups."""
    head = optimizer_cfg.head_optimizer_params
    return (
        "lr_head" if head.use_different_lr else "lr",
        "weight_decay_head" if head.use_different_wd else "weight_decay",
        head.weight_decay if head.use_different_wd else optimizer_cfg.weight_decay,
    )


def _norm_and_bias_params(model: nn.Module) -> Tuple[set, set]:
    norm, bias = set(), set()
    for module in model.modules():
        for local_name, p in module.named_parameters(recurse=False):
            if isinstance(module, NORM_LAYERS):
                norm.add(p)
            if local_name == "bias":
                bias.add(p)
    return norm, bias


def layer_depth(name: str, is_head: bool, num_layers: int) -> int:
    """ResNet depth for layer-wise LR decay: stem 0, layerN N, heads num_layers + 1."""
    if is_head:
        return num_layers + 1
    match = _LAYER_INDEX.search(name)
    return int(match.group(1)) if match else 0


def build_param_groups(
    optimizer_cfg, model: nn.Module, non_trainable_params: Sequence[str] = ()
) -> List[Dict]:
    """Split the model's trainable parameters into named optimizer groups (see module doc).

    `non_trainable_params` are exact parameter names (MODEL.NON_TRAINABLE_PARAMS) left out
    like parameters with requires_grad=False.
    """
    named = dict(model.named_parameters())  # a shared parameter appears once
    unknown = [n for n in non_trainable_params if n not in named]
    if unknown:
        raise ConfigError("MODEL.NON_TRAINABLE_PARAMS", unknown, "exact parameter names of the model",
                          f"e.g. {', '.join(list(named)[:3])}")
    frozen = set(non_trainable_params)
    trainable = [(n, p) for n, p in named.items() if p.requires_grad and n not in frozen]

    num_epochs = optimizer_cfg.num_epochs
    schedules = optimizer_cfg.param_schedulers
    trunk_lr = schedule_start(schedules.lr, num_epochs, "OPTIMIZER.param_schedulers.lr")
    if optimizer_cfg.construct_single_param_group_only:
        return [dict(params=[p for _, p in trainable], name="all", lr=trunk_lr, weight_decay=optimizer_cfg.weight_decay,
                     lr_schedule="lr", wd_schedule="weight_decay", regularized=True, lr_mult=1.0, decay_mult=1.0)]

    head_lr_key, head_wd_key, head_wd = head_uses(optimizer_cfg)
    lr_at_start = {"lr": trunk_lr}
    if head_lr_key == "lr_head":
        lr_at_start["lr_head"] = schedule_start(schedules.lr_head, num_epochs, "OPTIMIZER.param_schedulers.lr_head")
    heads = getattr(model, "heads", None)
    head_params = {id(p) for p in heads.parameters()} if isinstance(heads, nn.Module) else set()
    norm, bias = _norm_and_bias_params(model)
    custom_keys = plain(optimizer_cfg.paramwise.custom_keys)
    used_keys = set()
    layer_decay = optimizer_cfg.param_group_constructor == "lr_decay"
    decay = optimizer_cfg.layer_wise_lr_decay.decay
    num_layers = max((layer_depth(n, False, 0) for n, _ in trainable), default=0)

    groups: Dict[tuple, Dict] = {}
    for name, p in trainable:
        is_head = id(p) in head_params
        regularized = not (
            (p in norm and not optimizer_cfg.regularize_bn)
            or (p in bias and not optimizer_cfg.regularize_bias)
            or any(s in name for s in optimizer_cfg.non_regularized_parameters)
        )
        matches = [k for k in custom_keys if k in name]
        custom = max(matches, key=len) if matches else None
        lr_mult = decay_mult = 1.0
        suffix = ""
        if custom is not None:
            used_keys.add(custom)
            lr_mult = custom_keys[custom].get("lr_mult", 1.0)
            decay_mult = custom_keys[custom].get("decay_mult", 1.0)
            suffix += f"/custom:{custom}"
        if layer_decay:
            depth = layer_depth(name, is_head, num_layers)
            lr_mult *= decay ** (num_layers + 1 - depth)
            suffix += f"/depth{depth}"
        part = "head" if is_head else "trunk"
        key = (part, regularized, suffix)
        if key not in groups:
            lr_key = head_lr_key if is_head else "lr"
            base_wd = (head_wd if is_head else optimizer_cfg.weight_decay) if regularized else 0.0
            groups[key] = dict(
                params=[], param_names=[],
                name=f"{part}_{'regularized' if regularized else 'unregularized'}{suffix}",
                lr=lr_at_start[lr_key] * lr_mult, weight_decay=base_wd * decay_mult,
                lr_schedule=lr_key, wd_schedule=head_wd_key if is_head else "weight_decay",
                regularized=regularized, lr_mult=lr_mult, decay_mult=decay_mult,
            )
        groups[key]["params"].append(p)
        groups[key]["param_names"].append(name)

    for key in custom_keys.keys() - used_keys:
        message = f"OPTIMIZER.paramwise.custom_keys.{key} matches no trainable parameter name"
        warnings.warn(message, stacklevel=2)
        log.warning(message)
    order = {("trunk", True): 0, ("trunk", False): 1, ("head", True): 2, ("head", False): 3}
    return sorted(groups.values(), key=lambda g: (order[(g["name"].split("_")[0], g["regularized"])], g["name"]))

"""Parameter groups: one algebra for VISSL's flags and MMEngine's paramwise options.

A parameter is known by its first name in model.named_parameters() (a shared parameter is
optimised once, as its first name and that name's owner module say). Its group's values are

    lr = schedule[lr_schedule] x lr_mult          wd = schedule[wd_schedule] x decay_mult

  1-2. lr_mult and decay_mult from the paramwise rules (custom_keys, else MMEngine's type
       multipliers; see paramwise.py);
  3.   lr_decay constructor: lr_mult x decay ** (num_layers + 1 - depth) (see layer_decay.py);
  4.   VISSL's hard rules last: regularize_bn=False (norm weights and biases),
       regularize_bias=False (every bias) and non_regularized_parameters (name substrings)
       make the parameter unregularized: weight decay 0 whatever the schedule, decay_mult 0.

Each group is a dict torch.optim understands plus what the schedules and checkpoints need:
  params, param_names  the parameters and their first names
  name                 readable, e.g. trunk_regularized, head_unregularized/custom:bn/depth5
  lr, weight_decay     0.0 and the base weight decay x decay_mult (0 when unregularized); the
                       schedules set both before the first step
  lr_schedule          "lr" or "lr_head";  wd_schedule  "weight_decay" or "weight_decay_head"
  regularized          False pins weight decay at 0
  lr_mult, decay_mult  the multipliers above

Head parameters are those whose first name lies under model.heads; everything else is trunk.
"""

import logging
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..registry import Registry
from .layer_decay import layer_decay_multiplier, parameter_depths
from .paramwise import NORM_LAYERS, Paramwise

log = logging.getLogger(__name__)

GROUP_KEYS = ("params", "param_names", "name", "lr", "weight_decay", "lr_schedule", "wd_schedule", "regularized",
              "lr_mult", "decay_mult")


@dataclass(frozen=True)
class ParamGroupOptions:
    """The OPTIMIZER keys that shape the groups, as plain values (see build.py for the mapping).

    head_weight_decay None: head groups share the trunk's weight decay and its schedule;
    a number: their own base value, scheduled by weight_decay_head.
    """

    weight_decay: float = 1e-4
    head_lr_schedule: str = "lr"
    head_weight_decay: Optional[float] = None
    regularize_bn: bool = False
    regularize_bias: bool = True
    non_regularized_parameters: Sequence[str] = ()
    non_trainable: Sequence[str] = ()
    paramwise: Paramwise = field(default_factory=Paramwise)
    layer_decay: float = 1.0


@dataclass(frozen=True, eq=False)  # eq would compare tensors elementwise
class ParamSetting:
    """One trainable parameter's place: its group is decided by everything but name and param."""

    name: str
    param: torch.Tensor
    part: str  # "trunk" | "head"
    regularized: bool
    lr_mult: float
    decay_mult: float
    tags: Tuple[str, ...]  # why the multipliers are what they are, for the group name


def owned_parameters(model: nn.Module):
    """(first name, local name, parameter, owner module) in model.named_parameters() order."""
    seen = set()
    for prefix, module in model.named_modules():
        for local, p in module.named_parameters(recurse=False):
            if p not in seen:
                seen.add(p)
                yield (f"{prefix}.{local}" if prefix else local), local, p, module


def shared_parameters(model: nn.Module) -> List[Tuple[str, str]]:
    """(first name, later name) for every parameter reachable under more than one name."""
    first: Dict[torch.Tensor, str] = {}
    pairs = []
    for name, p in model.named_parameters(remove_duplicate=False):
        if p in first:
            pairs.append((first[p], name))
        else:
            first[p] = name
    return pairs


def unknown_names(model: nn.Module, names: Sequence[str]) -> List[str]:
    known = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    return [n for n in names if n not in known]


def _frozen(model: nn.Module, names: Sequence[str]) -> set:
    unknown = unknown_names(model, names)
    if unknown:
        raise ValueError(f"no parameters named {', '.join(unknown)}")
    wanted = set(names)
    return {p for n, p in model.named_parameters(remove_duplicate=False) if n in wanted}


def _trainable(model: nn.Module, options: ParamGroupOptions):
    frozen = _frozen(model, options.non_trainable)
    return [(n, local, p, m) for n, local, p, m in owned_parameters(model) if p.requires_grad and p not in frozen]


def parameter_settings(model: nn.Module, options: ParamGroupOptions) -> List[ParamSetting]:
    """Steps 1, 2 and 4 of the module doc for every trainable parameter."""
    heads = getattr(model, "heads", None)
    # Judged on the first name: a module shared by trunk and heads is trunk if the trunk holds it first.
    head_prefixes = tuple(f"{n}." for n, m in model.named_modules(remove_duplicate=False) if m is heads and n)
    settings = []
    for name, local, p, module in _trainable(model, options):
        mults = options.paramwise.multipliers(name, local, p, module)
        regularized = not (
            (isinstance(module, NORM_LAYERS) and not options.regularize_bn)
            or (local == "bias" and not options.regularize_bias)
            or any(s in name for s in options.non_regularized_parameters)
        )
        tags = [mults.lr_rule] if mults.lr_rule else []
        if regularized and mults.decay_rule and mults.decay_rule not in tags:
            tags.append(mults.decay_rule)
        settings.append(ParamSetting(
            name=name, param=p, part="head" if name.startswith(head_prefixes) else "trunk", regularized=regularized,
            lr_mult=mults.lr_mult, decay_mult=mults.decay_mult if regularized else 0.0, tags=tuple(tags)))
    return settings


def with_layer_decay(model: nn.Module, settings: List[ParamSetting], decay: float) -> List[ParamSetting]:
    """Step 3: lr_mult x decay ** (num_layers + 1 - depth), the depth given by the trunk."""
    num_layers, depths = parameter_depths(model)
    return [replace(s, lr_mult=s.lr_mult * layer_decay_multiplier(depths[s.param], num_layers, decay),
                    tags=s.tags + (f"depth{depths[s.param]}",)) for s in settings]


def group_parameters(settings: Sequence[ParamSetting], options: ParamGroupOptions) -> List[Dict]:
    """Parameters with equal settings share a group; groups come trunk regularized, trunk
    unregularized, head regularized, head unregularized, then by name."""
    groups: Dict[tuple, Dict] = {}
    for s in settings:
        key = (s.part, s.regularized, s.tags, s.lr_mult, s.decay_mult)
        if key not in groups:
            own_head_wd = s.part == "head" and options.head_weight_decay is not None
            base_wd = options.head_weight_decay if own_head_wd else options.weight_decay
            name = f"{s.part}_{'regularized' if s.regularized else 'unregularized'}" + "".join(f"/{t}" for t in s.tags)
            groups[key] = dict(
                params=[], param_names=[], name=name, lr=0.0, weight_decay=base_wd * s.decay_mult,
                lr_schedule=options.head_lr_schedule if s.part == "head" else "lr",
                wd_schedule="weight_decay_head" if own_head_wd else "weight_decay",
                regularized=s.regularized, lr_mult=s.lr_mult, decay_mult=s.decay_mult,
            )
        groups[key]["params"].append(s.param)
        groups[key]["param_names"].append(s.name)
    rank = {("trunk", True): 0, ("trunk", False): 1, ("head", True): 2, ("head", False): 3}
    return sorted(groups.values(), key=lambda g: (rank[(g["name"].split("_")[0], g["regularized"])], g["name"]))


def unmatched_substrings(groups: Sequence[Dict], substrings: Sequence[str]) -> List[str]:
    """The entries of a name list that no grouped (trainable) parameter's name contains."""
    names = [n for g in groups for n in g["param_names"]]
    return [s for s in substrings if not any(s in n for n in names)]


def warn_unmatched(groups: Sequence[Dict], substrings: Sequence[str], key: str) -> None:
    """Say which entries of the name list `key` select no parameter: a misspelt name would
    otherwise change nothing, silently (paramwise.custom_keys are said the same way)."""
    for entry in unmatched_substrings(groups, substrings):
        message = f"{key}: {entry!r} is in no trainable parameter's name"
        warnings.warn(message, stacklevel=3)
        log.warning(message)


def single_group(model: nn.Module, options: ParamGroupOptions) -> List[Dict]:
    """VISSL's construct_single_param_group_only: every trainable parameter at the trunk's LR
    and weight decay; regularize_*, head and paramwise options do not apply."""
    trainable = _trainable(model, options)
    return [dict(params=[p for _, _, p, _ in trainable], param_names=[n for n, _, _, _ in trainable], name="all",
                 lr=0.0, weight_decay=options.weight_decay, lr_schedule="lr", wd_schedule="weight_decay",
                 regularized=True, lr_mult=1.0, decay_mult=1.0)]


# ----------------------------------------------------------------------------- constructors

ParamGroupConstructor = Callable[[nn.Module, ParamGroupOptions], List[Dict]]
PARAM_GROUP_CONSTRUCTORS = Registry("param group constructor")
register_param_group_constructor = PARAM_GROUP_CONSTRUCTORS.register


@register_param_group_constructor("default")
def default_param_groups(model: nn.Module, options: ParamGroupOptions) -> List[Dict]:
    """Steps 1, 2 and 4 of the module doc."""
    return group_parameters(parameter_settings(model, options), options)


@register_param_group_constructor("lr_decay")
def layer_decay_param_groups(model: nn.Module, options: ParamGroupOptions) -> List[Dict]:
    """The default groups with layer-wise LR decay (step 3); one group per depth."""
    settings = with_layer_decay(model, parameter_settings(model, options), options.layer_decay)
    return group_parameters(settings, options)

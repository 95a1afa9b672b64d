"""OPTIMIZER section + model -> a torch optimizer over named parameter groups.

The one place in optim/ that reads the OPTIMIZER section: it maps keys to the plain options of
param_groups.py, checks what the schema cannot (rules between keys, registry names) and names
the full key in every ConfigError.
"""

import logging
import warnings
from dataclasses import fields
from functools import reduce
from typing import Dict, List, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..errors import ConfigError
from .larc import LARC
from .optimizers import OPTIMIZERS, REFUSED_OPTIMIZERS, OptimInfo
from .param_groups import (GROUP_KEYS, PARAM_GROUP_CONSTRUCTORS, ParamGroupOptions, shared_parameters, single_group,
                           unknown_names, warn_unmatched)
from .paramwise import Paramwise

log = logging.getLogger(__name__)

_TYPE_MULTS = tuple(f.name for f in fields(Paramwise) if f.name != "custom_keys")


def _plain(section):
    """A DictConfig, dataclass or dict section as plain Python containers."""
    return OmegaConf.to_container(section if isinstance(section, DictConfig) else OmegaConf.create(section),
                                  resolve=True)


def param_group_options(optimizer_cfg, non_trainable_params: Sequence[str] = ()) -> ParamGroupOptions:
    """The OPTIMIZER keys that shape parameter groups, as plain values."""
    head = optimizer_cfg.head_optimizer_params
    paramwise = optimizer_cfg.paramwise
    return ParamGroupOptions(
        weight_decay=optimizer_cfg.weight_decay,
        head_lr_schedule="lr_head" if head.use_different_lr else "lr",
        head_weight_decay=head.weight_decay if head.use_different_wd else None,
        regularize_bn=optimizer_cfg.regularize_bn,
        regularize_bias=optimizer_cfg.regularize_bias,
        non_regularized_parameters=tuple(optimizer_cfg.non_regularized_parameters),
        non_trainable=tuple(non_trainable_params),
        paramwise=Paramwise(custom_keys=_plain(paramwise.custom_keys),
                            **{k: getattr(paramwise, k) for k in _TYPE_MULTS}),
        layer_decay=optimizer_cfg.layer_wise_lr_decay.decay,
    )


def check_param_group_keys(optimizer_cfg, prefix: str = "OPTIMIZER") -> None:
    """Rules between OPTIMIZER keys that shape the groups (the model is not needed); `prefix`:
    the section's key path."""
    paramwise = optimizer_cfg.paramwise
    for mult, flag, what in (("norm_decay_mult", "regularize_bn", "norm layers"),
                             ("bias_decay_mult", "regularize_bias", "biases")):
        value = getattr(paramwise, mult)
        if value is not None and not getattr(optimizer_cfg, flag):
            raise ConfigError(f"{prefix}.paramwise.{mult}", value, f"null while {prefix}.{flag} is false",
                              f"{flag}=false pins the weight decay of {what} at 0; set {prefix}.{flag}=true "
                              f"to scale it instead")
    name = optimizer_cfg.param_group_constructor
    if name not in PARAM_GROUP_CONSTRUCTORS:
        raise ConfigError(f"{prefix}.param_group_constructor", name,
                          "one of " + ", ".join(sorted(PARAM_GROUP_CONSTRUCTORS)),
                          "add your own with register_param_group_constructor")
    if optimizer_cfg.construct_single_param_group_only:
        ignored = [f"paramwise.{k}" for k in _TYPE_MULTS if getattr(paramwise, k) is not None]
        ignored += ["paramwise.custom_keys"] if len(paramwise.custom_keys) else []
        ignored += ["param_group_constructor"] if name != "default" else []
        if ignored:
            raise ConfigError(f"{prefix}.construct_single_param_group_only", True,
                              f"false while {prefix}.{ignored[0]} is set",
                              "a single group applies no per-parameter options")


def build_param_groups(optimizer_cfg, model: nn.Module, non_trainable_params: Sequence[str] = ()) -> List[Dict]:
    """The groups of `model`'s trainable parameters (see param_groups.py for their keys).

    `non_trainable_params` are parameter names (MODEL.NON_TRAINABLE_PARAMS) left out like
    parameters with requires_grad=False.
    """
    check_param_group_keys(optimizer_cfg)
    unknown = unknown_names(model, non_trainable_params)
    if unknown:
        examples = ", ".join(n for n, _ in list(model.named_parameters())[:3])
        raise ConfigError("MODEL.NON_TRAINABLE_PARAMS", unknown, "parameter names of the model", f"e.g. {examples}")
    shared = shared_parameters(model)
    if shared and not optimizer_cfg.paramwise.bypass_duplicate:
        first, later = shared[0]
        raise ConfigError("OPTIMIZER.paramwise.bypass_duplicate", False, "true for a model with shared parameters",
                          f"{first} is also {later}; true optimises it once, in the group of {first}")
    options = param_group_options(optimizer_cfg, non_trainable_params)
    if optimizer_cfg.construct_single_param_group_only:
        return single_group(model, options)
    name = optimizer_cfg.param_group_constructor
    try:
        groups = PARAM_GROUP_CONSTRUCTORS[name](model, options)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError("OPTIMIZER.param_group_constructor", name, "a constructor that fits this model",
                          str(err)) from err
    _check_groups(groups, name)
    _warn_unused_custom_keys(groups, options.paramwise)
    warn_unmatched(groups, options.non_regularized_parameters, "OPTIMIZER.non_regularized_parameters")
    return groups


def _check_groups(groups: List[Dict], constructor: str) -> None:
    for group in groups:
        missing = [k for k in GROUP_KEYS if k not in group]
        if missing:
            raise ConfigError("OPTIMIZER.param_group_constructor", constructor,
                              "a constructor whose groups carry " + ", ".join(GROUP_KEYS),
                              f"group {group.get('name', '?')!r} lacks {', '.join(missing)}")


def _warn_unused_custom_keys(groups: List[Dict], paramwise: Paramwise) -> None:
    deciding = {paramwise.custom_key(n) for g in groups for n in g["param_names"]}
    for key in paramwise.custom_keys.keys() - deciding:
        message = (f"OPTIMIZER.paramwise.custom_keys.{key} decides no trainable parameter "
                   "(no name contains it, or a longer key wins wherever one does)")
        warnings.warn(message, stacklevel=3)
        log.warning(message)


def optimizer_builder(optimizer_cfg, prefix: str = "OPTIMIZER"):
    """The registered builder OPTIMIZER.name names (MMEngine's class names included)."""
    name = optimizer_cfg.name
    if name in REFUSED_OPTIMIZERS:
        raise ConfigError(f"{prefix}.name", name, "an optimizer that steps once per batch on dense gradients",
                          REFUSED_OPTIMIZERS[name])
    if name not in OPTIMIZERS:
        raise ConfigError(f"{prefix}.name", name, "one of " + ", ".join(sorted(OPTIMIZERS)),
                          "MMEngine's spellings (the torch class names: SGD, AdamW, ...) are accepted too")
    return OPTIMIZERS[name]


def base_lr(optimizer_cfg) -> float:
    """The LR a torch optimizer's `defaults` carry: an MMEngine / mmcv schedule's base_value (the
    optimizer's lr there), else the LR schedule's value at the start of training."""
    from .group_scheduler import schedule_section
    from .schedules import check_schedule
    from .schedules.fractions import ParamScheduler

    lr = check_schedule(schedule_section(optimizer_cfg, "lr"), "OPTIMIZER.param_schedulers.lr", optimizer_cfg.num_epochs)
    return lr(0.0) if isinstance(lr, ParamScheduler) else lr.base_value


def build_optimizer(optimizer_cfg, model: nn.Module, non_trainable_params: Sequence[str] = ()) -> torch.optim.Optimizer:
    """The optimizer named by OPTIMIZER.name over `build_param_groups`, LARC-wrapped if use_larc.

    Groups start at lr 0.0: whoever owns the schedules applies them before the first step.
    """
    builder = optimizer_builder(optimizer_cfg)
    groups = build_param_groups(optimizer_cfg, model, non_trainable_params)
    if isinstance(builder, OptimInfo) and not builder.takes_weight_decay and not optimizer_cfg.use_larc:
        decayed = [g for g in groups if g["weight_decay"] > 0]
        if decayed:
            key = "head_optimizer_params.weight_decay" if decayed[0]["wd_schedule"] == "weight_decay_head" \
                else "weight_decay"
            raise ConfigError(f"OPTIMIZER.{key}", reduce(getattr, key.split("."), optimizer_cfg),
                              f"0 with OPTIMIZER.name={optimizer_cfg.name}",
                              f"torch.optim.{builder.cls.__name__} has no weight decay; use_larc=true applies it")
    optimizer = builder(groups, optimizer_cfg, lr=base_lr(optimizer_cfg)) if isinstance(builder, OptimInfo) \
        else builder(groups, optimizer_cfg)
    if optimizer_cfg.use_larc:
        larc = optimizer_cfg.larc_config
        optimizer = LARC(optimizer, trust_coefficient=larc.trust_coefficient, clip=larc.clip, eps=larc.eps,
                         exclude_bias_and_norm=larc.exclude_bias_and_norm)
    return optimizer

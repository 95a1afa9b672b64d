"""OPTIMIZER section + model -> a torch optimizer over named parameter groups."""

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .larc import LARC
from .optimizers import OPTIMIZERS
from .param_groups import build_param_groups


def build_optimizer(optimizer_cfg, model: nn.Module, non_trainable_params: Sequence[str] = ()) -> torch.optim.Optimizer:
    """The optimizer named by OPTIMIZER.name over `build_param_groups`, LARC-wrapped if use_larc."""
    name = optimizer_cfg.name
    if name not in OPTIMIZERS:
        raise ConfigError("OPTIMIZER.name", name, "one of " + ", ".join(sorted(OPTIMIZERS)))
    groups = build_param_groups(optimizer_cfg, model, non_trainable_params)
    optimizer = OPTIMIZERS[name](groups, optimizer_cfg)
    if optimizer_cfg.use_larc:
        larc = optimizer_cfg.larc_config
        optimizer = LARC(optimizer, trust_coefficient=larc.trust_coefficient, clip=larc.clip, eps=larc.eps,
                         exclude_bias_and_norm=larc.exclude_bias_and_norm)
    return optimizer

"""The `dino` param-group constructor (OPTIMIZER.param_group_constructor: dino), after VISSL's and
DINO's get_params_groups: the default groups (trunk / head, paramwise multipliers), with weight
decay 0 for every bias, every norm-layer parameter, every other 1-D parameter, and the
parameters the trunk lists in `no_weight_decay()` (a ViT's class token and position embeddings,
as timm's no_weight_decay). Everything else follows the weight-decay schedule.
"""

from dataclasses import replace
from typing import Dict, List, Set

import torch
from torch import nn

from .layer_decay import trunk_of
from .param_groups import (ParamGroupOptions, group_parameters, owned_parameters, parameter_settings,
                           register_param_group_constructor)
from .paramwise import NORM_LAYERS


def no_decay_parameters(model: nn.Module) -> Set[torch.Tensor]:
    """Biases, norm-layer parameters, 1-D parameters and the trunk's no_weight_decay() names."""
    exempt = {p for _, local, p, module in owned_parameters(model)
              if local == "bias" or p.ndim <= 1 or isinstance(module, NORM_LAYERS)}
    trunk = trunk_of(model)
    names = trunk.no_weight_decay() if hasattr(trunk, "no_weight_decay") else set()
    return exempt | {p for name, p in trunk.named_parameters() if name in names}


@register_param_group_constructor("dino")
def dino_param_groups(model: nn.Module, options: ParamGroupOptions) -> List[Dict]:
    exempt = no_decay_parameters(model)
    settings = [replace(s, regularized=False, decay_mult=0.0) if s.param in exempt else s
                for s in parameter_settings(model, options)]
    return group_parameters(settings, options)

"""The optimizer stack: param groups, optimizers, LARC, schedules, auto LR scaling."""

from .build import build_optimizer, build_param_groups
from .larc import LARC
from .lars import LARS
from .optimizers import OPTIMIZERS, OptimInfo, register_optimizer
from .param_groups import PARAM_GROUP_CONSTRUCTORS, ParamGroupOptions, register_param_group_constructor
from . import param_groups_dino  # noqa: F401  registers the "dino" constructor
from .schedules import build_step_schedule

__all__ = ["LARC", "LARS", "OPTIMIZERS", "OptimInfo", "PARAM_GROUP_CONSTRUCTORS", "ParamGroupOptions",
           "build_optimizer", "build_param_groups", "build_step_schedule", "register_optimizer",
           "register_param_group_constructor"]

"""The optimizer stack: param groups, optimizers, LARC, schedules, auto LR scaling."""

from .build import build_optimizer
from .optimizers import OPTIMIZERS, register_optimizer
from .param_groups import build_param_groups
from .param_scheduler import build_param_scheduler

__all__ = ["OPTIMIZERS", "build_optimizer", "build_param_groups", "build_param_scheduler", "register_optimizer"]

"""Parameter schedules in three dialects compiled to one engine: a value per optimizer step.

    fractions.py  VISSL / ClassyVision / fvcore types, functions of `where` in [0, 1)
    mmengine.py   `name: mmengine`: MMEngine's param_scheduler list (LinearLR, CosineAnnealingLR, ...)
    mmcv.py       `name: mmcv`: mmcv 1.x's lr_config / momentum_config (policy + warmup)
    registry.py   the registries of types, `arg` (a declared argument) and `build` (section -> type)
    step.py       StepSchedule: values(steps) for optimizer steps, what everything else reads
    build.py      config section -> schedule, errors naming the full key path

docs/schedules.md translates each dialect to the others.
"""

from .build import AutoLRScaling, build_step_schedule, check_schedule, compile_schedule, filled, value_slots
from .registry import MMCV_POLICIES, MMENGINE_TYPES, SCHEDULES, ScheduleArgumentError, arg
from .step import StepSchedule

__all__ = ["AutoLRScaling", "MMCV_POLICIES", "MMENGINE_TYPES", "SCHEDULES", "ScheduleArgumentError", "StepSchedule",
           "arg", "build_step_schedule", "check_schedule", "compile_schedule", "filled", "value_slots"]

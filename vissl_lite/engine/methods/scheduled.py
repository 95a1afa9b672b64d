"""A method's scheduled scalar (an EMA momentum, a temperature) from its own config section,
built by the optimizer's schedule builder: any type or dialect of OPTIMIZER.param_schedulers,
evaluated from the optimizer step counter only."""

from typing import Callable

from ...config.plain import plain
from ...errors import ConfigError
from ...optim.schedules import StepSchedule, build_step_schedule, value_slots


def method_schedule(section, key: str, num_epochs: int, steps_per_epoch: int, scalar: str,
                    legal: Callable[[float], bool], allowed: str) -> StepSchedule:
    """The schedule written at `key` (e.g. LOSS.moco_loss.momentum) as values per optimizer
    step. Every value written in it must pass `legal` (`allowed` says which, in words); auto LR
    scaling is refused, it rewrites learning rates only."""
    section = plain(section)
    if section.get("auto_lr_scaling", {}).get("auto_scale"):
        raise ConfigError(f"{key}.auto_lr_scaling.auto_scale", True, "false", "auto scaling applies to LR schedules")
    for container, slot, full_key in value_slots(section, key):
        value = container[slot]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not legal(value):
            raise ConfigError(full_key, value, allowed)
    return build_step_schedule(section, key, num_epochs, steps_per_epoch, param_name=scalar)

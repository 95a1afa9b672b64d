"""Config section -> schedule: the one place where a schedule's argument errors become
ConfigError naming the full key path (`OPTIMIZER.param_schedulers.lr.schedulers[1].eta_min`)."""

from typing import Iterator, Mapping, Tuple

from ...config.plain import plain
from ...errors import ConfigError
from . import fractions, mmcv, mmengine  # noqa: F401  (they register the types)
from .registry import SCHEDULES, Context, Fields, ScheduleArgumentError
from .step import StepSchedule


def check_schedule(section: Mapping, key: str, num_epochs: int, param_name: str = "lr"):
    """Read and check one schedule section where only the length of training is known (right
    after config composition). Returns the schedule's definition, whose `compile(num_epochs,
    steps_per_epoch)` gives a `StepSchedule`; the checks that need the steps per epoch (MMEngine
    windows in iterations) run there. Raises ConfigError naming `key.<field>`."""
    cfg = plain(section)
    try:
        kind = SCHEDULES.lookup(cfg.get("name"), "name")
        if kind.default_update_interval is not None:
            return fractions.from_fields(cfg, Context(num_epochs, param_name))
        return kind.from_config(Fields(cfg, f"{kind.name} schedules"), Context(num_epochs, param_name))
    except ScheduleArgumentError as err:
        raise _config_error(err, key) from None


def build_step_schedule(section: Mapping, key: str, num_epochs: int, steps_per_epoch: int,
                        param_name: str = "lr") -> StepSchedule:
    """The schedule written in `section`, any dialect, as values per optimizer step.

    section          a mapping (dict, DictConfig or dataclass) with `name` and its type's fields
                     (OPTIMIZER.param_schedulers.<x>, or a method's own scalar such as DINO's
                     teacher momentum)
    key              its full key path, for error messages
    num_epochs,      the run's length: OPTIMIZER.num_epochs and the optimizer steps per epoch
    steps_per_epoch  (after gradient accumulation)
    param_name       what it schedules: "lr", "momentum" (mmcv reads it as momentum_config and
                     MMEngine refuses OneCycle for it), "weight_decay" or the scalar's own name

    `.values(steps)` takes an int or an integer numpy array of optimizer steps k (0-based) and
    returns the value(s) in force for step k; `.total_steps` = num_epochs x steps_per_epoch.
    E.g. {name: cosine, start_value: 0.996, end_value: 1.0} over 2 epochs of 2 steps gives
    0.996, 0.99659, 0.998, 0.99941 for k = 0, 1, 2, 3.
    """
    definition = check_schedule(section, key, num_epochs, param_name)
    try:
        return definition.compile(num_epochs, steps_per_epoch)
    except ScheduleArgumentError as err:
        raise _config_error(err, key) from None


def value_slots(section: Mapping, key: str) -> Iterator[Tuple[object, object, str]]:
    """(container, index or field, full key) of every value of the scheduled quantity written in
    a plain-dict schedule: what auto LR scaling rewrites and the range checks read."""
    kind = SCHEDULES.get(section.get("name"))
    if kind is not None:
        for container, slot, relative in kind.value_slots(section):
            yield container, slot, f"{key}.{relative}"


def _config_error(err: ScheduleArgumentError, key: str) -> ConfigError:
    return ConfigError(f"{key}.{err.argument}", err.value, err.allowed, err.note)

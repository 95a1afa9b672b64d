"""Schedule section -> schedule, the one place where a schedule's argument errors become
ConfigError naming the full key path (`OPTIMIZER.param_schedulers.lr.schedulers[1].eta_min`).

A section is `{name: X, **X's arguments}` plus `auto_lr_scaling` (every LR schedule may scale).
A slot's default section (the schema's: VISSL's multistep for the LR) applies while the written
section names no type or the default's type; its arguments fill those not written, and an error
in one of them says it is the default.
"""

import warnings
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional, Tuple

from ...config.plain import plain
from ...errors import ConfigError
from . import fractions, mmcv, mmengine  # noqa: F401  (they register the types)
from .registry import SCHEDULES, ScheduleArgumentError, arg, build
from .step import StepSchedule

SCALING_KEY = "auto_lr_scaling"


@dataclass
class AutoLRScaling:
    """`auto_lr_scaling` of an LR schedule section (optim/auto_scaling.py applies it)."""

    name = SCALING_KEY

    auto_scale: bool = arg(False, doc="scale the schedule so its peak = base_value x factor")
    base_value: float = arg(0.1, gt=0, doc="peak LR at base_lr_batch_size")
    base_lr_batch_size: int = arg(256, gt=0, doc="batch size base_value is meant for")
    scaling_type: str = arg("linear", choices=("linear", "sqrt"),
                            doc="linear (factor = global / base batch) | sqrt (its square root)")


def filled(section: Mapping, default: Optional[Mapping]) -> Tuple[dict, Tuple[str, ...]]:
    """(the section with its slot's default applied, the keys that hold the default's value)."""
    written = {k: v for k, v in plain(section).items() if v is not None}
    if not default or written.get("name", default.get("name")) != default.get("name"):
        return written, ()
    section = {**default, **written}
    return section, tuple(k for k in default if section[k] == default[k] and k != "name")


def _config_error(err: ScheduleArgumentError, key: str, from_default=(), default=None) -> ConfigError:
    note = err.note
    if err.argument.split(".")[0].split("[")[0] in from_default:
        note = f"{note}; " if note else ""
        note += f"it is the default of {key}, {_words(default)}: write that section to change it"
    return ConfigError(f"{key}.{err.argument}" if err.argument else key, err.value, err.allowed, note)


def _words(section: Mapping) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in section.items()) + "}"


def check_scaling(section: Mapping, key: str) -> AutoLRScaling:
    """The section's auto_lr_scaling, its keys checked against AutoLRScaling."""
    try:
        return build(AutoLRScaling, section.get(SCALING_KEY) or {}, {})
    except ScheduleArgumentError as err:
        raise _config_error(err.inside(SCALING_KEY), key) from None


def check_schedule(section: Mapping, key: str, num_epochs: int, param_name: str = "lr",
                   default: Optional[Mapping] = None):
    """Read and check one schedule section where only the length of training is known (right
    after config composition). Returns the schedule's definition, whose `compile(num_epochs,
    steps_per_epoch)` gives a `StepSchedule`; the checks that need the steps per epoch (MMEngine
    windows in iterations) run there. Raises ConfigError naming `key.<argument>`."""
    section, from_default = filled(section, default)
    check_scaling(section, key)
    try:
        kind = SCHEDULES.lookup(section.get("name"))
        return build(kind, section, {"num_epochs": num_epochs, "param_name": param_name},
                     skip=("name", SCALING_KEY))
    except ScheduleArgumentError as err:
        raise _config_error(err, key, from_default, default) from None


def build_step_schedule(section: Mapping, key: str, num_epochs: int, steps_per_epoch: int,
                        param_name: str = "lr", default: Optional[Mapping] = None) -> StepSchedule:
    """The schedule written in `section`, any dialect, as values per optimizer step.

    section          a mapping (dict, DictConfig or dataclass) with `name` and its type's
                     arguments (OPTIMIZER.param_schedulers.<x>, or a method's own scalar such as
                     DINO's teacher momentum)
    key              its full key path, for error messages
    num_epochs,      the run's length: OPTIMIZER.num_epochs and the optimizer steps per epoch
    steps_per_epoch  (after gradient accumulation)
    param_name       what it schedules: "lr", "momentum" (mmcv reads it as momentum_config and
                     MMEngine refuses OneCycle for it), "weight_decay" or the scalar's own name
    default          the slot's default section, if any (see the module docstring)

    `.values(steps)` takes an int or an integer numpy array of optimizer steps k (0-based) and
    returns the value(s) in force for step k; `.total_steps` = num_epochs x steps_per_epoch.
    E.g. {name: cosine, start_value: 0.996, end_value: 1.0} over 2 epochs of 2 steps gives
    0.996, 0.99659, 0.998, 0.99941 for k = 0, 1, 2, 3.
    """
    definition = check_schedule(section, key, num_epochs, param_name, default)
    return compile_schedule(definition, key, num_epochs, steps_per_epoch)


def compile_schedule(definition, key: str, num_epochs: int, steps_per_epoch: int) -> StepSchedule:
    """definition.compile(...), errors and warnings named from `key`."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            schedule = definition.compile(num_epochs, steps_per_epoch)
    except ScheduleArgumentError as err:
        raise _config_error(err, key) from None
    for warning in caught:
        warnings.warn(f"{key}.{warning.message}", UserWarning, stacklevel=3)
    return schedule


def value_slots(section: Mapping, key: str, scaling: bool = False) -> Iterator[Tuple[object, object, str]]:
    """(container, index or field, full key) of every value of the scheduled quantity written in
    a plain-dict schedule: what the range checks read, and with `scaling`, what auto LR scaling
    rewrites (a type's `scaled_fields` where it has them: MMEngine scales its base only)."""
    kind = SCHEDULES.get(section.get("name"))
    if kind is None:
        return
    if scaling and hasattr(kind, "scaled_fields"):
        slots = ((section, f, f) for f in kind.scaled_fields if section.get(f) is not None)
    else:
        slots = kind.value_slots(section)
    for container, slot, relative in slots:
        yield container, slot, f"{key}.{relative}"

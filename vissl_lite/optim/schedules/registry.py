"""Schedule types are classes, registered by name with a decorator, in one registry per vocabulary.

    SCHEDULES       the `name:` of an OPTIMIZER.param_schedulers entry (cosine, ..., mmengine, mmcv)
    MMENGINE_TYPES  the `type:` of an entry of `schedulers:` under name: mmengine (LinearLR, ...)
    MMCV_POLICIES   the `policy:` under name: mmcv (step, poly, CosineAnnealing, exp, cyclic)

A type class carries everything the rest of the code asks of it: its `name` (plus `aliases`),
`value_fields` (the fields holding values of the scheduled quantity, which auto LR scaling
rewrites and range checks read) and `from_config(fields, context)`, which reads its fields from
a config mapping through `Fields` and returns the schedule. Types of SCHEDULES also carry
`default_update_interval`: ClassyVision's for the `where` types (fractions.ParamScheduler), or
None for a type that counts optimizer steps itself, whose schedule then has
`compile(num_epochs, steps_per_epoch) -> StepSchedule`. Add your own type with
`@SCHEDULES.register` (or MMENGINE_TYPES / MMCV_POLICIES) before the config is validated.

Nothing here names a YAML key: a bad argument raises `ScheduleArgumentError`, a ValueError that
knows the argument's name relative to the schedule; the builder adds the key path.
"""

from dataclasses import dataclass
from typing import Iterator, Mapping, Optional, Sequence, Tuple

REQUIRED = object()  # the default of a field that must be given


class ScheduleArgumentError(ValueError):
    """A schedule argument that cannot be used: `argument` is its name as the constructor and
    the config spell it, relative to the schedule ("milestones", "schedulers[1].eta_min")."""

    def __init__(self, argument: str, value, allowed: str, note: str = ""):
        self.argument, self.value, self.allowed, self.note = argument, value, allowed, note
        super().__init__(f"{argument}: got {value!r}; allowed: {allowed}" + (f" ({note})" if note else ""))

    def inside(self, prefix: str) -> "ScheduleArgumentError":
        """The same error seen from the schedule that holds this one at `prefix`."""
        return ScheduleArgumentError(f"{prefix}.{self.argument}", self.value, self.allowed, self.note)


@dataclass(frozen=True)
class Context:
    """What a schedule may depend on besides its own fields: the length of training, and the
    quantity it schedules ("lr", "momentum", "weight_decay" or a method's own scalar), which
    decides mmcv's hook (LrUpdaterHook or MomentumUpdaterHook) and MMEngine's param_name."""

    num_epochs: int
    param_name: str = "lr"


class Registry(dict):
    """name -> type class, filled by the `register` class decorator; a name is taken once."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, cls):
        for name in (cls.name, *getattr(cls, "aliases", ())):
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = cls
        return cls

    def lookup(self, name, argument: str):
        if not isinstance(name, str) or name not in self:
            raise ScheduleArgumentError(argument, name, "one of " + ", ".join(self))
        return self[name]


SCHEDULES = Registry("schedule type")
MMENGINE_TYPES = Registry("MMEngine scheduler type")
MMCV_POLICIES = Registry("mmcv policy")


class ScheduleType:
    """What every registered type declares (see the module docstring)."""

    name: str = ""
    aliases: Tuple[str, ...] = ()
    value_fields: Tuple[str, ...] = ()

    @classmethod
    def value_slots(cls, cfg: Mapping) -> Iterator[Tuple[object, object, str]]:
        """(container, index or field, relative key) of every value written in `cfg` that is a
        value of the scheduled quantity; composite types extend it to their children."""
        for field in cls.value_fields:
            value = cfg.get(field)
            if isinstance(value, list):
                for i in range(len(value)):
                    yield value, i, f"{field}[{i}]"
            elif value is not None:
                yield cfg, field, field


def child_slots(registry: Registry, children: Sequence, type_field: str, prefix: str):
    """value_slots of each child mapping of a list field, with keys `prefix[i].<field>`."""
    for i, child in enumerate(children or []):
        cls = registry.get(child.get(type_field)) if isinstance(child, Mapping) else None
        if cls is not None:
            for container, slot, key in cls.value_slots(child):
                yield container, slot, f"{prefix}[{i}].{key}"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Fields:
    """Typed reads of one schedule mapping. A field that is absent, null or an empty list (the
    schema's "not set") takes `default`; REQUIRED makes it mandatory. Errors name the field."""

    def __init__(self, cfg: Mapping, owner: str):
        self.cfg, self.owner = cfg, owner  # owner: what needs the field, for messages

    def _get(self, name: str, default, allowed: str):
        value = self.cfg.get(name)
        if value is None or (isinstance(value, (list, tuple)) and not value):
            if default is REQUIRED:
                raise ScheduleArgumentError(name, value, allowed, f"required by {self.owner}")
            return default, False
        return value, True

    def number(self, name: str, default=REQUIRED, *, ge=None, gt=None, le=None, lt=None) -> Optional[float]:
        words = " and ".join(f"{op} {bound}" for op, bound in ((">=", ge), (">", gt), ("<=", le), ("<", lt))
                             if bound is not None)
        allowed = "a number" + (f" {words}" if words else "")
        value, given = self._get(name, default, allowed)
        if not given:
            return value
        if not _is_number(value) or not (
                (ge is None or value >= ge) and (gt is None or value > gt)
                and (le is None or value <= le) and (lt is None or value < lt)):
            raise ScheduleArgumentError(name, value, allowed, f"for {self.owner}")
        return float(value)

    def integer(self, name: str, default=REQUIRED, *, ge=None) -> Optional[int]:
        allowed = "an integer" + (f" >= {ge}" if ge is not None else "")
        value, given = self._get(name, default, allowed)
        if given and (not isinstance(value, int) or isinstance(value, bool) or (ge is not None and value < ge)):
            raise ScheduleArgumentError(name, value, allowed, f"for {self.owner}")
        return value

    def boolean(self, name: str, default=REQUIRED) -> bool:
        value, given = self._get(name, default, "true or false")
        if given and not isinstance(value, bool):
            raise ScheduleArgumentError(name, value, "true or false", f"for {self.owner}")
        return value

    def choice(self, name: str, choices: Sequence[str], default=REQUIRED) -> str:
        allowed = "one of " + ", ".join(choices)
        value, given = self._get(name, default, allowed)
        if given and value not in choices:
            raise ScheduleArgumentError(name, value, allowed, f"for {self.owner}")
        return value

    def numbers(self, name: str, default=REQUIRED) -> list:
        allowed = "a non-empty list of numbers"
        value, given = self._get(name, default, allowed)
        if given and (not isinstance(value, (list, tuple)) or not all(map(_is_number, value))):
            raise ScheduleArgumentError(name, value, allowed, f"for {self.owner}")
        return [float(v) for v in value] if given else value

    def integers(self, name: str, default=REQUIRED, *, ge=0) -> list:
        allowed = f"a non-empty list of integers >= {ge}"
        value, given = self._get(name, default, allowed)
        if given and (not isinstance(value, (list, tuple)) or any(
                not isinstance(v, int) or isinstance(v, bool) or v < ge for v in value)):
            raise ScheduleArgumentError(name, value, allowed, f"for {self.owner}")
        return list(value) if given else value

    def mappings(self, name: str) -> list:
        value, _ = self._get(name, REQUIRED, "a non-empty list of schedules")
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
            raise ScheduleArgumentError(name, value, "a non-empty list of schedules", f"for {self.owner}")
        return list(value)

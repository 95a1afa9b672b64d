"""Schedule types declare their arguments once, as dataclass fields; a config section is read
against the one type it names.

    SCHEDULES       the `name:` of a schedule section (cosine, ..., mmengine, mmcv)
    MMENGINE_TYPES  the `type:` of an entry of `schedulers:` under name: mmengine (LinearLR, ...)
    MMCV_POLICIES   the `policy:` under name: mmcv (Step, Poly, CosineAnnealing, Exp, Cyclic)

A type is a dataclass registered by name (plus `aliases`). Its fields made with `arg(...)` are
its arguments: the annotation gives the type, the default the default (none: required), and
`doc` the one line docs/config_reference.md shows. `build(cls, section)` refuses a key the type
does not take, naming the type's arguments, converts and range-checks each value, and calls the
constructor, whose `__post_init__` checks the rules between arguments. `value_fields` name the
arguments that hold values of the scheduled quantity (auto LR scaling and range checks read them).

Nothing here names a YAML key: a bad argument raises `ScheduleArgumentError`, a ValueError that
knows the argument's name relative to the schedule; the builder adds the key path.
"""

import dataclasses
import math
import operator
import typing
from typing import Any, Iterator, List, Mapping, Tuple

REQUIRED = dataclasses.MISSING


class ScheduleArgumentError(ValueError):
    """A schedule argument that cannot be used: `argument` is its name as the constructor and
    the config spell it, relative to the schedule ("milestones", "schedulers[1].eta_min")."""

    def __init__(self, argument: str, value, allowed: str, note: str = ""):
        self.argument, self.value, self.allowed, self.note = argument, value, allowed, note
        super().__init__(f"{argument}: got {value!r}; allowed: {allowed}" + (f" ({note})" if note else ""))

    def inside(self, prefix: str) -> "ScheduleArgumentError":
        """The same error seen from the schedule that holds this one at `prefix`."""
        return ScheduleArgumentError(f"{prefix}.{self.argument}", self.value, self.allowed, self.note)


def arg(default=REQUIRED, *, doc: str, factory=None, ge=None, gt=None, le=None, lt=None, choices=None,
        context: bool = False, children=None, kw_only: bool = False):
    """A declared argument. Bounds and choices apply to the value or to every element of a list.
    context: filled by the builder (the length of training, the scheduled quantity), not a key.
    children: (registry, tag key): a list of schedule sections, each built from that registry."""
    bounds = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt).items() if v is not None}
    meta = dict(doc=doc, bounds=bounds, choices=choices, context=context, children=children)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta, kw_only=kw_only)
    return dataclasses.field(default=default, metadata=meta, kw_only=kw_only)


class Registry(dict):
    """name -> type class, filled by the `register` class decorator; a name is taken once."""

    def __init__(self, kind: str, tag: str):
        super().__init__()
        self.kind, self.tag = kind, tag  # tag: the key that names the type in a section

    def register(self, cls):
        for name in (cls.name, *getattr(cls, "aliases", ())):
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self[name] = cls
        return cls

    def lookup(self, name):
        if not isinstance(name, str) or name not in self:
            raise ScheduleArgumentError(self.tag, name, "one of " + ", ".join(self))
        return self[name]


SCHEDULES = Registry("schedule type", "name")
MMENGINE_TYPES = Registry("MMEngine scheduler type", "type")
MMCV_POLICIES = Registry("mmcv policy", "policy")


class ScheduleType:
    """What every registered type declares (see the module docstring)."""

    name: str = ""
    aliases: Tuple[str, ...] = ()
    value_fields: Tuple[str, ...] = ()

    @classmethod
    def value_slots(cls, cfg: Mapping) -> Iterator[Tuple[object, object, str]]:
        """(container, index or field, relative key) of every value written in `cfg` that is a
        value of the scheduled quantity; types with children extend it to them."""
        for field in cls.value_fields:
            value = cfg.get(field)
            if isinstance(value, list):
                for i in range(len(value)):
                    yield value, i, f"{field}[{i}]"
            elif value is not None:
                yield cfg, field, field

def child_slots(registry: Registry, children, prefix: str):
    """value_slots of each child mapping of a list field, with keys `prefix[i].<field>`."""
    for i, child in enumerate(children or []):
        cls = registry.get(child.get(registry.tag)) if isinstance(child, Mapping) else None
        if cls is not None:
            for container, slot, key in cls.value_slots(child):
                yield container, slot, f"{prefix}[{i}].{key}"


def arguments(cls) -> List[dataclasses.Field]:
    """The fields a config section sets, the type's own first, then those it shares (kw_only)."""
    taken = [f for f in dataclasses.fields(cls)
             if f.init and not f.metadata.get("context") and not f.metadata.get("inline")]
    return [f for f in taken if not f.kw_only] + [f for f in taken if f.kw_only]


def _inlined(cls, section: Mapping):
    """The type whose arguments the section also holds (mmcv: its policy, `cls.inline`), or None."""
    return cls.inline(section) if hasattr(cls, "inline") else None


def takes(cls, section: Mapping = None) -> str:
    inner = _inlined(cls, section or {})
    names = [f.name for f in arguments(cls) + (arguments(inner) if inner else [])]
    return f"{getattr(cls, 'name', cls.__name__)}{f' with {inner.name}' if inner else ''} takes {', '.join(names)}"


def build(cls, section: Mapping, context: Mapping, skip: Tuple[str, ...] = ()):
    """cls(**arguments read from `section`): the keys in `skip` (the tag) aside, every key must
    be an argument of cls (or of the type it inlines, built into its field marked `inline`); a
    null or absent argument takes its default."""
    inner, owner = _inlined(cls, section), getattr(cls, "name", cls.__name__)
    own = {f.name: f for f in arguments(cls)}
    theirs = {f.name for f in arguments(inner)} if inner else set()
    for key, value in section.items():
        if key not in skip and key not in own and key not in theirs and value is not None:
            raise ScheduleArgumentError(key, value, takes(cls, section))
    hints = typing.get_type_hints(cls)
    kwargs = {f.name: context[f.name] for f in dataclasses.fields(cls) if f.metadata.get("context")}
    if inner is not None:
        slot = next(f.name for f in dataclasses.fields(cls) if f.metadata.get("inline"))
        kwargs[slot] = build(inner, {k: v for k, v in section.items() if k in theirs}, context)
    for name, f in own.items():
        value = section.get(name)
        if value is None:
            if f.default is REQUIRED and f.default_factory is REQUIRED:
                raise ScheduleArgumentError(name, value, _words(hints[name], f), f"required by {owner}")
            continue
        kwargs[name] = _converted(name, value, hints[name], f, context, owner)
    return cls(**kwargs)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_CHECKS = {float: lambda v: _is_number(v) and math.isfinite(v),
           int: lambda v: isinstance(v, int) and not isinstance(v, bool),
           bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str), Any: lambda v: True}
_WORDS = {float: "a finite number", int: "an integer", bool: "true or false", str: "a string", Any: "a value"}
_OPS = {"ge": (">=", operator.ge), "gt": (">", operator.gt), "le": ("<=", operator.le), "lt": ("<", operator.lt)}


def _element(tp):
    """(element type, is a list) of an annotation, Optional stripped."""
    if typing.get_origin(tp) is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) in (list, List, typing.Sequence, tuple):
        return typing.get_args(tp)[0], True
    return tp, False


def _words(tp, f: dataclasses.Field) -> str:
    """What an argument allows, in words ("a number > 0", "a list of integers >= 1")."""
    elem, is_list = _element(tp)
    if f.metadata.get("children"):
        return "a non-empty list of schedules"
    bounds = f.metadata.get("bounds", {})
    low, high = [k for k in ("ge", "gt") if k in bounds], [k for k in ("le", "lt") if k in bounds]
    if f.metadata.get("choices"):
        words = "one of " + ", ".join(map(str, f.metadata["choices"]))
    elif low and high:  # an interval: "a number in (0, 1]"
        words = (f"{_WORDS.get(elem, 'a value')} in {'[' if low[0] == 'ge' else '('}{bounds[low[0]]}, "
                 f"{bounds[high[0]]}{']' if high[0] == 'le' else ')'}")
    else:
        words = _WORDS.get(elem, "a value") + "".join(f" {_OPS[k][0]} {v}" for k, v in bounds.items())
    return f"a list, each {words}" if is_list else words


def describe(cls, f: dataclasses.Field) -> str:
    """What the field allows, for docs."""
    return _words(typing.get_type_hints(cls)[f.name], f)


def _check_scalar(value, elem, f: dataclasses.Field) -> bool:
    if not _CHECKS.get(elem, lambda v: True)(value):
        return False
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        return False
    return all(_OPS[k][1](value, bound) for k, bound in f.metadata.get("bounds", {}).items())


def _children(name: str, value, registry: Registry, base: type, context: Mapping, owner: str) -> list:
    """A list of sections, each built as the type its tag names, which must be a `base`."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ScheduleArgumentError(name, value, "a non-empty list of schedules", f"for {owner}")
    built = []
    for i, child in enumerate(value):
        if not isinstance(child, Mapping):
            raise ScheduleArgumentError(f"{name}[{i}]", child, f"a mapping with {registry.tag}: one of " + ", ".join(registry))
        try:
            kind = registry.lookup(child.get(registry.tag))
            if not issubclass(kind, base):
                raise ScheduleArgumentError(registry.tag, kind.name, getattr(base, "kind_words", base.__name__),
                                            f"{owner} cannot hold it")
            built.append(build(kind, child, context, skip=(registry.tag,)))
        except ScheduleArgumentError as err:
            raise err.inside(f"{name}[{i}]") from None
    return built


def _converted(name: str, value, tp, f: dataclasses.Field, context: Mapping, owner: str):
    if f.metadata.get("children") is not None:
        return _children(name, value, *f.metadata["children"], context, owner)
    elem, is_list = _element(tp)
    values = value if is_list else [value]
    if (is_list and not isinstance(value, (list, tuple))) or not all(_check_scalar(v, elem, f) for v in values):
        raise ScheduleArgumentError(name, value, _words(tp, f), f"for {owner}")
    if elem is float:
        values = [float(v) for v in values]
    return list(values) if is_list else values[0]

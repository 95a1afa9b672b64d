"""Check a composed config against the schema, naming the full key path of every problem.

OmegaConf's own structured merge loses the key path inside lists (a composite schedule's
children), so one small walker does the type and range checks and the merge comes after.
"""

import dataclasses
import difflib
import functools
import math
import operator
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .consistency import check_consistency
from .schema import VisslLiteConfig

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_BOUNDS = {"ge": (">=", operator.ge), "gt": (">", operator.gt), "le": ("<=", operator.le), "lt": ("<", operator.lt)}


@functools.lru_cache(maxsize=1)
def _schema_node() -> DictConfig:
    """The schema as an OmegaConf node, built once (0.2 s); merge copies it, never changes it."""
    return OmegaConf.structured(VisslLiteConfig)


@functools.lru_cache(maxsize=1)
def schedule_slots() -> tuple:
    """(dotted key, field metadata) of every schedule section in the schema."""
    return tuple(_slots(VisslLiteConfig, ""))


def _slots(tp, prefix: str):
    hints = typing.get_type_hints(tp)
    for f in dataclasses.fields(tp):
        key = _join(prefix, f.name)
        if "schedule" in f.metadata:
            yield key, f.metadata
        elif dataclasses.is_dataclass(_strip_optional(hints[f.name])):
            yield from _slots(_strip_optional(hints[f.name]), key)


def validate_config(cfg) -> DictConfig:
    """Return the typed config (schema defaults filled in) or raise ConfigError."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    checked = _check(VisslLiteConfig, data, "", {})
    _check_registries(checked)
    typed = OmegaConf.merge(_schema_node(), checked)
    for key, _ in schedule_slots():  # a section is what was written (and filled), never a union
        written = functools.reduce(lambda d, part: d.get(part, {}) if isinstance(d, dict) else {},
                                   key.split("."), checked)
        OmegaConf.update(typed, key, written, merge=False)
    check_optimizer_section(typed.OPTIMIZER, "OPTIMIZER")
    if typed.HOOKS.ONLINE_LINEAR_PROBE.ENABLED:
        check_optimizer_section(typed.HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER, "HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER")
    check_consistency(typed)
    return typed


def check_optimizer_section(optimizer_cfg, prefix: str) -> None:
    """The optimizer name (refused ones with their reason), the param-group constructor and the
    rules between group keys, checked before any work; messages name the section's full path."""
    from ..optim.build import check_param_group_keys, optimizer_builder
    from ..optim.optimizers import check_optimizer_arguments

    builder = optimizer_builder(optimizer_cfg, prefix)
    check_optimizer_arguments(optimizer_cfg, prefix)
    check_param_group_keys(optimizer_cfg, prefix)
    momentum = optimizer_cfg.param_schedulers.momentum
    keys = getattr(builder, "keys", None)  # a table row knows what it reads; users' builders may not
    if momentum.get("name") is not None and keys is not None and not {"momentum", "betas"} & set(keys):
        raise ConfigError(f"{prefix}.param_schedulers.momentum.name", momentum.get("name"),
                          "null for an optimizer without momentum or betas",
                          f"{optimizer_cfg.name} has no momentum to schedule")


def check_partial(data: dict, origin: str = "") -> None:
    """Check the keys a config fragment sets (an experiment file, a preset) against the schema
    before Hydra composes it, so a bad file gets our one-line message, not a merge error."""
    try:
        _check(VisslLiteConfig, data, "", {})
    except ConfigError as err:
        if not origin:
            raise
        note = f"{err.note}; set in {origin}" if err.note else f"set in {origin}"
        raise ConfigError(err.key, err.got, err.allowed, note) from None


def check_key_path(path: str, value=None, check_value: bool = False) -> None:
    """Raise ConfigError if `path` (dotted, as on the command line) names no schema key, or,
    with `check_value`, if `value` is not what that key allows."""
    tp: Any = VisslLiteConfig
    meta: dict = {}
    done = []
    for part in path.split("."):
        tp = _strip_optional(tp)
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            if part not in hints:
                raise _unknown_key(".".join(done), part, list(hints), value)
            meta = dict(next(f for f in dataclasses.fields(tp) if f.name == part).metadata)
            tp = hints[part]
        elif origin is list and part.isdigit():
            tp = typing.get_args(tp)[0]
        else:  # inside a free-form Dict or Any: anything goes
            return
        done.append(part)
    if check_value:
        _check(tp, value, ".".join(done), meta)


def _strip_optional(tp):
    if typing.get_origin(tp) is typing.Union:
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


# Optimizer keys as MMEngine / timm / torch spell them -> where vissl_lite keeps that setting.
OTHER_SPELLINGS = {
    "lr": "param_schedulers.lr (a schedule, e.g. {{name: constant, value: {value}}})",
    "type": "name (MMEngine's class names are accepted: {value})",
}


def _unknown_key(path: str, key: str, allowed: list, value) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"unknown key; did you mean {_join(path, close[0])}?" if close else "unknown key"
    if path.split(".")[-1] == "OPTIMIZER" and key in OTHER_SPELLINGS:
        hint = f"unknown key; vissl_lite sets it as {path}.{OTHER_SPELLINGS[key].format(value=value)}"
    where = f"keys under {path}" if path else "top-level keys"
    return ConfigError(_join(path, key), value, f"{where}: {', '.join(allowed)}", hint)


def _check(tp, value, path: str, meta: dict):
    if "schedule" in meta:  # null: not written
        return _schedule_section({} if value is None else value, path, meta["schedule"])
    tp_inner = _strip_optional(tp)
    if value is None:
        if tp_inner is tp and tp is not Any:
            raise ConfigError(path, value, _describe(tp, meta))
        return None
    tp = tp_inner
    origin = typing.get_origin(tp)
    if tp is Any or (isinstance(value, str) and "${" in value):  # interpolations: checked once resolved
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(path, value, f"a mapping with keys {', '.join(f.name for f in dataclasses.fields(tp))}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        out = {}
        for key, sub in value.items():
            if key not in fields:
                raise _unknown_key(path, str(key), list(fields), sub)
            out[key] = _check(hints[key], sub, _join(path, key), dict(fields[key].metadata))
        return out
    if origin is list:
        if not isinstance(value, (list, tuple)):
            each = _element_words(tp, meta)
            raise ConfigError(path, value, "a list" + (f", each{each[3:]}" if each else ""))
        lengths = meta.get("length")
        lengths = (lengths,) if isinstance(lengths, int) else lengths
        if lengths is not None and len(value) not in lengths:
            words = " or ".join(map(str, lengths))
            each = _element_words(tp, meta)
            raise ConfigError(path, value, f"a list of {words} values" + (f", each{each[3:]}" if each else ""))
        (elem,) = typing.get_args(tp)
        return [_check(elem, v, f"{path}[{i}]", meta) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, value, "a mapping")
        _, elem = typing.get_args(tp)
        return {k: _check(elem, v, _join(path, k), meta) for k, v in value.items()}
    return _check_scalar(tp, value, path, meta)


def _schedule_section(value, path: str, default: dict) -> dict:
    """The section with its slot's default applied; its arguments are checked against the type
    it names where the length of training is known (infer, a method's start)."""
    from ..optim.schedules import filled

    if not isinstance(value, dict):
        fixed = isinstance(value, (int, float)) and not isinstance(value, bool)
        raise ConfigError(path, value, "a schedule section {name: <type>, <its arguments>} (docs/schedules.md)",
                          f"for a fixed value write {path}={{name:constant,value:{value}}}" if fixed else None)
    return filled(value, default)[0]


def _check_scalar(tp, value, path: str, meta: dict):
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ConfigError(path, value, _describe(tp, meta))
    value = float(value) if tp is float else value
    if tp is float and meta.get("finite", True) and not math.isfinite(value):
        raise ConfigError(path, value, "a finite " + _describe(tp, meta)[2:])
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(path, value, _describe(tp, meta))
    if any(not holds(value, meta[k]) for k, (_, holds) in _BOUNDS.items() if k in meta):
        raise ConfigError(path, value, _describe(tp, meta))
    return value


def _describe(tp, meta: dict) -> str:
    if "choices" in meta:
        return "one of " + ", ".join(str(c) for c in meta["choices"])
    words = _TYPE_WORDS.get(tp, getattr(tp, "__name__", str(tp)))
    limits = [f"{op} {meta[k]}" for k, (op, _) in _BOUNDS.items() if k in meta]
    return words + (" " + " and ".join(limits) if limits else "")


def _element_words(tp, meta: dict) -> str:
    (elem,) = typing.get_args(tp)
    elem = _strip_optional(elem)
    if elem in _TYPE_WORDS:
        return f" of {_describe(elem, meta)}"
    return ""


def _check_registries(cfg: dict) -> None:
    """Names that users can extend from their own code are checked against the live registry."""
    from ..losses import LOSSES
    from ..models.heads import check_head_entry
    from ..models.trunks import TRUNKS

    loss = cfg.get("LOSS", {}).get("name")
    if loss is not None:
        LOSSES.check(loss, "LOSS.name")
    trunk = cfg.get("MODEL", {}).get("TRUNK", {}).get("NAME")
    if trunk is not None:
        TRUNKS.check(trunk, "MODEL.TRUNK.NAME", "add your own with vissl_lite.models.register_trunk")
    for i, entry in enumerate(cfg.get("MODEL", {}).get("HEAD", {}).get("PARAMS") or []):
        check_head_entry(entry, f"MODEL.HEAD.PARAMS[{i}]")

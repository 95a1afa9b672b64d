"""The mechanics of the mapping: a Conversion collects the vissl_lite experiment and the
report, actions say what happens to one VISSL key, and `walk` applies a table of them.

A table maps VISSL key paths (relative to VISSL's `config:` root, `*` standing for one level,
e.g. `DATA.*.DROP_LAST`) to an action. `walk` looks each node up: a matching action handles the
node and everything under it; a mapping without one is walked into; a value without one is
kept when vissl_lite's schema has the same key (its value is checked when the result is
validated) and dropped otherwise.
"""

import contextlib
from typing import Any, Callable, Dict, Iterable, Optional

from ..config.validate import check_key_path
from ..errors import ConfigError
from .report import Report, show

Action = Callable[["Conversion", str, Any], None]


class Conversion:
    """One VISSL config on its way to a vissl_lite experiment."""

    def __init__(self, source: dict, report: Report):
        self.source = source  # VISSL's `config:` mapping, as read
        self.out: Dict[str, Any] = {}  # the experiment, nested like the YAML it becomes
        self.report = report
        self.carried = set()  # paths whose value is VISSL's default, written out (not in the file)
        self._category = None  # set while VISSL defaults are written out (see `carrying`)

    def get(self, path: str, default=None):
        """A VISSL value by dotted path (translators read their neighbours), or `default`."""
        node = self.source
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def set(self, key: str, value) -> None:
        node = self.out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    def get_out(self, key: str, default=None):
        node = self.out
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    @contextlib.contextmanager
    def carrying(self):
        """Report what is written inside as VISSL defaults written out, not as the file's keys."""
        self._category = "carried"
        try:
            yield
        finally:
            self._category = None

    # What the actions record.
    def keep(self, key: str, value) -> None:
        self.set(key, value)
        self.report.add(self._category or "kept", key, show(value))

    def translate(self, vissl_key: str, value, key: Optional[str], new_value=None, note: str = "") -> None:
        """VISSL's `vissl_key: value` becomes `key: new_value` (key None: nothing to write)."""
        if key is not None:
            self.set(key, new_value)
        target = f" -> {key}: {show(new_value)}" if key is not None else ""
        self.report.add(self._category or "translated", vissl_key,
                        f"{show(value)}{target}" + (f" ({note})" if note else ""))

    def add(self, key: str, value, why: str) -> None:
        self.set(key, value)
        self.report.add("added", key, f"{show(value)} ({why})")

    def drop(self, key: str, value, reason: str) -> None:
        self.report.add("dropped", key, f"{show(value)} ({reason})")

    def refuse(self, key: str, value, reason: str) -> None:
        self.report.add("refused", key, f"{show(value)}: {reason}")


# ----------------------------------------------------------------------------- actions


def keep(conv: Conversion, key: str, value) -> None:
    conv.keep(key, value)


def move(target: str, note: str = "") -> Action:
    """The same value under another key."""
    return lambda conv, key, value: conv.translate(key, value, target, value, note)


def drop(reason: str) -> Action:
    """vissl_lite has no such thing; every value under the key gets its own line."""

    def act(conv: Conversion, key: str, value) -> None:
        for leaf_key, leaf in leaves(key, value):
            conv.drop(leaf_key, leaf, reason)

    return act


def drop_if(allowed: Iterable, reason: str, refusal: str) -> Action:
    """Dropped while the value is one of `allowed` (it changes nothing vissl_lite does), refused
    otherwise: e.g. a switch that is harmless off and impossible on."""
    allowed = tuple(allowed)

    def act(conv: Conversion, key: str, value) -> None:
        if value in allowed:
            conv.drop(key, value, reason)
        else:
            conv.refuse(key, value, refusal)

    return act


def refuse(reason: str) -> Action:
    return lambda conv, key, value: conv.refuse(key, value, reason)


def replace_value(replacements: dict, note: str) -> Action:
    """The same key with VISSL's value replaced by vissl_lite's word for it (other values kept)."""

    def act(conv: Conversion, key: str, value) -> None:
        if value in replacements:
            conv.translate(key, value, key, replacements[value], note)
        else:
            conv.keep(key, value)

    return act


def leaves(key: str, value):
    """(key, value) of every leaf under `key`; an empty mapping is a leaf."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from leaves(f"{key}.{k}", v)
    else:
        yield key, value


# ----------------------------------------------------------------------------- the walk


def lookup(table: Dict[str, Action], path: str) -> Optional[Action]:
    """The action for `path`: an exact entry, else the first pattern whose `*` levels fit."""
    if path in table:
        return table[path]
    parts = path.split(".")
    for pattern, action in table.items():
        pattern_parts = pattern.split(".")
        if "*" in pattern_parts and len(pattern_parts) == len(parts) and all(
                p in ("*", q) for p, q in zip(pattern_parts, parts)):
            return action
    return None


def walk(conv: Conversion, table: Dict[str, Action], node, path: str = "") -> None:
    if path in conv.carried:
        with conv.carrying():
            _walk(conv, table, node, path)
    else:
        _walk(conv, table, node, path)


def _walk(conv: Conversion, table: Dict[str, Action], node, path: str) -> None:
    action = lookup(table, path) if path else None
    if action is not None:
        try:
            action(conv, path, node)
        except (KeyError, TypeError, ValueError, AttributeError) as err:  # a value of an unexpected shape
            conv.refuse(path, node, f"could not read it as VISSL writes it ({type(err).__name__}: {err})")
    elif isinstance(node, dict) and (node or not path):
        for key, value in node.items():
            walk(conv, table, value, f"{path}.{key}" if path else str(key))
    elif in_schema(path):
        conv.keep(path, node)
    else:
        conv.drop(path, node, "no such key in vissl_lite")


def in_schema(path: str) -> bool:
    try:
        check_key_path(path)
    except ConfigError:
        return False
    return True

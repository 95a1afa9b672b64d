"""The config reference, generated from the declarations: every key of the schema, its default,
what it allows and its one-line doc; then every schedule type's arguments and every optimizer's,
from the types themselves. `python -m vissl_lite.config.reference` prints it; with `-o FILE` it
writes it (docs/config_reference.md is this output, and a test keeps the two equal)."""

import argparse
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Iterator, List, Tuple

from .schema import VisslLiteConfig
from .validate import _describe, _element_words, _strip_optional

HEADER = """# Config reference

Generated from `vissl_lite/config/schema.py` by `python -m vissl_lite.config.reference -o
docs/config_reference.md`; do not edit by hand. Every key is typed and checked before any work:
an unknown key, a wrong type or a value outside what is allowed stops the run with one line that
names the full key.
"""


def _default(f: dataclasses.Field):
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    return value


def _allowed(tp, meta: dict) -> str:
    optional = _strip_optional(tp) is not tp
    tp = _strip_optional(tp)
    if typing.get_origin(tp) is list:
        each = _element_words(tp, meta)
        words = "list" + (f" of {meta['length']}" if "length" in meta else "") + (f", each{each[3:]}" if each else "")
    elif typing.get_origin(tp) is dict:
        words = "mapping"
    elif tp is Any:
        words = "any"
    else:
        words = _describe(tp, meta)
    return words + (" or null" if optional else "")


def rows(tp=VisslLiteConfig, prefix: str = "") -> Iterator[Tuple[str, str, str, str]]:
    """(key, default, allowed, doc) for every leaf key, depth first in schema order; a section
    (a nested dataclass) gives one row with its doc, then its keys."""
    hints = typing.get_type_hints(tp)
    for f in dataclasses.fields(tp):
        key = f"{prefix}.{f.name}" if prefix else f.name
        inner = _strip_optional(hints[f.name])
        doc = f.metadata.get("doc", "")
        if "schedule" in f.metadata:
            default = f.metadata["schedule"]
            yield key, json.dumps(default) if default else "unset", "a schedule section (below)", doc
        elif dataclasses.is_dataclass(inner):
            yield key, "", "section", doc
            yield from rows(inner, key)
        else:
            yield key, json.dumps(_default(f)), _allowed(hints[f.name], dict(f.metadata)), doc


def _table(title: str, cls, lead: str = "") -> List[str]:
    """A type's arguments: | argument | default | allowed | meaning |."""
    from ..optim.schedules.registry import REQUIRED, arguments, describe

    lines = ["", f"### {title}", ""] + ([lead, ""] if lead else [])
    lines += ["| argument | default | allowed | meaning |", "|---|---|---|---|"]
    for f in arguments(cls):
        if f.default is not REQUIRED:
            default = json.dumps(f.default)
        elif f.default_factory is not REQUIRED:
            default = json.dumps(f.default_factory())
        else:
            default = "required"
        lines.append(f"| `{f.name}` | `{default}` | {describe(cls, f)} | {f.metadata['doc'].replace('|', '/')} |")
    return lines


def _first_line(cls) -> str:
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


def schedule_types() -> List[str]:
    """Every registered schedule type and its arguments, as the schedule builder reads them."""
    from ..optim.schedules import MMCV_POLICIES, MMENGINE_TYPES, SCHEDULES, AutoLRScaling

    lines = ["", "## Schedule types", "", SCHEDULE_INTRO]
    for name, cls in SCHEDULES.items():
        lines += _table(f"name: {name}", cls, _first_line(cls))
    for name, cls in MMENGINE_TYPES.items():
        if name == cls.name:
            aliases = ", ".join(a for a in cls.aliases)
            lines += _table(f"type: {name} (name: mmengine)", cls, f"Also spelled {aliases}. {_first_line(cls)}")
    for name, cls in MMCV_POLICIES.items():
        lines += _table(f"policy: {name} (name: mmcv)", cls, _first_line(cls))
    lines += _table("auto_lr_scaling (any LR schedule)", AutoLRScaling, _first_line(AutoLRScaling))
    return lines


def optimizer_arguments() -> List[str]:
    """Each optimizer's own OPTIMIZER keys and their defaults."""
    from ..optim.optimizers import TABLE

    lines = ["", "## Optimizer arguments", "", OPTIMIZER_INTRO, "", "| OPTIMIZER.name | takes (default) |", "|---|---|"]
    for row in TABLE:
        takes = ", ".join(f"`{k}` ({json.dumps(row.default(k))})" for k in row.keys)
        lines.append(f"| {row.name} ({row.cls.__name__}) | {takes} |")
    return lines


SCHEDULE_INTRO = """A schedule section is `{name: <type>, <its arguments>}`; an argument the named type does not
take is refused, naming the type's arguments. `name: mmengine` holds a list of MMEngine entries
`{type: <type>, <its arguments>}`; `name: mmcv` holds mmcv's arguments and those of its
`policy`. Every where-fraction type also takes `update_interval` (step | epoch). A section that
names no type (or the slot's default type) takes the slot's default above for what it does not
write. docs/schedules.md explains the types and translates between the dialects."""

OPTIMIZER_INTRO = """The per-optimizer OPTIMIZER keys (momentum, betas, ...) are null by default: the chosen
optimizer's default applies, and a key it does not take is refused. Every optimizer also reads
OPTIMIZER.weight_decay (not rprop)."""


def render() -> str:
    lines: List[str] = [HEADER]
    for section in dataclasses.fields(VisslLiteConfig):
        if dataclasses.is_dataclass(_strip_optional(typing.get_type_hints(VisslLiteConfig)[section.name])):
            continue
        lines.append(f"- `{section.name}` (default `{json.dumps(_default(section))}`): {section.metadata.get('doc', '')}")
    for key, default, allowed, doc in rows():
        depth = key.count(".")
        if allowed == "section" and depth == 0:
            lines += ["", f"## {key}", "", "| key | default | allowed | meaning |", "|---|---|---|---|"]
        elif allowed == "section":
            lines.append(f"| **{key}** | | | {doc} |")
        elif depth > 0:
            cell = default.replace("|", "\\|")
            lines.append(f"| `{key}` | `{cell}` | {allowed.replace('|', '/')} | {doc.replace('|', '/')} |")
    lines += schedule_types() + optimizer_arguments()
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, help="write here instead of printing")
    args = parser.parse_args(argv)
    text = render()
    if args.output:
        args.output.write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()

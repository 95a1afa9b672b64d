"""The config reference, generated from the schema: every key, its default, what it allows and
its one-line doc. `python -m vissl_lite.config.reference` prints it; with `-o FILE` it writes
it (docs/config_reference.md is this output, and a test keeps the two equal)."""

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
        if dataclasses.is_dataclass(inner):
            yield key, "", "section", doc
            yield from rows(inner, key)
        else:
            yield key, json.dumps(_default(f)), _allowed(hints[f.name], dict(f.metadata)), doc


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

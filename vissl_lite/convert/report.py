"""What a conversion found, sorted into the categories the report prints.

Every VISSL key the converter reads lands in exactly one category, so the report accounts for
the whole file; `differences` are the places where vissl_lite's rules give other numbers than
VISSL's, with both values.
"""

from dataclasses import dataclass, field
from typing import Dict, List

from .yaml_style import flow

# (category, heading), in the order they print.
CATEGORIES = (
    ("kept", "kept"),
    ("translated", "translated"),
    ("carried", "VISSL defaults written out (vissl_lite's defaults differ)"),
    ("added", "set for vissl_lite (keys VISSL does not have)"),
    ("dropped", "dropped: vissl_lite has no such thing"),
    ("refused", "refused: vissl_lite cannot run this"),
)


def show(value) -> str:
    """A value as the report prints it, in YAML's flow style (as the file writes it): short,
    never a config dump."""
    text = flow(value)
    return text if len(text) <= 100 else f"{text[:50]} ... {text[-25:]}"


def number(value) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else show(value)


@dataclass
class Difference:
    """One place where VISSL's rules and vissl_lite's give other numbers.

    reproducible: --vissl-numbers can write VISSL's value (False: vissl_lite has no way to
    express it, so both modes hold vissl_lite's).
    """

    key: str
    vissl: str
    vissl_lite: str
    reason: str
    reproducible: bool = True

    def line(self) -> str:
        tail = "" if self.reproducible else "; --vissl-numbers cannot reproduce it"
        return f"{self.key}: VISSL {self.vissl} | vissl_lite {self.vissl_lite} ({self.reason}{tail})"

    def as_config(self) -> dict:
        """The CONVERTED_FROM_VISSL.differences entry explain prints."""
        reason = self.reason if self.reproducible else f"{self.reason}; not reproducible in vissl_lite"
        return {"key": self.key, "vissl": self.vissl, "vissl_lite": self.vissl_lite, "reason": reason}


@dataclass
class Report:
    sources: List[str]
    lines: Dict[str, List[str]] = field(default_factory=lambda: {name: [] for name, _ in CATEGORIES})
    differences: List[Difference] = field(default_factory=list)

    def add(self, category: str, key: str, text: str) -> None:
        self.lines[category].append(f"{key}: {text}" if text else key)

    @property
    def refused(self) -> bool:
        return bool(self.lines["refused"])

    def format(self, numbers: str) -> str:
        """The report the command line prints; `numbers` is whose values the file holds."""
        out = [f"vissl-lite-convert: {', '.join(self.sources)}"]
        for name, heading in CATEGORIES:
            if self.lines[name]:
                out += ["", f"{heading} ({len(self.lines[name])}):"] + [f"  {line}" for line in self.lines[name]]
        if self.differences and not self.refused:
            holds = "VISSL's values (--vissl-numbers)" if numbers == "vissl" else "vissl_lite's values"
            out += ["", f"differences in numbers, VISSL | vissl_lite ({len(self.differences)}; the file holds {holds}):"]
            out += [f"  {d.line()}" for d in self.differences]
        return "\n".join(out)

    def comment_block(self, numbers: str) -> List[str]:
        """The differences as YAML comment lines for the top of the converted file."""
        if not self.differences:
            return ["# vissl_lite's rules give VISSL's numbers here: no differences."]
        holds = ("VISSL's values (written by --vissl-numbers)" if numbers == "vissl"
                 else "vissl_lite's values (--vissl-numbers writes VISSL's)")
        lines = [f"# Differences in numbers, VISSL | vissl_lite; this file holds {holds}:"]
        return lines + [f"#   {d.line()}" for d in self.differences]

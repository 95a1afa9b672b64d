"""Bring a VISSL config: convert it to a vissl_lite experiment, say what differs, refuse
clearly what vissl_lite cannot run.

    python -m vissl_lite.convert VISSL.yaml [OVERLAY.yaml ...] -o experiment.yaml [--vissl-numbers]
    vissl-lite-convert ...                        (the same, installed)

The report lists every VISSL key as kept, translated, written out (a VISSL default that
vissl_lite's defaults would change), dropped (vissl_lite has no such thing) or refused, then
every difference in numbers, VISSL's value beside vissl_lite's. Exit status 0 when converted,
2 when refused (nothing is written). docs/coming_from_vissl.md has the table of differences.

    table.py          VISSL key -> vissl_lite key, translator, drop or refusal (data)
    rules.py          the mechanics: actions and the walk over a VISSL config
    data.py, transforms.py, model.py, loss.py, optimizer.py   translators per section
    vissl_lr.py       VISSL's automatic LR scaling rules
    vissl_groups.py   VISSL's parameter-group rules, applied to a vissl_lite model
    differences.py    where the numbers differ, and the rewrite that gives VISSL's
    report.py         the report and the comment block
    schedule_words.py, yaml_style.py   a schedule in words; how the file is written
    converter.py      one conversion, end to end
"""

from .converter import NotVissl, Result, convert

__all__ = ["NotVissl", "Result", "convert"]

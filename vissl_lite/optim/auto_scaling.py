"""Automatic LR scaling by the global batch size, one rule for every schedule type.

    factor = global_batch / base_lr_batch_size        (its square root for scaling_type=sqrt)
    scaled = auto_lr_scaling.base_value * factor
    r      = scaled / peak,  peak = the largest LR value written in the schedule
    every written LR value v (in every composite child) becomes v * r

so the schedule's highest value becomes `scaled` and its shape (warmup ratios, decay ratios,
a lower second cycle) is kept.
"""

import copy
import math
from dataclasses import dataclass, field
from typing import List, Tuple

from ..errors import ConfigError
from .param_scheduler import VALUE_FIELDS


@dataclass
class ScalingReport:
    key: str
    global_batch_size: int
    base_value: float
    base_lr_batch_size: int
    scaling_type: str
    factor: float
    scaled: float
    changes: List[Tuple[str, float, float]] = field(default_factory=list)  # (key, before, after)

    def lines(self) -> List[str]:
        head = (f"{self.key}: global batch {self.global_batch_size} / base {self.base_lr_batch_size} "
                f"({self.scaling_type}) -> factor {self.factor:.6g}; peak LR {self.base_value:.6g} x factor = {self.scaled:.6g}")
        return [head] + [f"  {k}: {before:.6g} -> {after:.6g}" for k, before, after in self.changes]


def value_slots(schedule: dict, key: str):
    """(container, field or index, full key) for every LR value written in the schedule."""
    name = schedule.get("name")
    if name == "composite":
        for i, child in enumerate(schedule.get("schedulers") or []):
            yield from value_slots(child, f"{key}.schedulers[{i}]")
        return
    for name_ in VALUE_FIELDS.get(name, []):
        value = schedule.get(name_)
        if isinstance(value, list):
            for i in range(len(value)):
                yield value, i, f"{key}.{name_}[{i}]"
        elif value is not None:
            yield schedule, name_, f"{key}.{name_}"


def auto_scale_schedule(schedule: dict, key: str, global_batch_size: int) -> Tuple[dict, ScalingReport]:
    """Return a scaled copy of the (plain dict) schedule and the report of what changed."""
    scaling = schedule["auto_lr_scaling"]
    factor = global_batch_size / scaling["base_lr_batch_size"]
    if scaling["scaling_type"] == "sqrt":
        factor = math.sqrt(factor)
    scaled_schedule = copy.deepcopy(schedule)
    slots = list(value_slots(scaled_schedule, key))
    numeric = all(isinstance(c[i], (int, float)) and not isinstance(c[i], bool) for c, i, _ in slots)
    peak = max((c[i] for c, i, _ in slots), default=None) if numeric else None
    if peak is None or peak <= 0:
        raise ConfigError(
            f"{key}.auto_lr_scaling.auto_scale", True,
            "true only on a schedule that writes a positive LR value",
            f"{key} (name={schedule.get('name')!r}) writes {[c[i] for c, i, _ in slots]}",
        )
    scaled = scaling["base_value"] * factor
    ratio = scaled / peak
    report = ScalingReport(key, global_batch_size, scaling["base_value"], scaling["base_lr_batch_size"],
                           scaling["scaling_type"], factor, scaled)
    for container, slot, full_key in slots:
        before = container[slot]
        # The peak is set to `scaled` exactly rather than through peak * (scaled / peak).
        container[slot] = scaled if before == peak else before * ratio
        report.changes.append((full_key, before, container[slot]))
    return scaled_schedule, report

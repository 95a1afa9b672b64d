"""Automatic LR scaling by the global batch size, one rule for every schedule type and dialect.

    factor = global_batch / base_lr_batch_size        (its square root for scaling_type=sqrt)
    scaled = auto_lr_scaling.base_value * factor
    r      = scaled / peak,  peak = the largest LR value written in the schedule
    every written LR value v becomes v * r

so the schedule's highest value becomes `scaled` and its shape (warmup ratios, decay ratios,
a lower second cycle) is kept. The written LR values are each type's `value_fields`: start,
end and plain values of the where-fraction types in every composite child; base_value plus the
absolute floors of the mmcv dialect (min_lr). Under name: mmengine only base_value, the
optimizer's lr, is scaled, as MMEngine's auto_scale_lr scales the optimizer's lr: an absolute
eta_min or eta_max stays, an eta_min_ratio follows the scaled base. Ratios (start_factor,
eta_min_ratio, min_lr_ratio, warmup_ratio, target_ratio) are left alone.
E.g. mmengine base_value 0.004 with CosineAnnealingLR eta_min 0.0002, batch 1024 for 256 at
base_value 0.004: r = 4, base_value 0.016, eta_min stays 0.0002.
"""

import copy
import math
from dataclasses import dataclass, field
from typing import List, Tuple

from ..errors import ConfigError
from .schedules import SCHEDULES, value_slots
from .schedules.build import check_scaling


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


def auto_scale_schedule(schedule: dict, key: str, global_batch_size: int) -> Tuple[dict, ScalingReport]:
    """Return a scaled copy of the (plain dict) schedule and the report of what changed."""
    if SCHEDULES.get(schedule.get("name")) is None:
        raise ConfigError(f"{key}.name", schedule.get("name"), "one of " + ", ".join(SCHEDULES))
    if schedule.get("name") == "mmengine" and isinstance(schedule.get("base_value"), (int, float)):
        # MMEngine scales the optimizer's lr: it is the base that is multiplied.
        schedule = {**schedule, "auto_lr_scaling": {"base_value": schedule["base_value"],
                                                    **(schedule.get("auto_lr_scaling") or {})}}
    scaling = check_scaling(schedule, key)
    factor = global_batch_size / scaling.base_lr_batch_size
    if scaling.scaling_type == "sqrt":
        factor = math.sqrt(factor)
    scaled_schedule = copy.deepcopy(schedule)
    slots = list(value_slots(scaled_schedule, key, scaling=True))
    numeric = all(isinstance(c[i], (int, float)) and not isinstance(c[i], bool) for c, i, _ in slots)
    peak = max((c[i] for c, i, _ in slots), default=None) if numeric else None
    if peak is None or peak <= 0:
        raise ConfigError(
            f"{key}.auto_lr_scaling.auto_scale", True,
            "true only on a schedule that writes a positive LR value",
            f"{key} (name={schedule.get('name')!r}) writes {[c[i] for c, i, _ in slots]}",
        )
    if schedule.get("name") == "mmengine":
        _check_mmengine_base(schedule, key)
    scaled = scaling.base_value * factor
    ratio = scaled / peak
    report = ScalingReport(key, global_batch_size, scaling.base_value, scaling.base_lr_batch_size,
                           scaling.scaling_type, factor, scaled)
    for container, slot, full_key in slots:
        before = container[slot]
        # The peak is set to `scaled` exactly rather than through peak * (scaled / peak).
        container[slot] = scaled if before == peak else before * ratio
        report.changes.append((full_key, before, container[slot]))
    return scaled_schedule, report


def _check_mmengine_base(schedule: dict, key: str) -> None:
    """MMEngine's auto_scale_lr multiplies the optimizer's lr (base_value here) by the factor:
    an auto_lr_scaling.base_value, when written, must be that lr."""
    written = (schedule.get("auto_lr_scaling") or {}).get("base_value")
    if written is not None and written != schedule.get("base_value"):
        raise ConfigError(f"{key}.auto_lr_scaling.base_value", written,
                          f"unset or {schedule.get('base_value')} ({key}.base_value)",
                          "under name: mmengine auto scaling multiplies the optimizer's lr, as MMEngine's "
                          "auto_scale_lr does")

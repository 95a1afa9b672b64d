"""VISSL's automatic LR scaling, restated from its formulas (vissl/utils/hydra_config.py:
infer_learning_rate, get_scaled_lr_scheduler, resolve_linear_schedule), so the converter can
say what VISSL would have run. It reads a plain-dict schedule as VISSL's file writes it and
returns VISSL's resolved copy.

    factor = BATCHSIZE_PER_REPLICA x NUM_NODES x NUM_PROC_PER_NODE / base_lr_batch_size
             (its square root for scaling_type sqrt): the config's world size, not the real one
    scaled = auto_lr_scaling.base_value x factor

and then, by type:

    cosine, cosine_warm_restart  start = scaled, end = scaled x end / start
    multistep, step              values[i] = round(scaled x gamma**i, 8),
                                 gamma = round(values[1] / values[0], 6)  (a geometric sequence)
    linear                       end = scaled
    constant                     value = scaled
    inverse_sqrt                 start = scaled
    step_with_fixed_gamma        base_value = scaled
    composite                    each child as above; then, when a child is linear (taken for a
                                 warmup), every linear child starts at base_value x per-node batch
                                 / base_lr_batch_size, per-node batch = BATCHSIZE_PER_REPLICA x
                                 NUM_PROC_PER_NODE (linear in the batch even for sqrt); on one
                                 node the last linear child whose start <= end is removed, and a
                                 composite left with one child becomes that child, which then
                                 spans the whole training (its `lengths` no longer apply)
    any other type               VISSL stops ("Unknow param_scheduler")

E.g. SimCLR's composite linear 0.6 -> 4.8 (10%), cosine 4.8 -> 0 at base_value 0.3 per 256:
8 nodes x 8 x 64 images give scaled 4.8 and a warmup start 0.3 x 512 / 256 = 0.6; 1 node x 8
x 64 gives scaled 0.6, the warmup start 0.6 >= its end 0.6, so the warmup goes and the cosine
0.6 -> 0 runs over the whole training.
"""

import copy
import math
from dataclasses import dataclass


class VisslStops(Exception):
    """VISSL itself cannot run this schedule; the message says where it fails."""


@dataclass(frozen=True)
class PlannedRun:
    """What VISSL's rules read: the config's batch per replica, nodes and processes per node."""

    batch_per_replica: int
    num_nodes: int
    procs_per_node: int

    @property
    def global_batch(self) -> int:
        return self.batch_per_replica * self.num_nodes * self.procs_per_node

    @property
    def node_batch(self) -> int:
        return self.batch_per_replica * self.procs_per_node


def vissl_scaled_lr(schedule: dict, run: PlannedRun) -> float:
    """auto_lr_scaling.base_value x factor, VISSL's `scaled_lr`."""
    scaling = schedule.get("auto_lr_scaling") or {}
    factor = run.global_batch / scaling.get("base_lr_batch_size", 256)
    if scaling.get("scaling_type", "linear") == "sqrt":
        factor = math.sqrt(factor)
    return scaling.get("base_value", 0.1) * factor


def warmup_start(schedule: dict, run: PlannedRun) -> float:
    """The start VISSL writes into a composite's linear children: base_value x per-node batch /
    base_lr_batch_size."""
    scaling = schedule.get("auto_lr_scaling")
    if not scaling:
        raise VisslStops("a composite with a linear child needs its own auto_lr_scaling in VISSL "
                         "(resolve_linear_schedule reads it)")
    return scaling.get("base_value", 0.1) * run.node_batch / scaling.get("base_lr_batch_size", 256)


def vissl_resolved(schedule: dict, run: PlannedRun) -> dict:
    """VISSL's copy of an LR schedule after its auto scaling (the schedule unchanged when
    auto_lr_scaling.auto_scale is off). Raises VisslStops."""
    if not (schedule.get("auto_lr_scaling") or {}).get("auto_scale"):
        return copy.deepcopy(schedule)
    return _scaled(copy.deepcopy(schedule), vissl_scaled_lr(schedule, run), run)


def _scaled(s: dict, scaled: float, run: PlannedRun) -> dict:
    name = s.get("name")
    if "cosine" in str(name):
        if not s.get("start_value"):
            raise VisslStops(f"{name}: VISSL divides end_value by start_value {s.get('start_value')!r}")
        ratio = s["end_value"] / s["start_value"]
        s["start_value"], s["end_value"] = float(scaled), float(scaled * ratio)
    elif name in ("multistep", "step"):
        values = s["values"]
        gamma = round(values[1] / values[0], 6) if len(values) > 1 else 1.0
        s["values"] = [round(float(scaled * gamma**i), 8) for i in range(len(values))]
    elif name == "step_with_fixed_gamma":
        s["base_value"] = scaled
    elif name == "linear":
        s["end_value"] = scaled
    elif name == "inverse_sqrt":
        s["start_value"] = scaled
    elif name == "constant":
        s["value"] = scaled
    elif name == "composite":
        s["schedulers"] = [_scaled(child, scaled, run) for child in s["schedulers"]]
        if any(child.get("name") == "linear" for child in s["schedulers"]):
            s = _resolve_warmup(s, run)
    else:
        raise VisslStops(f"VISSL's auto scaling does not know the {name!r} schedule (\"Unknow param_scheduler\")")
    return s


def _resolve_warmup(s: dict, run: PlannedRun) -> dict:
    start = warmup_start(s, run)
    removed = None
    for i, child in enumerate(s["schedulers"]):
        if child.get("name") == "linear":
            child["start_value"] = start
            if run.num_nodes == 1 and start <= child["end_value"]:
                removed = i
    if removed is None:
        return s
    children = [c for i, c in enumerate(s["schedulers"]) if i != removed]
    if len(children) == 1:
        # VISSL copies the child's keys over the composite: the child now spans all of training.
        collapsed = {k: v for k, v in s.items() if k not in ("schedulers", "lengths", "interval_scaling")}
        collapsed.update(children[0])
        return collapsed
    if len(children) != len(s.get("lengths") or []):
        raise VisslStops(f"removing the warmup leaves {len(children)} schedulers for {len(s.get('lengths') or [])} "
                         "lengths, which ClassyVision's composite refuses")
    s["schedulers"] = children
    return s

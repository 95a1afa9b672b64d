"""The one inference step after validation: world size, global batch, auto LR scaling, and the
head LR / weight decay defaults. Its result is what gets saved as the resolved config."""

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from omegaconf import DictConfig, OmegaConf

from ..optim.auto_scaling import ScalingReport, auto_scale_schedule
from ..optim.group_scheduler import SCHEDULABLE, check_schedules, followed, schedule_section, schedules_in_use
from ..optim.schedules import value_slots
from ..errors import ConfigError
from .plain import plain


@dataclass
class Inferred:
    world_size: int
    world_size_source: str
    global_batch_size: int
    scaling: List[ScalingReport] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    # {optimizer section key: {schedule key: definition}}: the schedules in use, built once here
    # (GroupScheduler compiles them for the steps per epoch).
    schedules: Dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "world_size": self.world_size,
            "world_size_source": self.world_size_source,
            "global_batch_size": self.global_batch_size,
            "lr_scaling": [line for report in self.scaling for line in report.lines()],
            "notes": list(self.notes),
        }


def resolve_world_size(cfg, env: Optional[dict] = None):
    """(world size, where it came from): torchrun's WORLD_SIZE when launched by it; with
    engine_name=explain and no launcher, DISTRIBUTED.NUM_NODES x NUM_PROC_PER_NODE (a preview);
    otherwise 1."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" in env:
        return int(env["WORLD_SIZE"]), "WORLD_SIZE"
    if cfg.engine_name == "explain":
        planned = cfg.DISTRIBUTED.NUM_NODES * cfg.DISTRIBUTED.NUM_PROC_PER_NODE
        return planned, "DISTRIBUTED.NUM_NODES x DISTRIBUTED.NUM_PROC_PER_NODE (preview)"
    return 1, "single process"


def check_schedule_ranges(opt, keys, prefix: str = "OPTIMIZER") -> None:
    """Every value written in a schedule must be a legal value of what it schedules."""
    for key in keys:
        legal, allowed = SCHEDULABLE[key].legal, SCHEDULABLE[key].allowed
        for container, slot, full_key in value_slots(schedule_section(opt, key), f"{prefix}.param_schedulers.{key}"):
            value = container[slot]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not legal(value):
                raise ConfigError(full_key, value, allowed)


def infer_config(cfg: DictConfig, world_size: int, world_size_source: str = "") -> tuple:
    """Return (resolved config, Inferred). `cfg` is a validated config; it is not modified."""
    cfg = OmegaConf.create(plain(cfg))
    opt = cfg.OPTIMIZER
    global_batch = cfg.DATA.TRAIN.BATCHSIZE_PER_REPLICA * world_size * opt.accumulation_steps
    inferred = Inferred(world_size, world_size_source, global_batch)
    planned = cfg.DISTRIBUTED.NUM_NODES * cfg.DISTRIBUTED.NUM_PROC_PER_NODE
    if planned != world_size:
        inferred.notes.append(
            f"DISTRIBUTED.NUM_NODES x NUM_PROC_PER_NODE = {planned} but the world size is {world_size} "
            f"({world_size_source}); scaling uses {world_size}"
        )

    infer_optimizer(opt, "OPTIMIZER", global_batch, inferred)
    probe = cfg.HOOKS.ONLINE_LINEAR_PROBE
    if probe.ENABLED:
        probe.OPTIMIZER.num_epochs = opt.num_epochs
        probe.OPTIMIZER.accumulation_steps = opt.accumulation_steps
        infer_optimizer(probe.OPTIMIZER, "HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER", global_batch, inferred)
    return cfg, inferred


def infer_optimizer(opt, prefix: str, global_batch: int, inferred: Inferred) -> None:
    """Range-check one optimizer section's schedules, scale its LR schedules by the global batch,
    let the head follow the trunk where it has no schedule of its own, and build the schedules
    in use, in place. `prefix` is the section's key path, for messages."""
    in_use = schedules_in_use(opt)
    for key in in_use:  # the slot's default written out: the resolved config shows what runs
        opt.param_schedulers[key] = schedule_section(opt, key)
    check_schedule_ranges(opt, in_use, prefix)
    for key in (k for k in in_use if k in ("lr", "lr_head")):
        schedule = plain(opt.param_schedulers[key])
        if (schedule.get("auto_lr_scaling") or {}).get("auto_scale"):
            scaled, report = auto_scale_schedule(schedule, f"{prefix}.param_schedulers.{key}", global_batch)
            opt.param_schedulers[key] = scaled
            inferred.scaling.append(report)
    inferred.schedules[prefix] = check_schedules(opt, prefix)
    for head, trunk in followed(opt).items():
        opt.param_schedulers[head] = opt.param_schedulers[trunk]
    if not opt.head_optimizer_params.use_different_wd:
        opt.head_optimizer_params.weight_decay = opt.weight_decay

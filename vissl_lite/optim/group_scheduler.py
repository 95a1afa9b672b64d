"""The per-step application of the schedules to the optimizer's parameter groups.

The only scheduling state is the optimizer step counter k: `apply(optimizer, k)` before step k
gives a resumed run exactly the values of one that never stopped.
"""

from typing import Dict, Optional

from ..config.plain import plain
from .schedules import StepSchedule, build_step_schedule, check_schedule

SCHEDULE_KEYS = ("lr", "lr_head", "weight_decay", "weight_decay_head", "momentum")
PARAM_NAMES = {"lr": "lr", "lr_head": "lr", "weight_decay": "weight_decay", "weight_decay_head": "weight_decay",
               "momentum": "momentum"}


def schedules_in_use(optimizer_cfg):
    """The param_schedulers entries that drive something: lr_head and weight_decay_head only
    when head_optimizer_params asks for them, the optional ones only when named."""
    head = optimizer_cfg.head_optimizer_params
    wanted = {"lr", "weight_decay", "momentum"}
    wanted |= {"lr_head"} if head.use_different_lr else set()
    wanted |= {"weight_decay_head"} if head.use_different_wd else set()
    return [k for k in SCHEDULE_KEYS
            if k in wanted and (k in ("lr", "lr_head") or optimizer_cfg.param_schedulers[k].name is not None)]


def schedule_section(optimizer_cfg, key: str) -> dict:
    """param_schedulers.<key> as a plain dict. An unset base_value of a momentum or weight-decay
    schedule is the optimizer's own value (OPTIMIZER.momentum, OPTIMIZER.weight_decay, the head's
    weight decay), which is where MMEngine and mmcv start those schedules; an LR has no such value
    outside its schedule."""
    section = plain(optimizer_cfg.param_schedulers[key])
    own = {"momentum": optimizer_cfg.momentum, "weight_decay": optimizer_cfg.weight_decay,
           "weight_decay_head": optimizer_cfg.head_optimizer_params.weight_decay}
    if key in own and section.get("base_value") is None:
        section["base_value"] = own[key]
    return section


def check_schedules(optimizer_cfg, prefix: str = "OPTIMIZER") -> None:
    """Check every schedule in use as soon as the config is composed (ConfigError naming the key)."""
    for key in schedules_in_use(optimizer_cfg):
        check_schedule(schedule_section(optimizer_cfg, key), f"{prefix}.param_schedulers.{key}",
                       optimizer_cfg.num_epochs, PARAM_NAMES[key])


class GroupScheduler:
    """Builds every schedule in use of OPTIMIZER.param_schedulers once and sets, before step k:

        lr            = schedules[group.lr_schedule](k) * group.lr_mult
        weight_decay  = schedules[group.wd_schedule](k) * group.decay_mult  (unregularized groups
                        stay at 0; unchanged when that schedule is not set)
        momentum      = schedules["momentum"](k): SGD/RMSprop/LARS momentum, Adam's beta1

    k counts optimizer steps (after gradient accumulation), of num_epochs x steps_per_epoch.
    """

    def __init__(self, optimizer_cfg, steps_per_epoch: int, prefix: str = "OPTIMIZER"):
        self.num_epochs = int(optimizer_cfg.num_epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = self.num_epochs * self.steps_per_epoch
        self.schedules: Dict[str, StepSchedule] = {
            key: build_step_schedule(schedule_section(optimizer_cfg, key), f"{prefix}.param_schedulers.{key}",
                                     self.num_epochs, self.steps_per_epoch, PARAM_NAMES[key])
            for key in schedules_in_use(optimizer_cfg)}

    def schedule_values(self, key: str, steps):
        """Values of one schedule at optimizer step(s) `steps` (an int or a numpy array)."""
        return self.schedules[key].values(steps)

    def group_values(self, group: dict, steps) -> Dict[str, Optional[object]]:
        """{'lr', 'weight_decay', 'momentum'} for one group at `steps`; None where nothing is scheduled."""
        keys = {group["lr_schedule"], "momentum"} | ({group["wd_schedule"]} if group["regularized"] else set())
        return self.values_from(group, {key: self.schedule_values(key, steps) for key in keys & self.schedules.keys()})

    def values_from(self, group: dict, series: Dict[str, object]) -> Dict[str, Optional[object]]:
        """group_values from schedule values already computed at the same steps (key -> values),
        so each schedule is evaluated once for all groups (per step in `apply`, per run in explain)."""
        values = {"lr": series[group["lr_schedule"]] * group["lr_mult"], "weight_decay": None, "momentum": None}
        # Unregularized groups were built with weight decay 0 and are never scheduled.
        if group["regularized"] and group["wd_schedule"] in self.schedules:
            values["weight_decay"] = series[group["wd_schedule"]] * group["decay_mult"]
        if "momentum" in self.schedules:
            values["momentum"] = series["momentum"]
        return values

    def apply(self, optimizer, step: int) -> None:
        series = {key: schedule.values(step) for key, schedule in self.schedules.items()}
        for group in optimizer.param_groups:
            values = self.values_from(group, series)
            group["lr"] = values["lr"]
            if values["weight_decay"] is not None:
                group["weight_decay"] = values["weight_decay"]
            if values["momentum"] is not None:
                if "betas" in group:
                    group["betas"] = (values["momentum"], group["betas"][1])
                else:
                    group["momentum"] = values["momentum"]

"""The per-step application of the schedules to the optimizer's parameter groups.

The only scheduling state is the optimizer step counter k: `apply(optimizer, k)` before step k
gives a resumed run exactly the values of one that never stopped.
"""

from typing import Dict, Optional

import numpy as np

from ..config.plain import plain
from .param_scheduler import ParamScheduler, build_param_scheduler, schedule_where

SCHEDULE_KEYS = ("lr", "lr_head", "weight_decay", "weight_decay_head", "momentum")


def schedules_in_use(optimizer_cfg):
    """The param_schedulers entries that drive something: lr_head and weight_decay_head only
    when head_optimizer_params asks for them, the optional ones only when named."""
    head = optimizer_cfg.head_optimizer_params
    wanted = {"lr", "weight_decay", "momentum"}
    wanted |= {"lr_head"} if head.use_different_lr else set()
    wanted |= {"weight_decay_head"} if head.use_different_wd else set()
    return [k for k in SCHEDULE_KEYS
            if k in wanted and (k in ("lr", "lr_head") or optimizer_cfg.param_schedulers[k].name is not None)]


class GroupScheduler:
    """Builds every named entry of OPTIMIZER.param_schedulers and sets, before step k:

        lr            = schedule[group.lr_schedule](where_k) * group.lr_mult
        weight_decay  = schedule[group.wd_schedule](where_k) * group.decay_mult  (unregularized
                        groups stay at 0; unchanged when that schedule is not set)
        momentum      = schedule["momentum"](where_k): SGD/RMSprop/LARS momentum, Adam's beta1

    where_k per `schedule_where`; k counts optimizer steps (after gradient accumulation).
    """

    def __init__(self, optimizer_cfg, steps_per_epoch: int):
        self.num_epochs = int(optimizer_cfg.num_epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = self.num_epochs * self.steps_per_epoch
        self.schedules: Dict[str, ParamScheduler] = {}
        for key in schedules_in_use(optimizer_cfg):
            cfg = {**plain(optimizer_cfg.param_schedulers[key]), "num_epochs": self.num_epochs}
            self.schedules[key] = build_param_scheduler(cfg, f"OPTIMIZER.param_schedulers.{key}")

    def schedule_values(self, key: str, steps):
        """Values of one schedule at optimizer step(s) `steps` (an int or a numpy array)."""
        sched = self.schedules[key]
        return sched(schedule_where(np.asarray(steps), sched.update_interval, self.num_epochs, self.steps_per_epoch))

    def group_values(self, group: dict, steps) -> Dict[str, Optional[object]]:
        """{'lr', 'weight_decay', 'momentum'} for one group; None where nothing is scheduled."""
        values = {"lr": self.schedule_values(group["lr_schedule"], steps) * group["lr_mult"],
                  "weight_decay": None, "momentum": None}
        # Unregularized groups were built with weight decay 0 and are never scheduled.
        if group["regularized"] and group["wd_schedule"] in self.schedules:
            values["weight_decay"] = self.schedule_values(group["wd_schedule"], steps) * group["decay_mult"]
        if "momentum" in self.schedules:
            values["momentum"] = self.schedule_values("momentum", steps)
        return values

    def apply(self, optimizer, step: int) -> None:
        for group in optimizer.param_groups:
            values = self.group_values(group, step)
            group["lr"] = values["lr"]
            if values["weight_decay"] is not None:
                group["weight_decay"] = values["weight_decay"]
            if values["momentum"] is not None:
                if "betas" in group:
                    group["betas"] = (values["momentum"], group["betas"][1])
                else:
                    group["momentum"] = values["momentum"]

"""The per-step application of the schedules to the optimizer's parameter groups.

The only scheduling state is the optimizer step counter k: `apply(optimizer, k)` before step k
gives a resumed run exactly the values of one that never stopped.
"""

from typing import Callable, Dict, NamedTuple, Optional

from ..config.plain import plain
from .schedules import SCHEDULES, StepSchedule, check_schedule, compile_schedule, filled
from .schedules.registry import arguments


class Schedulable(NamedTuple):
    """A quantity OPTIMIZER.param_schedulers may schedule: the schedule's param_name (mmcv's
    hook, MMEngine's param_name) and the values it may take."""

    quantity: str
    legal: Callable[[float], bool]
    allowed: str


def _non_negative(v) -> bool:
    return v >= 0


SCHEDULABLE = {
    "lr": Schedulable("lr", _non_negative, "a value >= 0 (a learning rate)"),
    "lr_head": Schedulable("lr", _non_negative, "a value >= 0 (a learning rate)"),
    "weight_decay": Schedulable("weight_decay", _non_negative, "a value >= 0 (a weight decay)"),
    "weight_decay_head": Schedulable("weight_decay", _non_negative, "a value >= 0 (a weight decay)"),
    "momentum": Schedulable("momentum", lambda v: 0 <= v < 1, "a value in [0, 1) (a momentum)"),
}
SCHEDULE_KEYS = tuple(SCHEDULABLE)


def followed(optimizer_cfg) -> Dict[str, str]:
    """The head follows the trunk: {head schedule: the trunk schedule it copies} while
    head_optimizer_params does not ask for its own."""
    head = optimizer_cfg.head_optimizer_params
    return {**({} if head.use_different_lr else {"lr_head": "lr"}),
            **({} if head.use_different_wd else {"weight_decay_head": "weight_decay"})}


def schedules_in_use(optimizer_cfg):
    """The param_schedulers entries that drive something: lr always, the head's own only when
    head_optimizer_params asks for them, the optional ones only when they name a type."""
    copies = followed(optimizer_cfg)
    return [k for k in SCHEDULE_KEYS if k not in copies
            and (k in ("lr", "lr_head") or optimizer_cfg.param_schedulers[k].get("name") is not None)]


def base_momentum(optimizer_cfg) -> float:
    """The optimizer's own momentum: betas[0] for the Adam family, else OPTIMIZER.momentum."""
    from .optimizers import optimizer_arguments

    arguments = optimizer_arguments(optimizer_cfg)
    return arguments["betas"][0] if "betas" in arguments else arguments.get("momentum", optimizer_cfg.momentum)


def schedule_section(optimizer_cfg, key: str) -> dict:
    """param_schedulers.<key> as a plain dict, its slot's default applied. An unset base_value
    of a momentum or weight-decay schedule is the optimizer's own value (its momentum or beta1,
    OPTIMIZER.weight_decay, the head's weight decay), which is where MMEngine and mmcv start
    those schedules; an LR has no such value outside its schedule."""
    from ..config.schema import ParamSchedulersConfig

    default = ParamSchedulersConfig.__dataclass_fields__[key].metadata["schedule"]
    section, _ = filled(plain(optimizer_cfg.param_schedulers[key]), default)
    kind = SCHEDULES.get(section.get("name"))
    if key in ("momentum", "weight_decay", "weight_decay_head") and section.get("base_value") is None \
            and kind is not None and "base_value" in {f.name for f in arguments(kind)}:
        own = {"weight_decay": lambda: optimizer_cfg.weight_decay, "momentum": lambda: base_momentum(optimizer_cfg),
               "weight_decay_head": lambda: optimizer_cfg.head_optimizer_params.weight_decay}
        section["base_value"] = own[key]()
    return section


def check_schedules(optimizer_cfg, prefix: str = "OPTIMIZER") -> dict:
    """Build every schedule in use once the config is composed: {key: definition}, whose
    `compile(num_epochs, steps_per_epoch)` gives the values (ConfigError naming the key)."""
    from ..config.schema import ParamSchedulersConfig

    return {key: check_schedule(schedule_section(optimizer_cfg, key), f"{prefix}.param_schedulers.{key}",
                                optimizer_cfg.num_epochs, SCHEDULABLE[key].quantity,
                                ParamSchedulersConfig.__dataclass_fields__[key].metadata["schedule"])
            for key in schedules_in_use(optimizer_cfg)}


class GroupScheduler:
    """Compiles every schedule in use of OPTIMIZER.param_schedulers once and sets, before step k:

        lr            = schedules[group.lr_schedule](k) * group.lr_mult
        weight_decay  = schedules[group.wd_schedule](k) * group.decay_mult  (unregularized groups
                        stay at 0; unchanged when that schedule is not set)
        momentum      = schedules["momentum"](k): SGD/RMSprop/LARS momentum, Adam's beta1

    k counts optimizer steps (after gradient accumulation), of num_epochs x steps_per_epoch.
    `definitions` are check_schedules' (what resolve built); without them they are built here.
    """

    def __init__(self, optimizer_cfg, steps_per_epoch: int, prefix: str = "OPTIMIZER",
                 definitions: Optional[dict] = None):
        self.num_epochs = int(optimizer_cfg.num_epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_steps = self.num_epochs * self.steps_per_epoch
        definitions = check_schedules(optimizer_cfg, prefix) if definitions is None else definitions
        self.schedules: Dict[str, StepSchedule] = {
            key: compile_schedule(definition, f"{prefix}.param_schedulers.{key}", self.num_epochs, self.steps_per_epoch)
            for key, definition in definitions.items()}

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

"""Translators for VISSL's OPTIMIZER keys that need more than a rename: the optimizer name, the
parameter-group constructor and the schedules (VISSL's defaults for lr / lr_head written out)."""

from ..config.schema import VISSL_MULTISTEP_LR
from ..optim.optimizers import OPTIMIZERS, OptimInfo
from ..optim.param_groups import PARAM_GROUP_CONSTRUCTORS
from ..optim.schedules import SCHEDULES
from ..optim.schedules.registry import arguments
from .report import show
from .rules import Conversion
from .schedule_words import describe

# VISSL's defaults for OPTIMIZER.param_schedulers.lr and lr_head (vissl/config/defaults.yaml).
# A file that writes `name: cosine` with no update_interval runs it per epoch in VISSL, where
# vissl_lite's own default for cosine is per step: the fields are written out.
VISSL_LR_DEFAULT = {**VISSL_MULTISTEP_LR, "update_interval": "epoch", "start_value": 0.1, "end_value": 0.0,
                    "value": 0.1}
LR_SCHEDULES = ("lr", "lr_head")


def optimizer_name(conv: Conversion, key: str, value) -> None:
    if value in OPTIMIZERS:
        conv.keep(key, value)
    elif str(value).endswith("_fsdp") or value == "zero":
        conv.refuse(key, value, "an FSDP / ZeRO optimizer: vissl_lite trains with DDP (use sgd, with use_larc for LARC)")
    else:
        conv.refuse(key, value, f"vissl_lite has no such optimizer (it has {', '.join(sorted(OPTIMIZERS))})")


def optimizer_argument(conv: Conversion, key: str, value) -> None:
    """A key some optimizers take: kept when the file's optimizer takes it, dropped otherwise
    (VISSL's builder passes it only to the optimizers that take it; vissl_lite refuses it)."""
    name = conv.get("OPTIMIZER.name", "sgd")  # VISSL's default optimizer
    row, argument = OPTIMIZERS.get(name), key.rsplit(".", 1)[-1]
    if isinstance(row, OptimInfo) and argument not in row.keys:
        conv.drop(key, value, f"{name} takes no {argument}, in VISSL as in vissl_lite")
    else:
        conv.keep(key, value)


def param_group_constructor(conv: Conversion, key: str, value) -> None:
    if value in PARAM_GROUP_CONSTRUCTORS:
        conv.keep(key, value)
    else:
        conv.refuse(key, value, "vissl_lite has no such parameter-group constructor (it has "
                                f"{', '.join(sorted(PARAM_GROUP_CONSTRUCTORS))})")


def param_schedulers(conv: Conversion, key: str, value) -> None:
    for name, schedule in (value or {}).items():
        schedule = without_unread(dict(schedule or {}), f"{key}.{name}", conv)
        filled = vissl_defaults_filled(schedule) if name in LR_SCHEDULES else schedule
        added = {k: filled[k] for k in filled if k not in schedule}
        conv.set(f"{key}.{name}", filled)
        if added:
            written_out = ", ".join(f"{k}: {show(v)}" for k, v in added.items())
            conv.report.add("translated", f"{key}.{name}", f"{describe(filled)} (VISSL's defaults written out: "
                                                           f"{written_out})")
        else:
            conv.report.add("kept", f"{key}.{name}", describe(filled))


def without_unread(schedule: dict, key: str, conv: Conversion) -> dict:
    """The schedule without the keys its type does not read (VISSL files often list every
    type's fields; VISSL ignores the others, vissl_lite refuses them): each is reported dropped."""
    kind = SCHEDULES.get(schedule.get("name", VISSL_LR_DEFAULT["name"]))
    if kind is None:
        return schedule
    taken = {f.name for f in arguments(kind)} | {"name", "auto_lr_scaling"}
    for unread in [k for k in schedule if k not in taken]:
        conv.drop(f"{key}.{unread}", schedule.pop(unread), f"{kind.name} does not read it, in VISSL as in vissl_lite")
    if kind.name == "composite" and isinstance(schedule.get("schedulers"), list):
        schedule["schedulers"] = [without_unread(dict(child), f"{key}.schedulers[{i}]", conv)
                                  if isinstance(child, dict) else child
                                  for i, child in enumerate(schedule["schedulers"])]
    return schedule


def vissl_defaults_filled(schedule: dict) -> dict:
    """The LR schedule VISSL runs: its file's fields over VISSL's defaults, for the fields the
    type reads (and update_interval, which every type has)."""
    out = dict(schedule)
    name = out.setdefault("name", VISSL_LR_DEFAULT["name"])
    kind = SCHEDULES.get(name)
    for field in (f.name for f in arguments(kind)) if kind is not None else ():
        if field in VISSL_LR_DEFAULT and out.get(field) is None:
            out[field] = VISSL_LR_DEFAULT[field]
    return out

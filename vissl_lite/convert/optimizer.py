"""Translators for VISSL's OPTIMIZER keys that need more than a rename: the optimizer name, the
parameter-group constructor and the schedules (VISSL's defaults for lr / lr_head written out)."""

from ..optim.optimizers import OPTIMIZERS
from ..optim.param_groups import PARAM_GROUP_CONSTRUCTORS
from .report import show
from .rules import Conversion
from .schedule_words import describe

# VISSL's defaults for OPTIMIZER.param_schedulers.lr and lr_head (vissl/config/defaults.yaml).
# A file that writes `name: cosine` with no update_interval runs it per epoch in VISSL, where
# vissl_lite's own default for cosine is per step: the fields are written out.
VISSL_LR_DEFAULT = {"name": "multistep", "update_interval": "epoch", "values": [0.1, 0.01, 0.001],
                    "milestones": [30, 60], "start_value": 0.1, "end_value": 0.0, "value": 0.1}
# Fields of VISSL_LR_DEFAULT each type reads.
READS = {"multistep": ("values", "milestones"), "step": ("values",), "linear": ("start_value", "end_value"),
         "cosine": ("start_value", "end_value"), "cosine_warm_restart": ("start_value", "end_value"),
         "constant": ("value",), "inverse_sqrt": ("start_value",)}
LR_SCHEDULES = ("lr", "lr_head")


def optimizer_name(conv: Conversion, key: str, value) -> None:
    if value in OPTIMIZERS:
        conv.keep(key, value)
    elif str(value).endswith("_fsdp") or value == "zero":
        conv.refuse(key, value, "an FSDP / ZeRO optimizer: vissl_lite trains with DDP (use sgd, with use_larc for LARC)")
    else:
        conv.refuse(key, value, f"vissl_lite has no such optimizer (it has {', '.join(sorted(OPTIMIZERS))})")


def param_group_constructor(conv: Conversion, key: str, value) -> None:
    if value in PARAM_GROUP_CONSTRUCTORS:
        conv.keep(key, value)
    else:
        conv.refuse(key, value, "vissl_lite has no such parameter-group constructor (it has "
                                f"{', '.join(sorted(PARAM_GROUP_CONSTRUCTORS))})")


def param_schedulers(conv: Conversion, key: str, value) -> None:
    for name, schedule in (value or {}).items():
        schedule = dict(schedule or {})
        filled = vissl_defaults_filled(schedule) if name in LR_SCHEDULES else schedule
        added = {k: filled[k] for k in filled if k not in schedule}
        conv.set(f"{key}.{name}", filled)
        if added:
            written_out = ", ".join(f"{k}: {show(v)}" for k, v in added.items())
            conv.report.add("translated", f"{key}.{name}", f"{describe(filled)} (VISSL's defaults written out: "
                                                           f"{written_out})")
        else:
            conv.report.add("kept", f"{key}.{name}", describe(filled))


def vissl_defaults_filled(schedule: dict) -> dict:
    """The LR schedule VISSL runs: its file's fields over VISSL's defaults, for the fields the
    type reads (and update_interval, which every type has)."""
    out = dict(schedule)
    name = out.setdefault("name", VISSL_LR_DEFAULT["name"])
    for field in ("update_interval",) + READS.get(name, ()):
        if out.get(field) is None:
            out[field] = VISSL_LR_DEFAULT[field]
    return out

"""Translators for VISSL's LOSS: the loss name, and each method's section.

VISSL's LOSS holds a section per loss; only the chosen one (LOSS.name) is read. Numbers VISSL
infers from the rest of the config (embedding sizes, crop counts, the per-process queue) are
inferred by vissl_lite too and dropped here; scalars VISSL changes over training by a fixed
rule (DINO's teacher momentum and temperature, MoCo's momentum) become vissl_lite schedules
that give the same value at every step.
"""

from typing import Optional

from ..config.schema import DINOLossConfig
from ..losses import LOSSES
from .rules import Conversion, in_schema

# VISSL's loss name -> vissl_lite's. LOSS.name defaults to CrossEntropyLoss in VISSL.
LOSS_NAMES = {
    "simclr_info_nce_loss": "simclr_info_nce_loss",
    "barlow_twins_loss": "barlow_twins_loss",
    "dino_loss": "dino_loss",
    "swav_loss": "swav_loss",
    "moco_loss": "moco_loss",
    "CrossEntropyLoss": "cross_entropy",
    "cross_entropy_multiple_output_single_target": "cross_entropy",
}
VISSL_DEFAULT_LOSS = "CrossEntropyLoss"

# VISSL's dino_loss defaults (vissl/config/defaults.yaml).
VISSL_DINO = {"momentum": 0.996, "student_temp": 0.1, "teacher_temp_min": 0.04, "teacher_temp_max": 0.07,
              "teacher_temp_warmup_iters": 37500, "crops_for_teacher": [0, 1], "ema_center": 0.9}
# VISSL's cross-entropy options and the values under which it is plain cross entropy.
PLAIN_CROSS_ENTROPY = {"ignore_index": (-1,), "weight": (None,), "reduction": ("mean",),
                       "normalize_output": (False,), "temperature": (1.0, 1)}


def vissl_lite_loss(conv: Conversion) -> Optional[str]:
    """vissl_lite's name for the file's loss (None when vissl_lite has none)."""
    return _registered(LOSS_NAMES.get(conv.get("LOSS.name", VISSL_DEFAULT_LOSS)))


def _registered(name):
    return name if name in LOSSES else None


def loss_name(conv: Conversion, key: str, value) -> None:
    ours = _registered(LOSS_NAMES.get(value))
    if ours is None:
        conv.refuse(key, value, f"vissl_lite has no such loss (VISSL names it maps: "
                                f"{', '.join(n for n, o in LOSS_NAMES.items() if o in LOSSES)})")
    elif ours == value:
        conv.keep(key, value)
    else:
        conv.translate(key, value, key, ours)


def loss_section(conv: Conversion, key: str, value) -> None:
    section = key.split(".")[1]
    chosen = conv.get("LOSS.name", VISSL_DEFAULT_LOSS)
    if section != chosen:
        for name, leaf in (value or {}).items():
            conv.drop(f"{key}.{name}", leaf, f"a section of a loss this file does not use (LOSS.name {chosen})")
        return
    ours = vissl_lite_loss(conv)
    if ours is None:
        return  # refused with LOSS.name
    SECTIONS.get(section, _generic_section)(conv, key, dict(value or {}), f"LOSS.{ours}")


def _generic_section(conv: Conversion, key: str, value: dict, target: str) -> None:
    for name, leaf in value.items():
        _keep_or_drop(conv, f"{key}.{name}", leaf, f"{target}.{name}")


def _keep_or_drop(conv: Conversion, key: str, value, target: str) -> None:
    """VISSL's `key` kept as vissl_lite's `target` where the schema has it, dropped otherwise."""
    if isinstance(value, dict) and value and not in_schema(target):
        conv.drop(key, value, "no such key in vissl_lite")
    elif isinstance(value, dict) and value:
        for name, leaf in value.items():
            _keep_or_drop(conv, f"{key}.{name}", leaf, f"{target}.{name}")
    elif in_schema(target):
        if key == target:
            conv.keep(key, value)
        else:
            conv.translate(key, value, target, value)
    else:
        conv.drop(key, value, "no such key in vissl_lite")


def _simclr(conv: Conversion, key: str, value: dict, target: str) -> None:
    if "buffer_params" in value:
        for name, leaf in value.pop("buffer_params").items():
            conv.drop(f"{key}.buffer_params.{name}", leaf, "vissl_lite gathers every process's embeddings itself")
    _generic_section(conv, key, value, target)


def _swav(conv: Conversion, key: str, value: dict, target: str) -> None:
    inferred = "vissl_lite infers it (from the head, the crops, the world size)"
    for name in ("embedding_dim", "num_prototypes", "num_crops", "output_dir"):
        if name in value:
            conv.drop(f"{key}.{name}", value.pop(name), inferred)
    queue = dict(value.pop("queue", {}) or {})
    if "local_queue_length" in queue:
        conv.drop(f"{key}.queue.local_queue_length", queue.pop("local_queue_length"), inferred)
    if "queue_length" in queue:
        length = queue.pop("queue_length")
        run_batch = (conv.get("DATA.TRAIN.BATCHSIZE_PER_REPLICA", 256) * conv.get("DISTRIBUTED.NUM_NODES", 1)
                     * conv.get("DISTRIBUTED.NUM_PROC_PER_NODE", 8))
        rounded = length - length % run_batch  # VISSL keeps a whole number of global batches
        if rounded == length:
            conv.keep(f"{target}.queue.queue_length", length)
        else:
            conv.translate(f"{key}.queue.queue_length", length, f"{target}.queue.queue_length", rounded,
                           f"VISSL rounds it down to a multiple of the global batch {run_batch}")
    for name, leaf in queue.items():
        _keep_or_drop(conv, f"{key}.queue.{name}", leaf, f"{target}.queue.{name}")
    _generic_section(conv, key, value, target)


def _moco(conv: Conversion, key: str, value: dict, target: str) -> None:
    if "momentum" in value:
        m = value.pop("momentum")
        conv.translate(f"{key}.momentum", m, f"{target}.momentum", {"name": "constant", "value": m},
                       "a schedule in vissl_lite")
    _generic_section(conv, key, value, target)


def _dino(conv: Conversion, key: str, value: dict, target: str) -> None:
    """VISSL's teacher momentum m(k) = 1 - (1 - m0)(1 + cos(pi k / K)) / 2 over the K iterations
    is a cosine m0 -> 1; its teacher temperature, torch.linspace(min, max, W) over the first W
    iterations and max after, is MMEngine's LinearLR from min / max to 1 ending at iteration W
    (it reaches its end factor at W - 1, as linspace does)."""
    given = dict(value)
    merged = {**VISSL_DINO, **given}

    def say(names, *args, **kwargs):
        if all(n not in given for n in names):
            with conv.carrying():
                conv.translate(*args, **kwargs)
        else:
            conv.translate(*args, **kwargs)

    m = merged.pop("momentum")
    say(["momentum"], f"{key}.momentum", m, f"{target}.momentum",
        {"name": "cosine", "update_interval": "step", "start_value": m, "end_value": 1.0},
        "VISSL's cosine from momentum to 1 over training")
    low, high, warm = (merged.pop(n) for n in ("teacher_temp_min", "teacher_temp_max", "teacher_temp_warmup_iters"))
    if warm >= 2:
        temp = {"name": "mmengine", "base_value": high, "schedulers": [
            {"type": "LinearLR", "start_factor": low / high, "end_factor": 1.0, "by_epoch": False, "begin": 0,
             "end": warm}]}
        note = f"linear {low} -> {high} over iterations 0..{warm - 1} (VISSL's linspace), then {high}"
    else:
        temp, note = {"name": "constant", "value": high}, f"a warmup of {warm} iterations is none"
    say(["teacher_temp_min", "teacher_temp_max", "teacher_temp_warmup_iters"],
        f"{key}.teacher_temp_min, teacher_temp_max, teacher_temp_warmup_iters", [low, high, warm],
        f"{target}.teacher_temp", temp, note)
    crops = merged.pop("crops_for_teacher")
    if list(crops) == [0, 1]:
        conv.drop(f"{key}.crops_for_teacher", crops, "vissl_lite's teacher sees the 2 global crops")
    else:
        conv.refuse(f"{key}.crops_for_teacher", crops, "vissl_lite's teacher sees the 2 global crops [0, 1]")
    for name in ("output_dim", "num_crops"):
        if name in merged:
            conv.drop(f"{key}.{name}", merged.pop(name), "vissl_lite infers it from the head and the crops")
    for name, leaf in merged.items():
        if name in given:
            _keep_or_drop(conv, f"{key}.{name}", leaf, f"{target}.{name}")
        elif leaf != getattr(_dino_defaults(), name, leaf):
            with conv.carrying():
                conv.keep(f"{target}.{name}", leaf)


def _dino_defaults():
    return DINOLossConfig()


def _cross_entropy(conv: Conversion, key: str, value: dict, target: str) -> None:
    for name, leaf in value.items():
        if leaf in PLAIN_CROSS_ENTROPY.get(name, ()):
            conv.drop(f"{key}.{name}", leaf, "plain cross entropy: the same in vissl_lite")
        else:
            conv.refuse(f"{key}.{name}", leaf, "vissl_lite's cross_entropy is plain cross entropy on the logits")


SECTIONS = {
    "simclr_info_nce_loss": _simclr,
    "swav_loss": _swav,
    "moco_loss": _moco,
    "dino_loss": _dino,
    "CrossEntropyLoss": _cross_entropy,
    "cross_entropy_multiple_output_single_target": _cross_entropy,
}

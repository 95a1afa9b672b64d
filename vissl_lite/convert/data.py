"""Translators for VISSL's DATA keys that need more than a rename."""

from dataclasses import fields

from ..config.schema import TransformsConfig
from .report import Difference
from .rules import Conversion
from .transforms import Unsupported, eval_transforms, train_transforms

# vissl_lite's data sources that VISSL also names; torchvision_dataset, ... have no counterpart.
SOURCES = ("disk_folder", "disk_filelist", "synthetic")
# Collators that only assemble the views the method asks for (vissl_lite's method makes them).
VIEW_COLLATORS = ("default_collate", "simclr_collator", "multicrop_collator", "moco_collator")


def data_sources(conv: Conversion, key: str, value) -> None:
    unknown = [s for s in value or [] if s not in SOURCES]
    if not value and key == "DATA.TRAIN.DATA_SOURCES":
        conv.refuse(key, value, "no training data (VISSL's default names none)")
    elif unknown:
        conv.refuse(key, value, f"vissl_lite reads {', '.join(SOURCES)} (and its bundled digits); "
                                f"no counterpart for {', '.join(unknown)}")
    else:
        conv.keep(key, value)


# VISSL catalog names whose train split size is known: engine_name=explain (the preview the
# converter prints) assumes it as DATA.TRAIN.NUM_SAMPLES until the data is there.
KNOWN_TRAIN_SIZES = {"imagenet1k_folder": 1_281_167, "imagenet1k_filelist": 1_281_167}


def dataset_names(conv: Conversion, key: str, value) -> None:
    split = key.split(".")[1]
    given = conv.get(f"DATA.{split}.DATA_PATHS")
    hint = "" if given else f": give DATA.{split}.DATA_PATHS=[/path/to/folder] when running"
    size = KNOWN_TRAIN_SIZES.get(value[0]) if split == "TRAIN" and value and len(value) == 1 else None
    if size:
        conv.translate(key, value, "DATA.TRAIN.NUM_SAMPLES", size,
                       f"{value[0]}'s size, assumed by engine_name=explain until the data is there; "
                       f"vissl_lite has no dataset catalog{hint}")
    else:
        conv.drop(key, value, f"vissl_lite has no dataset catalog{hint}")


def num_workers(conv: Conversion, key: str, value) -> None:
    """VISSL's one DATA.NUM_DATALOADER_WORKERS serves both splits; vissl_lite has one per split."""
    conv.translate(key, value, "DATA.TRAIN.NUM_DATALOADER_WORKERS", value)
    conv.translate(key, value, "DATA.TEST.NUM_DATALOADER_WORKERS", value)


def data_limit(conv: Conversion, key: str, value) -> None:
    if value == -1:
        conv.keep(key, value)
    else:
        conv.translate(key, value, key, value, "vissl_lite takes the first N images; VISSL samples them "
                                               "with DATA_LIMIT_SAMPLING")


def collate_function(conv: Conversion, key: str, value) -> None:
    if value in VIEW_COLLATORS:
        conv.drop(key, value, "vissl_lite's method makes its views itself")
    else:
        conv.refuse(key, value, f"no counterpart in vissl_lite (it collates as {', '.join(VIEW_COLLATORS)} do: "
                                "no mixup / cutmix, no patch masking)")


def transforms(conv: Conversion, key: str, value) -> None:
    split = key.split(".")[1]
    if split == "TEST":
        keys, done, dropped = eval_transforms(value)
        conv.set(key, in_schema_order(keys))
        for entry, became in done:
            conv.report.add("translated", f"{key}{entry}", became)
        for entry, written, why in dropped:
            conv.drop(f"{key}{entry}", written, why)
        return
    loss = conv.get_out("LOSS.name") or "cross_entropy"
    try:
        keys, done, approximated = train_transforms(value, loss)
    except Unsupported as err:
        conv.refuse(key, [e.get("name") if isinstance(e, dict) else e for e in value or []], str(err))
        return
    conv.set(key, in_schema_order(keys))
    for entry, became in done:
        conv.report.add("translated", f"{key}{entry}", became)
    for our_key, vissl, ours in approximated:
        conv.report.differences.append(Difference(
            our_key, vissl, ours, "vissl_lite's two-view methods draw every view alike", reproducible=False))


def in_schema_order(keys: dict) -> dict:
    """TRANSFORMS keys in the order docs/config_reference.md lists them."""
    order = [f.name for f in fields(TransformsConfig)]
    return {k: keys[k] for k in sorted(keys, key=order.index)}

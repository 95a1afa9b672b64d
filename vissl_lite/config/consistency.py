"""Checks that span several keys or look at the file system: ordered ranges, per-channel
lists, options that exclude each other, and paths that must exist or be writable.

They run after the per-key schema checks and before any work, so a run never starts (or
half-writes a run directory) on a config that cannot work.
"""

import os
from pathlib import Path

from ..errors import ConfigError
from ..models.trunks import input_channels, trunk_section


def check_consistency(cfg) -> None:
    training = cfg.engine_name == "train"
    hooks = cfg.HOOKS
    test_used = hooks.KNN_MONITOR.ENABLED or hooks.ONLINE_LINEAR_PROBE.ENABLED or cfg.LOSS.name == "cross_entropy"
    for split in ("TRAIN", "TEST") if test_used else ("TRAIN",):
        _check_split(cfg.DATA[split], f"DATA.{split}", cfg.MODEL.TRUNK, training)
    _check_optimizer(cfg.OPTIMIZER)
    if training:  # explain reads no data and writes no checkpoint
        _check_paths(cfg)


def _check_split(split, key: str, trunk, training: bool) -> None:
    channels, channels_key = input_channels(trunk), f"MODEL.TRUNK.{trunk_section(trunk)}.INPUT_CHANNELS"
    t = split.TRANSFORMS
    for name in ("CROP_SCALE", "LOCAL_CROP_SCALE", "BLUR_SIGMA"):
        low, high = t[name]
        if low > high:
            raise ConfigError(f"{key}.TRANSFORMS.{name}", [low, high], "[low, high] with low <= high")
    for name in ("MEAN", "STD"):
        if len(t[name]) not in (1, channels):
            raise ConfigError(f"{key}.TRANSFORMS.{name}", list(t[name]),
                              f"1 value or {channels} ({channels_key}), one per channel")
    if len(split.DATA_SOURCES) != 1:
        raise ConfigError(f"{key}.DATA_SOURCES", list(split.DATA_SOURCES),
                          "exactly one source per split: [digits], [synthetic] or [disk_folder]")
    if split.DATA_SOURCES[0] == "disk_folder":
        if len(split.DATA_PATHS) != 1 and (training or split.DATA_PATHS):
            raise ConfigError(f"{key}.DATA_PATHS", list(split.DATA_PATHS), "[a folder] for disk_folder")
        if training and not Path(split.DATA_PATHS[0]).is_dir():
            raise ConfigError(f"{key}.DATA_PATHS[0]", split.DATA_PATHS[0],
                              "an existing folder laid out root/class/image", "no such folder")


def _check_optimizer(opt) -> None:
    if opt.use_larc and opt.name.lower() == "lars":
        raise ConfigError("OPTIMIZER.use_larc", True, "false with OPTIMIZER.name=lars",
                          "LARS already adapts each layer's rate; LARC around it would adapt twice")
    head = opt.head_optimizer_params
    if opt.construct_single_param_group_only and (head.use_different_lr or head.use_different_wd):
        which = "use_different_lr" if head.use_different_lr else "use_different_wd"
        raise ConfigError(f"OPTIMIZER.head_optimizer_params.{which}", True,
                          "false with OPTIMIZER.construct_single_param_group_only=true",
                          "a single group has no separate head settings")


def _writable_dir(path: Path) -> str:
    """'' when `path` is (or can be created as) a writable folder, else the reason."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return "no existing parent folder"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return ""


def _check_paths(cfg) -> None:
    if cfg.CHECKPOINT.DIR:
        reason = _writable_dir(Path(cfg.CHECKPOINT.DIR))
        if reason:
            raise ConfigError("CHECKPOINT.DIR", cfg.CHECKPOINT.DIR, "a folder this process can create and write",
                              reason)
    init = cfg.MODEL.WEIGHTS_INIT.PARAMS_FILE
    if init and not Path(init).is_file():
        raise ConfigError("MODEL.WEIGHTS_INIT.PARAMS_FILE", init, "an existing vissl_lite checkpoint file",
                          "no such file")

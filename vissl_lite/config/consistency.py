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
        _check_split(cfg.DATA[split], f"DATA.{split}", cfg.MODEL.TRUNK, training or cfg.engine_name == "augmentations")
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
                          "exactly one source per split: [digits], [synthetic], [disk_folder], [disk_filelist] or [manifest]")
    _check_files(split, key, channels, channels_key, training)


# Image-file sources: what their one DATA_PATHS entry is.
_FILE_SOURCES = {"disk_folder": ("a folder", Path.is_dir), "disk_filelist": ("a .npy file of paths", Path.is_file),
                 "manifest": ("a .txt or .csv file of path[,label] lines", Path.is_file)}


def _check_files(split, key: str, channels: int, channels_key: str, reading: bool) -> None:
    source, t = split.DATA_SOURCES[0], split.TRANSFORMS
    if split.LABEL_PATHS and source != "disk_filelist":
        raise ConfigError(f"{key}.LABEL_PATHS", list(split.LABEL_PATHS), f"[] with {source} (labels of disk_filelist only)")
    if source not in _FILE_SOURCES:
        return
    what, exists = _FILE_SOURCES[source]
    if len(split.DATA_PATHS) != 1 and (reading or split.DATA_PATHS):
        raise ConfigError(f"{key}.DATA_PATHS", list(split.DATA_PATHS), f"[{what}] for {source}")
    if len(split.LABEL_PATHS) > 1:
        raise ConfigError(f"{key}.LABEL_PATHS", list(split.LABEL_PATHS), "[] or [a .npy file of integer labels]")
    if reading:
        for name, paths, what_it_is, test in (("DATA_PATHS", split.DATA_PATHS, what, exists),
                                              ("LABEL_PATHS", split.LABEL_PATHS, "a .npy file of labels", Path.is_file)):
            if paths and not test(Path(paths[0])):
                raise ConfigError(f"{key}.{name}[0]", paths[0], f"an existing {what_it_is.removeprefix('a ')}",
                                  "no such " + ("folder" if test is Path.is_dir else "file"))
    if channels not in (1, 3):
        raise ConfigError(channels_key, channels, f"1 (L) or 3 (RGB) with {source}: image files decode to those")
    if t.RESIZE_SIZE is not None and t.RESIZE_SIZE < t.CROP_SIZE:
        raise ConfigError(f"{key}.TRANSFORMS.RESIZE_SIZE", t.RESIZE_SIZE,
                          f"null or at least CROP_SIZE ({t.CROP_SIZE}): the centre crop is cut from the resized image")


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
        raise ConfigError("MODEL.WEIGHTS_INIT.PARAMS_FILE", init, "an existing weights file",
                          "no such file")

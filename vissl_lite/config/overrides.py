"""A look at the command line and the experiment files it picks before Hydra composes them, so
a misspelt key, a wrong type or a bad value gets our one-line message (full key, value, what is
allowed, close match) instead of Hydra's merge error."""

from pathlib import Path
from typing import List, Sequence

from omegaconf import OmegaConf

from ..errors import ConfigError
from .validate import check_key_path, check_partial


def _search_dirs(overrides, conf_dir: Path) -> List[Path]:
    """conf/ first, then every file:// entry of hydra.searchpath (users' own experiment folders)."""
    dirs = [conf_dir]
    for override in overrides:
        if override.key_or_group == "hydra.searchpath" and isinstance(override.value(), list):
            dirs += [Path(entry[len("file://"):]) for entry in override.value()
                     if isinstance(entry, str) and entry.startswith("file://")]
    return dirs


def find_config_choice(dirs: Sequence[Path], group: str, choice: str) -> Path:
    """The file <dir>/<group>/<choice>.yaml of the first search dir that has it, or a ConfigError
    naming the choices available."""
    for folder in dirs:
        if (folder / group / f"{choice}.yaml").is_file():
            return folder / group / f"{choice}.yaml"
    available = sorted({str(p.relative_to(d / group).with_suffix("")) for d in dirs for p in (d / group).rglob("*.yaml")})
    if group == "config":  # presets are merged with +config/optimization=..., not chosen here
        available = [a for a in available if not a.startswith("optimization/")]
    raise ConfigError(group, choice, "one of " + ", ".join(available),
                      f"no file {group}/{choice}.yaml in {', '.join(map(str, dirs))}")


def check_experiment_file(path: Path) -> None:
    """Check the keys an experiment or preset file sets, naming the file in the message."""
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as err:  # a YAML syntax error: say where
        raise yaml_error(path, err) from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), data, "a YAML mapping of config keys")
    if "config" in data and isinstance(data["config"], dict):
        raise ConfigError(str(path), "a `config:` root", "vissl_lite's top-level sections (OPTIMIZER, DATA, ...)",
                          f"a VISSL-format file: {CONVERTER}")
    data.pop("defaults", None)
    try:
        check_partial(data, origin=str(path))
    except ConfigError as err:
        if not _looks_like_vissl(data):
            raise
        raise ConfigError(str(path), f"VISSL's format (first at {err.key})",
                          "vissl_lite's top-level sections (OPTIMIZER, DATA, ...)", CONVERTER) from None


def yaml_error(path: Path, err: Exception) -> ConfigError:
    """`FILE:LINE:COLUMN: got <that line>; allowed: valid YAML (the parser's words)`, the place
    where the parser stopped, counted from 1 as editors count (PyYAML's marks count from 0)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is None:
        return ConfigError(str(path), "<unreadable YAML>", "valid YAML", str(err).splitlines()[0])
    lines = Path(path).read_text(errors="replace").splitlines()
    text = lines[mark.line].strip() if mark.line < len(lines) else "<end of file>"
    words = " ".join(w for w in (getattr(err, "problem", None), getattr(err, "context", None)) if w)
    context = getattr(err, "context_mark", None)
    if context is not None and context is not mark:
        words += f" started at line {context.line + 1}, column {context.column + 1}"
    return ConfigError(f"{path}:{mark.line + 1}:{mark.column + 1}", text, "valid YAML", words)


# The one-line pointer every VISSL-format file gets instead of a key-by-key fight.
CONVERTER = "convert it with `python -m vissl_lite.convert FILE -o OUT.yaml` (vissl-lite-convert)"


def _looks_like_vissl(data: dict) -> bool:
    """A VISSL file with its `config:` root taken off: VISSL's TRANSFORMS list, or a top-level
    key only VISSL has."""
    splits = data["DATA"] if isinstance(data.get("DATA"), dict) else {}
    transforms_list = any(isinstance(s, dict) and isinstance(s.get("TRANSFORMS"), list) for s in splits.values())
    return transforms_list or bool({"VERBOSE", "TEST_ONLY", "TEST_MODEL", "METERS", "TRAINER"} & set(data))


def check_override_keys(args: Sequence[str], conf_dir: Path) -> None:
    """Raise ConfigError for an override whose key the schema does not know or whose value it
    does not allow, or for a config-group choice (config=..., +config/optimization=...) whose
    file is missing or sets a bad key."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    candidates = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except HydraException:
        return  # Hydra reports syntax errors itself, with their position
    dirs = _search_dirs(overrides, conf_dir)
    if not any(a in ("-m", "--multirun") for a in args):
        check_run_dir_name(overrides)
    for override in overrides:
        key = override.key_or_group
        if (key == "config" or key.startswith("config/")) and isinstance(override.value(), str):
            check_experiment_file(find_config_choice(dirs, key, override.value()))
            continue
        if override.is_delete() or override.package is not None:
            continue  # '~key' by Hydra
        if key.split(".")[0] == "hydra" or "/" in key or key == "config":
            continue  # Hydra's own settings and config-group choices
        value = override.value()
        checkable = not override.is_sweep_override() and not (isinstance(value, str) and "${" in value)
        check_key_path(key, value, check_value=checkable)


def check_run_dir_name(overrides) -> None:
    """The default run directory ends in the overrides joined (Hydra's override_dirname, the
    experiment choice left out); a folder name past the file system's 255 bytes cannot be made."""
    if any(o.key_or_group == "hydra.run.dir" for o in overrides):
        return
    task = sorted(o.input_line for o in overrides
                  if o.input_line and not o.key_or_group.startswith("hydra") and o.key_or_group != "config")
    name = ",".join(task)
    if len(name.encode()) > 255:
        raise ConfigError("hydra.run.dir", f"outputs/<experiment>/{name}",
                          "a run directory whose folder names fit in 255 bytes",
                          f"these overrides name a {len(name.encode())}-byte folder; set hydra.run.dir=<a folder>")

"""A look at the command line before Hydra composes it, so that a misspelt key gets our message
(full key, close match, the keys allowed there) instead of Hydra's bare 'not in struct'."""

from pathlib import Path
from typing import Sequence

from ..errors import ConfigError
from .validate import check_key_path


def check_config_choice(conf_dir: Path, group: str, choice: str) -> None:
    """Raise ConfigError naming the available files when conf/<group>/<choice>.yaml is missing."""
    folder = conf_dir / group
    if (folder / f"{choice}.yaml").is_file():
        return
    available = sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))
    if group == "config":  # presets are merged with +config/optimization=..., not chosen here
        available = [a for a in available if not a.startswith("optimization/")]
    raise ConfigError(group, choice, "one of " + ", ".join(available), f"no file {folder / choice}.yaml")


def check_override_keys(args: Sequence[str], conf_dir: Path) -> None:
    """Raise ConfigError for a `key=value` override whose key the schema does not know, or a
    config-group choice (config=..., +config/optimization=...) with no file behind it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    candidates = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except HydraException:
        return  # Hydra reports syntax errors itself, with their position
    for override in overrides:
        key = override.key_or_group
        if (key == "config" or key.startswith("config/")) and isinstance(override.value(), str):
            check_config_choice(conf_dir, key, override.value())
            continue
        if override.is_add() or override.is_delete() or override.package is not None:
            continue  # '+key' additions are checked after composition; '~key' by Hydra
        if key.split(".")[0] == "hydra" or "/" in key or key == "config":
            continue  # Hydra's own settings and config-group choices
        check_key_path(key, override.value())

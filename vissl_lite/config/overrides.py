"""A look at the command line before Hydra composes it, so that a misspelt key gets our message
(full key, close match, the keys allowed there) instead of Hydra's bare 'not in struct'."""

from typing import Sequence

from .validate import check_key_path


def check_override_keys(args: Sequence[str]) -> None:
    """Raise ConfigError for a `key=value` override whose key the schema does not know."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    candidates = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except HydraException:
        return  # Hydra reports syntax errors itself, with their position
    for override in overrides:
        key = override.key_or_group
        if override.is_add() or override.is_delete() or override.package is not None:
            continue  # '+key' additions are checked after composition; '~key' by Hydra
        if key.split(".")[0] == "hydra" or "/" in key or key == "config":
            continue  # Hydra's own settings and config-group choices
        check_key_path(key)

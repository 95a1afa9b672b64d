"""Config sections arrive as DictConfig (from Hydra), dataclasses (from users' scripts) or dicts."""

import dataclasses

from omegaconf import DictConfig, ListConfig, OmegaConf


def plain(section):
    """The section as plain Python containers."""
    if isinstance(section, (DictConfig, ListConfig)):
        return OmegaConf.to_container(section, resolve=True)
    if dataclasses.is_dataclass(section):
        return dataclasses.asdict(section)
    return list(section) if isinstance(section, (list, tuple)) else dict(section)

"""From a composed DictConfig (or overrides) to the validated, inferred config."""

from pathlib import Path
from typing import TYPE_CHECKING, Sequence, Tuple

from omegaconf import DictConfig

if TYPE_CHECKING:  # torch-free at import time
    from .infer import Inferred


SCHEMA_NAME = "vissl_lite_schema"


def _conf_dir() -> Path:
    """The config tree: package data in an installed vissl_lite, conf/ beside it in a checkout."""
    packaged = Path(__file__).resolve().parents[1] / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf"


CONF_DIR = _conf_dir()


def register_schema() -> None:
    """Put the typed schema into Hydra's ConfigStore, where conf/defaults.yaml names it."""
    from hydra.core.config_store import ConfigStore

    from .schema import VisslLiteConfig

    ConfigStore.instance().store(name=SCHEMA_NAME, node=VisslLiteConfig)


def resolve(cfg: DictConfig) -> Tuple[DictConfig, "Inferred"]:
    """validate -> infer: the config every builder and engine works from."""
    # Imported here: they pull in torch, which the command line's first checks do without.
    from .infer import infer_config, resolve_world_size
    from .validate import validate_config

    cfg = validate_config(cfg)
    world_size, source = resolve_world_size(cfg)
    return infer_config(cfg, world_size, source)


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose conf/defaults.yaml with command-line style overrides, as run.py does (for
    scripts, notebooks and tests; no run directory is created)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return hydra_compose(config_name="defaults", overrides=list(overrides))

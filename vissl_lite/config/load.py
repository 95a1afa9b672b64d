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
    from omegaconf import OmegaConf

    from .schema import VisslLiteConfig

    node = OmegaConf.structured(VisslLiteConfig)
    open_free_form_mappings(node)
    ConfigStore.instance().store(name=SCHEMA_NAME, node=node)


def open_free_form_mappings(node: DictConfig) -> None:
    """Let the command line add keys to the schema's free-form mappings (Dict[str, X] fields,
    e.g. OPTIMIZER.paramwise.custom_keys) without Hydra's `+`: Hydra applies overrides in
    struct mode, which refuses a new key even where the schema takes any name. Their values
    keep their types; the keys of the dataclass sections stay closed."""
    import typing

    from omegaconf import OmegaConf

    for key in node.keys():
        child = node._get_node(key)
        if not isinstance(child, DictConfig) or child._is_none() or child._is_missing():
            continue
        if typing.get_origin(child._metadata.ref_type) is dict:
            OmegaConf.set_struct(child, False)
        else:
            open_free_form_mappings(child)


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

    from .schedule_layers import restack_schedules

    register_schema()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        cfg = hydra_compose(config_name="defaults", overrides=list(overrides))
    restack_schedules(cfg, overrides, CONF_DIR)
    return cfg

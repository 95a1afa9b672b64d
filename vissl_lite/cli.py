"""The command line: Hydra composes, we validate and infer, then the chosen engine runs.

`python run.py ...` and the `vissl-lite` console script both land in `main`.
"""

import contextlib
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .errors import CheckpointError, ConfigError, TrainingError
from .config.load import CONF_DIR, register_schema, resolve
from .config.overrides import check_override_keys


@contextlib.contextmanager
def config_errors_reported():
    """A bad config ends the run with a one-line message and exit status 2; an unusable
    checkpoint or a non-finite loss with status 1. No traceback unless HYDRA_FULL_ERROR=1."""
    try:
        yield
    except (ConfigError, CheckpointError, TrainingError) as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        kind = "config error" if isinstance(err, ConfigError) else "error"
        print(f"vissl_lite: {kind}: {err}", file=sys.stderr)
        sys.exit(2 if isinstance(err, ConfigError) else 1)


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="defaults")
def _run(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from .engine import run_engine

    hydra_cfg = HydraConfig.get()

    def record_config() -> None:
        """Hydra's .hydra/ files, written once this process owns the run directory (defaults.yaml
        turns Hydra's own early writing off, so that a refused second launch changes nothing)."""
        folder = Path(hydra_cfg.runtime.output_dir) / ".hydra"
        folder.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, folder / "config.yaml")
        OmegaConf.save(OmegaConf.create({"hydra": hydra_cfg}), folder / "hydra.yaml")
        OmegaConf.save(hydra_cfg.overrides.task, folder / "overrides.yaml")

    with config_errors_reported():
        from .config.schedule_layers import restack_schedules

        # hydra.searchpath (a user's experiment folder) is among Hydra's own overrides, not the task's
        restack_schedules(cfg, [*hydra_cfg.overrides.hydra, *hydra_cfg.overrides.task], CONF_DIR)
        resolved, inferred = resolve(cfg)
        run_engine(resolved, inferred, hydra_cfg.runtime.output_dir, on_lock=record_config)


def main() -> None:
    with config_errors_reported():
        check_override_keys(sys.argv[1:], CONF_DIR)
    register_schema()
    _run()

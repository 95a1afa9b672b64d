"""vissl_lite's stable Python API, for notebooks and scripts: the same composition, checks and
builders as `python run.py`, one function each. These names and signatures stay; the modules
behind them may move.

    from vissl_lite import api

    cfg = api.resolve(api.compose(["config=pretrain/simclr/simclr_digits", "OPTIMIZER.name=adamw"]))
    model = api.build_model(cfg)
    groups = api.build_param_groups(cfg, model)            # [{name, params, param_names, lr_mult, ...}]
    wrapper = api.build_optim_wrapper(cfg, model, steps_per_epoch=11)
    lr = api.build_schedule(cfg.OPTIMIZER.param_schedulers.lr, num_epochs=100, steps_per_epoch=11)
    report = api.explain(cfg)                               # what engine_name=explain prints, as a dict

A bad config raises vissl_lite.errors.ConfigError, whose message is the one-line message the
command line prints.
"""

import tempfile
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch import nn

__all__ = ["build_model", "build_optim_wrapper", "build_param_groups", "build_schedule", "compose", "explain",
           "resolve"]


def compose(overrides: Sequence[str] = ()) -> DictConfig:
    """conf/defaults.yaml composed with command-line style overrides (`config=...`, `KEY=VALUE`,
    `+config/optimization=...`), as `python run.py OVERRIDES` composes it; nothing is checked yet
    and no run directory is made."""
    from .config.load import compose as compose_config

    return compose_config(overrides)


def resolve(cfg: DictConfig) -> DictConfig:
    """The checked config every builder takes: validated against the schema (defaults filled
    in), then inferred for one process (global batch, auto LR scaling, the head's defaults).
    Raises ConfigError naming the key, as the command line does."""
    from .config.load import resolve as resolve_config

    return resolve_config(cfg)[0]


def build_model(cfg: DictConfig) -> nn.Module:
    """The trunk + heads model of MODEL (random weights; MODEL.WEIGHTS_INIT is not read)."""
    from .models import build_model as build

    return build(cfg.MODEL)


def build_param_groups(cfg: DictConfig, model: nn.Module) -> List[Dict]:
    """The parameter groups of OPTIMIZER over `model` (VISSL's flags and MMEngine's paramwise;
    keys: docs/optimizers.md), with MODEL.NON_TRAINABLE_PARAMS left out."""
    from .optim.build import build_param_groups as build

    return build(cfg.OPTIMIZER, model, cfg.MODEL.NON_TRAINABLE_PARAMS)


def build_optim_wrapper(cfg: DictConfig, model: nn.Module, steps_per_epoch: int):
    """The model's OptimWrapper as training builds it: optimizer (LARC included) over the groups,
    schedules applied for step 0, accumulation, clipping and AMP from MODEL, the parameters of
    MODEL.TEMP_FROZEN_PARAMS_ITER_MAP held still. `steps_per_epoch` counts optimizer steps."""
    from .optim.build_wrapper import build_optim_wrapper as build
    from .optim.build_wrapper import wrapper_options

    return build(cfg.OPTIMIZER, model, steps_per_epoch, non_trainable_params=cfg.MODEL.NON_TRAINABLE_PARAMS,
                 temp_frozen_params=cfg.MODEL.TEMP_FROZEN_PARAMS_ITER_MAP, **wrapper_options(cfg.MODEL))


def build_schedule(section: Mapping, num_epochs: int, steps_per_epoch: int, param_name: str = "lr",
                   key: str = "schedule") -> np.ndarray:
    """The value for every optimizer step k = 0 .. num_epochs x steps_per_epoch - 1 of a
    schedule section in any dialect (VISSL's types, `name: mmengine`, `name: mmcv`), a dict or
    a config node. `param_name` is what it schedules (lr, weight_decay, momentum), `key` names
    it in errors. Its values are taken as written: auto LR scaling is applied by `resolve`,
    which knows the global batch, so pass a resolved config's section for the scaled values."""
    from .optim.schedules import build_step_schedule

    if isinstance(section, DictConfig):
        section = OmegaConf.to_container(section, resolve=True)
    schedule = build_step_schedule(section, key, num_epochs, steps_per_epoch, param_name=param_name)
    return np.asarray(schedule.values(np.arange(schedule.total_steps)))


def explain(cfg: DictConfig, run_dir: Optional[str] = None) -> dict:
    """engine_name=explain on `cfg` (composed or resolved): builds the model and optimizer, reads
    no data (the dataset is counted, or DATA.TRAIN.NUM_SAMPLES assumed), prints the groups,
    the LR scaling and every schedule, and returns the report. Resolved as engine_name=explain
    resolves: the world size is DISTRIBUTED.NUM_NODES x NUM_PROC_PER_NODE (a preview). Its
    files go to `run_dir`, or to a temporary folder that is removed."""
    from .config.load import resolve as resolve_config
    from .engine.explain import explain as run_explain

    resolved, inferred = resolve_config(OmegaConf.merge(cfg, {"engine_name": "explain"}))
    if run_dir is not None:
        return run_explain(resolved, inferred, run_dir)
    with tempfile.TemporaryDirectory() as folder:
        return run_explain(resolved, inferred, folder)

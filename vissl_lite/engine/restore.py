"""Starting a run from saved state: resuming the latest checkpoint of the run, or initialising
the model from another run's weights (MODEL.WEIGHTS_INIT)."""

import logging
from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError
from . import checkpoint as ckpt

log = logging.getLogger("vissl_lite")


def resume(folder: Path, cfg, model, wrappers, method, aug_gen, steps_per_epoch: int, total_steps: int,
           global_batch_size: int, env, modules=None) -> int:
    """Load the latest good checkpoint in `folder` into the run; return the step to continue at.
    `modules` are other trained modules saved under their names (the online linear probe)."""
    found = ckpt.load_latest(folder)
    if found is None:
        return 0
    state, path = found
    weights_only = cfg.CHECKPOINT.LOAD_WEIGHTS_ONLY
    ckpt.load_model_weights(model, state["model"], str(path), strict=not weights_only)
    if not weights_only:
        saved = state["optim_wrappers"]
        if set(saved) != set(wrappers):
            raise CheckpointError(f"{path} holds optimizers {sorted(saved)}, this run has {sorted(wrappers)} "
                                  "(set CHECKPOINT.LOAD_WEIGHTS_ONLY=true to take the model weights only)")
        for name, wrapper in wrappers.items():
            ckpt.check_optimizer_layout(saved[name]["optimizer"], wrapper.optimizer, f"{path} ({name})")
        wrappers.load_state_dict(saved)
        method.load_state_dict(state["method"])
        for name, module in (modules or {}).items():
            ckpt.load_model_weights(module, state[name], f"{path} ({name})", strict=True)
    step = state["step"]
    if (state["steps_per_epoch"], state["world_size"]) == (steps_per_epoch, env.world_size):
        ckpt.restore_rng(state["rng"][env.rank], aug_gen)
    else:
        # Another world size or batch: keep the position in epochs, i.e. the fraction of
        # training when num_epochs is unchanged. The data order continues at that epoch point.
        step = round(state["step"] * steps_per_epoch / state["steps_per_epoch"])
        log.warning("resuming %s with a different shape: step %d of %d (world size %d, global batch %d) -> "
                    "step %d of %d (world size %d, global batch %d); LR scaling is recomputed for the new batch",
                    path, state["step"], state["total_steps"], state["world_size"], state["global_batch_size"],
                    step, total_steps, env.world_size, global_batch_size)
    wrappers.set_step(step)
    log.info("resumed from %s at optimizer step %d of %d", path, step, total_steps)
    return step


def init_weights(model, weights_cfg) -> None:
    """MODEL.WEIGHTS_INIT: start from a checkpoint's model weights (the trunk only, or all)."""
    path = Path(weights_cfg.PARAMS_FILE)
    if not path.is_file():
        raise ConfigError("MODEL.WEIGHTS_INIT.PARAMS_FILE", str(path), "an existing vissl_lite checkpoint file")
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)["model"]
    except Exception as err:
        raise ConfigError("MODEL.WEIGHTS_INIT.PARAMS_FILE", str(path), "a readable vissl_lite checkpoint",
                          f"{type(err).__name__}: {err}") from None
    if weights_cfg.TRUNK_ONLY:
        trunk = {k[len("trunk."):]: v for k, v in weights.items() if k.startswith("trunk.")}
        ckpt.load_model_weights(model.trunk, trunk, f"{path} (trunk)", weights_cfg.STRICT)
    else:
        ckpt.load_model_weights(model, weights, str(path), weights_cfg.STRICT)
    log.info("initialised %s from %s", "the trunk" if weights_cfg.TRUNK_ONLY else "the model", path)

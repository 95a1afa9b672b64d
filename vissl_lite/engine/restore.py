"""Starting a run from saved state: resuming the latest checkpoint of the run, or initialising
the model from a weights file in any known layout (MODEL.WEIGHTS_INIT)."""

import logging
from pathlib import Path

from omegaconf import OmegaConf

from ..errors import CheckpointError, ConfigError
from ..models.layouts import model_heads, read_trunk, vissl_lite_model, vissl_model
from ..models.weight_files import SUFFIXES
from ..models.weights import apply_vissl_keys, fit_tensors, load_fitted
from . import checkpoint as ckpt

log = logging.getLogger("vissl_lite")


def resume(folder: Path, cfg, model, wrappers, method, aug_gen, steps_per_epoch: int, total_steps: int,
           global_batch_size: int, env, modules=None) -> int:
    """Load the latest good checkpoint in `folder` into the run; return the step to continue at.
    `modules` are other trained modules saved under their names (the online linear probe)."""
    found = ckpt.load_latest(folder, ckpt.live_sharding(model, wrappers))  # read into this run's shardings
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
        check_optimizer_types(state.get("config"), cfg, list(wrappers), path)
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


# The config section of each optimizer wrapper a checkpoint holds.
OPTIMIZER_SECTIONS = {"model": "OPTIMIZER", "online_linear_probe": "HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER"}


def check_optimizer_types(saved_config, cfg, wrapper_names, path) -> None:
    """Refuse, in one line, optimizer state saved by another optimizer type: torch would fail
    inside its own load (an SGD state has no Adam `step`) or misread the buffers. MMEngine's
    spellings (AdamW) and ours (adamw) name the same optimizer."""
    if not saved_config:
        return
    saved_cfg = OmegaConf.create(saved_config)
    for name in wrapper_names:
        key = f"{OPTIMIZER_SECTIONS.get(name, name)}.name"
        before, now = OmegaConf.select(saved_cfg, key), OmegaConf.select(cfg, key)
        if before is not None and now is not None and str(before).lower() != str(now).lower():
            raise CheckpointError(f"{path} was saved with {key}={before}, this run has {key}={now}: optimizer "
                                  "state does not carry over to another optimizer (set "
                                  "CHECKPOINT.LOAD_WEIGHTS_ONLY=true to take the model weights only)")


def init_weights(model, weights_cfg) -> None:
    """MODEL.WEIGHTS_INIT: start the trunk (and with TRUNK_ONLY false the heads) from a weights
    file in any layout of models/layouts.py; the log names the layout found and how many of the
    trunk's tensors were loaded."""
    key = "MODEL.WEIGHTS_INIT"
    path = Path(weights_cfg.PARAMS_FILE)
    if not (path.is_file() or (path / ".metadata").is_file()):
        raise ConfigError(f"{key}.PARAMS_FILE", str(path), "an existing weights file or sharded checkpoint folder",
                          "no such file")
    try:
        content = ckpt.read_checkpoint_content(path)
    except ValueError as err:
        raise ConfigError(f"{key}.PARAMS_FILE", str(path), f"a weights file ({' '.join(SUFFIXES)})", str(err)) from None
    try:
        content = apply_vissl_keys(content, weights_cfg.STATE_DICT_KEY_NAME, weights_cfg.REMOVE_PREFIX,
                                   weights_cfg.APPEND_PREFIX)
    except ValueError as err:
        raise ConfigError(f"{key}.STATE_DICT_KEY_NAME", weights_cfg.STATE_DICT_KEY_NAME,
                          "a key of the file, or empty", str(err)) from None
    try:
        layout, trunk_tensors, dropped = read_trunk(content, weights_cfg.FORMAT, weights_cfg.PART)
    except ValueError as err:
        option = "PART" if "no part" in str(err) else "FORMAT"
        raise ConfigError(f"{key}.{option}", weights_cfg[option], "a layout and part the file has", str(err)) from None
    skip = list(weights_cfg.SKIP_LAYERS)
    fit = _fit(model.trunk, trunk_tensors, skip, "trunk.", weights_cfg.STRICT, f"{path} ({layout.name})", "trunk")
    log.info("weights: format found: %s, %s%s", layout.name, layout.description,
             f", part {weights_cfg.PART}" if weights_cfg.PART != "auto" else "")
    log.info("weights: loaded %d of %d trunk tensors from %s%s%s%s", fit.loaded, fit.total, path,
             f" (pos_embed resized {fit.resized})" if fit.resized else "",
             f"; {len(fit.skipped)} skipped by SKIP_LAYERS" if fit.skipped else "",
             f"; left out as not trunk: {len(dropped)} ({', '.join(dropped[:4])}{' ...' if len(dropped) > 4 else ''})"
             if dropped else "")
    if not weights_cfg.TRUNK_ONLY:
        if layout.name not in ("vissl_lite", "vissl"):
            raise ConfigError(f"{key}.TRUNK_ONLY", False, f"true for a {layout.name} file",
                              "only vissl_lite and VISSL checkpoints hold heads of this model's kind")
        whole = vissl_lite_model(content, weights_cfg.PART) if layout.name == "vissl_lite" else vissl_model(content)
        heads = {k[len("heads."):]: v for k, v in model_heads(whole).items()}
        fit = _fit(model.heads, heads, skip, "heads.", weights_cfg.STRICT, f"{path} ({layout.name})", "heads")
        log.info("weights: loaded %d of %d head tensors from %s", fit.loaded, fit.total, path)


def freeze_trunk_epochs(wrapper, trunk, weights_cfg, steps_per_epoch: int, preview: bool = False) -> int:
    """MODEL.WEIGHTS_INIT.FREEZE_TRUNK_EPOCHS: the loaded trunk takes no update (no gradient step,
    no weight decay) for the first epochs x steps_per_epoch optimizer steps, through the wrapper's
    temporarily frozen parameters (gradients dropped, so DDP sees one graph every step); the
    trainer also keeps it in eval mode for those epochs so BatchNorm statistics stay. Returns
    the number of frozen steps. `preview` (explain) shows the freeze before the file is named."""
    epochs = weights_cfg.FREEZE_TRUNK_EPOCHS
    if epochs and not weights_cfg.PARAMS_FILE and not preview:
        raise ConfigError("MODEL.WEIGHTS_INIT.FREEZE_TRUNK_EPOCHS", epochs, "0 without MODEL.WEIGHTS_INIT.PARAMS_FILE",
                          "it holds a loaded trunk still; a fresh trunk would only lose epochs")
    if epochs:
        wrapper.temp_frozen.append((list(trunk.parameters()), epochs * steps_per_epoch))
    return epochs * steps_per_epoch


def _fit(module, tensors, skip, prefix: str, strict: bool, source: str, what: str):
    """Fit and load `tensors` into `module`; a problem stops the run when strict, else is logged."""
    fit = fit_tensors(module, tensors, skip, prefix)
    if fit.problems:
        listed = "; ".join(f"{label} ({len(names)}): {', '.join(prefix + n for n in names[:6])}"
                           f"{' ...' if len(names) > 6 else ''}" for label, names in fit.problems)
        hints = _trunk_hints(fit)
        if strict:
            raise CheckpointError(f"{source} does not fit this {what}: {listed}{hints} "
                                  "(set MODEL.WEIGHTS_INIT.STRICT=false to load what fits)")
        log.warning("loading %s non-strictly: %s%s", source, listed, hints)
    load_fitted(module, fit)
    return fit


def _trunk_hints(fit) -> str:
    """What to set when a ViT file and the trunk differ in layer scale or register tokens."""
    names = fit.missing + fit.unused
    hints = []
    if any(".ls1.gamma" in n for n in names):
        hints.append("the file and the trunk differ in layer scale (MODEL.TRUNK.VISION_TRANSFORMERS.LAYER_SCALE_INIT)")
    if any(n.startswith("reg_token") for n in names) or any(n.startswith("reg_token") for n in fit.mis_shaped):
        hints.append("they differ in register tokens (MODEL.TRUNK.VISION_TRANSFORMERS.NUM_REGISTER_TOKENS)")
    return "; " + "; ".join(hints) if hints else ""

"""OPTIMIZER section + model -> the OptimWrapper the engine steps: groups, optimizer (LARC
included), schedules (built once, applied for step 0 at once), accumulation, clipping, AMP."""

from typing import Optional, Sequence

from torch import nn

from ..errors import ConfigError
from .build import build_optimizer
from .group_scheduler import GroupScheduler
from .wrapper import AmpOptimWrapper, OptimWrapper


def build_optim_wrapper(optimizer_cfg, model: nn.Module, steps_per_epoch: int, *, amp: Optional[dict] = None,
                        clip_grad: Optional[dict] = None, non_trainable_params: Sequence[str] = (),
                        temp_frozen_params: Sequence = (), device_type: str = "cpu",
                        prefix: str = "OPTIMIZER",
                        temp_frozen_key: str = "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP",
                        schedules: Optional[dict] = None) -> OptimWrapper:
    """amp: None, or dict(dtype="bfloat16"|"float16", loss_scale="dynamic"|number); clip_grad:
    MMEngine's dict (see OptimWrapper); temp_frozen_params: [[name substring, steps], ...];
    prefix: the optimizer section's key path, for messages; schedules: the section's schedule
    definitions resolve built (Inferred.schedules[prefix]), built here when not given."""
    optimizer = build_optimizer(optimizer_cfg, model, non_trainable_params)
    scheduler = GroupScheduler(optimizer_cfg, steps_per_epoch, prefix, definitions=schedules)
    temp_frozen = resolve_temp_frozen(model, temp_frozen_params, temp_frozen_key)
    common = dict(accumulative_counts=optimizer_cfg.accumulation_steps, clip_grad=clip_grad, scheduler=scheduler,
                  temp_frozen=temp_frozen)
    if amp is not None:
        return AmpOptimWrapper(optimizer, device_type=device_type, **amp, **common)
    return OptimWrapper(optimizer, **common)


def wrapper_options(model_cfg) -> dict:
    """MODEL.AMP_PARAMS and MODEL.GRAD_CLIP (VISSL's keys) as the wrapper's MMEngine arguments."""
    amp, clip = model_cfg.AMP_PARAMS, model_cfg.GRAD_CLIP
    return {
        "amp": {"dtype": amp.AMP_DTYPE, "loss_scale": "dynamic" if amp.LOSS_SCALE is None else amp.LOSS_SCALE}
        if amp.USE_AMP else None,
        "clip_grad": {"max_norm": clip.MAX_NORM, "norm_type": clip.NORM_TYPE} if clip.USE_GRAD_CLIP else None,
    }


def resolve_temp_frozen(model: nn.Module, entries: Sequence, key: str):
    """[[name substring, steps], ...] -> [(parameters, steps)]. VISSL writes DDP names
    ('module.heads.0.prototypes0.weight'); the 'module.' prefix is ignored here."""
    resolved = []
    named = list(model.named_parameters())
    for i, entry in enumerate(entries):
        # A composed config holds each entry as a ListConfig: any non-string sequence is an entry.
        if (not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) != 2
                or not isinstance(entry[0], str) or isinstance(entry[1], bool) or not isinstance(entry[1], int)
                or entry[1] < 0):
            raise ConfigError(f"{key}[{i}]", entry, "[parameter name or substring, optimizer steps >= 0]")
        pattern = entry[0][len("module."):] if entry[0].startswith("module.") else entry[0]
        params = [p for name, p in named if pattern in name]
        if not params:
            raise ConfigError(f"{key}[{i}][0]", entry[0], "a substring of a parameter name",
                              f"e.g. {', '.join(name for name, _ in named[-3:])}")
        resolved.append((params, entry[1]))
    return resolved

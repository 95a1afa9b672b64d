"""The optimizer registry: OPTIMIZER.name -> a builder from (param groups, OPTIMIZER section).

Add your own with `@register_optimizer("name")` before the config is validated.
"""

from typing import Callable, Dict, List

import torch

from ..registry import registrar
from .lars import LARS

OptimizerBuilder = Callable[[List[dict], object], torch.optim.Optimizer]
OPTIMIZERS: Dict[str, OptimizerBuilder] = {}
register_optimizer = registrar(OPTIMIZERS, "optimizer")


# Groups carry their own lr and weight_decay; the values below are only torch's defaults for
# keys a group lacks. foreach=True picks torch's multi-tensor implementations on every device.
@register_optimizer("sgd")
def _sgd(groups, cfg):
    return torch.optim.SGD(groups, lr=0.0, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay, foreach=True)


@register_optimizer("adam")
def _adam(groups, cfg):
    return torch.optim.Adam(groups, lr=0.0, betas=tuple(cfg.betas), eps=cfg.eps, amsgrad=cfg.amsgrad,
                            weight_decay=cfg.weight_decay, foreach=True)


@register_optimizer("adamw")
def _adamw(groups, cfg):
    return torch.optim.AdamW(groups, lr=0.0, betas=tuple(cfg.betas), eps=cfg.eps, amsgrad=cfg.amsgrad,
                             weight_decay=cfg.weight_decay, foreach=True)


@register_optimizer("rmsprop")
def _rmsprop(groups, cfg):
    return torch.optim.RMSprop(groups, lr=0.0, momentum=cfg.momentum, eps=cfg.eps,
                               weight_decay=cfg.weight_decay, foreach=True)


@register_optimizer("lars")
def _lars(groups, cfg):
    return LARS(groups, lr=0.0, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                eta=cfg.lars_config.eta, exclude_bias_and_norm=cfg.lars_config.exclude_bias_and_norm)

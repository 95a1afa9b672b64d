"""The optimizer table: OPTIMIZER.name -> a builder from (param groups, OPTIMIZER section).

Each torch optimizer is one row (timm's OptimInfo style): its class and the OPTIMIZER keys it
reads. MMEngine's spellings, the class names (SGD, AdamW, RMSprop, ...), name the same rows.
Add your own with `@register_optimizer("name")` on a function (groups, OPTIMIZER section) ->
optimizer, before the config is validated.
"""

import inspect
from dataclasses import dataclass
from functools import reduce
from typing import Callable, Dict, List, Tuple

import torch

from ..errors import ConfigError
from ..registry import registrar
from .lars import LARS

OptimizerBuilder = Callable[[List[dict], object], torch.optim.Optimizer]


class OptimizerRegistry(dict):
    """name -> builder. `in` and `[]` also take an alias (MMEngine's class name); iteration
    and the names in messages are vissl_lite's own."""

    def __init__(self):
        super().__init__()
        self.aliases: Dict[str, str] = {}

    def __contains__(self, name) -> bool:
        return super().__contains__(self.aliases.get(name, name))

    def __getitem__(self, name) -> OptimizerBuilder:
        return super().__getitem__(self.aliases.get(name, name))

    def get(self, name, default=None):
        return super().get(self.aliases.get(name, name), default)


OPTIMIZERS = OptimizerRegistry()
register_optimizer = registrar(OPTIMIZERS, "optimizer")

# MMEngine registers every torch.optim class; these two cannot run in a loop that calls
# step() once per batch on dense gradients.
_LBFGS = "torch.optim.LBFGS needs a closure that re-evaluates the loss several times per step"
_SPARSE_ADAM = "torch.optim.SparseAdam takes only sparse gradients (nn.Embedding(sparse=True)); use adam"
REFUSED_OPTIMIZERS = {"lbfgs": _LBFGS, "LBFGS": _LBFGS, "sparse_adam": _SPARSE_ADAM, "SparseAdam": _SPARSE_ADAM}

_PAIRS = ("betas", "etas", "step_sizes")


@dataclass(frozen=True)
class OptimInfo:
    """A row: `cls` built over the groups with lr 0.0 and, for each key, the keyword argument
    named by the key's last component (lars_config.eta -> eta); a null value is left out, so
    the class's own default applies. foreach=True wherever the class takes it.
    """

    name: str
    cls: type
    keys: Tuple[str, ...]

    @property
    def takes_weight_decay(self) -> bool:
        return "weight_decay" in inspect.signature(self.cls).parameters

    def kwargs(self, optimizer_cfg) -> dict:
        out = {}
        for key in self.keys:
            value = reduce(getattr, key.split("."), optimizer_cfg)
            if value is None:
                continue
            out[key.rsplit(".", 1)[-1]] = tuple(value) if key in _PAIRS else value
        if "foreach" in inspect.signature(self.cls).parameters:
            out["foreach"] = True
        return out

    def __call__(self, groups: List[dict], optimizer_cfg) -> torch.optim.Optimizer:
        kwargs = self.kwargs(optimizer_cfg)
        try:
            return self.cls(groups, lr=0.0, **kwargs)
        except ValueError as err:  # torch's own range checks, e.g. Rprop's etas
            shown = {k: v for k, v in kwargs.items() if k != "foreach"}
            raise ConfigError("OPTIMIZER", shown, f"values torch.optim.{self.cls.__name__} accepts", str(err)) from err


TABLE = (
    OptimInfo("sgd", torch.optim.SGD, ("momentum", "dampening", "nesterov", "maximize")),
    OptimInfo("adam", torch.optim.Adam, ("betas", "eps", "amsgrad", "decoupled_weight_decay", "maximize")),
    OptimInfo("adamw", torch.optim.AdamW, ("betas", "eps", "amsgrad", "maximize")),
    OptimInfo("nadam", torch.optim.NAdam, ("betas", "eps", "momentum_decay", "decoupled_weight_decay", "maximize")),
    OptimInfo("radam", torch.optim.RAdam, ("betas", "eps", "decoupled_weight_decay", "maximize")),
    OptimInfo("adamax", torch.optim.Adamax, ("betas", "eps", "maximize")),
    OptimInfo("adagrad", torch.optim.Adagrad, ("lr_decay", "initial_accumulator_value", "eps", "maximize")),
    OptimInfo("adadelta", torch.optim.Adadelta, ("rho", "eps", "maximize")),
    OptimInfo("rmsprop", torch.optim.RMSprop, ("alpha", "eps", "momentum", "centered", "maximize")),
    OptimInfo("asgd", torch.optim.ASGD, ("lambd", "alpha", "t0", "maximize")),
    OptimInfo("rprop", torch.optim.Rprop, ("etas", "step_sizes", "maximize")),
    OptimInfo("lars", LARS, ("momentum", "lars_config.eta", "lars_config.exclude_bias_and_norm")),
)

for _row in TABLE:
    register_optimizer(_row.name)(_row)
    OPTIMIZERS.aliases[_row.cls.__name__] = _row.name

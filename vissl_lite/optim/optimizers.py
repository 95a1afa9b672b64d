"""The optimizer table: OPTIMIZER.name -> a builder from (param groups, OPTIMIZER section).

Each torch optimizer is one row (timm's OptimInfo style): its class and the OPTIMIZER keys it
reads. MMEngine's spellings, the class names (SGD, AdamW, RMSprop, ...), name the same rows.
Add your own with `@register_optimizer("name")` on a function (groups, OPTIMIZER section) ->
optimizer, before the config is validated.
"""

import inspect
from dataclasses import dataclass
from functools import reduce
from typing import Callable, List, Tuple

import torch

from ..errors import ConfigError
from ..registry import Registry
from .lars import LARS

OptimizerBuilder = Callable[[List[dict], object], torch.optim.Optimizer]


# name -> builder; MMEngine's class names (AdamW) are aliases of vissl_lite's names (adamw).
OPTIMIZERS = Registry("optimizer")
register_optimizer = OPTIMIZERS.register

# MMEngine registers every torch.optim class; these two cannot run in a loop that calls
# step() once per batch on dense gradients.
_LBFGS = "torch.optim.LBFGS needs a closure that re-evaluates the loss several times per step"
_SPARSE_ADAM = "torch.optim.SparseAdam takes only sparse gradients (nn.Embedding(sparse=True)); use adam"
REFUSED_OPTIMIZERS = {"lbfgs": _LBFGS, "LBFGS": _LBFGS, "sparse_adam": _SPARSE_ADAM, "SparseAdam": _SPARSE_ADAM}

_PAIRS = ("betas", "etas", "step_sizes")
VISSL_MOMENTUM = (("momentum", 0.9),)  # VISSL's default, where torch's is 0


@dataclass(frozen=True)
class OptimInfo:
    """A row: `cls` built over the groups with, for each key, the keyword argument named by the
    key's last component (lars_config.eta -> eta). The row declares its arguments: `keys`, their
    defaults the class signature's unless `defaults` says otherwise. A null value takes the
    default. foreach=True wherever the class takes it.
    """

    name: str
    cls: type
    keys: Tuple[str, ...]
    defaults: Tuple[Tuple[str, object], ...] = ()  # vissl_lite's own defaults (VISSL's momentum 0.9)

    @property
    def takes_weight_decay(self) -> bool:
        return "weight_decay" in inspect.signature(self.cls).parameters

    def default(self, key: str):
        own = dict(self.defaults)
        if key in own:
            return own[key]
        parameter = inspect.signature(self.cls).parameters.get(key.rsplit(".", 1)[-1])
        return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default

    def arguments(self, optimizer_cfg) -> dict:
        """{key: the written value, or the default} for each key the row takes."""
        out = {}
        for key in self.keys:
            value = reduce(getattr, key.split("."), optimizer_cfg)
            value = self.default(key) if value is None else value
            if value is not None:
                out[key] = tuple(value) if key in _PAIRS else value
        return out

    def kwargs(self, optimizer_cfg) -> dict:
        out = {key.rsplit(".", 1)[-1]: value for key, value in self.arguments(optimizer_cfg).items()}
        if "foreach" in inspect.signature(self.cls).parameters:
            out["foreach"] = True
        return out

    def __call__(self, groups: List[dict], optimizer_cfg, lr: float = 0.0) -> torch.optim.Optimizer:
        """The optimizer over `groups`; its `defaults` carry the base `lr` and the weight decay
        (the groups carry their own values)."""
        kwargs = self.kwargs(optimizer_cfg)
        if self.takes_weight_decay:
            kwargs["weight_decay"] = optimizer_cfg.weight_decay
        try:
            return self.cls(groups, lr=lr, **kwargs)
        except ValueError as err:  # torch's own range checks, e.g. Rprop's etas
            shown = {k: v for k, v in kwargs.items() if k != "foreach"}
            raise ConfigError("OPTIMIZER", shown, f"values torch.optim.{self.cls.__name__} accepts", str(err)) from err


TABLE = (
    OptimInfo("sgd", torch.optim.SGD, ("momentum", "dampening", "nesterov", "maximize"), VISSL_MOMENTUM),
    OptimInfo("adam", torch.optim.Adam, ("betas", "eps", "amsgrad", "decoupled_weight_decay", "maximize")),
    OptimInfo("adamw", torch.optim.AdamW, ("betas", "eps", "amsgrad", "maximize")),
    OptimInfo("nadam", torch.optim.NAdam, ("betas", "eps", "momentum_decay", "decoupled_weight_decay", "maximize")),
    OptimInfo("radam", torch.optim.RAdam, ("betas", "eps", "decoupled_weight_decay", "maximize")),
    OptimInfo("adamax", torch.optim.Adamax, ("betas", "eps", "maximize")),
    OptimInfo("adagrad", torch.optim.Adagrad, ("lr_decay", "initial_accumulator_value", "eps", "maximize")),
    OptimInfo("adadelta", torch.optim.Adadelta, ("rho", "eps", "maximize")),
    OptimInfo("rmsprop", torch.optim.RMSprop, ("alpha", "eps", "momentum", "centered", "maximize"), VISSL_MOMENTUM),
    OptimInfo("asgd", torch.optim.ASGD, ("lambd", "alpha", "t0", "maximize")),
    OptimInfo("rprop", torch.optim.Rprop, ("etas", "step_sizes", "maximize")),
    OptimInfo("lars", LARS, ("momentum", "lars_config.eta", "lars_config.exclude_bias_and_norm"), VISSL_MOMENTUM),
)
# The OPTIMIZER keys some optimizers take and others not (lars_config is LARS's own section).
OPTIMIZER_ARGUMENTS = tuple(dict.fromkeys(k for row in TABLE for k in row.keys if "." not in k))


def optimizer_arguments(optimizer_cfg) -> dict:
    """The chosen row's arguments with their defaults filled ({} for a user's own builder)."""
    row = OPTIMIZERS.get(optimizer_cfg.name)
    return row.arguments(optimizer_cfg) if isinstance(row, OptimInfo) else {}


def check_optimizer_arguments(optimizer_cfg, prefix: str = "OPTIMIZER") -> None:
    """A per-optimizer key written for an optimizer that does not take it is refused, naming
    what the chosen one takes (a user's own builder reads what it likes)."""
    row = OPTIMIZERS.get(optimizer_cfg.name)
    if not isinstance(row, OptimInfo):
        return
    for key in OPTIMIZER_ARGUMENTS:
        value = getattr(optimizer_cfg, key)
        if value is not None and key not in row.keys:
            raise ConfigError(f"{prefix}.{key}", value if not hasattr(value, "__len__") else list(value),
                              f"{row.name} takes {', '.join(row.keys)}", "null or unset for this optimizer")

for _row in TABLE:
    register_optimizer(_row.name)(_row)
    OPTIMIZERS.add_alias(_row.cls.__name__, _row.name)

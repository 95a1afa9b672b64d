"""MMEngine's paramwise rules, as its DefaultOptimWrapperConstructor applies them.

For a parameter with local name `local` (its last name component) owned by `module`:

    custom key   the longest key of custom_keys that is a substring of the parameter's name
                 (equal lengths: the alphabetically first) gives lr_mult = key.lr_mult and
                 decay_mult = key.decay_mult, each 1 when not given; the rules below are skipped;
    lr_mult      bias_lr_mult for a bias (local == "bias") of a module that is no norm layer;
    decay_mult   the first of these whose multiplier is set: norm_decay_mult for any parameter
                 of a norm layer, bias_decay_mult for a bias, dwconv_decay_mult for any
                 parameter of a depthwise Conv2d (groups == in_channels, 1-channel convs too),
                 flat_decay_mult for a 1-D parameter;
    otherwise 1. A multiplier left None is unset: the rule is skipped, not applied with 1.

E.g. {bias_decay_mult: 0, norm_decay_mult: null}: a BatchNorm bias gets decay_mult 0 (it is a
bias), its weight 1. MMEngine matches custom keys against "<module path>.<local name>", which is
".name" for a parameter of the root module; `match_name` reproduces that.
"""

from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple

from torch import nn

NORM_LAYERS: Tuple[type, ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*d, SyncBatchNorm, InstanceNorm*d, their Lazy forms
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,  # not a norm layer to MMEngine 0.10.7, which predates it
    nn.LocalResponseNorm,
    nn.CrossMapLRN2d,
)


def is_depthwise_conv(module: nn.Module) -> bool:
    """MMEngine's test: a Conv2d with groups == in_channels (so a 1-channel conv is one too)."""
    return isinstance(module, nn.Conv2d) and module.groups == module.in_channels


def match_name(name: str) -> str:
    """The string MMEngine matches custom keys against: f"{prefix}.{local}", prefix '' at the root."""
    return name if "." in name else "." + name


@dataclass(frozen=True)
class Multipliers:
    lr_mult: float = 1.0
    decay_mult: float = 1.0
    lr_rule: Optional[str] = None     # why lr_mult applies: "custom:<key>" or "bias_lr"
    decay_rule: Optional[str] = None  # why decay_mult applies: "custom:<key>", "norm_decay", ...


@dataclass(frozen=True)
class Paramwise:
    """MMEngine's paramwise_cfg, minus dcn_offset_lr_mult and bypass_duplicate (see docs)."""

    custom_keys: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    bias_lr_mult: Optional[float] = None
    bias_decay_mult: Optional[float] = None
    norm_decay_mult: Optional[float] = None
    dwconv_decay_mult: Optional[float] = None
    flat_decay_mult: Optional[float] = None

    def custom_key(self, name: str) -> Optional[str]:
        """The custom key that decides `name` (the full parameter name), or None."""
        matches = [k for k in self.custom_keys if k in match_name(name)]
        return min(matches, key=lambda k: (-len(k), k)) if matches else None

    def multipliers(self, name: str, local: str, param: nn.Parameter, module: nn.Module) -> Multipliers:
        """lr_mult and decay_mult of one parameter (see the module doc)."""
        key = self.custom_key(name)
        if key is not None:
            mults = self.custom_keys[key]
            tag = f"custom:{key}"
            return Multipliers(mults.get("lr_mult", 1.0), mults.get("decay_mult", 1.0), tag, tag)
        is_norm, is_bias = isinstance(module, NORM_LAYERS), local == "bias"
        lr_mult, lr_rule = 1.0, None
        if is_bias and not is_norm and self.bias_lr_mult is not None:
            lr_mult, lr_rule = self.bias_lr_mult, "bias_lr"
        decay_rules = (
            ("norm_decay", self.norm_decay_mult, is_norm),
            ("bias_decay", self.bias_decay_mult, is_bias),
            ("dwconv_decay", self.dwconv_decay_mult, is_depthwise_conv(module)),
            ("flat_decay", self.flat_decay_mult, param.ndim == 1),
        )
        for rule, mult, applies in decay_rules:
            if applies and mult is not None:
                return Multipliers(lr_mult, mult, lr_rule, rule)
        return Multipliers(lr_mult, 1.0, lr_rule, None)

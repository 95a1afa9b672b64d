"""Heads in VISSL's list form: MODEL.HEAD.PARAMS = [[name, {kwargs}], ...], applied in order."""

from typing import List, Sequence

from torch import nn

from ..errors import ConfigError
from ..config.plain import plain
from ..registry import Registry

HEADS = Registry("head")
register_head = HEADS.register


@register_head("mlp")
class MLP(nn.Module):
    """Linear layers through `dims`, each followed by BatchNorm1d (use_bn) and ReLU (use_relu),
    except the last when skip_last_layer_relu_bn (VISSL's default)."""

    def __init__(self, dims: Sequence[int], use_bn=False, use_relu=False, use_bias=True,
                 skip_last_layer_relu_bn=True):
        super().__init__()
        layers: List[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(d_in, d_out, bias=use_bias))
            if skip_last_layer_relu_bn and i == len(dims) - 2:
                break
            if use_bn:
                layers.append(nn.BatchNorm1d(d_out))
            if use_relu:
                layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def build_heads(params: Sequence, key: str = "MODEL.HEAD.PARAMS") -> nn.Sequential:
    heads = []
    for i, entry in enumerate(plain(params)):
        check_head_entry(entry, f"{key}[{i}]")
        name, kwargs = entry
        try:
            heads.append(HEADS[name](**kwargs))
        except TypeError as err:
            raise ConfigError(f"{key}[{i}][1]", kwargs, f"the arguments of the {name!r} head", str(err)) from None
    return nn.Sequential(*heads)


def check_head_entry(entry, key: str) -> None:
    if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[1], dict)):
        raise ConfigError(key, entry, '[name, {arguments}], e.g. ["mlp", {"dims": [512, 128]}]')
    HEADS.check(entry[0], f"{key}[0]")

"""Layer-wise LR decay: each parameter's depth comes from the trunk, so new trunks plug in.

A trunk takes part by exposing

    num_layers: int                      the depth of its last layer
    param_depth(name: str) -> int        depth of a parameter, by its trunk-local name, in
                                         [0, num_layers] (ResNet: stem 0, layerN N; a ViT:
                                         patch embedding and tokens 0, block i i + 1)

Every parameter outside the trunk (heads, a method's own parameters) has depth num_layers + 1,
and its LR multiplier is decay ** (num_layers + 1 - depth): 1 for the heads, decay for the
trunk's last layer, decay ** (num_layers + 1) for its stem. E.g. ResNet with decay 0.5: heads
x1, layer4 x0.5, layer3 x0.25, layer2 x0.125, layer1 x0.0625, stem x0.03125.
"""

from typing import Dict, Protocol, Tuple, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class LayeredTrunk(Protocol):
    num_layers: int

    def param_depth(self, name: str) -> int: ...


def trunk_of(model: nn.Module) -> nn.Module:
    """The model's `trunk` module (SSLModel), or the model itself when it has none."""
    trunk = getattr(model, "trunk", None)
    return trunk if isinstance(trunk, nn.Module) else model


def parameter_depths(model: nn.Module) -> Tuple[int, Dict[torch.Tensor, int]]:
    """(num_layers, {parameter: depth}) for every parameter of `model`."""
    trunk = trunk_of(model)
    if not isinstance(trunk, LayeredTrunk):
        raise ValueError(f"the trunk {type(trunk).__name__} does not report layer depths "
                         "(it needs num_layers and param_depth(name))")
    num_layers = int(trunk.num_layers)
    depths = {p: num_layers + 1 for p in model.parameters()}
    for name, p in trunk.named_parameters():
        depth = trunk.param_depth(name)
        if not 0 <= depth <= num_layers:
            raise ValueError(f"{type(trunk).__name__}.param_depth({name!r}) = {depth}, outside [0, {num_layers}]")
        depths[p] = depth
    return num_layers, depths


def layer_decay_multiplier(depth: int, num_layers: int, decay: float) -> float:
    """decay ** (num_layers + 1 - depth)."""
    return decay ** (num_layers + 1 - depth)

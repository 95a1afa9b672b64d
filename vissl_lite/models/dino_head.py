"""DINO's projection head (Caron et al. 2021), registered as `dino_head` with VISSL's arguments:

    z = MLP(x)                           in_dim -> hidden_dim (x num_layers - 1, GELU) -> bottleneck_dim
    out = (z / ||z||) W^T,  W_j = g_j v_j / ||v_j||   (a weight-normalised layer, no bias)

normalize_last_layer fixes every g_j at 1 (not trained): the output is then the cosine between
z and each prototype v_j. VISSL's recipe for ViT-S/16 trains g (normalize_last_layer false).
"""

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .heads import register_head


class WeightNormLinear(nn.Module):
    """y = x W^T with W = g * v / ||v|| row by row: torch's weight_norm(dim=0) written out, with
    VISSL's parameter names weight_v [out, in] and weight_g [out, 1] (so VISSL's
    TEMP_FROZEN_PARAMS_ITER_MAP entries '...prototypes0.weight_v' work unchanged)."""

    def __init__(self, in_features: int, out_features: int, train_norm: bool = True):
        super().__init__()
        # DINO / VISSL: v keeps nn.Linear's default init, g starts at 1.
        self.weight_v = nn.Parameter(nn.Linear(in_features, out_features, bias=False).weight.detach().clone())
        self.weight_g = nn.Parameter(torch.ones(out_features, 1), requires_grad=train_norm)

    def forward(self, x):
        return F.linear(x, self.weight_v * (self.weight_g / self.weight_v.norm(dim=1, keepdim=True)))


@register_head("dino_head")
class DINOHead(nn.Module):
    def __init__(self, in_dim: int, num_clusters: Sequence[int], use_bn: bool = False,
                 normalize_last_layer: bool = True, num_layers: int = 3, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256):
        super().__init__()
        if len(num_clusters) != 1:
            raise TypeError(f"num_clusters takes one output width, as VISSL's dino_head, e.g. [65536]; got {num_clusters}")
        if num_layers < 1:
            raise TypeError(f"num_layers must be >= 1, got {num_layers}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [bottleneck_dim]
        layers = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(d_in, d_out))
            if i < num_layers - 1:
                layers += [nn.BatchNorm1d(d_out)] if use_bn else []
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.prototypes0 = WeightNormLinear(bottleneck_dim, num_clusters[0], train_norm=not normalize_last_layer)
        self.out_dim = num_clusters[0]

    def forward(self, x):
        return self.prototypes0(F.normalize(self.mlp(x), dim=-1, p=2))

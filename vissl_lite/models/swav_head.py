"""SwAV's head (Caron et al. 2020), registered as `swav_head` with VISSL's arguments:

    z = MLP(x)                          dims[0] -> ... -> dims[-1] (Linear, BatchNorm1d if use_bn, ReLU)
    z = z / ||z||                       normalize_feats
    scores_j = z W_j^T                  one bias-free prototypes layer per entry of num_clusters

The forward returns (z, [scores_0, ...]): SwAV's queue keeps z, its loss reads the scores. With
unit-norm prototype rows (SwAV renormalises them before every step) each score is a cosine.
The layers are named as VISSL names them (`heads.0.prototypes0.weight`), so VISSL's
TEMP_FROZEN_PARAMS_ITER_MAP entries apply unchanged.
"""

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .heads import MLP, register_head


@register_head("swav_head")
class SwAVHead(nn.Module):
    def __init__(self, dims: Sequence[int], num_clusters: Sequence[int], use_bn: bool = False, use_bias: bool = True,
                 skip_last_bn: bool = True, normalize_feats: bool = True):
        super().__init__()
        if len(dims) < 1 or not num_clusters:
            raise TypeError(f"dims needs at least the input width and num_clusters at least one count, as VISSL's "
                            f"swav_head, e.g. dims [2048, 2048, 128], num_clusters [3000]; got {dims}, {num_clusters}")
        self.projection_head = MLP(dims, use_bn=use_bn, use_relu=True, use_bias=use_bias,
                                   skip_last_layer_relu_bn=skip_last_bn)
        self.normalize_feats = normalize_feats
        self.num_heads = len(num_clusters)
        for i, k in enumerate(num_clusters):
            self.add_module(f"prototypes{i}", nn.Linear(dims[-1], k, bias=False))
        self.out_dim = dims[-1]

    def prototypes(self) -> List[nn.Linear]:
        return [getattr(self, f"prototypes{i}") for i in range(self.num_heads)]

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Every prototype row to unit L2 norm, in place and outside autograd (VISSL's
        NormalizePrototypesHook)."""
        for layer in self.prototypes():
            layer.weight.copy_(F.normalize(layer.weight, dim=1, p=2))

    def forward(self, x) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        z = self.projection_head(x)
        if self.normalize_feats:
            z = F.normalize(z, dim=1, p=2)
        return z, [layer(z) for layer in self.prototypes()]

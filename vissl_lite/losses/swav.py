"""SwAV's swapped prediction loss (Caron et al. 2020), as VISSL's SwAVCriterion computes it.

For n crops of B images, prototype scores z_v [B, K] of crop v (cosines of normalised embeddings
and normalised prototypes), and the crops A = crops_for_assign that make targets:

    q_a      = sinkhorn_knopp([z_a; queue scores of a], epsilon, num_iters)[:B]    no gradient
    p_v      = softmax(z_v / temperature)
    loss     = mean over a in A of  mean over v != a of  mean_b  -sum_k q_a[b, k] log p_v[b, k]

The queue rows (embeddings of earlier batches scored against the current prototypes) only
enlarge the set that Sinkhorn partitions equally; their assignments are dropped. E.g. 2 + 6
crops with A = [0, 1]: each target is predicted by the 7 other crops, 14 terms in two means.
"""

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .sinkhorn import hard_assignments, sinkhorn_knopp


class SwAVLoss(nn.Module):
    """Called as loss(scores, num_crops, queue_scores=None, hard=False): scores [n B, K] in crop
    order (all images' crop 0, then crop 1, ...); queue_scores: None, or one [L, K] tensor per
    entry of crops_for_assign; hard: one-hot targets (VISSL's temp_hard_assignment_iters).

    Under torchrun set `all_reduce` (a sum over ranks) and `all_reduce_max`: Sinkhorn's sums and
    its shift then span every rank's samples.
    """

    def __init__(self, temperature: float = 0.1, epsilon: float = 0.05, num_iters: int = 3,
                 crops_for_assign: Sequence[int] = (0, 1), use_double_precision: bool = False):
        super().__init__()
        self.temperature, self.epsilon, self.num_iters = temperature, epsilon, num_iters
        self.crops_for_assign = list(crops_for_assign)
        self.dtype = torch.float64 if use_double_precision else torch.float32
        self.all_reduce: Optional[Callable] = None
        self.all_reduce_max: Optional[Callable] = None

    def forward(self, scores: torch.Tensor, num_crops: int, queue_scores: Optional[Sequence[torch.Tensor]] = None,
                hard: bool = False) -> torch.Tensor:
        b = scores.shape[0] // num_crops
        if b * num_crops != scores.shape[0] or max(self.crops_for_assign) >= num_crops:
            raise ValueError(f"expected {num_crops} crops of one batch with crops {self.crops_for_assign} among "
                             f"them; got scores of shape {tuple(scores.shape)}")
        crops = scores.to(self.dtype).reshape(num_crops, b, -1)
        log_p = F.log_softmax(crops / self.temperature, dim=-1)
        total = scores.new_zeros((), dtype=self.dtype)
        for i, a in enumerate(self.crops_for_assign):
            target_scores = crops[a] if queue_scores is None else torch.cat([crops[a], queue_scores[i].to(self.dtype)])
            q = sinkhorn_knopp(target_scores, self.epsilon, self.num_iters, self.all_reduce, self.all_reduce_max,
                               self.dtype)[:b]
            if hard:
                q = hard_assignments(q)
            others = [v for v in range(num_crops) if v != a]
            total = total + -(q.unsqueeze(0) * log_p[others]).sum(-1).mean(-1).mean()
        return (total / len(self.crops_for_assign)).float()

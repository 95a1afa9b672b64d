"""MoCo's InfoNCE against a queue of negatives (He et al. 2020; MoCo v2, Chen et al. 2020).

For a query q_b (the trained encoder on view 1), its key k_b (the momentum encoder on view 2)
and the queue's K earlier keys n_j, all L2-normalised:

    logits_b = [q_b . k_b, q_b . n_1, ..., q_b . n_K] / temperature
    loss     = mean_b  -log softmax(logits_b)[0]

E.g. with q . k = 1, two negatives at q . n = 0 and temperature 1:
loss = -log(e / (e + 2)) = 0.551.
"""

import torch
import torch.nn.functional as F
from torch import nn


class MoCoLoss(nn.Module):
    """Called as loss(query [B, D], key [B, D], queue [K, D]); key and queue take no gradient."""

    def __init__(self, temperature: float = 0.2):
        super().__init__()
        self.temperature = temperature

    def forward(self, query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor) -> torch.Tensor:
        q = F.normalize(query.float(), dim=1)
        k = F.normalize(key.detach().float(), dim=1)
        positive = (q * k).sum(dim=1, keepdim=True)
        negatives = q @ queue.detach().float().t()
        logits = torch.cat([positive, negatives], dim=1) / self.temperature
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))

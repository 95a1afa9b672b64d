"""Sinkhorn-Knopp equal-partition assignments (SwAV, Caron et al. 2020, Algorithm 1 and its
distributed_sinkhorn), over the samples of every rank.

With prototype scores S [B, K] on this rank (B_total rows over all ranks):

    Q = exp((S - max S) / epsilon)^T                          [K, B], max over every rank
    Q = Q / sum(Q)                                            sum over every rank
    repeat num_iters times:
        Q = Q / rowsum(Q) / K       rowsum over every rank:   each prototype holds 1/K of the mass
        Q = Q / colsum(Q) / B_total                           each sample holds 1/B_total
    return (B_total Q)^T                                      [B, K], every row sums to 1

Subtracting the global maximum changes no result (it scales every entry alike) but keeps exp
finite for any epsilon. E.g. S = [[1, 0], [1, 0]] (two samples that both prefer prototype 0),
epsilon 1, 1 iteration: rows are rebalanced to half the mass each, so both samples get
[1/2, 1/2]; a plain softmax would give [0.73, 0.27] to both.
"""

from typing import Callable, Optional

import torch

Collective = Optional[Callable[[torch.Tensor], torch.Tensor]]


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float, num_iters: int, all_reduce: Collective = None,
                   all_reduce_max: Collective = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Soft assignments [B, K] of this rank's B samples to K prototypes, computed in `dtype`.
    `all_reduce` (sum) and `all_reduce_max` span the ranks under torchrun; None: this process
    holds every sample."""
    s = scores.detach().to(dtype)
    shift = s.max()
    if all_reduce_max is not None:
        shift = all_reduce_max(shift)
    q = torch.exp((s - shift) / epsilon).t()  # [K, B]
    k = q.shape[0]
    sums = torch.stack([q.sum(), q.new_tensor(q.shape[1])])  # total mass and sample count in one call
    if all_reduce is not None:
        sums = all_reduce(sums)
    total, b_total = sums[0], sums[1]
    q = q / total
    for _ in range(num_iters):
        rows = q.sum(dim=1, keepdim=True)
        if all_reduce is not None:
            rows = all_reduce(rows)
        q = q / rows / k
        q = q / q.sum(dim=0, keepdim=True) / b_total
    return (q * b_total).t()


def hard_assignments(q: torch.Tensor) -> torch.Tensor:
    """One-hot rows at each row's largest entry (VISSL's temp_hard_assignment_iters)."""
    return torch.zeros_like(q).scatter_(1, q.argmax(dim=1, keepdim=True), 1.0)

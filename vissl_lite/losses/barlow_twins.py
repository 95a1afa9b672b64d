"""Barlow Twins' redundancy-reduction loss."""

import torch
from torch import nn


class BarlowTwinsLoss(nn.Module):
    """For 2N embeddings [view 1; view 2], each view standardised per dimension over the batch
    (BatchNorm without affine: biased variance, eps 1e-5), c = z1^T z2 / N (D x D):

        loss = scale_loss * ( sum_i (1 - c_ii)^2 + lambda_ * sum_{i != j} c_ij^2 )

    `all_reduce` (set by the engine under DDP) sums the batch statistics and c over ranks, so
    N processes with batch b compute the loss of one batch N*b.
    """

    def __init__(self, lambda_: float = 0.0051, scale_loss: float = 0.024, embedding_dim: int = 8192):
        super().__init__()
        self.lambda_, self.scale_loss, self.embedding_dim = lambda_, scale_loss, embedding_dim
        self.all_reduce = None

    def _sum(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.all_reduce is None else self.all_reduce(t)

    def forward(self, embeddings: torch.Tensor, labels=None) -> torch.Tensor:
        if embeddings.shape[1] != self.embedding_dim:
            raise ValueError(f"LOSS.barlow_twins_loss.embedding_dim is {self.embedding_dim} but the head "
                             f"outputs {embeddings.shape[1]} dimensions")
        e = embeddings.float()
        n_local = e.shape[0] // 2
        n = self._sum(torch.tensor(float(n_local), device=e.device))
        z1, z2 = e[:n_local], e[n_local:]
        standardised = []
        for z in (z1, z2):
            mean = self._sum(z.sum(0)) / n
            var = self._sum(((z - mean) ** 2).sum(0)) / n
            standardised.append((z - mean) / torch.sqrt(var + 1e-5))
        c = self._sum(standardised[0].t() @ standardised[1]) / n
        on_diag = (torch.diagonal(c) - 1).pow(2).sum()
        off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
        return self.scale_loss * (on_diag + self.lambda_ * off_diag)

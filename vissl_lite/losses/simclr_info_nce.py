"""SimCLR's NT-Xent loss."""

import torch
import torch.nn.functional as F
from torch import nn


class SimCLRInfoNCELoss(nn.Module):
    """For 2N embeddings [view 1 of the batch; view 2 of the batch], z = normalize(e):

        loss = mean_i  -log( exp(z_i.z_p(i) / T) / sum_{j != i} exp(z_i.z_j / T) )

    with p(i) the other view of the same image. `gather` (set by the engine under DDP) maps the
    local embeddings to all ranks' embeddings with gradients, so every rank contrasts against
    the global batch.
    """

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = temperature
        self.gather = None

    def forward(self, embeddings: torch.Tensor, labels=None) -> torch.Tensor:
        z = F.normalize(embeddings.float(), dim=1)
        n = z.shape[0] // 2
        views = z.view(2, n, -1)
        if self.gather is not None:
            views = torch.cat([self.gather(v).unsqueeze(0) for v in views.unbind(0)], 0)
            n = views.shape[1]
        z = views.reshape(2 * n, -1)
        logits = z @ z.t() / self.temperature
        logits.fill_diagonal_(float("-inf"))
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(logits, targets)

"""An online linear probe (as solo-learn has): a linear classifier trained during pretraining on
detached trunk features of the first view, with its own optimizer and schedule, so the
pretraining loss never sees it. Its test top-1 is logged as `online_linear_top1`; under torchrun
each rank scores its share of the TEST features gathered by the evaluation (evaluation.py)."""

import torch
import torch.nn.functional as F
from torch import nn


class OnlineLinearProbe(nn.Module):
    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features.detach().float())

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """The class with the largest logit, per row."""
        return self(features).argmax(1)

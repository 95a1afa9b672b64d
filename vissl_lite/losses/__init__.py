"""SSL losses by LOSS.name. Add your own with `@register_loss("name")` on a builder that takes
the LOSS section and returns an nn.Module called as loss(embeddings, labels)."""

from typing import Callable, Dict

import torch.nn.functional as F
from torch import nn

from ..registry import registrar
from .barlow_twins import BarlowTwinsLoss
from .simclr_info_nce import SimCLRInfoNCELoss

LOSSES: Dict[str, Callable] = {}
register_loss = registrar(LOSSES, "loss")


class CrossEntropyLoss(nn.Module):
    """Supervised cross entropy on the head's logits (linear evaluation)."""

    def forward(self, logits, labels):
        return F.cross_entropy(logits.float(), labels)


@register_loss("simclr_info_nce_loss")
def _simclr(loss_cfg):
    return SimCLRInfoNCELoss(loss_cfg.simclr_info_nce_loss.temperature)


@register_loss("barlow_twins_loss")
def _barlow_twins(loss_cfg):
    c = loss_cfg.barlow_twins_loss
    return BarlowTwinsLoss(c.lambda_, c.scale_loss, c.embedding_dim)


@register_loss("cross_entropy")
def _cross_entropy(loss_cfg):
    return CrossEntropyLoss()


def build_loss(loss_cfg) -> nn.Module:
    return LOSSES[loss_cfg.name](loss_cfg)


__all__ = ["LOSSES", "BarlowTwinsLoss", "SimCLRInfoNCELoss", "build_loss", "register_loss"]

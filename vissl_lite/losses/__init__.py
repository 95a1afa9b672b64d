"""SSL losses by LOSS.name. Add your own with `@register_loss("name")` on a builder that takes
the LOSS section and returns an nn.Module called as loss(embeddings, labels) (a method with its
own forward may call its loss otherwise: dino_loss, see engine/methods/dino.py)."""

import torch.nn.functional as F
from torch import nn

from ..registry import Registry
from .barlow_twins import BarlowTwinsLoss
from .dino import DINOLoss
from .moco import MoCoLoss
from .simclr_info_nce import SimCLRInfoNCELoss
from .swav import SwAVLoss

LOSSES = Registry("loss")
register_loss = LOSSES.register


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


@register_loss("dino_loss")
def _dino(loss_cfg):
    return DINOLoss(loss_cfg.dino_loss.student_temp)


@register_loss("swav_loss")
def _swav(loss_cfg):
    c = loss_cfg.swav_loss
    return SwAVLoss(c.temperature, c.epsilon, c.num_iters, c.crops_for_assign, c.use_double_precision)


@register_loss("moco_loss")
def _moco(loss_cfg):
    return MoCoLoss(loss_cfg.moco_loss.temperature)


@register_loss("cross_entropy")
def _cross_entropy(loss_cfg):
    return CrossEntropyLoss()


def build_loss(loss_cfg) -> nn.Module:
    return LOSSES[loss_cfg.name](loss_cfg)


__all__ = ["LOSSES", "BarlowTwinsLoss", "DINOLoss", "MoCoLoss", "SimCLRInfoNCELoss", "SwAVLoss", "build_loss",
           "register_loss"]

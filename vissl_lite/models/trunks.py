"""Trunks by MODEL.TRUNK.NAME, each built from its own section of MODEL.TRUNK.

A trunk maps images [B, C, H, W] to features [B, out_dim] and reports parameter depths for
layer-wise LR decay (num_layers, param_depth). Add one with `register_trunk(name, section)`
on a builder that takes MODEL.TRUNK and reads its own `section` of it.
"""

from torch import nn

from ..registry import Registry
from .resnet import build_trunk as build_resnet
from .vit import build_vit

# name -> (builder, the MODEL.TRUNK section it reads)
TRUNKS = Registry("trunk")


def register_trunk(name: str, section: str):
    def add(builder):
        TRUNKS.add(name, (builder, section))
        return builder

    return add


register_trunk("resnet", "RESNETS")(build_resnet)
register_trunk("vision_transformer", "VISION_TRANSFORMERS")(build_vit)


def trunk_section(trunk_cfg) -> str:
    """The name of the section of MODEL.TRUNK the chosen trunk reads (RESNETS, ...)."""
    return TRUNKS[trunk_cfg.NAME][1]


def input_channels(trunk_cfg) -> int:
    """Image channels the chosen trunk takes: the data pipeline loads and normalises that many."""
    return trunk_cfg[trunk_section(trunk_cfg)].INPUT_CHANNELS


def build_trunk(trunk_cfg) -> nn.Module:
    return TRUNKS[trunk_cfg.NAME][0](trunk_cfg)

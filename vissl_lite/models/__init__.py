"""Trunks (ResNet family, Vision Transformer), heads (MLP, DINO's), and the trunk + heads model."""

from . import dino_head  # noqa: F401  registers the "dino_head" head
from . import swav_head  # noqa: F401  registers the "swav_head" head
from .heads import HEADS, register_head
from .model import SSLModel, build_model
from .resnet import ResNet
from .trunks import TRUNKS, register_trunk
from .vit import VisionTransformer

__all__ = ["HEADS", "ResNet", "SSLModel", "TRUNKS", "VisionTransformer", "build_model", "register_head",
           "register_trunk"]

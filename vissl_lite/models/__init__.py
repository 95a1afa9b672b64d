"""Trunks (ResNet family), heads (MLP), and the trunk + heads model."""

from .heads import HEADS, register_head
from .model import SSLModel, build_model
from .resnet import ResNet

__all__ = ["HEADS", "ResNet", "SSLModel", "build_model", "register_head"]

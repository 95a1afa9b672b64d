"""The trunk + heads model every engine trains."""

from torch import nn

from ..errors import ConfigError

from .heads import build_heads
from .resnet import build_trunk


class SSLModel(nn.Module):
    """`trunk` maps images to features; `heads` (an nn.Sequential, maybe empty) maps features
    to what the loss consumes. Parameter groups tell trunk from head by these two modules."""

    def __init__(self, trunk: nn.Module, heads: nn.Sequential, freeze_trunk: bool = False):
        super().__init__()
        self.trunk, self.heads, self.freeze_trunk = trunk, heads, freeze_trunk
        if freeze_trunk:
            self.trunk.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_trunk:  # a frozen trunk also keeps its BatchNorm statistics
            self.trunk.eval()
        return self

    def forward(self, x, return_features: bool = False):
        """The heads' output, and with `return_features` also the trunk's features (one forward,
        so DDP sees a single call)."""
        features = self.trunk(x)
        out = self.heads(features)
        return (out, features) if return_features else out


def build_model(model_cfg) -> SSLModel:
    trunk = build_trunk(model_cfg.TRUNK)
    heads = build_heads(model_cfg.HEAD.PARAMS)
    first = next((m for m in heads.modules() if isinstance(m, nn.Linear)), None)
    if first is not None and first.in_features != trunk.out_dim:
        raise ConfigError("MODEL.HEAD.PARAMS[0][1].dims[0]", first.in_features,
                          f"{trunk.out_dim}, the width of the trunk's features")
    return SSLModel(trunk, heads, freeze_trunk=model_cfg.FEATURE_EVAL_SETTINGS.FREEZE_TRUNK)

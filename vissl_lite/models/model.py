"""The trunk + heads model every engine trains."""

import torch
from torch import nn

from ..errors import ConfigError

from .heads import build_heads
from .trunks import build_trunk


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
        so DDP sees a single call).

        `x` may be a list of crop batches of different sizes (multi-crop): the trunk runs once per
        run of consecutive same-size crops, the heads once on all their features concatenated in
        crop order (DINO's MultiCropWrapper); the features returned are the first crop's.
        """
        if isinstance(x, torch.Tensor):
            features = self.trunk(x)
            out = self.heads(features)
            return (out, features) if return_features else out
        features = torch.cat([self.trunk(torch.cat(group)) for group in same_size_runs(x)])
        out = self.heads(features)
        return (out, features[: len(x[0])]) if return_features else out


def same_size_runs(crops):
    """[[crops of one size], ...] keeping the order: [a8, b8, c4, d4, e8] -> [[a8, b8], [c4, d4], [e8]]."""
    runs = []
    for crop in crops:
        if runs and runs[-1][-1].shape[-2:] == crop.shape[-2:]:
            runs[-1].append(crop)
        else:
            runs.append([crop])
    return runs


def build_model(model_cfg) -> SSLModel:
    trunk = build_trunk(model_cfg.TRUNK)
    heads = build_heads(model_cfg.HEAD.PARAMS)
    first = next((m for m in heads.modules() if isinstance(m, nn.Linear)), None)
    if first is not None and first.in_features != trunk.out_dim:
        raise ConfigError("MODEL.HEAD.PARAMS[0][1].dims[0]", first.in_features,
                          f"{trunk.out_dim}, the width of the trunk's features")
    model = SSLModel(trunk, heads, freeze_trunk=model_cfg.FEATURE_EVAL_SETTINGS.FREEZE_TRUNK)
    frozen = set(model_cfg.NON_TRAINABLE_PARAMS)
    if not any(p.requires_grad and name not in frozen for name, p in model.named_parameters()):
        raise ConfigError("MODEL.FEATURE_EVAL_SETTINGS.FREEZE_TRUNK", model_cfg.FEATURE_EVAL_SETTINGS.FREEZE_TRUNK,
                          "a model with at least one trainable parameter",
                          "every parameter is frozen: the trunk by FREEZE_TRUNK or MODEL.NON_TRAINABLE_PARAMS, "
                          f"and MODEL.HEAD.PARAMS={list(model_cfg.HEAD.PARAMS)!r} leaves nothing else to train")
    return model

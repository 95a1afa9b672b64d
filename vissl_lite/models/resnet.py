"""ResNet trunks (He et al. 2016), written here because torchvision has no CPU build on these
machines. Parameter names follow torchvision (conv1, bn1, layer1..layer4) so checkpoints and
layer-wise LR decay read naturally."""

from typing import Callable, List

import torch
from torch import nn


def norm_layer(kind: str, groups: int) -> Callable[[int], nn.Module]:
    if kind == "BatchNorm":
        return nn.BatchNorm2d
    if kind == "SyncBatchNorm":
        return nn.SyncBatchNorm
    # GroupNorm: fall back to fewer groups where a narrow width does not divide evenly.
    return lambda channels: nn.GroupNorm(next(g for g in range(min(groups, channels), 0, -1) if channels % g == 0),
                                         channels)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inplanes, planes * self.expansion, stride, norm)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(inplanes, planes * self.expansion, stride, norm)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _downsample(inplanes, outplanes, stride, norm):
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), norm(outplanes))


LAYOUTS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
           50: (Bottleneck, [3, 4, 6, 3]), 101: (Bottleneck, [3, 4, 23, 3])}


class ResNet(nn.Module):
    """A ResNet trunk returning pooled features of size `out_dim`.

    small_image_stem swaps the 7x7/2 conv + max-pool for a 3x3/1 conv (CIFAR-style), which
    small inputs such as 8x8 digits need to keep any spatial extent.
    """

    def __init__(self, depth=50, width_multiplier=1.0, small_image_stem=False, input_channels=3,
                 norm="BatchNorm", groupnorm_groups=32):
        super().__init__()
        block, counts = LAYOUTS[depth]
        norm_fn = norm_layer(norm, groupnorm_groups)
        width = max(1, int(round(64 * width_multiplier)))
        if small_image_stem:
            self.conv1 = nn.Conv2d(input_channels, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(input_channels, width, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = norm_fn(width)
        self.relu = nn.ReLU(inplace=True)
        inplanes = width
        layers: List[nn.Module] = []
        for i, count in enumerate(counts):
            planes = width * 2**i
            blocks = []
            for j in range(count):
                blocks.append(block(inplanes, planes, 2 if (j == 0 and i > 0) else 1, norm_fn))
                inplanes = planes * block.expansion
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    # Layer-wise LR decay asks the trunk for depths (vissl_lite.optim.layer_decay).
    num_layers = 4

    def param_depth(self, name: str) -> int:
        """Depth of a parameter by its trunk-local name: the stem (conv1, bn1) 0, layerN.* N."""
        top = name.split(".", 1)[0]
        if top in ("conv1", "bn1"):
            return 0
        if top in ("layer1", "layer2", "layer3", "layer4"):
            return int(top[5:])
        raise ValueError(f"ResNet has no parameter {name!r}")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def build_trunk(trunk_cfg) -> ResNet:
    r = trunk_cfg.RESNETS
    return ResNet(depth=r.DEPTH, width_multiplier=r.WIDTH_MULTIPLIER, small_image_stem=r.SMALL_IMAGE_STEM,
                  input_channels=r.INPUT_CHANNELS, norm=r.NORM, groupnorm_groups=r.GROUPNORM_GROUPS)

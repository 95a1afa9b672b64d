"""SimCLR-style augmentation, batched on the training device (one kernel per op for the whole
batch, every image with its own random parameters), and DINO's multi-crop on top of it.

Random resized crop and flip are one affine `grid_sample`; colour jitter follows SimCLR
(brightness, contrast, saturation 0.8s and hue 0.2s in random order per batch); hue rotates
the chroma plane in YIQ space, a close, cheap stand-in for torchvision's HSV hue shift.
"""

import math
from typing import List, Sequence

import torch
import torch.nn.functional as F

_GRAY = (0.299, 0.587, 0.114)


class SSLAugment:
    """images float [B, C, H, W] in [0, 1] -> normalised views [B, C, S, S] (call twice for two
    views), or `multi_crop` for global + local crops."""

    def __init__(self, transforms_cfg, channels: int):
        t = transforms_cfg
        self.size, self.scale = t.CROP_SIZE, tuple(t.CROP_SCALE)
        self.hflip_p, self.strength = t.HFLIP_P, t.COLOR_DISTORTION_STRENGTH
        self.jitter_p, self.gray_p = t.COLOR_JITTER_P, t.GRAYSCALE_P
        self.blur_p, self.blur_sigma, self.solarize_p = t.BLUR_P, tuple(t.BLUR_SIGMA), t.SOLARIZE_P
        self.local_crops, self.local_size, self.local_scale = (t.LOCAL_CROPS_NUMBER, t.LOCAL_CROP_SIZE,
                                                               tuple(t.LOCAL_CROP_SCALE))
        self.crop_blur_p, self.crop_solarize_p = list(t.CROP_BLUR_P), list(t.CROP_SOLARIZE_P)
        self.channels = channels
        self.mean = per_channel(t.MEAN, channels, "DATA.TRAIN.TRANSFORMS.MEAN")
        self.std = per_channel(t.STD, channels, "DATA.TRAIN.TRANSFORMS.STD")

    def __call__(self, images: torch.Tensor, generator: torch.Generator = None) -> torch.Tensor:
        return self.view(images, generator, self.size, self.scale, self.blur_p, self.solarize_p)

    def multi_crop(self, images: torch.Tensor, num_global: int, generator: torch.Generator = None) -> List[torch.Tensor]:
        """DINO's multi-crop: `num_global` crops at CROP_SIZE (area in CROP_SCALE), then
        LOCAL_CROPS_NUMBER crops at LOCAL_CROP_SIZE (area in LOCAL_CROP_SCALE). Crop i is blurred
        with probability CROP_BLUR_P[i] and solarized with CROP_SOLARIZE_P[i] (a list's last value
        serves the later crops; an empty list means BLUR_P / SOLARIZE_P). E.g. DINO's
        [1.0, 0.1, 0.5]: the first global crop always blurred, the second rarely, locals half the time.
        """
        crops = []
        for i in range(num_global + self.local_crops):
            size, scale = (self.size, self.scale) if i < num_global else (self.local_size, self.local_scale)
            crops.append(self.view(images, generator, size, scale, per_crop(self.crop_blur_p, i, self.blur_p),
                                   per_crop(self.crop_solarize_p, i, self.solarize_p)))
        return crops

    def view(self, images, generator, size: int, scale, blur_p: float, solarize_p: float) -> torch.Tensor:
        x = self.crop_and_flip(images, generator, size, scale)
        if self.strength > 0 and self.jitter_p > 0:
            x = self.color_jitter(x, generator)
        if self.channels == 3 and self.gray_p > 0:
            x = _apply(x, self._rand(x, generator) < self.gray_p, _grayscale(x).expand_as(x))
        if blur_p > 0:
            x = self.gaussian_blur(x, generator, blur_p)
        if solarize_p > 0:
            x = _apply(x, self._rand(x, generator) < solarize_p, torch.where(x >= 0.5, 1 - x, x))
        return normalize(x, self.mean, self.std)

    @staticmethod
    def _rand(x, generator, *shape):
        return torch.rand(x.shape[0], *shape, device=x.device, generator=generator)

    def crop_and_flip(self, images, generator, size: int, scale):
        b = images.shape[0]
        # RandomResizedCrop: area fraction uniform in `scale`, aspect ratio log-uniform in
        # [3/4, 4/3] narrowed to the ratios where the crop fits ([area, 1/area]); torchvision
        # gets there by rejection sampling, this draws every crop in one go.
        area = torch.empty(b, device=images.device).uniform_(*scale, generator=generator)
        lo = torch.clamp(torch.log(area), min=math.log(3 / 4))
        hi = torch.clamp(-torch.log(area), max=math.log(4 / 3))
        ratio = torch.exp(lo + (hi - lo) * torch.rand(b, device=images.device, generator=generator))
        w = torch.sqrt(area * ratio).clamp(max=1.0)  # as fractions of the image side
        h = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (torch.rand(b, device=images.device, generator=generator) * 2 - 1) * (1 - w)
        cy = (torch.rand(b, device=images.device, generator=generator) * 2 - 1) * (1 - h)
        flip = torch.where(self._rand(images, generator) < self.hflip_p, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3, device=images.device)
        theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
        theta[:, 1, 1], theta[:, 1, 2] = h, cy
        grid = F.affine_grid(theta, (b, images.shape[1], size, size), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def color_jitter(self, x, generator):
        s = self.strength
        apply = self._rand(x, generator) < self.jitter_p
        out = x
        for op in torch.randperm(4, device=x.device, generator=generator).tolist():
            if op == 0:  # brightness: x * U[1 - 0.8s, 1 + 0.8s]
                f = self._factor(x, 0.8 * s, generator)
                out = out * f
            elif op == 1:  # contrast: blend with the image's mean gray level
                f = self._factor(x, 0.8 * s, generator)
                mean = _grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
                out = (out - mean) * f + mean
            elif op == 2 and self.channels == 3:  # saturation: blend with grayscale
                f = self._factor(x, 0.8 * s, generator)
                gray = _grayscale(out)
                out = (out - gray) * f + gray
            elif op == 3 and self.channels == 3:  # hue: rotate chroma by U[-0.2s, 0.2s] turns
                angle = (self._rand(x, generator) * 2 - 1) * min(0.2 * s, 0.5) * 2 * math.pi
                out = _rotate_hue(out, angle)
            out = out.clamp(0, 1)
        return _apply(x, apply, out)

    def _factor(self, x, spread, generator):
        low = max(0.0, 1 - spread)
        return (low + self._rand(x, generator) * (1 + spread - low)).view(-1, 1, 1, 1)

    def gaussian_blur(self, x, generator, p: float):
        b, c, h, w = x.shape
        apply = self._rand(x, generator) < p
        # sigma is given for 224-pixel crops (SimCLR's 10% kernel); scale it with CROP_SIZE. Local
        # crops keep the global crops' sigma in pixels, as DINO's PIL blur does.
        lo, hi = self.blur_sigma
        sigma = (lo + self._rand(x, generator) * (hi - lo)) * (self.size / 224)
        radius = max(1, int(math.ceil(3 * hi * self.size / 224)))
        radius = max(1, min(radius, min(h, w) - 1))  # reflect padding needs radius < side
        offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None] ** 2))
        kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [b*c, k], separable
        flat = x.reshape(1, b * c, h, w)
        flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel[:, None, None, :], groups=b * c)
        flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel[:, None, :, None], groups=b * c)
        return _apply(x, apply, flat.reshape(b, c, h, w))


def per_crop(values: Sequence[float], i: int, default: float) -> float:
    """values[i], the last value past the end, `default` for an empty list."""
    return values[min(i, len(values) - 1)] if values else default


def per_channel(values, channels: int, key: str) -> torch.Tensor:
    """MEAN / STD as a [1, C, 1, 1] tensor; one value serves every channel."""
    values = list(values)
    if len(values) not in (1, channels):
        from ..errors import ConfigError

        raise ConfigError(key, values, f"1 or {channels} numbers (one per channel)")
    return torch.tensor(values * (channels // len(values))).view(1, channels, 1, 1)


def _apply(x, mask, transformed):
    return torch.where(mask.view(-1, 1, 1, 1), transformed, x)


def _grayscale(x):
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def _rotate_hue(x, angle):
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    cos, sin = torch.cos(angle).view(-1, 1, 1), torch.sin(angle).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], 1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq)


def normalize(x, mean, std):
    return (x - mean.to(x.device, x.dtype)) / std.to(x.device, x.dtype)


def center_view(images: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """The evaluation view: center crop to `size` (resize when smaller), normalised."""
    h, w = images.shape[-2:]
    if min(h, w) < size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    else:
        top, left = (h - size) // 2, (w - size) // 2
        images = images[..., top: top + size, left: left + size]
    return normalize(images, mean, std)

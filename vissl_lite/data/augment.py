"""SimCLR-style augmentation, batched on the training device (every image with its own random
parameters), and DINO's multi-crop on top of it.

Random resized crop and flip are one affine `grid_sample`; the photometric ops (data/photometric.py)
follow SimCLR's colour jitter (brightness, contrast, saturation 0.8s and hue 0.2s in random order
per batch; hue rotates the chroma plane in YIQ space, a close, cheap stand-in for torchvision's HSV
hue shift), then grayscale, blur, solarize.

Views of image files arrive already cropped and flipped (cut from the full image at decode
time, data/folder.py) as a ViewBatch; only the photometric ops run here, batched.
"""

import math
from typing import List, Sequence

import torch
import torch.nn.functional as F

from .photometric import Photometric
from .view_batch import ViewBatch


class SSLAugment:
    """images float [B, C, H, W] in [0, 1] -> normalised views [B, C, S, S] (call twice for two
    views), or `multi_crop` for global + local crops."""

    def __init__(self, transforms_cfg, channels: int):
        t = transforms_cfg
        self.size, self.scale = t.CROP_SIZE, tuple(t.CROP_SCALE)
        self.hflip_p, self.blur_p, self.solarize_p = t.HFLIP_P, t.BLUR_P, t.SOLARIZE_P
        self.local_crops, self.local_size, self.local_scale = (t.LOCAL_CROPS_NUMBER, t.LOCAL_CROP_SIZE,
                                                               tuple(t.LOCAL_CROP_SCALE))
        self.crop_blur_p, self.crop_solarize_p = list(t.CROP_BLUR_P), list(t.CROP_SOLARIZE_P)
        self.mean = per_channel(t.MEAN, channels, "DATA.TRAIN.TRANSFORMS.MEAN")
        self.std = per_channel(t.STD, channels, "DATA.TRAIN.TRANSFORMS.STD")
        # sigma is given for 224-pixel crops (SimCLR's 10% kernel); scale it with CROP_SIZE. Local
        # crops keep the global crops' sigma in pixels, as DINO's PIL blur does.
        sigma = tuple(v * self.size / 224 for v in t.BLUR_SIGMA)
        self.ops = Photometric(channels, t.COLOR_DISTORTION_STRENGTH, t.COLOR_JITTER_P, t.GRAYSCALE_P, sigma)

    def __call__(self, images, generator: torch.Generator = None) -> torch.Tensor:
        """One view of every image: `images` float [B, C, H, W] in [0, 1] (cropped here), or a
        ViewBatch of views cut at decode time (its next view, photometric ops only)."""
        if isinstance(images, ViewBatch):
            return self.photometric(images.next_raw(), generator, self.blur_p, self.solarize_p)
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
            blur_p, solarize_p = per_crop(self.crop_blur_p, i, self.blur_p), per_crop(self.crop_solarize_p, i, self.solarize_p)
            if isinstance(images, ViewBatch):  # cut at decode time, in this order (data/build.py crop_plan)
                crops.append(self.photometric(images.next_raw(), generator, blur_p, solarize_p))
                continue
            size, scale = (self.size, self.scale) if i < num_global else (self.local_size, self.local_scale)
            crops.append(self.view(images, generator, size, scale, blur_p, solarize_p))
        return crops

    def view(self, images, generator, size: int, scale, blur_p: float, solarize_p: float,
             normalise: bool = True) -> torch.Tensor:
        return self.photometric(self.crop_and_flip(images, generator, size, scale), generator, blur_p, solarize_p,
                                normalise)

    def photometric(self, x, generator, blur_p: float, solarize_p: float, normalise: bool = True) -> torch.Tensor:
        """Colour jitter, grayscale, blur, solarize (data/photometric.py), then normalisation
        (unless `normalise` is false: the preview's [0, 1] images) of cropped views [B, C, S, S]:
        float in [0, 1], changed in place, or uint8 (a ViewBatch's views, read as x / 255)."""
        if normalise:
            return self.ops(x, generator, blur_p, solarize_p, self.mean, self.std)
        return self.ops(x, generator, blur_p, solarize_p)

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


def normalize(x, mean, std, in_place: bool = False):
    mean, std = mean.to(x.device, x.dtype), std.to(x.device, x.dtype)
    return x.sub_(mean).div_(std) if in_place else (x - mean) / std


def center_view(images: torch.Tensor, size: int, mean, std) -> torch.Tensor:
    """The evaluation view: center crop to `size` (resize when smaller), normalised."""
    h, w = images.shape[-2:]
    if min(h, w) < size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    else:
        top, left = (h - size) // 2, (w - size) // 2
        images = images[..., top: top + size, left: left + size]
    return normalize(images, mean, std)

"""SimCLR-style augmentation, batched on the training device (one kernel per op for the whole
batch, every image with its own random parameters), and DINO's multi-crop on top of it.

Random resized crop and flip are one affine `grid_sample`; colour jitter follows SimCLR
(brightness, contrast, saturation 0.8s and hue 0.2s in random order per batch); hue rotates
the chroma plane in YIQ space, a close, cheap stand-in for torchvision's HSV hue shift.

Views of image files arrive already cropped and flipped (cut from the full image at decode
time, data/folder.py) as a ViewBatch; only the photometric ops run here, batched.
"""

import math
from typing import List, Sequence

import torch
import torch.nn.functional as F

from .view_batch import ViewBatch

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

    def __call__(self, images, generator: torch.Generator = None) -> torch.Tensor:
        """One view of every image: `images` float [B, C, H, W] in [0, 1] (cropped here), or a
        ViewBatch of views cut at decode time (its next view, photometric ops only)."""
        if isinstance(images, ViewBatch):
            return self.photometric(images.next_view(), generator, self.blur_p, self.solarize_p)
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
                crops.append(self.photometric(images.next_view(), generator, blur_p, solarize_p))
                continue
            size, scale = (self.size, self.scale) if i < num_global else (self.local_size, self.local_scale)
            crops.append(self.view(images, generator, size, scale, blur_p, solarize_p))
        return crops

    def view(self, images, generator, size: int, scale, blur_p: float, solarize_p: float,
             normalise: bool = True) -> torch.Tensor:
        return self.photometric(self.crop_and_flip(images, generator, size, scale), generator, blur_p, solarize_p,
                                normalise)

    def photometric(self, x, generator, blur_p: float, solarize_p: float, normalise: bool = True) -> torch.Tensor:
        """Colour jitter, grayscale, blur, solarize, then normalisation (unless `normalise` is
        false: the preview's [0, 1] images) of cropped views [B, C, S, S], a fresh tensor that
        is changed in place."""
        if self.strength > 0 and self.jitter_p > 0:
            x = self.color_jitter(x, generator)
        if self.channels == 3 and self.gray_p > 0:
            x = _apply_to(x, self._rand(x, generator) < self.gray_p, lambda v, i: v.copy_(_grayscale(v).expand_as(v)))
        if blur_p > 0:
            x = self.gaussian_blur(x, generator, blur_p)
        if solarize_p > 0:
            x = _apply_to(x, self._rand(x, generator) < solarize_p, lambda v, i: torch.where(v >= 0.5, 1 - v, v))
        return normalize(x, self.mean, self.std, in_place=True) if normalise else x

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
        """SimCLR's jitter, the four ops in one random order per batch, each clamped to [0, 1]."""
        s = self.strength
        apply = self._rand(x, generator) < self.jitter_p
        ops = []  # (op, its per-image parameter), drawn for every image in op order
        for op in torch.randperm(4, device=x.device, generator=generator).tolist():
            if op in (0, 1) or (op == 2 and self.channels == 3):
                ops.append((op, self._factor(x, 0.8 * s, generator)))
            elif op == 3 and self.channels == 3:  # hue: rotate chroma by U[-0.2s, 0.2s] turns
                ops.append((op, (self._rand(x, generator) * 2 - 1) * min(0.2 * s, 0.5) * 2 * math.pi))

        def jitter(out, chosen):
            for op, value in ops:
                value = value[chosen]
                if op == 0:  # brightness: x * f
                    out.mul_(value)
                elif op == 1:  # contrast: (x - m) f + m = x f + m (1 - f), m the image's mean gray level
                    mean = _grayscale(out.mean(dim=(2, 3), keepdim=True))
                    out.mul_(value).add_(mean * (1 - value))
                elif op == 2:  # saturation: (x - gray) f + gray
                    gray = _grayscale(out).mul_(1 - value)  # before out changes
                    out.mul_(value).add_(gray)
                else:
                    out = _rotate_hue(out, value)
                out.clamp_(0, 1)
            return out

        return _apply_to(x, apply, jitter)

    def _factor(self, x, spread, generator):
        low = max(0.0, 1 - spread)
        return (low + self._rand(x, generator) * (1 + spread - low)).view(-1, 1, 1, 1)

    def gaussian_blur(self, x, generator, p: float):
        c, h, w = x.shape[1:]
        apply = self._rand(x, generator) < p
        # sigma is given for 224-pixel crops (SimCLR's 10% kernel); scale it with CROP_SIZE. Local
        # crops keep the global crops' sigma in pixels, as DINO's PIL blur does.
        lo, hi = self.blur_sigma
        sigma = (lo + self._rand(x, generator) * (hi - lo)) * (self.size / 224)
        radius = max(1, int(math.ceil(3 * hi * self.size / 224)))
        radius = max(1, min(radius, min(h, w) - 1))  # reflect padding needs radius < side
        offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)

        def blur(v, chosen):
            b = v.shape[0]
            kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma[chosen][:, None] ** 2))
            kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # [b*c, k], separable
            flat = v.reshape(1, b * c, h, w)
            flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel[:, None, None, :], groups=b * c)
            flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel[:, None, :, None], groups=b * c)
            return flat.reshape(b, c, h, w)

        return _apply_to(x, apply, blur)


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


def _apply_to(x, mask, transform):
    """x with `transform(images, chosen)` applied to the images where `mask` [B] is true (`chosen`
    indexes per-image parameters drawn for the whole batch; `transform` may change `images` in
    place). On CUDA every image is transformed and the result picked with `where` (no host
    sync); on CPU only the chosen images are computed, in place in `x`."""
    if x.is_cuda:
        everyone = torch.arange(len(x), device=x.device)
        return torch.where(mask.view(-1, 1, 1, 1), transform(x.clone(), everyone), x)
    chosen = mask.nonzero().flatten()
    if len(chosen) == len(x):
        return transform(x, chosen)
    if len(chosen):
        x.index_copy_(0, chosen, transform(x.index_select(0, chosen), chosen))
    return x


def _grayscale(x):
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _rotate_hue(x, angle):
    """Rotate the (I, Q) chroma plane of YIQ by `angle` [B]: x <- T^-1 R(angle) T x, one 3x3 matrix
    per image applied in one batched product."""
    to_yiq = torch.tensor(_TO_YIQ, device=x.device, dtype=x.dtype)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.zeros(len(x), 3, 3, device=x.device, dtype=x.dtype)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
    matrix = torch.linalg.inv(to_yiq) @ rotation @ to_yiq
    b, c, h, w = x.shape
    return torch.bmm(matrix, x.reshape(b, c, h * w)).view(b, c, h, w)


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

"""Colour jitter, grayscale, Gaussian blur and solarization of a batch of views [B, C, S, S] in
[0, 1], every image with its own random parameters, then the normalisation.

The parameters of the whole batch are drawn first, in one fixed order (`Photometric.draw`), then
applied (`apply`): on CUDA to the whole batch at once, without a host synchronisation (an image
that an op passes over gets the op's neutral parameter: factor 1, the identity matrix, a one-tap
kernel, which leaves its pixels bitwise unchanged); on CPU chunk by chunk (about CHUNK_BYTES, one
224-pixel RGB view), so that the dozen passes of the ops over a chunk stay in the core's cache,
and an op that no image of the chunk draws is skipped.

With gray(x) = 0.299 R + 0.587 G + 0.114 B (ITU-R 601 luma) and x clamped to [0, 1] after each
jitter op:
    brightness  x f                                f ~ U[max(0, 1 - 0.8 s), 1 + 0.8 s]
    contrast    x f + mean(gray(x)) (1 - f)        f as brightness
    saturation  x f + gray(x) (1 - f)              f as brightness
    hue         x <- T^-1 R(a) T x                 T: RGB -> YIQ, R(a) rotates the (I, Q) plane,
                                                   a ~ U[-h, h] x 2 pi, h = min(0.2 s, 0.5)
    grayscale   gray(x) in every channel
    blur        separable Gaussian, sigma in pixels, taps |j| <= ceil(3 sigma) (0.27% of the mass
                left out), weights normalised over them, reflect padding
    solarize    1 - x where x >= 0.5
(s: COLOR_DISTORTION_STRENGTH; the jitter ops run in one random order per batch, as SimCLR's.)
"""

import math
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

CHUNK_BYTES = 640 << 10  # one float 224 x 224 RGB view (602 KB) per chunk, fitting a 1 MiB L2 with its temporaries
GRAY = (0.299, 0.587, 0.114)
_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


@dataclass
class Draw:
    """One batch's parameters (first dimension B); None: the op is off for the whole batch."""

    order: List[str]  # the jitter ops, in the order they run
    factors: Dict[str, torch.Tensor]  # op -> [B, 1, 1, 1] factor, "hue" -> [B, 3, 3] matrix (neutral where not drawn)
    jittered: Optional[torch.Tensor]  # [B] bool
    gray: Optional[torch.Tensor]  # [B] bool
    blur: Optional[torch.Tensor]  # [B, 2 R + 1] kernel (the one-tap identity where not blurred)
    blurred: Optional[torch.Tensor]  # [B] bool
    solarize: Optional[torch.Tensor]  # [B] bool

    def rows(self, start: int, stop: int) -> "Draw":
        cut = (lambda t: None if t is None else t[start:stop])
        return replace(self, factors={k: v[start:stop] for k, v in self.factors.items()}, jittered=cut(self.jittered),
                       gray=cut(self.gray), blur=cut(self.blur), blurred=cut(self.blurred), solarize=cut(self.solarize))


class Photometric:
    """The ops of the module docstring with their settings; `sigma` is the blur's sigma range in
    pixels of the views it is applied to."""

    def __init__(self, channels: int, strength: float, jitter_p: float, gray_p: float, sigma: Tuple[float, float]):
        self.channels, self.strength, self.jitter_p, self.gray_p, self.sigma = channels, strength, jitter_p, gray_p, sigma

    def __call__(self, x: torch.Tensor, generator, blur_p: float, solarize_p: float,
                 mean: Optional[torch.Tensor] = None, std: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x [B, C, S, S], float in [0, 1] (changed in place) or uint8 (read as x / 255) -> float
        views augmented and, given mean and std, normalised."""
        draw = self.draw(x, generator, blur_p, solarize_p)
        if mean is not None:  # on the views' device and dtype once, not per chunk
            dtype = x.dtype if x.is_floating_point() else torch.float32
            mean, std = mean.to(x.device, dtype), std.to(x.device, dtype)
        if x.is_cuda:
            return self.apply(_unit(x), draw, mean, std, skip=False)
        out = x if x.is_floating_point() else torch.empty(x.shape, device=x.device)
        step = max(1, CHUNK_BYTES // max(1, x[0].numel() * out.element_size()))
        for start in range(0, len(x), step):
            chunk = _unit(x[start: start + step])  # a uint8 chunk becomes float here, in cache
            done = self.apply(chunk, draw.rows(start, start + step), mean, std, skip=True)
            if done is not chunk or chunk.data_ptr() != out[start].data_ptr():  # else changed in place already
                out[start: start + step] = done
        return out

    # ----------------------------------------------------------------------- parameters

    def draw(self, x: torch.Tensor, generator, blur_p: float, solarize_p: float) -> Draw:
        """Every parameter of the batch, in this order: jitter (who, the op order, each op's
        values), grayscale, blur (who, sigma), solarize; each a draw for every image."""
        b, device, dtype = len(x), x.device, x.dtype if x.is_floating_point() else torch.float32
        rand = lambda: torch.rand(b, device=device, generator=generator)  # noqa: E731
        order, factors, jittered = [], {}, None
        if self.strength > 0 and self.jitter_p > 0:
            jittered = rand() < self.jitter_p
            for op in (JITTER_OPS[i] for i in torch.randperm(4, device=device, generator=generator).tolist()):
                if op in ("saturation", "hue") and self.channels != 3:
                    continue
                if op == "hue":
                    angle = (rand() * 2 - 1) * min(0.2 * self.strength, 0.5) * 2 * math.pi
                    eye = torch.eye(3, device=device, dtype=dtype).expand(b, 3, 3)
                    factors[op] = torch.where(jittered.view(-1, 1, 1), hue_matrix(angle.to(dtype)), eye)
                else:
                    spread = 0.8 * self.strength
                    low = max(0.0, 1 - spread)
                    f = low + rand() * (1 + spread - low)
                    factors[op] = torch.where(jittered, f, torch.ones_like(f)).to(dtype).view(-1, 1, 1, 1)
                order.append(op)
        gray = rand() < self.gray_p if self.channels == 3 and self.gray_p > 0 else None
        blur = blurred = None
        if blur_p > 0:
            blurred = rand() < blur_p
            lo, hi = self.sigma
            blur = gaussian_kernels(lo + rand() * (hi - lo), blurred, max_radius(hi, x.shape[-2:])).to(dtype)
        solarize = rand() < solarize_p if solarize_p > 0 else None
        return Draw(order, factors, jittered, gray, blur, blurred, solarize)

    # ----------------------------------------------------------------------- the ops

    def apply(self, x: torch.Tensor, draw: Draw, mean=None, std=None, skip: bool = False) -> torch.Tensor:
        """The drawn ops on x (changed in place where an op allows it; the result is returned).
        `skip`: look at the draws on the host and leave out the ops no image takes (CPU)."""
        takes = (lambda mask: mask is not None and (not skip or bool(mask.any())))  # noqa: E731
        if takes(draw.jittered):
            for op in draw.order:
                x = jitter(x, op, draw.factors[op]).clamp_(0, 1)
        if takes(draw.gray):
            x = where(draw.gray, luma(x).expand_as(x), x, skip)
        if takes(draw.blurred):
            x = gaussian_blur(x, draw.blur, skip)
        if takes(draw.solarize):  # min(x, 1 - x) is 1 - x exactly where x >= 0.5 (1 - x is exact there), else x
            x = where(draw.solarize, torch.minimum(x, 1 - x), x, skip)
        if mean is not None:
            x = x.sub_(mean).div_(std)
        return x


def _unit(x: torch.Tensor) -> torch.Tensor:
    """float x as it is; uint8 x as a new float tensor x / 255."""
    return x if x.is_floating_point() else x.float().div_(255)


def jitter(x: torch.Tensor, op: str, factor: torch.Tensor) -> torch.Tensor:
    """One jitter op with per-image factors [B, 1, 1, 1] (hue: matrices [B, 3, 3]), unclamped."""
    if op == "brightness":
        return x.mul_(factor)
    if op == "contrast":
        mean = luma(x.mean(dim=(2, 3), keepdim=True))
        return x.mul_(factor).add_(mean * (1 - factor))
    if op == "saturation":
        gray = luma(x).mul_(1 - factor)  # before x changes
        return x.mul_(factor).add_(gray)
    b, c, h, w = x.shape
    return torch.bmm(factor, x.reshape(b, c, h * w)).view(b, c, h, w)


def luma(x: torch.Tensor) -> torch.Tensor:
    """gray(x) [B, 1, H, W] of RGB x [B, 3, H, W] (x itself when it has one channel)."""
    if x.shape[1] == 1:
        return x
    return torch.mul(x[:, 0:1], GRAY[0]).add_(x[:, 1:2], alpha=GRAY[1]).add_(x[:, 2:3], alpha=GRAY[2])


def hue_matrix(angle: torch.Tensor) -> torch.Tensor:
    """T^-1 R(angle) T per image, [B, 3, 3]: rotate the (I, Q) chroma plane of YIQ."""
    to_yiq = torch.tensor(_TO_YIQ, device=angle.device, dtype=angle.dtype)
    rotation = torch.zeros(len(angle), 3, 3, device=angle.device, dtype=angle.dtype)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation[:, 0, 0] = 1
    rotation[:, 1, 1], rotation[:, 1, 2], rotation[:, 2, 1], rotation[:, 2, 2] = cos, -sin, sin, cos
    return torch.linalg.inv(to_yiq) @ rotation @ to_yiq


def max_radius(sigma_hi: float, side: Sequence[int]) -> int:
    """The largest kernel radius: ceil(3 sigma_hi), at least 1, below the views' shorter side
    (reflect padding needs radius < side)."""
    return max(1, min(int(math.ceil(3 * sigma_hi)), min(side) - 1))


def gaussian_kernels(sigma: torch.Tensor, blurred: torch.Tensor, radius: int) -> torch.Tensor:
    """[B, 2 radius + 1]: exp(-j^2 / (2 sigma^2)) for |j| <= min(radius, ceil(3 sigma)), normalised;
    the one-tap identity for the images not blurred."""
    offsets = torch.arange(-radius, radius + 1, device=sigma.device, dtype=sigma.dtype)
    reach = torch.ceil(3 * sigma).clamp(min=1, max=radius)
    weights = torch.exp(-offsets ** 2 / (2 * sigma[:, None] ** 2)) * (offsets.abs() <= reach[:, None])
    weights = weights / weights.sum(1, keepdim=True)
    return torch.where(blurred[:, None], weights, (offsets == 0).to(weights.dtype).expand_as(weights))


def gaussian_blur(x: torch.Tensor, kernels: torch.Tensor, skip: bool) -> torch.Tensor:
    """x [B, C, H, W] filtered with its image's separable kernel [B, 2 R + 1] (taps -R..R). With
    `skip` (CPU) image by image, the kernel's nonzero taps only (an identity kernel leaves the
    image as it is); else the whole batch with every tap (zero taps add nothing)."""
    radius = (kernels.shape[1] - 1) // 2
    if not skip:
        weights = kernels.view(*kernels.shape, 1, 1, 1)
        return _separable(x, [(j - radius, weights[:, j]) for j in range(kernels.shape[1])])
    for i, kernel in enumerate(kernels.tolist()):
        taps = [(j - radius, w) for j, w in enumerate(kernel) if w != 0]
        if taps != [(0, 1.0)]:
            x[i: i + 1] = _separable(x[i: i + 1], taps)
    return x


def _separable(x: torch.Tensor, taps: List[Tuple[int, object]]) -> torch.Tensor:
    """sum_j w_j x[.., :, . + j] along the rows, then the same along the columns, reflect padded;
    `taps` (offset j, weight w): w a float (one image: add with alpha, the fast CPU path) or a
    per-image [B, 1, 1, 1] tensor. Taps are added in order, starting from zero."""
    b, c, h, w = x.shape
    reach = max(abs(j) for j, _ in taps)
    padded = F.pad(x, (reach, reach, reach, reach), mode="reflect")
    rows = torch.zeros(b, c, h + 2 * reach, w, dtype=x.dtype, device=x.device)
    for j, weight in taps:
        _accumulate(rows, padded[..., reach + j: reach + j + w], weight)
    out = torch.zeros_like(x)
    for j, weight in taps:
        _accumulate(out, rows[..., reach + j: reach + j + h, :], weight)
    return out


def _accumulate(total: torch.Tensor, term: torch.Tensor, weight) -> None:
    if isinstance(weight, float):
        total.add_(term, alpha=weight)
    else:
        total.addcmul_(term, weight)


def where(mask: torch.Tensor, changed: torch.Tensor, x: torch.Tensor, skip: bool) -> torch.Tensor:
    """`changed` for the images where mask [B] is true, x elsewhere (with `skip` and every image
    chosen: `changed` as it is)."""
    if skip and bool(mask.all()):
        return changed.contiguous() if changed.stride() != x.stride() else changed
    return torch.where(mask.view(-1, 1, 1, 1), changed, x)

"""Where each view is cut from an image file: RandomResizedCrop boxes and flips, drawn from a
random stream that is a pure function of (seed, epoch, rank, dataset index).

The box sampling is torchvision's RandomResizedCrop.get_params, in pixels of the full image:

    up to 10 tries:  area   = W H x U(scale_lo, scale_hi)
                     aspect = exp(U(log 3/4, log 4/3))
                     w = round(sqrt(area aspect)),  h = round(sqrt(area / aspect))
                     if 0 < w <= W and 0 < h <= H: left ~ U{0..W-w}, top ~ U{0..H-h}, done
    fallback:        the centre crop with the aspect ratio clamped to [3/4, 4/3]
                     (W/H < 3/4: w = W, h = round(W / (3/4)); W/H > 4/3: h = H, w = round(H 4/3);
                     else the whole image), at ((W - w) // 2, (H - h) // 2).

E.g. a 400 x 100 image with scale (1, 1) never fits (area 40000 needs h >= 173 > 100), so every
view is the centre 133 x 100.
"""

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

RATIO = (3 / 4, 4 / 3)
TRIES = 10


@dataclass(frozen=True)
class Box:
    """A crop in pixels of the (EXIF-oriented) full image, and whether the view is mirrored."""

    left: int
    top: int
    width: int
    height: int
    flip: bool = False

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height


@dataclass(frozen=True)
class ViewSpec:
    """One view of every image: its output side and the area range of its random crop."""

    size: int
    scale: Tuple[float, float]


def image_stream(seed: int, epoch: int, rank: int, index: int) -> np.random.Generator:
    """The random stream of one image in one epoch on one rank; its views draw from it in order
    (view v's box and flip are the v-th draws), so worker count and scheduling never matter."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch, rank, index])))


def random_resized_crop(width: int, height: int, scale: Sequence[float], rng: np.random.Generator,
                        ratio: Sequence[float] = RATIO) -> Tuple[int, int, int, int]:
    """(left, top, w, h): torchvision's RandomResizedCrop box (module docstring)."""
    area = width * height
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(TRIES):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    return centre_crop_with_ratio(width, height, ratio)


def centre_crop_with_ratio(width: int, height: int, ratio: Sequence[float] = RATIO) -> Tuple[int, int, int, int]:
    """torchvision's fallback: the largest centred crop whose aspect ratio is within `ratio`."""
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def draw_views(width: int, height: int, views: Sequence[ViewSpec], hflip_p: float,
               rng: np.random.Generator) -> List[Box]:
    """Each view's box, then its flip (p = hflip_p), drawn in view order from `rng`."""
    boxes = []
    for view in views:
        left, top, w, h = random_resized_crop(width, height, view.scale, rng)
        boxes.append(Box(left, top, w, h, bool(rng.random() < hflip_p)))
    return boxes


def resize_shorter_centre_crop(width: int, height: int, resize: int, crop: int) -> Tuple[float, float, float, float]:
    """The evaluation view as a box in full-image pixels: resize the shorter side to `resize`
    (the other side round(side x resize / shorter), as torchvision's Resize), then cut the centre
    crop x crop at ((W' - crop) // 2 ... as torchvision's CenterCrop rounds: round((W' - crop) / 2)).

    Returned as (left, top, w, h) in the original image so that one resize of that box gives the
    view; the sides of the resized image are (W', H')."""
    shorter = min(width, height)
    new_w = resize if width == shorter else int(resize * width / shorter)
    new_h = resize if height == shorter else int(resize * height / shorter)
    sx, sy = width / new_w, height / new_h
    left, top = int(round((new_w - crop) / 2.0)), int(round((new_h - crop) / 2.0))
    return left * sx, top * sy, crop * sx, crop * sy

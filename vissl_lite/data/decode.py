"""One image file -> uint8 views [C, S, S], in a DataLoader worker.

open (decompression bombs refused) -> the size after EXIF orientation -> the views' boxes ->
JPEG draft (DCT scaling) by the largest power of two that keeps every box at least its output
size -> decode -> EXIF orientation -> mode conversion -> per view: crop, antialiased resize, flip.
A full-resolution decode is kept per process (CACHE_BYTES) and reused by later epochs.

The resize of an integer box at full resolution is torch's antialiased uint8 interpolation
(torchvision's resized_crop on a tensor; within 1 grey level of Pillow's crop + resize, which
torchvision uses on a PIL image, and 2.5-5x faster: scripts/bench_data.py). A fractional box (the
evaluation view, a drafted JPEG) is Pillow's resize of that box.

Mode conversion to the trunk's channels (RGB or L):
  - transparency (RGBA, LA, PA, P or L with a transparent colour, ...) is composited over white,
    as a viewer shows it, never dropped (the colour under a transparent pixel is arbitrary);
  - 16-bit integer images (I;16*, I) scale 0..65535 to 0..255 (v x 255 / 65535, rounded), where
    Pillow's own conversion would clip everything above 255 to white; float images (F) are read
    as 0..1;
  - CMYK, YCbCr, LAB, HSV, 1, P, ... through Pillow's conversion; RGB -> L with ITU-R 601 luma
    (Pillow's L), L -> RGB by repeating the channel.
"""

import math
import os
import struct
import warnings
from typing import Callable, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .crops import Box

# What a broken file raises in Pillow: truncated or corrupt data, an unknown format, a bomb.
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError,
              Image.DecompressionBombError, Image.DecompressionBombWarning)
RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}  # the INTERPOLATION names in Pillow
_TRANSPOSED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_SIXTEEN_BIT = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def open_image(path: str) -> Image.Image:
    """Image.open, with Pillow's decompression-bomb warning (more pixels than
    Image.MAX_IMAGE_PIXELS) raised as an error: such a file is refused, not decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return Image.open(path)


def oriented_size(img: Image.Image) -> Tuple[int, int, int]:
    """(width, height) as the image is shown after its EXIF orientation, and the orientation."""
    orientation = img.getexif().get(0x0112, 1)
    w, h = img.size
    return (h, w, orientation) if orientation in _TRANSPOSED else (w, h, orientation)


def _corners(box) -> Tuple[float, float, float, float]:
    """(left, top, w, h) of a Box or of a (left, top, w, h) tuple."""
    return (box.left, box.top, box.width, box.height) if isinstance(box, Box) else tuple(box)


def draft_factor(boxes: Sequence, sizes: Sequence[int]) -> float:
    """How much smaller than full size the image may be decoded: the smallest box side / output side."""
    return min(min(_corners(b)[2:]) / s for b, s in zip(boxes, sizes))


# Decoded full images kept per process (each DataLoader worker has its own), so that a folder of
# small images is opened, decoded and converted once per worker instead of once per epoch: for
# write_digits' images that was half of a worker's time per image. Only what does not depend on
# the epoch's boxes is kept: the full-resolution image (never a JPEG decoded smaller by `draft`),
# keyed by the file's (path, channels, mtime, size), so an edited file is read again. Filled until
# CACHE_BYTES, then no more is added (with random access an LRU would not hit more often).
CACHE_BYTES = 64 << 20
_decoded = {}  # (path, channels, mtime_ns, size) -> (pixels uint8 [H, W, C], width, height, is_jpeg)
_decoded_bytes = [0]


def _cache_key(path: str, channels: int) -> Tuple:
    stat = os.stat(path)
    return path, channels, stat.st_mtime_ns, stat.st_size


def decode(path: str, channels: int, plan: Callable[[int, int], Tuple[List[Box], List[int]]],
           interpolation: str) -> List[torch.Tensor]:
    """The views of one file, uint8 [C, S, S]: `plan(width, height)` gives their boxes (in pixels of
    the oriented full image) and output sides; `interpolation` is "bilinear" or "bicubic". Raises
    one of UNREADABLE for a broken file."""
    key = _cache_key(path, channels)
    if key in _decoded:
        pixels, width, height, is_jpeg = _decoded[key]
        boxes, sizes = plan(width, height)
        if not (is_jpeg and draft_factor(boxes, sizes) >= 2):
            return cut_views(pixels, boxes, sizes, interpolation)
        return _decode_file(path, channels, boxes, sizes, interpolation, key)
    return _decode_file(path, channels, plan, None, interpolation, key)


def _decode_file(path: str, channels: int, plan, sizes, interpolation: str, key: Tuple) -> List[torch.Tensor]:
    """decode() from the file; `plan` is the boxes themselves when `sizes` is given. Keeps the
    full-resolution image in the cache while it has room."""
    with open_image(path) as img:
        width, height, orientation = oriented_size(img)
        boxes, sizes = (plan, sizes) if sizes is not None else plan(width, height)
        reduce = draft_factor(boxes, sizes)
        is_jpeg = img.format == "JPEG"
        if is_jpeg:
            target = ("L" if channels == 1 else "RGB") if img.mode == "RGB" else img.mode
            raw_w, raw_h = img.size
            img.draft(target, (math.ceil(raw_w / reduce), math.ceil(raw_h / reduce)) if reduce >= 2 else None)
        img.load()
        # inside the `with`: closing the file frees the pixels of `img` (and of `shown` if it is `img`)
        shown = to_channels(ImageOps.exif_transpose(img) if orientation != 1 else img, channels)
        full = shown.size == (width, height)  # not drafted
        cache = full and _decoded_bytes[0] + width * height * len(shown.getbands()) <= CACHE_BYTES
        if not (full and all(_is_integer(b) for b in boxes)) and not cache:  # Pillow's resize of the boxes
            return [pillow_cut(shown, box, size, width, height, interpolation) for box, size in zip(boxes, sizes)]
        pixels = _as_array(shown)
    if cache:
        _decoded[key] = (pixels, width, height, is_jpeg)
        _decoded_bytes[0] += pixels.nbytes
    return cut_views(pixels, boxes, sizes, interpolation)


def _is_integer(box) -> bool:
    return all(float(v).is_integer() for v in _corners(box))


def _as_array(img: Image.Image) -> np.ndarray:
    """uint8 [H, W, C], writable (np.asarray of a Pillow image is read-only; torch wants writable)."""
    array = np.array(img)
    return array[:, :, None] if array.ndim == 2 else array


def cut_views(pixels: np.ndarray, boxes: Sequence, sizes: Sequence[int], interpolation: str) -> List[torch.Tensor]:
    """Each box of the full image `pixels` uint8 [H, W, C], resized to size x size (antialiased),
    flipped if its Box says so: uint8 [C, S, S] views. Boxes with fractional corners go through
    Pillow (`pillow_cut`)."""
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None]  # [1, C, H, W], channels last in memory
    height, width = pixels.shape[:2]
    views = []
    for box, size in zip(boxes, sizes):
        if not _is_integer(box):
            views.append(pillow_cut(Image.fromarray(pixels.squeeze(2) if pixels.shape[2] == 1 else pixels), box, size,
                                    width, height, interpolation))
            continue
        left, top, w, h = (int(v) for v in _corners(box))
        view = F.interpolate(image[:, :, top: top + h, left: left + w], size=(size, size), mode=interpolation,
                             antialias=True)[0]
        views.append(view.flip(-1) if isinstance(box, Box) and box.flip else view.contiguous())
    return views


def pillow_cut(img: Image.Image, box, size: int, width: int, height: int, interpolation: str) -> torch.Tensor:
    """The box (full-image pixels, a Box or a (left, top, w, h) tuple of floats) of `img`, which may
    be a smaller decode of the width x height image (JPEG draft), resized to size x size by
    Pillow from that box: uint8 [C, S, S]."""
    left, top, w, h = _corners(box)
    sx, sy = img.width / width, img.height / height
    view = img.resize((size, size), RESAMPLE[interpolation], box=(left * sx, top * sy, (left + w) * sx, (top + h) * sy))
    if isinstance(box, Box) and box.flip:
        view = view.transpose(Image.FLIP_LEFT_RIGHT)
    return torch.from_numpy(_as_array(view)).permute(2, 0, 1).contiguous()


def to_channels(img: Image.Image, channels: int) -> Image.Image:
    """Any Pillow mode -> L (channels 1) or RGB (channels 3), as the module docstring says."""
    target = "L" if channels == 1 else "RGB"
    if img.mode == target and "transparency" not in img.info:
        return img
    if img.mode in _SIXTEEN_BIT:
        wide = np.asarray(img).astype(np.int64)
        img = Image.fromarray(((np.clip(wide, 0, 65535) * 255 + 32767) // 65535).astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.round(np.clip(np.asarray(img), 0.0, 1.0) * 255).astype(np.uint8), "L")
    elif img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA") if img.mode != "La" else img.convert("LA").convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img if img.mode == target else img.convert(target)

"""One image file -> uint8 views [S, S, C], in a DataLoader worker.

open (decompression bombs refused) -> the size after EXIF orientation -> the views' boxes ->
JPEG draft (DCT scaling) by the largest power of two that keeps every box at least its output
size -> decode -> EXIF orientation -> mode conversion -> per view: crop, antialiased resize, flip.
A full-resolution decode is kept per process (CACHE_BYTES) and reused by later epochs.

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
from PIL import Image, ImageOps

from .crops import Box

# What a broken file raises in Pillow: truncated or corrupt data, an unknown format, a bomb.
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError,
              Image.DecompressionBombError, Image.DecompressionBombWarning)
RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
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
_decoded = {}  # (path, channels, mtime_ns, size) -> (image, width, height, is_jpeg)
_decoded_bytes = [0]


def _cache_key(path: str, channels: int) -> Tuple:
    stat = os.stat(path)
    return path, channels, stat.st_mtime_ns, stat.st_size


def decode(path: str, channels: int, plan: Callable[[int, int], Tuple[List[Box], List[int]]],
           resample: int) -> List[np.ndarray]:
    """The views of one file: `plan(width, height)` gives their boxes (in pixels of the oriented
    full image) and output sides. Raises one of UNREADABLE for a broken file."""
    key = _cache_key(path, channels)
    if key in _decoded:
        shown, width, height, is_jpeg = _decoded[key]
        boxes, sizes = plan(width, height)
        if not (is_jpeg and draft_factor(boxes, sizes) >= 2):
            return [cut(shown, box, size, width, height, resample) for box, size in zip(boxes, sizes)]
        return _decode_file(path, channels, boxes, sizes, resample, key)[0]
    return _decode_file(path, channels, plan, None, resample, key)[0]


def _decode_file(path: str, channels: int, plan, sizes, resample: int, key: Tuple):
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
        shown = to_channels(ImageOps.exif_transpose(img) if orientation != 1 else img, channels)
        # inside the `with`: closing the file frees the pixels of `img` (and of `shown` if it is `img`)
        views = [cut(shown, box, size, width, height, resample) for box, size in zip(boxes, sizes)]
        nbytes = width * height * len(shown.getbands())
        if not (is_jpeg and reduce >= 2) and shown.size == (width, height) and \
                _decoded_bytes[0] + nbytes <= CACHE_BYTES:
            _decoded[key] = (shown.copy() if shown is img else shown, width, height, is_jpeg)
            _decoded_bytes[0] += nbytes
        return views, (width, height)


def cut(img: Image.Image, box, size: int, width: int, height: int, resample: int) -> np.ndarray:
    """The box (full-image pixels, a Box or a (left, top, w, h) tuple of floats) resized to
    size x size. At full resolution an integer box is cropped, then resized (torchvision's
    RandomResizedCrop exactly); a drafted image or a fractional box is resized from the box."""
    left, top, w, h = _corners(box)
    if img.size == (width, height) and all(float(v).is_integer() for v in (left, top, w, h)):
        view = img.crop((left, top, left + w, top + h)).resize((size, size), resample)
    else:
        sx, sy = img.width / width, img.height / height
        view = img.resize((size, size), resample, box=(left * sx, top * sy, (left + w) * sx, (top + h) * sy))
    if isinstance(box, Box) and box.flip:
        view = view.transpose(Image.FLIP_LEFT_RIGHT)
    array = np.array(view)  # a writable copy (np.asarray of a Pillow image is read-only), for torch
    return array[:, :, None] if array.ndim == 2 else array


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

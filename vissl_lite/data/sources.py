"""Data sources by DATA.<split>.DATA_SOURCES: digits, synthetic, disk_folder.

digits and synthetic live in memory as float tensors in [0, 1]; disk_folder decodes images
with Pillow on access (in DataLoader workers) to a fixed square size.
"""

import logging
import os
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError

log = logging.getLogger(__name__)

DIGITS_TOTAL = 1797  # scikit-learn's bundled copy of the UCI handwritten digits
DIGITS_TEST = 360  # a fixed, seeded 80/20 split
DIGITS_SPLIT_SEED = 0
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _digits_order() -> np.ndarray:
    return np.random.RandomState(DIGITS_SPLIT_SEED).permutation(DIGITS_TOTAL)


def load_digits(split: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(images [N, 1, 8, 8] in [0, 1], labels [N]) of the fixed train or test split."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    order = _digits_order()
    index = order[:DIGITS_TEST] if split == "TEST" else order[DIGITS_TEST:]
    images = torch.from_numpy(digits.images[index] / 16.0).float().unsqueeze(1)
    return images, torch.from_numpy(digits.target[index]).long()


def make_synthetic(num: int, channels: int, size: int, split: str, num_classes: int = 10):
    """Class-dependent random patterns: each class has a fixed mean image, samples add noise,
    so a kNN monitor has something real to find. Deterministic per split."""
    gen = torch.Generator().manual_seed(1 if split == "TEST" else 0)
    means = torch.rand(num_classes, channels, size, size, generator=torch.Generator().manual_seed(123))
    labels = torch.randint(num_classes, (num,), generator=gen)
    images = (means[labels] + 0.25 * torch.randn(num, channels, size, size, generator=gen)).clamp(0, 1)
    return images, labels


class ImageFolder(Dataset):
    """root/class_x/*.jpg (labels by sorted class folder) or root/*.jpg (no labels).

    Items are (uint8 [C, S, S] tensor or None for an unreadable file, label or -1); the
    loader's collate drops the None items and counts them.
    """

    def __init__(self, root: str, key: str, load_size: int, channels: int):
        path = Path(root)
        if not root or not path.is_dir():
            raise ConfigError(key, root, "an existing folder laid out root/class/image or root/image")
        classes = sorted(d.name for d in path.iterdir() if d.is_dir())
        files: List[Tuple[str, int]] = []
        if classes:
            for label, name in enumerate(classes):
                files += [(str(f), label) for f in sorted((path / name).iterdir()) if _is_image(f)]
        else:
            files = [(str(f), -1) for f in sorted(path.iterdir()) if _is_image(f)]
        if not files:
            raise ConfigError(key, root, f"a folder with images ({', '.join(sorted(IMAGE_EXTENSIONS))})", "found none")
        self.files, self.classes = files, classes
        self.load_size, self.channels = load_size, channels

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from PIL import Image

        path, label = self.files[i]
        try:
            with Image.open(path) as img:
                img = img.convert("L" if self.channels == 1 else "RGB")
                img = _resize_center_crop(img, self.load_size)
                array = np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError):
            return None, label
        array = array[:, :, None] if array.ndim == 2 else array
        return torch.from_numpy(array.copy()).permute(2, 0, 1), label


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _resize_center_crop(img, size: int):
    from PIL import Image

    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def count_images(root: str) -> Optional[int]:
    """Fast count for engine_name=explain: file names only, nothing decoded."""
    path = Path(root)
    if not path.is_dir():
        return None
    entries = list(os.scandir(path))
    dirs = [e.path for e in entries if e.is_dir()]
    if dirs:
        return sum(1 for d in dirs for f in os.scandir(d) if _is_image(Path(f.path)))
    return sum(1 for e in entries if _is_image(Path(e.path)))

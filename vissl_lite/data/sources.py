"""The in-memory data sources: digits (scikit-learn's bundled 8x8 digits) and synthetic, float
tensors in [0, 1]. Image files are listed in files.py and decoded in folder.py."""

from typing import Tuple

import numpy as np
import torch

DIGITS_TOTAL = 1797  # scikit-learn's bundled copy of the UCI handwritten digits
DIGITS_TEST = 360  # a fixed, seeded 80/20 split
DIGITS_SPLIT_SEED = 0


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

"""Batched SSL augmentation: exact where the transform is known, and per-image randomness."""

import torch
from omegaconf import OmegaConf

from vissl_lite.config.schema import TransformsConfig
from vissl_lite.data.augment import SSLAugment

OFF = dict(COLOR_JITTER_P=0.0, GRAYSCALE_P=0.0, BLUR_P=0.0, SOLARIZE_P=0.0, MEAN=[0.0], STD=[1.0])


def augment(**kw):
    return SSLAugment(OmegaConf.structured(TransformsConfig(**{**OFF, **kw})), channels=3)


def test_full_crop_without_flip_is_the_identity():
    x = torch.rand(4, 3, 16, 16)
    out = augment(CROP_SIZE=16, CROP_SCALE=[1.0, 1.0], HFLIP_P=0.0)
    # area 1 with a random aspect ratio is clamped to the full image: the identity resample
    torch.testing.assert_close(out(x, torch.Generator().manual_seed(0)), x, atol=1e-5, rtol=0)


def test_flip_always():
    x = torch.rand(2, 3, 8, 8)
    out = augment(CROP_SIZE=8, CROP_SCALE=[1.0, 1.0], HFLIP_P=1.0)(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x.flip(-1), atol=1e-5, rtol=0)


def test_solarize_and_grayscale():
    x = torch.rand(3, 3, 8, 8)
    sol = augment(CROP_SIZE=8, CROP_SCALE=[1.0, 1.0], HFLIP_P=0.0, SOLARIZE_P=1.0)(x, torch.Generator())
    torch.testing.assert_close(sol, torch.where(x >= 0.5, 1 - x, x), atol=1e-5, rtol=0)
    gray = augment(CROP_SIZE=8, CROP_SCALE=[1.0, 1.0], HFLIP_P=0.0, GRAYSCALE_P=1.0)(x, torch.Generator())
    expected = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1).expand_as(x)
    torch.testing.assert_close(gray, expected, atol=1e-5, rtol=0)


def test_views_differ_per_image_and_repeat_with_the_seed():
    x = torch.rand(1, 3, 32, 32).expand(8, -1, -1, -1).contiguous()
    aug = SSLAugment(OmegaConf.structured(TransformsConfig(CROP_SIZE=24)), channels=3)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (8, 3, 24, 24)
    assert not torch.allclose(a[0], a[1])  # same image, different random parameters
    blurred = SSLAugment(OmegaConf.structured(TransformsConfig(**{**OFF, "CROP_SIZE": 32, "CROP_SCALE": [1.0, 1.0],
                                                                  "HFLIP_P": 0.0, "BLUR_P": 1.0})), 3)
    y = blurred(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(y.mean(), x.mean(), atol=2e-3, rtol=0)  # blur keeps the mean
    assert y.std() < x.std()

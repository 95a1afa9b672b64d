"""Crop boxes of image files against torchvision's RandomResizedCrop sampling, written out here
from its documented algorithm (torchvision does not import in this environment)."""

import math
import random

import numpy as np
import pytest

from vissl_lite.data.crops import (ViewSpec, centre_crop_with_ratio, draw_views, image_stream, random_resized_crop,
                                   resize_shorter_centre_crop)


def torchvision_get_params(width, height, scale, rng: random.Random, ratio=(3 / 4, 4 / 3)):
    """torchvision.transforms.RandomResizedCrop.get_params as torchvision 0.2x writes it: 10 tries of
    (area x U(scale), exp(U(log ratio))), the first box that fits at a uniform position, else the
    centre crop with the ratio clamped. Returns (left, top, w, h)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect_ratio = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = rng.randint(0, height - h)
            j = rng.randint(0, width - w)
            return j, i, w, h
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w = width
        h = height
    return (width - w) // 2, (height - h) // 2, w, h


def ks_distance(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.max(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b))))


@pytest.mark.parametrize("width,height,scale", [(300, 200, (0.08, 1.0)), (640, 160, (0.3, 1.0)), (96, 96, (0.05, 0.4))])
def test_area_aspect_and_position_distributions_match_torchvision(width, height, scale):
    n = 3000
    ours = np.array([random_resized_crop(width, height, scale, image_stream(7, 0, 0, i)) for i in range(n)])
    ref_rng = random.Random(0)
    theirs = np.array([torchvision_get_params(width, height, scale, ref_rng) for _ in range(n)])
    # boxes inside the image
    assert (ours[:, 0] >= 0).all() and (ours[:, 1] >= 0).all()
    assert (ours[:, 0] + ours[:, 2] <= width).all() and (ours[:, 1] + ours[:, 3] <= height).all()
    assert (ours[:, 2] > 0).all() and (ours[:, 3] > 0).all()
    # 3000 vs 3000 samples: a KS distance above 0.06 has p < 1e-4 under equal distributions
    for name, stat in (("area", lambda b: b[:, 2] * b[:, 3] / (width * height)),
                       ("log aspect", lambda b: np.log(b[:, 2] / b[:, 3])),
                       ("centre x", lambda b: (b[:, 0] + b[:, 2] / 2) / width),
                       ("centre y", lambda b: (b[:, 1] + b[:, 3] / 2) / height)):
        assert ks_distance(stat(ours), stat(theirs)) < 0.06, name


class Scripted:
    """A random generator that returns the values it is given, in order."""

    def __init__(self, *values):
        self.values = list(values)

    def uniform(self, low, high):
        value = self.values.pop(0)
        assert low <= value <= high
        return value

    def integers(self, low, high):
        value = self.values.pop(0)
        assert low <= value < high
        return value


def test_box_from_given_draws_by_hand():
    # 200 x 100, area fraction 0.5 -> 10000 px, aspect exp(log 4/3): w = round(sqrt(10000 * 4/3)) = 115,
    # h = round(sqrt(7500)) = 87; it fits, so left and top are the next two draws (in 0..85 and 0..13)
    assert random_resized_crop(200, 100, (0.08, 1.0), Scripted(0.5, math.log(4 / 3), 85, 13)) == (85, 13, 115, 87)
    # area fraction 1.0 at aspect 3/4: h = round(sqrt(20000 / 0.75)) = 163 > 100 does not fit; the second
    # try (0.25, aspect 1: 71 x 71) does
    draws = Scripted(1.0, math.log(3 / 4), 0.25, 0.0, 3, 4)
    assert random_resized_crop(200, 100, (0.08, 1.0), draws) == (3, 4, 71, 71) and not draws.values


def test_fallback_is_the_centre_crop_with_the_ratio_clamped():
    # a 4:1 image with scale (1, 1) never fits: every try needs h >= sqrt(40000 * 3/4) = 173 > 100
    rng = image_stream(0, 0, 0, 0)
    assert {random_resized_crop(400, 100, (1.0, 1.0), rng) for _ in range(20)} == {(133, 0, 133, 100)}
    # round(100 * 4/3) = 133 wide, at (400 - 133) // 2 = 133; the tall image's mirror: round(100 / 0.75) = 133 high
    assert centre_crop_with_ratio(100, 400) == (0, 133, 100, 133)
    assert centre_crop_with_ratio(120, 100) == (0, 0, 120, 100)  # 1.2 is within [3/4, 4/3]: the whole image


def test_draws_are_a_function_of_seed_epoch_rank_index():
    views = [ViewSpec(32, (0.08, 1.0)), ViewSpec(16, (0.05, 0.4))]
    first = draw_views(300, 200, views, 0.5, image_stream(3, 1, 0, 42))
    assert draw_views(300, 200, views, 0.5, image_stream(3, 1, 0, 42)) == first
    for other in ((4, 1, 0, 42), (3, 2, 0, 42), (3, 1, 1, 42), (3, 1, 0, 43)):
        assert draw_views(300, 200, views, 0.5, image_stream(*other)) != first, other
    flips = [b.flip for i in range(400) for b in draw_views(50, 50, views, 0.5, image_stream(0, 0, 0, i))]
    assert 0.43 < np.mean(flips) < 0.57
    assert not any(b.flip for i in range(50) for b in draw_views(50, 50, views, 0.0, image_stream(0, 0, 0, i)))


def test_evaluation_box_is_resize_then_centre_crop():
    # 300 x 200 -> Resize(256): 384 x 256 (the longer side int(256 * 300 / 200)); CenterCrop(224) at
    # (round(80.0), round(16.0)) = (80, 16); in the original's pixels x 300/384 and 200/256
    assert resize_shorter_centre_crop(300, 200, 256, 224) == pytest.approx((62.5, 12.5, 175.0, 175.0))
    # a tall 100 x 301 image: 256 x int(256 * 3.01) = 770; top round((770 - 224) / 2) = 273
    left, top, w, h = resize_shorter_centre_crop(100, 301, 256, 224)
    assert (left, top) == pytest.approx((16 * 100 / 256, 273 * 301 / 770))
    assert (w, h) == pytest.approx((224 * 100 / 256, 224 * 301 / 770))

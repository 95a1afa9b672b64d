"""The photometric ops against their formulas written out here (numpy), the CPU's chunked path
against the whole-batch path that CUDA takes, and the neutral draws that leave an image bitwise
unchanged."""

import math

import numpy as np
import pytest
import torch

from vissl_lite.data import photometric
from vissl_lite.data.photometric import Draw, Photometric

LUMA = np.array([0.299, 0.587, 0.114])
YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def only(op=None, factor=None, b=4, **masks) -> Draw:
    """A Draw with one jitter op (every image jittered) and/or the given masks."""
    everyone = torch.ones(b, dtype=torch.bool)
    return Draw([op] if op else [], {op: factor} if op else {}, everyone if op else None, masks.get("gray"),
                masks.get("blur"), masks.get("blurred"), masks.get("solarize"))


def both_paths(x, draw):
    """apply() image chunk by image chunk on the host's draws (CPU), and on the whole batch (CUDA's way)."""
    ops = Photometric(3, 1.0, 0.8, 0.2, (0.1, 2.0))
    whole = ops.apply(x.clone(), draw, skip=False)
    chunks = torch.cat([ops.apply(x[i: i + 1].clone(), draw.rows(i, i + 1), skip=True) for i in range(len(x))])
    return whole, chunks


@pytest.mark.parametrize("op", ["brightness", "contrast", "saturation", "hue"])
def test_each_jitter_op_is_its_formula(op):
    x = torch.rand(4, 3, 10, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64).float()
    n = x.double().numpy()
    f = np.array([0.5, 1.3, 1.0, 0.0])
    gray = np.einsum("c,bchw->bhw", LUMA, n)[:, None]
    if op == "brightness":
        expected = n * f[:, None, None, None]
    elif op == "contrast":
        mean = gray.mean(axis=(2, 3), keepdims=True)
        expected = n * f[:, None, None, None] + mean * (1 - f[:, None, None, None])
    elif op == "saturation":
        expected = n * f[:, None, None, None] + gray * (1 - f[:, None, None, None])
    else:
        angles = np.array([0.3, -1.0, 2 * math.pi, math.pi / 2])
        expected = np.empty_like(n)
        for i, a in enumerate(angles):
            rotation = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
            expected[i] = np.einsum("ij,jhw->ihw", np.linalg.inv(YIQ) @ rotation @ YIQ, n[i])
    expected = np.clip(expected, 0, 1)
    factor = (photometric.hue_matrix(torch.tensor([0.3, -1.0, 2 * math.pi, math.pi / 2])) if op == "hue"
              else torch.tensor(f, dtype=torch.float32).view(-1, 1, 1, 1))
    for got in both_paths(x, only(op, factor)):
        np.testing.assert_allclose(got.numpy(), expected, atol=2e-6, rtol=0)


def test_hue_keeps_luma_and_a_full_turn_is_the_identity():
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25  # no clamping
    turned = photometric.jitter(x.clone(), "hue", photometric.hue_matrix(torch.tensor([1.1, 2 * math.pi])))
    torch.testing.assert_close(photometric.luma(turned), photometric.luma(x), atol=1e-6, rtol=0)
    torch.testing.assert_close(turned[1], x[1], atol=1e-6, rtol=0)


def reference_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """2-D Gaussian as the docstring says: taps |j| <= ceil(3 sigma), normalised, reflect padding."""
    r = max(1, math.ceil(3 * sigma))
    j = np.arange(-r, r + 1)
    k = np.exp(-j ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    padded = np.pad(image, ((0, 0), (r, r), (r, r)), mode="reflect")
    h, w = image.shape[1:]
    out = np.zeros_like(image)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out += k[dy] * k[dx] * padded[:, dy: dy + h, dx: dx + w]
    return out


def test_blur_is_the_truncated_gaussian_and_leaves_the_others_alone():
    x = torch.rand(4, 3, 16, 15, generator=torch.Generator().manual_seed(2))
    sigma = torch.tensor([0.4, 1.3, 2.0, 1.0])
    blurred = torch.tensor([True, True, True, False])
    kernels = photometric.gaussian_kernels(sigma, blurred, photometric.max_radius(2.0, (16, 15)))
    assert kernels.shape == (4, 13)
    assert torch.equal(kernels[0].ne(0), torch.arange(-6, 7).abs() <= 2)  # ceil(3 x 0.4) = 2 taps each side
    for got in both_paths(x, only(b=4, blur=kernels, blurred=blurred)):
        for i in range(3):
            np.testing.assert_allclose(got[i].numpy(), reference_blur(x[i].double().numpy(), float(sigma[i])), atol=1e-6)
        assert torch.equal(got[3], x[3])


def test_solarize_and_grayscale_exactly():
    levels = (torch.arange(256, dtype=torch.float32) / 255).view(1, 1, 16, 16).expand(2, 3, 16, 16).contiguous()
    chosen = torch.tensor([True, False])
    for got in both_paths(levels, only(b=2, solarize=chosen)):
        assert torch.equal(got[0], torch.where(levels[0] >= 0.5, 1 - levels[0], levels[0]))
        assert torch.equal(got[1], levels[1])
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(3))
    for got in both_paths(x, only(b=2, gray=chosen)):
        expected = 0.299 * x[0, 0] + 0.587 * x[0, 1] + 0.114 * x[0, 2]
        torch.testing.assert_close(got[0], expected.expand(3, 5, 5), atol=1e-6, rtol=0)
        assert torch.equal(got[1], x[1])


def test_drawn_batches_chunked_as_whole_and_untouched_images_unchanged(monkeypatch):
    monkeypatch.setattr(photometric, "CHUNK_BYTES", 3 * 3 * 20 * 20 * 4)  # chunks of 3 images
    ops = Photometric(3, 1.0, 0.5, 0.3, (0.1, 2.0))
    x = (torch.rand(24, 3, 20, 20, generator=torch.Generator().manual_seed(4)) * 255).round().to(torch.uint8)
    draw = ops.draw(x, torch.Generator().manual_seed(5), 0.5, 0.3)
    whole = ops.apply(x.float() / 255, draw, skip=False)
    chunked = ops(x, torch.Generator().manual_seed(5), 0.5, 0.3)  # uint8 in: converted chunk by chunk
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)
    untouched = ~(draw.jittered | draw.gray | draw.blurred | draw.solarize)
    assert 0 < int(untouched.sum()) < 24
    assert torch.equal(chunked[untouched], x[untouched].float() / 255)
    assert torch.equal(whole[untouched], x[untouched].float() / 255)


def test_draw_distributions():
    ops = Photometric(3, 0.5, 0.8, 0.2, (0.2, 1.5))
    n = 4000
    draw = ops.draw(torch.zeros(n, 3, 8, 8), torch.Generator().manual_seed(6), 0.5, 0.1)
    assert abs(draw.jittered.float().mean() - 0.8) < 0.03 and abs(draw.gray.float().mean() - 0.2) < 0.03
    assert abs(draw.blurred.float().mean() - 0.5) < 0.03 and abs(draw.solarize.float().mean() - 0.1) < 0.02
    assert sorted(draw.order) == ["brightness", "contrast", "hue", "saturation"]
    for op in ("brightness", "contrast", "saturation"):  # U[1 - 0.8 s, 1 + 0.8 s] = U[0.6, 1.4], 1 if not jittered
        f = draw.factors[op].flatten()
        assert torch.all(f[~draw.jittered] == 1)
        assert 0.6 <= float(f[draw.jittered].min()) < 0.62 and 1.38 < float(f[draw.jittered].max()) <= 1.4
    assert torch.equal(draw.factors["hue"][~draw.jittered], torch.eye(3).expand(int((~draw.jittered).sum()), 3, 3))
    # sigma in [0.2, 1.5]: radius ceil(3 x 1.5) = 5 at most; each blurred kernel sums to 1, others one tap
    k = draw.blur
    assert k.shape == (n, 11) and torch.allclose(k.sum(1), torch.ones(n))
    assert torch.equal(k[~draw.blurred], (torch.arange(-5, 6) == 0).float().expand(int((~draw.blurred).sum()), 11))
    widths = k[draw.blurred].ne(0).sum(1)
    assert int(widths.min()) == 2 * math.ceil(3 * 0.2) + 1 and int(widths.max()) == 11

"""SSL losses against their formulas written out element by element."""

import math

import pytest
import torch

from vissl_lite.losses.barlow_twins import BarlowTwinsLoss
from vissl_lite.losses.simclr_info_nce import SimCLRInfoNCELoss


def test_simclr_by_the_formula():
    torch.manual_seed(0)
    e = torch.randn(6, 5, dtype=torch.float64)
    t = 0.3
    z = [v / math.sqrt(sum(x * x for x in v.tolist())) for v in e]
    n = 3
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        sims = {j: float(z[i] @ z[j]) / t for j in range(2 * n) if j != i}
        total += -(sims[pos] - math.log(sum(math.exp(s) for s in sims.values())))
    assert SimCLRInfoNCELoss(t)(e).item() == pytest.approx(total / (2 * n), rel=1e-6)


def test_barlow_twins_by_the_formula():
    torch.manual_seed(1)
    e = torch.randn(8, 3, dtype=torch.float64)
    z1, z2 = e[:4], e[4:]

    def standardise(z):
        mean = z.mean(0)
        var = ((z - mean) ** 2).mean(0)
        return (z - mean) / torch.sqrt(var + 1e-5)

    a, b = standardise(z1), standardise(z2)
    c = [[sum(a[k, i] * b[k, j] for k in range(4)).item() / 4 for j in range(3)] for i in range(3)]
    on = sum((1 - c[i][i]) ** 2 for i in range(3))
    off = sum(c[i][j] ** 2 for i in range(3) for j in range(3) if i != j)
    loss = BarlowTwinsLoss(lambda_=0.1, scale_loss=0.5, embedding_dim=3)(e).item()
    assert loss == pytest.approx(0.5 * (on + 0.1 * off), rel=1e-6)
    with pytest.raises(ValueError, match="embedding_dim is 4"):
        BarlowTwinsLoss(embedding_dim=4)(e)

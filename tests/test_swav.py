"""SwAV: Sinkhorn-Knopp against a hand-written reference and hand-computed cases, the swapped
prediction loss against its formula, the head, the queue, and the method's per-step behaviour."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vissl_lite.config.load import compose, resolve
from vissl_lite.data import SSLAugment
from vissl_lite.engine.method import build_method
from vissl_lite.engine.methods.queues import EmbeddingFIFO
from vissl_lite.errors import ConfigError
from vissl_lite.losses.sinkhorn import hard_assignments, sinkhorn_knopp
from vissl_lite.losses.swav import SwAVLoss
from vissl_lite.models import build_model
from vissl_lite.models.swav_head import SwAVHead


def reference_sinkhorn(scores: np.ndarray, epsilon: float, iters: int) -> np.ndarray:
    """Sinkhorn as the paper's pseudo-code reads, one sample at a time, in float64."""
    q = np.exp(scores / epsilon).T  # [K, B]
    k, b = q.shape
    q = q / q.sum()
    for _ in range(iters):
        for row in range(k):
            q[row] = q[row] / q[row].sum() / k
        for col in range(b):
            q[:, col] = q[:, col] / q[:, col].sum() / b
    return (q * b).T


def test_sinkhorn_by_hand():
    # Both samples prefer prototype 0: equal partition gives each prototype half of each sample.
    q = sinkhorn_knopp(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), epsilon=1.0, num_iters=1, dtype=torch.float64)
    torch.testing.assert_close(q, torch.full((2, 2), 0.5, dtype=torch.float64))
    # A balanced case needs no rebalancing: each row is the softmax of scores / epsilon.
    e = math.e
    q = sinkhorn_knopp(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), epsilon=1.0, num_iters=1, dtype=torch.float64)
    expected = torch.tensor([[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]], dtype=torch.float64)
    torch.testing.assert_close(q, expected)
    # No iterations: the total-mass normalisation only, scaled by B.
    q = sinkhorn_knopp(torch.tensor([[0.0, 0.0, 0.0]]), epsilon=1.0, num_iters=0, dtype=torch.float64)
    torch.testing.assert_close(q, torch.full((1, 3), 1 / 3, dtype=torch.float64))


@pytest.mark.parametrize("iters", [1, 3, 30])
def test_sinkhorn_matches_the_reference_and_its_marginals(iters):
    g = torch.Generator().manual_seed(0)
    scores = F.normalize(torch.randn(12, 5, generator=g, dtype=torch.float64), dim=1)  # cosines, 12 samples
    ours = sinkhorn_knopp(scores, epsilon=0.3, num_iters=iters, dtype=torch.float64)
    torch.testing.assert_close(ours, torch.from_numpy(reference_sinkhorn(scores.numpy(), 0.3, iters)),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.sum(1), torch.ones(12, dtype=torch.float64))  # each sample: one unit
    if iters == 30:  # converged: every prototype holds B / K of the mass
        torch.testing.assert_close(ours.sum(0), torch.full((5,), 12 / 5, dtype=torch.float64), rtol=1e-6, atol=0)
    # the max shift changes nothing, in float32 too, even where exp(score / epsilon) would
    # overflow (exp(100) > float32's largest, exp(88.7))
    shifted = sinkhorn_knopp(scores.float() + 30.0, epsilon=0.3, num_iters=iters)
    torch.testing.assert_close(shifted, ours.float(), rtol=1e-4, atol=1e-5)


def test_hard_assignments():
    q = torch.tensor([[0.2, 0.7, 0.1], [0.5, 0.1, 0.4]])
    assert hard_assignments(q).tolist() == [[0, 1, 0], [1, 0, 0]]


def reference_swav_loss(scores, num_crops, assign, temperature, epsilon, iters, queue=None):
    """VISSL's SwAVCriterion written out with loops (float64 numpy)."""
    s = scores.double().numpy()
    b = s.shape[0] // num_crops
    total = 0.0
    for i, a in enumerate(assign):
        targets = s[a * b:(a + 1) * b]
        if queue is not None:
            targets = np.concatenate([targets, queue[i].double().numpy()])
        q = reference_sinkhorn(targets, epsilon, iters)[:b]
        crop_loss = 0.0
        others = [v for v in range(num_crops) if v != a]
        for v in others:
            z = s[v * b:(v + 1) * b] / temperature
            log_p = z - np.log(np.exp(z).sum(1, keepdims=True))
            crop_loss -= np.mean(np.sum(q * log_p, axis=1))
        total += crop_loss / len(others)
    return total / len(assign)


@pytest.mark.parametrize("with_queue", [False, True])
def test_swav_loss_matches_the_formula(with_queue):
    g = torch.Generator().manual_seed(1)
    n, b, k = 4, 6, 7
    scores = F.normalize(torch.randn(n * b, k, generator=g), dim=1)
    queue = [F.normalize(torch.randn(5, k, generator=g), dim=1) for _ in range(2)] if with_queue else None
    loss_fn = SwAVLoss(temperature=0.1, epsilon=0.05, num_iters=3, crops_for_assign=[0, 1], use_double_precision=True)
    ours = loss_fn(scores, n, queue)
    expected = reference_swav_loss(scores, n, [0, 1], 0.1, 0.05, 3, queue)
    assert ours.item() == pytest.approx(expected, rel=1e-6)
    # float32 agrees closely; the loss is differentiable in the scores, not in the targets
    scores.requires_grad_(True)
    SwAVLoss(0.1, 0.05, 3, [0, 1])(scores, n, queue).backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()


def test_head_output_and_prototype_normalisation():
    torch.manual_seed(0)
    head = SwAVHead(dims=[16, 16, 8], num_clusters=[5, 3], use_bn=True)
    assert [name for name, _ in head.named_parameters()][-2:] == ["prototypes0.weight", "prototypes1.weight"]
    z, scores = head(torch.randn(4, 16))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(4))
    assert [s.shape for s in scores] == [(4, 5), (4, 3)]
    head.normalize_prototypes()
    for layer in head.prototypes():
        torch.testing.assert_close(layer.weight.norm(dim=1), torch.ones(layer.out_features))
    _, scores = head(torch.randn(4, 16))
    assert all(s.abs().max() <= 1 + 1e-6 for s in scores)  # cosines


def test_fifo_queue():
    q = EmbeddingFIFO(num_crops=1, length=3, dim=1)
    q.push(torch.tensor([[[1.0], [2.0]]]))
    assert q.embeddings.flatten().tolist() == [1, 2, 0] and not q.full
    q.push(torch.tensor([[[3.0], [4.0]]]))
    assert q.embeddings.flatten().tolist() == [3, 4, 1] and q.full  # newest first, oldest dropped
    q.push(torch.tensor([[[5.0], [6.0], [7.0], [8.0]]]))  # a push longer than the queue
    assert q.embeddings.flatten().tolist() == [5, 6, 7]
    restored = EmbeddingFIFO(1, 3, 1)
    restored.load_state_dict(q.state_dict())
    assert torch.equal(restored.embeddings, q.embeddings) and restored.full


SMALL = ["config=pretrain/swav/swav_digits", "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125",
         "MODEL.HEAD.PARAMS=[[swav_head,{dims:[64,32,16],use_bn:true,num_clusters:[20]}]]",
         "DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER=2", "DATA.TRAIN.TRANSFORMS.LOCAL_CROP_SIZE=4"]


def make_method(*overrides, steps_per_epoch=10):
    cfg, _ = resolve(compose(SMALL + list(overrides)))
    torch.manual_seed(0)
    model = build_model(cfg.MODEL)
    method = build_method(cfg, model, steps_per_epoch=steps_per_epoch, augment=SSLAugment(cfg.DATA.TRAIN.TRANSFORMS, 1))
    return cfg, model, method


def test_queue_starts_fills_and_joins_the_targets():
    # 8 images per step, 2 target crops; a queue of 16 per target crop, filling from step 2.
    _, model, method = make_method("LOSS.swav_loss.queue.queue_length=16", "LOSS.swav_loss.queue.start_iter=2")
    seen, embeddings = [], []
    real_loss = method.loss_fn

    def spy(scores, num_crops, queue_scores, hard):
        seen.append(queue_scores is not None)
        return real_loss(scores, num_crops, queue_scores, hard)

    method.loss_fn = spy
    model.heads[-1].register_forward_hook(lambda m, i, out: embeddings.append(out[0].detach()))
    g = torch.Generator().manual_seed(0)
    for step in range(6):
        method.forward(model, torch.rand(8, 1, 8, 8), None, g)
        method.after_step(model, step + 1)
        filled = min(max(step - 1, 0) * 8, 16)
        assert method.queue.filled == filled, step
    # used once full: pushes at steps 2 and 3 fill it, so steps 4 and 5 use it
    assert seen == [False, False, False, False, True, True]
    z = embeddings[-1].reshape(4, 8, -1)  # 4 crops of 8 images; the last push is newest first
    assert torch.equal(method.queue.embeddings[:, :8], z[[0, 1]])
    assert torch.equal(method.queue.embeddings[:, 8:], embeddings[-2].reshape(4, 8, -1)[[0, 1]])


def test_start_epoch_and_state():
    cfg, model, method = make_method("LOSS.swav_loss.queue.queue_length=16", "LOSS.swav_loss.queue.start_iter=2",
                                     "LOSS.swav_loss.queue.start_epoch=1", steps_per_epoch=5)
    assert method.queue_start == 5  # the later of step 2 and epoch 1 (5 steps)
    method.queue.push(torch.ones(2, 8, 16))
    state = method.state_dict()
    assert state["queue"]["embeddings"].shape == (1, 2, 16, 16)  # [processes, crops, length, dim]
    other = build_method(cfg, model, steps_per_epoch=5, augment=SSLAugment(cfg.DATA.TRAIN.TRANSFORMS, 1))
    other.load_state_dict(state)
    other.set_step(3)
    assert torch.equal(other.queue.embeddings, method.queue.embeddings) and other.queue.filled == 8


def test_prototypes_are_normalised_before_each_steps_forward():
    _, model, method = make_method("OPTIMIZER.accumulation_steps=2")
    prototypes = model.heads[-1].prototypes0
    norms = []
    prototypes.register_forward_pre_hook(lambda m, i: norms.append(m.weight.norm(dim=1).clone()))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        prototypes.weight.mul_(3.0)
    method.forward(model, torch.rand(8, 1, 8, 8), None, g)
    torch.testing.assert_close(norms[-1], torch.ones(20))
    with torch.no_grad():
        prototypes.weight.mul_(3.0)  # a change between the micro-batches of one step is kept ...
    method.forward(model, torch.rand(8, 1, 8, 8), None, g)
    torch.testing.assert_close(norms[-1], torch.full((20,), 3.0))
    method.after_step(model, 1)  # ... and normalised away before the next step's forward
    method.forward(model, torch.rand(8, 1, 8, 8), None, g)
    torch.testing.assert_close(norms[-1], torch.ones(20))


@pytest.mark.parametrize("override,key", [
    ("MODEL.HEAD.PARAMS=[[mlp,{dims:[64,32]}]]", "MODEL.HEAD.PARAMS"),
    ("LOSS.swav_loss.crops_for_assign=[0,4]", "LOSS.swav_loss.crops_for_assign"),
])
def test_config_errors(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_method(override)

"""MoCo v2: InfoNCE against its formula, the ring queue (order, wraparound), the key encoder's
EMA, the shuffled BatchNorm's shuffle / unshuffle, and the enqueue of keys gathered from ranks."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vissl_lite.config.load import compose, resolve
from vissl_lite.data import SSLAugment
from vissl_lite.engine.method import build_method
from vissl_lite.engine.methods.batch_shuffle import shared_permutation, shuffle_across_ranks, unshuffle_across_ranks
from vissl_lite.engine.methods.queues import RingQueue
from vissl_lite.errors import ConfigError
from vissl_lite.losses.moco import MoCoLoss
from vissl_lite.models import build_model


def test_info_nce_by_hand():
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[2.0, 0.0]])  # normalised inside: q . k = 1
    queue = torch.tensor([[0.0, 1.0], [0.0, -1.0]])  # q . n = 0 for both
    assert MoCoLoss(temperature=1.0)(q, k, queue).item() == pytest.approx(math.log(1 + 2 / math.e))


def test_info_nce_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    query, key = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    queue = F.normalize(torch.randn(11, 8, generator=g), dim=1)
    t = 0.2
    expected = 0.0
    for b in range(5):
        qb, kb = query[b] / query[b].norm(), key[b] / key[b].norm()
        logits = [float(qb @ kb) / t] + [float(qb @ n) / t for n in queue]
        expected += -(logits[0] - math.log(sum(math.exp(v) for v in logits))) / 5
    assert MoCoLoss(t)(query, key, queue).item() == pytest.approx(expected, rel=1e-5)


def test_ring_queue_order_and_wraparound():
    ring = RingQueue(torch.zeros(4, 1))
    ring.enqueue(torch.tensor([[1.0], [2.0], [3.0]]))
    assert ring.keys.flatten().tolist() == [1, 2, 3, 0] and ring.ptr == 3
    ring.enqueue(torch.tensor([[4.0], [5.0]]))  # wraps: 4 at the end, 5 over the oldest (1)
    assert ring.keys.flatten().tolist() == [5, 2, 3, 4] and ring.ptr == 1
    # more than its size: 6..11 go to positions 1, 2, 3, 0, 1, 2; the later writes win
    ring.enqueue(torch.tensor([[6.0], [7.0], [8.0], [9.0], [10.0], [11.0]]))
    assert ring.keys.flatten().tolist() == [9, 10, 11, 8] and ring.ptr == 3
    restored = RingQueue(torch.zeros(4, 1))
    restored.load_state_dict(ring.state_dict())
    assert torch.equal(restored.keys, ring.keys) and restored.ptr == 3


@pytest.mark.parametrize("world", [2, 3])
def test_shuffle_then_unshuffle_is_the_identity(world):
    """Every rank simulated in one process: each encodes its share of the shuffled batch; the
    gathered, unshuffled keys are the encoder's keys of the original batch, in order."""
    b = 4
    x_all = torch.arange(world * b * 3, dtype=torch.float32).reshape(world * b, 3)
    encoder = nn.Linear(3, 2)  # per sample, like BatchNorm would not be: the test isolates the indexing
    perm = shared_permutation(world * b, seed=7)
    assert sorted(perm.tolist()) == list(range(world * b))
    shares = [shuffle_across_ranks(x_all[r * b:(r + 1) * b], lambda _: x_all, r, perm) for r in range(world)]
    assert torch.equal(torch.cat(shares), x_all[perm])  # a permutation: every image once
    keys = torch.cat([encoder(s) for s in shares])
    for r in range(world):
        restored = unshuffle_across_ranks(encoder(shares[r]), lambda _: keys, perm)
        torch.testing.assert_close(restored, encoder(x_all))
    assert torch.equal(shared_permutation(world * b, 7), perm)  # every rank draws the same one


SMALL = ["config=pretrain/moco/moco_digits", "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125",
         "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,32],use_relu:true,skip_last_layer_relu_bn:false}],[mlp,{dims:[32,16]}]]",
         "LOSS.moco_loss.embedding_dim=16", "LOSS.moco_loss.queue_size=20"]


def make_method(*overrides):
    cfg, _ = resolve(compose(SMALL + list(overrides)))
    torch.manual_seed(0)
    model = build_model(cfg.MODEL)
    method = build_method(cfg, model, steps_per_epoch=5, augment=SSLAugment(cfg.DATA.TRAIN.TRANSFORMS, 1))
    return model, method


def test_key_encoder_follows_with_the_scheduled_momentum():
    model, method = make_method("LOSS.moco_loss.momentum={name:linear,start_value:0.5,end_value:1.0}",
                                "OPTIMIZER.num_epochs=100")
    key = method.key_encoder
    assert all(torch.equal(a, b) for a, b in zip(key.parameters(), model.parameters()))  # a copy at the start
    before = [p.detach().clone() for p in key.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    method.after_step(model, 1)  # momentum(0) = 0.5 (linear 0.5 -> 1 over 100 epochs x 5 steps)
    for k, b, q in zip(key.parameters(), before, model.parameters()):
        torch.testing.assert_close(k, 0.5 * b + 0.5 * q)
    assert not any(p.requires_grad for p in key.parameters())
    assert method.scalars(1)["key_momentum"] == pytest.approx(0.5)
    assert method.scalars(451)["key_momentum"] == pytest.approx(0.5 + 0.5 * 450 / 500)


def test_queue_gets_the_keys_of_every_rank_in_rank_order():
    model, method = make_method("LOSS.moco_loss.shuffle_batch=false")
    peer = torch.full((6, 16), 0.25)  # the other rank's keys, as a gather would bring them
    method.gather, method.rank, method.world_size = (lambda k: torch.cat([k, peer])), 0, 2
    images = torch.rand(6, 1, 8, 8)
    queries = []
    model.register_forward_hook(lambda m, i, out: queries.append(out))
    method.forward(model, images, None, torch.Generator().manual_seed(0))
    mine = method.queue.keys[:6]
    torch.testing.assert_close(mine.norm(dim=1), torch.ones(6))  # this rank's keys, normalised, first
    assert torch.equal(method.queue.keys[6:12], peer) and method.queue.ptr == 12
    method.forward(model, images, None, torch.Generator().manual_seed(0))
    assert method.queue.ptr == 4  # 12 + 12 wraps around a queue of 20


def test_embedding_dim_is_checked():
    with pytest.raises(ConfigError, match=r"LOSS\.moco_loss\.embedding_dim: got 128.*16, the width"):
        make_method("LOSS.moco_loss.embedding_dim=128")

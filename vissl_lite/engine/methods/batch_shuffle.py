"""MoCo's shuffled BatchNorm across processes (He et al. 2020, section 3.3).

Under torchrun each process normalises with its own batch's statistics. If a query and its key
shared those statistics, the model could match them through the statistics alone; so the key
batch is shuffled over all processes before the key encoder and unshuffled after:

    x_all = gather(x)                  [W b, ...], rank-major
    mine  = x_all[perm[r b : (r + 1) b]]            rank r encodes a random b of the W b images
    k_all = gather(encoder(mine))      k_all[j] is the key of image perm[j]
    keys  = k_all[argsort(perm)]       every key back at its image's place, on every rank

`perm` is one permutation of W b shared by every rank (from a generator seeded alike on all of
them), so no broadcast is needed and a resumed run draws the same ones. With plain all_gather
and indexing it runs on gloo (CPU) and NCCL alike.
"""

from typing import Callable

import torch


def shuffle_across_ranks(x: torch.Tensor, gather: Callable[[torch.Tensor], torch.Tensor], rank: int,
                         perm: torch.Tensor) -> torch.Tensor:
    """This rank's share of the shuffled global batch (`perm`: a permutation of W b)."""
    x_all = gather(x)
    world = x_all.shape[0] // x.shape[0]
    return x_all[perm.view(world, -1)[rank].to(x_all.device)]


def unshuffle_across_ranks(k: torch.Tensor, gather: Callable[[torch.Tensor], torch.Tensor],
                           perm: torch.Tensor) -> torch.Tensor:
    """The keys of every rank's images in the original (rank-major) order, on every rank."""
    k_all = gather(k)
    return k_all[torch.argsort(perm).to(k_all.device)]


def shared_permutation(n: int, seed: int) -> torch.Tensor:
    """A permutation of n drawn from `seed` alone (every rank passes the same seed)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


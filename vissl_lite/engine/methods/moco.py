"""MoCo v2 (He et al. 2020; Chen et al. 2020): contrast against a queue with a momentum key
encoder, registered for LOSS.name moco_loss.

Per micro-batch:
  views    two augmented views of every image;
  query    the trained model (trunk + heads) on view 1;
  key      the key encoder, an EMA copy of the model with no gradient, on view 2; under torchrun
           its batch is shuffled over the processes first and unshuffled after (shuffle_batch,
           MoCo's shuffled BatchNorm), and the keys of every process are gathered;
  loss     InfoNCE of each query against its key and the queue (MoCoLoss, temperature);
  queue    then every process's keys, in rank order, enter the ring of queue_size negatives
           (the same on every process).
After optimizer step k the key encoder moves toward the model with momentum(k):
key = m key + (1 - m) model, parameters only; it keeps its own BatchNorm statistics.

momentum is a schedule under LOSS.moco_loss (any type or dialect of OPTIMIZER.param_schedulers),
evaluated from the optimizer step counter only. The checkpoint carries the key encoder and the
queue. The queue starts as random unit vectors drawn from SEED_VALUE, as MoCo's starts random.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...models.ema import ema_update, momentum_teacher
from ...optim.schedules import StepSchedule
from ..method import Method, register_method
from .batch_shuffle import shared_permutation, shuffle_across_ranks, unshuffle_across_ranks
from .queues import RingQueue
from .scheduled import method_schedule

MOMENTUM_KEY = "LOSS.moco_loss.momentum"


@register_method("moco_loss")
class MoCoMethod(Method):
    def __init__(self, cfg, model, env, steps_per_epoch, augment=None):
        super().__init__(cfg, model, env, steps_per_epoch, augment)
        moco = cfg.LOSS.moco_loss
        check_embedding_dim(model, moco.embedding_dim)
        # SyncBN already normalises over every process: VISSL shuffles only without it.
        self.shuffle = moco.shuffle_batch and not cfg.MODEL.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN
        self.momentum = moco_momentum(cfg, steps_per_epoch)
        self.key_encoder = momentum_teacher(model)  # MoCo starts the key encoder as a copy
        seeded = torch.Generator().manual_seed(cfg.SEED_VALUE)  # the same queue on every process
        start = torch.randn(moco.queue_size, moco.embedding_dim, generator=seeded)
        self.queue = RingQueue(F.normalize(start, dim=1).to(next(model.parameters()).device))
        self.forwards = 0

    def schedules(self) -> dict:
        return {MOMENTUM_KEY: self.momentum}

    def set_step(self, step: int) -> None:
        self.step = step
        self.forwards = step * self.cfg.OPTIMIZER.accumulation_steps  # every forward draws its own shuffle

    def forward(self, model, images, labels, generator):
        """(loss, trunk features of view 1) for one micro-batch."""
        view_q, view_k = self.augment(images, generator), self.augment(images, generator)
        query, features = model(view_q, return_features=True)
        with torch.no_grad():
            keys, every_key = self.keys(view_k)
        loss = self.loss_fn(query, keys, self.queue.keys)
        self.queue.enqueue(every_key)
        self.forwards += 1
        return loss, features

    @torch.no_grad()
    def keys(self, x: torch.Tensor):
        """(this process's keys [b, D], every process's keys [W b, D] in rank order), unit norm."""
        if self.gather is None:
            k = F.normalize(self.key_encoder(x).float(), dim=1)
            return k, k
        if self.shuffle:
            # One permutation per forward, the same on every rank: seeded by the run's seed and
            # the forward's index, so a resumed run draws the same ones.
            perm = shared_permutation(self.env.world_size * len(x), (self.cfg.SEED_VALUE << 32) + self.forwards)
            mine = shuffle_across_ranks(x, self.gather, self.env.rank, perm)
            every = unshuffle_across_ranks(F.normalize(self.key_encoder(mine).float(), dim=1), self.gather, perm)
        else:
            every = self.gather(F.normalize(self.key_encoder(x).float(), dim=1))
        b = len(x)
        return every[self.env.rank * b: (self.env.rank + 1) * b], every

    def after_step(self, model, step: int) -> None:
        """`step` optimizer steps are done: the key encoder follows with momentum(step - 1)."""
        ema_update(self.key_encoder, model, self.momentum.values(step - 1))
        self.step = step

    def scalars(self, step: int) -> dict:
        """The momentum used after the last optimizer step (step - 1), like the logged LR."""
        return {"key_momentum": self.momentum.values(max(step - 1, 0))}

    def state_dict(self) -> dict:
        return {"key_encoder": self.key_encoder.state_dict(), "queue": self.queue.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"key_encoder", "queue"}:
            raise ValueError(f"a MoCo checkpoint holds the key encoder and the queue; this one has {sorted(state)}")
        self.key_encoder.load_state_dict(state["key_encoder"])
        self.queue.load_state_dict(state["queue"])


def moco_momentum(cfg, steps_per_epoch: int) -> StepSchedule:
    return method_schedule(cfg.LOSS.moco_loss.momentum, MOMENTUM_KEY, cfg.OPTIMIZER.num_epochs, steps_per_epoch,
                           "key_momentum", lambda v: 0 <= v <= 1, "a value in [0, 1] (an EMA momentum)")


def check_embedding_dim(model: nn.Module, embedding_dim: int) -> None:
    """LOSS.moco_loss.embedding_dim is the width of the head's last linear layer (the queue's)."""
    linears = [m for m in model.heads.modules() if isinstance(m, nn.Linear)]
    width = linears[-1].out_features if linears else model.trunk.out_dim
    if width != embedding_dim:
        raise ConfigError("LOSS.moco_loss.embedding_dim", embedding_dim, f"{width}, the width of the head's output")

"""SwAV (Caron et al. 2020): swapped prediction of online cluster assignments, registered for
LOSS.name swav_loss.

Per micro-batch of optimizer step k:
  prototypes  with normalize_last_layer, every prototype row is set to unit norm (no gradient)
              before the step's first forward, so scores are cosines;
  crops       2 global crops + DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER local ones of every image;
  forward     the model on all crops: normalised embeddings z and scores per prototype layer;
  loss        SwAVLoss per prototype layer (Sinkhorn targets from crops_for_assign, predicted
              by every other crop), averaged over the layers (VISSL's multi-head SwAV);
  queue       from optimizer step max(start_iter, start_epoch x steps per epoch) the targets'
              embeddings z enter a per-process FIFO after the loss; once full, its embeddings,
              scored by the current prototypes, join the samples Sinkhorn partitions.

Under torchrun Sinkhorn's sums and maximum run over every process's samples (queues included),
so N processes of B images compute the assignments of one process of N B images. Freezing the
prototypes for the first iterations is MODEL.TEMP_FROZEN_PARAMS_ITER_MAP, as in VISSL's recipe.
The checkpoint carries every process's queue.
"""

import logging

import torch

from ... import distributed
from ...errors import ConfigError
from ..method import Method, register_method
from .queues import EmbeddingFIFO

log = logging.getLogger("vissl_lite")


@register_method("swav_loss")
class SwAVMethod(Method):
    num_global_crops = 2

    def __init__(self, cfg, model, env, steps_per_epoch, augment=None):
        super().__init__(cfg, model, env, steps_per_epoch, augment)
        swav = cfg.LOSS.swav_loss
        self.num_crops = self.num_global_crops + cfg.DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER
        self.crops_for_assign = list(swav.crops_for_assign)
        self.normalize, self.hard_steps = swav.normalize_last_layer, swav.temp_hard_assignment_iters
        check_swav_config(cfg, self.num_crops)
        if env.active:  # Sinkhorn's sums and maximum run over every process's samples
            self.loss_fn.all_reduce = self.all_reduce
            self.loss_fn.all_reduce_max = distributed.all_reduce_max
        self.head = model.heads[-1]
        queue = swav.queue
        self.queue_start = max(queue.start_iter, queue.start_epoch * steps_per_epoch)
        self.queue = None
        length = queue.local_queue_length or queue.queue_length // env.world_size
        if queue.queue_length or queue.local_queue_length:
            if length == 0:
                raise ConfigError("LOSS.swav_loss.queue.queue_length", queue.queue_length,
                                  f"at least the world size ({env.world_size}), or 0 for no queue")
            self.queue = EmbeddingFIFO(len(self.crops_for_assign), length, self.head.out_dim,
                                       next(model.parameters()).device)
        self.micro_steps = 0

    def set_step(self, step: int) -> None:
        self.step, self.micro_steps = step, 0

    def forward(self, model, images, labels, generator):
        """(loss, trunk features of the first global crop) for one micro-batch."""
        if self.normalize and self.micro_steps == 0:
            self.head.normalize_prototypes()
        self.micro_steps += 1
        crops = self.augment.multi_crop(images, self.num_global_crops, generator)
        (z, scores), features = model(crops, return_features=True)
        hard = self.step < self.hard_steps
        use_queue = self.queue is not None and self.queue.full
        losses = []
        for layer, layer_scores in zip(self.head.prototypes(), scores):
            queue_scores = None
            if use_queue:
                with torch.no_grad():  # whole prototypes: under fsdp the layer holds a shard of the rows
                    weight = distributed.full_tensor(layer.weight.detach())
                    queue_scores = [e @ weight.t().to(e.dtype) for e in self.queue.embeddings]
            losses.append(self.loss_fn(layer_scores, self.num_crops, queue_scores, hard))
        if self.queue is not None and self.step >= self.queue_start:
            self.queue.push(z.detach().float().reshape(self.num_crops, len(images), -1)[self.crops_for_assign])
        return sum(losses) / len(losses), features

    def after_step(self, model, step: int) -> None:
        self.step, self.micro_steps = step, 0

    def state_dict(self) -> dict:
        """Every process's queue, [world size, crops, length, dim] (a collective under torchrun)."""
        if self.queue is None:
            return {}
        embeddings = self.queue.embeddings
        with torch.no_grad():
            every = self.gather(embeddings.unsqueeze(0)) if self.gather is not None else embeddings.unsqueeze(0)
        return {"queue": {"embeddings": every, "filled": self.queue.filled}}

    def load_state_dict(self, state: dict) -> None:
        if set(state) - {"queue"}:
            raise ValueError(f"a SwAV checkpoint holds its queue only; this one has {sorted(state)}")
        self._load_queue(state.get("queue"))

    def _load_queue(self, saved) -> None:
        """This process's queue from every process's in the checkpoint. A queue saved for another
        world size or length (or none) cannot continue: the queue then starts empty, as at its start."""
        world = self.env.world_size
        expected = None if self.queue is None else (world, *self.queue.embeddings.shape)
        found = None if saved is None else tuple(saved["embeddings"].shape)
        if found != expected:
            log.warning("SwAV queue: the checkpoint holds %s, this run needs %s ([processes, crops, length, dim]); "
                        "the queue starts empty", found, expected)
            return
        if saved is not None:
            self.queue.load_state_dict({"embeddings": saved["embeddings"][self.env.rank],
                                        "filled": saved["filled"]})


def check_swav_config(cfg, num_crops: int) -> None:
    """swav_loss needs a swav_head last and target crops among the crops made."""
    heads = list(cfg.MODEL.HEAD.PARAMS)
    if not heads or heads[-1][0] != "swav_head":
        raise ConfigError("MODEL.HEAD.PARAMS", [list(h) for h in heads] if heads else [],
                          'a list ending with a swav_head, e.g. [["swav_head", {"dims": [2048, 2048, 128], '
                          '"use_bn": true, "num_clusters": [3000]}]]',
                          "LOSS.name=swav_loss reads its embeddings and prototype scores")
    assign = list(cfg.LOSS.swav_loss.crops_for_assign)
    if not assign or len(set(assign)) != len(assign) or max(assign) >= num_crops:
        raise ConfigError("LOSS.swav_loss.crops_for_assign", assign,
                          f"distinct crop indices below {num_crops} (2 global + "
                          f"{num_crops - 2} local crops), e.g. [0, 1]")

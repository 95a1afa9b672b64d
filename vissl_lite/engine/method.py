"""How a method turns a batch into a loss: the views it makes, its forward, and any state of
its own (a teacher, a queue, a center) that the checkpoint carries.

Methods are registered by LOSS.name, as VISSL picks its method by its loss; a loss without a
method of its own trains as a two-view method (SimCLR, Barlow Twins, any registered loss).
"""

from typing import Callable, Dict, Tuple

import torch

from ..losses import build_loss
from ..registry import registrar

METHODS: Dict[str, Callable] = {}
register_method = registrar(METHODS, "method")


class TwoViewMethod:
    """Two augmented views of every image through the trunk + heads; the loss compares them.

    Views are concatenated [view 1 of every image; view 2 of every image], as the losses expect.
    """

    num_views = 2

    def __init__(self, cfg, augment):
        self.loss_fn = build_loss(cfg.LOSS)
        self.augment = augment

    def views(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.cat([self.augment(images, generator) for _ in range(self.num_views)])

    def forward(self, model, images, labels, generator) -> Tuple[torch.Tensor, torch.Tensor]:
        """(loss, trunk features of the first view) for one micro-batch."""
        inputs = self.views(images, generator)
        if inputs.is_cuda:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        outputs, features = model(inputs, return_features=True)
        return self.loss_fn(outputs, labels), features[: len(images)]

    def distribute(self, gather, all_reduce) -> None:
        """Under torchrun: losses that need the other ranks' embeddings or sums get the collectives."""
        if hasattr(self.loss_fn, "gather"):
            self.loss_fn.gather = gather
        if hasattr(self.loss_fn, "all_reduce"):
            self.loss_fn.all_reduce = all_reduce

    @staticmethod
    def schedules(cfg, steps_per_epoch: int) -> dict:
        """The method's own schedules, {full key path: StepSchedule} (explain plots them)."""
        return {}

    def start(self, model, step: int, steps_per_epoch: int) -> None:
        """Called once before the first optimizer step, after any resume: the model being trained
        (not DDP-wrapped), the optimizer step the run starts at, the optimizer steps per epoch."""

    def after_step(self, model, step: int) -> None:
        """Called after every optimizer step (teachers and queues update here)."""

    def scalars(self, step: int) -> dict:
        """Values of the method's own schedules at `step`, for the log."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"this method keeps no state, the checkpoint has {sorted(state)}")


class SupervisedMethod(TwoViewMethod):
    """One augmented view, cross entropy on the head's logits (linear evaluation)."""

    num_views = 1


register_method("cross_entropy")(SupervisedMethod)


def method_class(cfg):
    return METHODS.get(cfg.LOSS.name, TwoViewMethod)


def build_method(cfg, augment):
    return method_class(cfg)(cfg, augment)


# Methods with modules of their own (engine/methods/) register themselves on import.
from . import methods  # noqa: E402,F401

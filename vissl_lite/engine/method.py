"""How a method turns a batch into a loss: the views it makes, its forward, and any state of
its own (a teacher, a queue, a center) that the checkpoint carries.

Methods are registered by LOSS.name, as VISSL picks its method by its loss; a loss without a
method of its own trains as a two-view method (SimCLR, Barlow Twins, any registered loss).
"""

from typing import Dict, Optional, Tuple

import torch

from .. import distributed
from ..distributed import DistEnv
from ..losses import build_loss
from ..optim.schedules import StepSchedule
from ..registry import Registry

METHODS = Registry("method")
register_method = METHODS.register


class Method:
    """The shape every method shares, with no-op defaults for what a method may not have.

    Built once per run, before any resume, with the model being trained (not DDP-wrapped, on
    its device), the process group `env` (rank, world size: collectives are used when it has
    several processes) and the optimizer steps per epoch. The trainer then calls, in order:

        load_state_dict(state)                      on resume: the checkpoint's `method` entry
        set_step(step)                              the optimizer step the run continues at
        forward(model, images, labels, generator)   every micro-batch -> (loss, features)
        after_step(model, step)                     after every optimizer step
        scalars(step), state_dict()                 at log steps / checkpoints

    augment: the batch augmentation (None where nothing runs forward: explain, the API).
    """

    # The views of every image its forward takes (the data pipeline cuts that many); a multi-crop
    # method declares num_global_crops instead (global crops, then LOCAL_CROPS_NUMBER local ones).
    num_views = 2

    def __init__(self, cfg, model: torch.nn.Module, env: DistEnv, steps_per_epoch: int, augment=None):
        self.cfg, self.env, self.steps_per_epoch, self.augment = cfg, env, steps_per_epoch, augment
        self.loss_fn = build_loss(cfg.LOSS)
        # Losses that need the other ranks' embeddings or sums get the collectives (gradients flow back).
        self.gather = distributed.gather_with_grad if env.active else None
        self.all_reduce = distributed.all_reduce_with_grad if env.active else None
        self.step = 0

    def schedules(self) -> Dict[str, StepSchedule]:
        """The method's own schedules, {full key path: StepSchedule} (explain plots them)."""
        return {}

    def set_step(self, step: int) -> None:
        """Continue at optimizer step `step` (0 for a fresh run)."""
        self.step = step

    def forward(self, model, images: torch.Tensor, labels, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        """(loss, trunk features of the first view) for one micro-batch."""
        raise NotImplementedError

    def after_step(self, model, step: int) -> None:
        """`step` optimizer steps are done (teachers and queues update here)."""
        self.step = step

    def scalars(self, step: int) -> dict:
        """Values of the method's own schedules used by the last optimizer step, for the log."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"this method keeps no state, the checkpoint has {sorted(state)}")


class TwoViewMethod(Method):
    """Two augmented views of every image through the trunk + heads; the loss compares them.

    Views are concatenated [view 1 of every image; view 2 of every image], as the losses expect.
    """

    def __init__(self, cfg, model, env, steps_per_epoch, augment=None):
        super().__init__(cfg, model, env, steps_per_epoch, augment)
        if env.active:  # SimCLR gathers every rank's embeddings, Barlow Twins sums its statistics
            if hasattr(self.loss_fn, "gather"):
                self.loss_fn.gather = self.gather
            if hasattr(self.loss_fn, "all_reduce"):
                self.loss_fn.all_reduce = self.all_reduce

    def views(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.cat([self.augment(images, generator) for _ in range(self.num_views)])

    def forward(self, model, images, labels, generator):
        inputs = self.views(images, generator).contiguous(memory_format=torch.channels_last)  # as the model
        outputs, features = model(inputs, return_features=True)
        return self.loss_fn(outputs, labels), features[: len(images)]


class SupervisedMethod(TwoViewMethod):
    """One augmented view, cross entropy on the head's logits (linear evaluation)."""

    num_views = 1


register_method("cross_entropy")(SupervisedMethod)


def build_method(cfg, model: torch.nn.Module, env: Optional[DistEnv] = None, steps_per_epoch: int = 1,
                 augment=None) -> Method:
    """The method LOSS.name picks (a two-view method for a loss without one of its own), built
    for `model` (see Method); env None: one process."""
    method = METHODS.get(cfg.LOSS.name, TwoViewMethod)
    return method(cfg, model, env or DistEnv(), steps_per_epoch, augment)


# Methods with modules of their own (engine/methods/) register themselves on import.
from . import methods  # noqa: E402,F401

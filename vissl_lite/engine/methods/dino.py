"""DINO (Caron et al. 2021): self-distillation with no labels, registered for LOSS.name dino_loss.

Per micro-batch, for optimizer step k:
  crops    2 global crops + DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER local ones of every image;
  student  the trained model on all crops (one forward, trunk once per crop size);
  teacher  its EMA copy, no gradient, on the 2 global crops;
  loss     DINOLoss with the teacher temperature teacher_temp(k) and the current center, which
           then moves toward the teacher outputs' mean over the global batch (ema_center).
After optimizer step k the teacher moves toward the student with momentum(k).

momentum and teacher_temp are schedules under LOSS.dino_loss, any type or dialect of
OPTIMIZER.param_schedulers, evaluated from the optimizer step counter only. The checkpoint
carries the teacher (weights and buffers) and the center.
"""

from typing import Dict

import torch

from ...errors import ConfigError
from ...losses.dino import updated_center
from ...models.ema import ema_update, momentum_teacher
from ...optim.schedules import StepSchedule
from ..method import Method, register_method
from .scheduled import method_schedule

SECTION = "LOSS.dino_loss"
# Each schedule: (what it schedules, for the schedule builder; a test of its legal values, in words).
SCHEDULES = {
    "momentum": ("teacher_momentum", lambda v: 0 <= v <= 1, "a value in [0, 1] (an EMA momentum)"),
    "teacher_temp": ("teacher_temp", lambda v: v > 0, "a value > 0 (a temperature)"),
}


@register_method("dino_loss")
class DINOMethod(Method):
    num_global_crops = 2

    def __init__(self, cfg, model, env, steps_per_epoch, augment=None):
        super().__init__(cfg, model, env, steps_per_epoch, augment)
        check_crop_probabilities(cfg.DATA.TRAIN.TRANSFORMS, self.num_global_crops)
        self.ema_center = cfg.LOSS.dino_loss.ema_center
        self.momentum = dino_schedule(cfg, "momentum", steps_per_epoch)
        self.teacher_temp = dino_schedule(cfg, "teacher_temp", steps_per_epoch)
        self.teacher = momentum_teacher(model)  # DINO starts the teacher as a copy of the student
        self.center = None  # [1, head width], made at the first forward (the width is the output's)

    def schedules(self) -> Dict[str, StepSchedule]:
        return {f"{SECTION}.momentum": self.momentum, f"{SECTION}.teacher_temp": self.teacher_temp}

    def forward(self, model, images, labels, generator):
        """(loss, trunk features of the first global crop) for one micro-batch."""
        crops = self.augment.multi_crop(images, self.num_global_crops, generator)
        student_out, features = model(crops, return_features=True)
        with torch.no_grad():
            teacher_out = self.teacher(crops[: self.num_global_crops])
        if self.center is None:  # the head's width is known from its first output
            self.center = teacher_out.new_zeros(1, teacher_out.shape[1], dtype=torch.float32)
        loss = self.loss_fn(student_out, teacher_out, self.center, self.teacher_temp.values(self.step))
        self.center = updated_center(self.center, teacher_out, self.ema_center, self.all_reduce)
        return loss, features

    def after_step(self, model, step: int) -> None:
        """`step` optimizer steps are done: the teacher follows the student with momentum(step - 1)."""
        ema_update(self.teacher, model, self.momentum.values(step - 1))
        self.step = step

    def scalars(self, step: int) -> dict:
        """The values used by the last optimizer step (step - 1), like the logged LR."""
        k = max(step - 1, 0)
        return {"teacher_momentum": self.momentum.values(k), "teacher_temp": self.teacher_temp.values(k)}

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "center": self.center}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"teacher", "center"}:
            raise ValueError(f"a DINO checkpoint holds the teacher and the center; this one has {sorted(state)}")
        self.teacher.load_state_dict(state["teacher"])
        self.center = state["center"].to(next(self.teacher.parameters()).device)


def dino_schedule(cfg, name: str, steps_per_epoch: int) -> StepSchedule:
    """LOSS.dino_loss.<name> as values per optimizer step, its written values range-checked."""
    scalar, legal, allowed = SCHEDULES[name]
    return method_schedule(cfg.LOSS.dino_loss[name], f"{SECTION}.{name}", cfg.OPTIMIZER.num_epochs, steps_per_epoch,
                           scalar, legal, allowed)


def check_crop_probabilities(transforms, num_global: int) -> None:
    """CROP_BLUR_P / CROP_SOLARIZE_P have at most one value per crop."""
    total = num_global + transforms.LOCAL_CROPS_NUMBER
    for name in ("CROP_BLUR_P", "CROP_SOLARIZE_P"):
        values = list(transforms[name])
        if len(values) > total:
            raise ConfigError(f"DATA.TRAIN.TRANSFORMS.{name}", values,
                              f"at most {total} values, one per crop ({num_global} global + "
                              f"{transforms.LOCAL_CROPS_NUMBER} local)")

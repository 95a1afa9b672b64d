"""A schedule compiled to optimizer steps: what parameter groups, the optimizer wrapper, explain
and a method's own scalars read. The optimizer step counter k is its only input."""

import numpy as np


class StepSchedule:
    """`values(steps)`: the value for optimizer step(s) k, an int (-> float) or an integer numpy
    array (-> array), k counted from 0 after gradient accumulation, of num_epochs x
    steps_per_epoch steps in all. Steps past the last one hold the last step's value (a finished
    run that resumes applies it); negative steps are refused.
    """

    def __init__(self, num_epochs: int, steps_per_epoch: int):
        if num_epochs < 1 or steps_per_epoch < 1:
            raise ValueError(f"a schedule needs at least one epoch of one step; got {num_epochs} epochs "
                             f"of {steps_per_epoch} steps")
        self.num_epochs, self.steps_per_epoch = num_epochs, steps_per_epoch
        self.total_steps = num_epochs * steps_per_epoch

    def values(self, steps):
        k = np.asarray(steps)
        if k.dtype.kind not in "iu":
            raise ValueError(f"optimizer steps are integers; got {steps!r}")
        if np.any(k < 0):
            raise ValueError(f"optimizer steps start at 0; got {k.min()}")
        out = self._at(np.minimum(k, self.total_steps - 1))
        return float(out) if k.ndim == 0 else out

    def _at(self, k: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class WhereStepSchedule(StepSchedule):
    """A `where` schedule s sampled per step: s(k / (E*B)) for update_interval step,
    s(floor(k / B) / E) (constant over each epoch) for epoch.

    E.g. a cosine from 1 to 0 over 2 epochs of 2 steps: step interval 1, 0.854, 0.5, 0.146;
    epoch interval 1, 1, 0.5, 0.5.
    """

    def __init__(self, schedule, update_interval: str, num_epochs: int, steps_per_epoch: int):
        super().__init__(num_epochs, steps_per_epoch)
        self.schedule, self.update_interval = schedule, update_interval

    def _at(self, k):
        if self.update_interval == "epoch":
            return self.schedule((k // self.steps_per_epoch) / self.num_epochs)
        return self.schedule(k / self.total_steps)


class TabulatedStepSchedule(StepSchedule):
    """Values computed once for every step of the run (the dialects defined by recursions)."""

    def __init__(self, table: np.ndarray, num_epochs: int, steps_per_epoch: int):
        super().__init__(num_epochs, steps_per_epoch)
        if table.shape != (self.total_steps,):
            raise ValueError(f"expected {self.total_steps} values, one per step; got {table.shape}")
        self.table = table

    def _at(self, k):
        return self.table[k]

"""ClassyVision / fvcore / VISSL schedules: pure functions of `where`, the fraction of training
done, in [0, 1).

`where` is k / (E*B) before optimizer step k for update_interval step and e / E for every step of
epoch e for update_interval epoch (`WhereStepSchedule`). Formulas, defaults and default update
intervals follow fvcore / ClassyVision; `inverse_sqrt` and `cosine_warm_restart` follow VISSL.
"""

import math
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .registry import SCHEDULES, ScheduleArgumentError, ScheduleType, arg, child_slots
from .step import WhereStepSchedule

# fvcore's tolerance for float noise in `where` at interval boundaries.
WHERE_EPSILON = 1e-6
INTERVALS = ("step", "epoch")


@dataclass
class ParamScheduler(ScheduleType):
    """A pure function `where -> value`.

    Called with a float it returns a float; with a numpy array, an array (how explain evaluates
    millions of steps at once). `where` outside [0, 1) is refused, as fvcore's schedules do.
    Subclasses are dataclasses of their arguments and write their formula once, in numpy, in
    `_values`.
    """

    default_update_interval = "step"
    kind_words = "a where-fraction type (mmengine and mmcv count steps themselves)"
    update_interval: Optional[str] = arg(None, choices=INTERVALS, kw_only=True,
                                         doc="step | epoch; null: the type's default (ClassyVision's)")

    def __call__(self, where):
        w = np.asarray(where, dtype=np.float64)
        if np.any((w < 0) | (w >= 1)):
            raise ValueError(f"where is the fraction of training done, in [0, 1); got {where!r}")
        values = self._values(w)
        return float(values) if w.ndim == 0 else values

    def _values(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def interval(self) -> str:
        return self.update_interval or self.default_update_interval

    def compile(self, num_epochs: int, steps_per_epoch: int) -> WhereStepSchedule:
        return WhereStepSchedule(self, self.interval, num_epochs, steps_per_epoch)


@SCHEDULES.register
@dataclass
class ConstantParamScheduler(ParamScheduler):
    """s(w) = value.  value 0.1: 0.1 at every step."""

    name, default_update_interval, value_fields = "constant", "epoch", ("value",)
    value: float = arg(doc="the value at every step")

    def _values(self, w):
        return np.full(w.shape, self.value)


@dataclass
class StartEndScheduler(ParamScheduler):
    """A where-function from start_value (w = 0) towards end_value (w = 1)."""

    value_fields = ("start_value", "end_value")
    start_value: float = arg(doc="value at w = 0")
    end_value: float = arg(doc="value approached at w = 1")


@SCHEDULES.register
@dataclass
class LinearParamScheduler(StartEndScheduler):
    """s(w) = end * w + start * (1 - w) (fvcore's form).

    start 0.01, end 0.1: 0.01 at w = 0, 0.055 at w = 0.5, 0.0991 at w = 0.99.
    """

    name = "linear"

    def _values(self, w):
        return self.end_value * w + self.start_value * (1 - w)


@SCHEDULES.register
@dataclass
class CosineParamScheduler(StartEndScheduler):
    """s(w) = end + (start - end) * (1 + cos(pi * w)) / 2.

    start 0.1, end 0: 0.1 at w = 0, 0.05 at w = 0.5, 0.0146 at w = 0.75.
    """

    name = "cosine"

    def _values(self, w):
        return self.end_value + 0.5 * (self.start_value - self.end_value) * (1 + np.cos(np.pi * w))


@SCHEDULES.register
@dataclass
class ExponentialParamScheduler(ParamScheduler):
    """s(w) = start_value * decay ** w (fvcore's ExponentialParamScheduler).

    start 2.0, decay 0.02: 2.0 at w = 0, 0.283 at w = 0.5, tending to 0.04 at the end.
    """

    name, value_fields = "exponential", ("start_value",)
    start_value: float = arg(doc="value at w = 0")
    decay: float = arg(gt=0, doc="the value at w = 1 is start_value x decay")

    def _values(self, w):
        return self.start_value * self.decay**w


@SCHEDULES.register
@dataclass
class MultiStepParamScheduler(ParamScheduler):
    """s(w) = values[i], i = #{m in milestones : m <= floor((w + 1e-6) * num_epochs)}.

    Milestones are epochs; empty milestones split num_epochs evenly, each piece
    ceil(num_epochs / len(values)) epochs long (fvcore). values [0.1, 0.01, 0.001], milestones
    [30, 60], 90 epochs: 0.1 for epochs 0-29, 0.01 for 30-59, 0.001 for 60-89.
    """

    name, default_update_interval, value_fields = "multistep", "epoch", ("values",)
    values: List[float] = arg(doc="one value per piece")
    num_epochs: int = arg(context=True, doc="OPTIMIZER.num_epochs")
    milestones: List[int] = arg(factory=list, ge=1, doc="epochs where the next value starts; empty: equal pieces")

    def __post_init__(self):
        if not self.values:
            raise ScheduleArgumentError("values", self.values, "a non-empty list of numbers")
        milestones = list(self.milestones)
        if not milestones:
            width = math.ceil(self.num_epochs / len(self.values))
            milestones = [width * (i + 1) for i in range(len(self.values) - 1)]
        if not (len(milestones) == len(self.values) - 1
                and all(a < b for a, b in zip([0] + milestones, milestones))
                and all(m < self.num_epochs for m in milestones)):
            raise ScheduleArgumentError(
                "milestones", milestones,
                f"{len(self.values) - 1} strictly increasing epochs in (0, {self.num_epochs}) "
                f"(one fewer than values, below num_epochs={self.num_epochs}, the length of training)")
        self.milestones = milestones

    def _values(self, w):
        epoch = np.floor((w + WHERE_EPSILON) * self.num_epochs)
        return np.asarray(self.values)[np.searchsorted(self.milestones, epoch, side="right")]


def _step_values(values, w):
    """values[floor((w + 1e-6) * len(values))], the last piece for w within 1e-6 of 1 (where
    fvcore indexes past the end)."""
    index = np.floor((w + WHERE_EPSILON) * len(values)).astype(np.int64)
    return np.asarray(values)[np.minimum(index, len(values) - 1)]


@SCHEDULES.register
@dataclass
class StepParamScheduler(ParamScheduler):
    """s(w) = values[floor((w + 1e-6) * len(values))]: equal-width pieces of training.

    values [0.1, 0.01, 0.001, 0.0001]: 0.1 for w in [0, 0.25), 0.01 for [0.25, 0.5), 0.001 for
    [0.5, 0.75), 0.0001 for [0.75, 1); over 120 epochs: epochs 0-29, 30-59, 60-89, 90-119.
    """

    name, default_update_interval, value_fields = "step", "epoch", ("values",)
    values: List[float] = arg(doc="one value per equal piece of training")

    def __post_init__(self):
        if not self.values:
            raise ScheduleArgumentError("values", self.values, "a non-empty list of numbers")

    def _values(self, w):
        return _step_values(self.values, w)


@SCHEDULES.register
@dataclass
class StepWithFixedGammaParamScheduler(ParamScheduler):
    """base_value * gamma**i in num_decays + 1 equal-width pieces of `where` (ClassyVision's
    step_with_fixed_gamma is fvcore's StepParamScheduler over those values).

    base 0.1, gamma 0.1, 3 decays: 0.1 for w in [0, 0.25), 0.01 for [0.25, 0.5), 0.001 for
    [0.5, 0.75), 0.0001 for [0.75, 1). Over 90 epochs by step the changes fall mid-epoch 22.5,
    45 and 67.5; with update_interval epoch at the first epochs past them: 23, 45, 68.
    """

    name, value_fields = "step_with_fixed_gamma", ("base_value",)
    base_value: float = arg(gt=0, doc="value of the first piece")
    gamma: float = arg(gt=0, doc="factor per decay")
    num_decays: int = arg(gt=0, doc="number of decays")

    def _values(self, w):
        return _step_values([self.base_value * self.gamma**i for i in range(self.num_decays + 1)], w)


@SCHEDULES.register
@dataclass
class PolynomialDecayParamScheduler(ParamScheduler):
    """s(w) = base_value * (1 - w) ** power.

    base 0.1, power 2: 0.1 at w = 0, 0.025 at w = 0.5, 0.001 at w = 0.9.
    """

    name, value_fields = "polynomial", ("base_value",)
    base_value: float = arg(gt=0, doc="value at w = 0")
    power: float = arg(doc="exponent of (1 - w)")

    def _values(self, w):
        return self.base_value * (1 - w) ** self.power


@SCHEDULES.register
@dataclass
class InverseSqrtParamScheduler(ParamScheduler):
    """VISSL's inverse square root decay: s(w) = d / sqrt(w) for w > 0, s(0) = d, where
    d = start_value * sqrt(L) for L = warmup_interval_length > 0, else d = start_value.

    So s(L) = start_value; values before L are larger, which is why VISSL places it after a
    linear warmup of length L in a composite with interval_scaling `fixed`. start 4.8, L 0.25:
    d = 2.4; 4.8 at w = 0.25, 3.0 at w = 0.64, 2.67 at w = 0.81.
    """

    name, value_fields = "inverse_sqrt", ("start_value",)
    start_value: float = arg(doc="the value at w = warmup_interval_length")
    warmup_interval_length: float = arg(ge=0, lt=1, doc="where the decay reaches start_value, in [0, 1)")

    def _values(self, w):
        length = self.warmup_interval_length
        decay_factor = self.start_value * (math.sqrt(length) if length > 0 else 1.0)
        positive = w > 0
        return np.where(positive, decay_factor / np.sqrt(np.where(positive, w, 1.0)), decay_factor)


@SCHEDULES.register
@dataclass
class CosineWarmRestartParamScheduler(ParamScheduler):
    """VISSL's cosine with warm restarts (SGDR). With R = restart_interval_length:

    restarts r_j = j*R (half waves) or (2j-1)*R after r_0 = 0 (full waves), below 1;
    the peak after restart j is start * lr_multiplier**j, or, when is_adaptive, the value the
    single cosine end + (start-end)(1+cos(pi*x))/2 has at x = r_j (half) or x = r_j + R (full).
    s(w) = end + (peak_j - end) * (1 + cos(pi * u)) / 2 with j the last restart <= w and
    u = (w mod R) / R for half waves, u = w / R for full waves (a cosine that keeps going).

    start 1, end 0, R 0.25, half waves, lr_multiplier 0.5: peaks 1, 0.5, 0.25, 0.125 at w = 0,
    0.25, 0.5, 0.75; 0.5 half-way down the first wave (w = 0.125).
    """

    name, value_fields = "cosine_warm_restart", ("start_value", "end_value")
    start_value: float = arg(doc="peak of the first wave")
    end_value: float = arg(doc="bottom of every wave")
    restart_interval_length: float = arg(gt=0, le=1, doc="fraction of training per wave, in (0, 1]")
    wave_type: str = arg("half", choices=("half", "full"), doc="half | full")
    lr_multiplier: float = arg(1.0, gt=0, doc="peak x lr_multiplier at each restart")
    is_adaptive: bool = arg(False, doc="restart peaks follow the single cosine")

    def __post_init__(self):
        for name, ok, allowed in (("restart_interval_length", 0 < self.restart_interval_length <= 1, "a number in (0, 1]"),
                                  ("wave_type", self.wave_type in ("half", "full"), "half or full"),
                                  ("lr_multiplier", self.lr_multiplier > 0, "a number > 0")):
            if not ok:
                raise ScheduleArgumentError(name, getattr(self, name), allowed)
        length = self.restart_interval_length
        stride = 2 * length if self.wave_type == "full" else length
        count = math.ceil((1.0 - length) / stride - 1e-12) if length < 1.0 else 0
        self.restart_points = [0.0] + [length + i * stride for i in range(max(count, 0))]
        self.peaks = [self._peak(j, r) for j, r in enumerate(self.restart_points)]

    def _peak(self, j: int, restart: float) -> float:
        if not self.is_adaptive:
            return self.start_value * self.lr_multiplier**j
        x = restart + (self.restart_interval_length if self.wave_type == "full" else 0.0)
        return self.end_value + 0.5 * (self.start_value - self.end_value) * (1 + math.cos(math.pi * x))

    def _values(self, w):
        restart = np.maximum(np.searchsorted(self.restart_points, w, side="right") - 1, 0)
        peak = np.asarray(self.peaks)[restart]
        length = self.restart_interval_length
        u = np.mod(w, length) / length if self.wave_type == "half" else w / length
        return self.end_value + 0.5 * (peak - self.end_value) * (1 + np.cos(np.pi * u))


@SCHEDULES.register
@dataclass
class CompositeParamScheduler(ParamScheduler):
    """Pieces in sequence: piece i covers [sum(lengths[:i]), sum(lengths[:i+1])).

    s(w) = child_i(w) for `fixed` scaling, child_i((w - start_i) / lengths[i]) for `rescaled`;
    a `where` within 1e-6 below a boundary already belongs to the next piece (fvcore).
    linear 0.6 -> 4.8 then cosine 4.8 -> 0.0048, lengths [0.1, 0.9], both rescaled: 0.6 at
    w = 0, 2.7 at w = 0.05, 4.8 at w = 0.1, 2.4024 at w = 0.55. The children follow the
    composite's update_interval (a child may repeat it).
    """

    name = "composite"
    schedulers: List[ParamScheduler] = arg(children=(SCHEDULES, ParamScheduler),
                                           doc="the pieces: schedule sections of where-fraction types, nesting allowed")
    lengths: List[float] = arg(gt=0, doc="fraction of training per piece, summing to 1")
    interval_scaling: List[str] = arg(factory=list, doc="rescaled | fixed per piece; empty: all rescaled")

    def __post_init__(self):
        count = len(self.schedulers)
        for i, child in enumerate(self.schedulers):
            if child.update_interval not in (None, self.interval):
                raise ScheduleArgumentError(f"schedulers[{i}].update_interval", child.update_interval,
                                            f"unset or {self.interval}", "the composite's own interval")
        lengths, scaling = list(self.lengths), list(self.interval_scaling) or ["rescaled"] * count
        if len(lengths) != count:
            raise ScheduleArgumentError("lengths", lengths, f"{count} numbers, one per entry of schedulers")
        if abs(sum(lengths) - 1) >= 1e-3:
            raise ScheduleArgumentError("lengths", lengths, "positive numbers summing to 1 (within 1e-3)")
        if len(scaling) != count or any(x not in ("rescaled", "fixed") for x in scaling):
            raise ScheduleArgumentError("interval_scaling", scaling,
                                        f"empty (all rescaled) or {count} words, each rescaled or fixed")
        self.interval_scaling = scaling
        lengths[-1] = 1.0 - sum(lengths[:-1])  # absorb rounding, as fvcore does
        self.lengths, self.ends = lengths, np.cumsum(lengths)

    def _values(self, w):
        piece = np.searchsorted(self.ends[:-1], w + WHERE_EPSILON, side="left")
        out = np.empty(w.shape)
        for i, child in enumerate(self.schedulers):
            mask = piece == i
            if not mask.any():
                continue
            local = w[mask]
            if self.interval_scaling[i] == "rescaled":
                local = (local - (self.ends[i] - self.lengths[i])) / self.lengths[i]
            out[mask] = child._values(local)
        return out

    @classmethod
    def value_slots(cls, cfg):
        yield from child_slots(SCHEDULES, cfg.get("schedulers"), "schedulers")

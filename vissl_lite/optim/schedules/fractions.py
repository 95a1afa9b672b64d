"""ClassyVision / fvcore / VISSL schedules: pure functions of `where`, the fraction of training
done, in [0, 1).

`where` is k / (E*B) before optimizer step k for update_interval step and e / E for every step of
epoch e for update_interval epoch (`WhereStepSchedule`). Formulas, defaults and default update
intervals follow fvcore / ClassyVision; `inverse_sqrt` and `cosine_warm_restart` follow VISSL.
"""

import math
from typing import Sequence

import numpy as np

from .registry import SCHEDULES, Context, Fields, ScheduleArgumentError, ScheduleType, child_slots
from .step import WhereStepSchedule

# fvcore's tolerance for float noise in `where` at interval boundaries.
WHERE_EPSILON = 1e-6
INTERVALS = ("step", "epoch")


class ParamScheduler(ScheduleType):
    """A pure function `where -> value`.

    Called with a float it returns a float; with a numpy array, an array (how explain evaluates
    millions of steps at once). `where` outside [0, 1) is refused, as fvcore's schedules do.
    Subclasses write their formula once, in numpy, in `_values`.
    """

    default_update_interval = "step"
    update_interval = None  # the config's choice (set by `from_fields`); None: the default

    def __call__(self, where):
        w = np.asarray(where, dtype=np.float64)
        if np.any((w < 0) | (w >= 1)):
            raise ValueError(f"where is the fraction of training done, in [0, 1); got {where!r}")
        values = self._values(w)
        return float(values) if w.ndim == 0 else values

    def _values(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def compile(self, num_epochs: int, steps_per_epoch: int) -> WhereStepSchedule:
        interval = self.update_interval or self.default_update_interval
        return WhereStepSchedule(self, interval, num_epochs, steps_per_epoch)


def from_fields(cfg, context: Context, required_interval=None) -> ParamScheduler:
    """Build the where-schedule written in `cfg`, with its update_interval (the type's default
    when unset; `required_interval`, a composite's own, when given)."""
    f = Fields(cfg, f"{cfg.get('name')} schedules")
    cls = SCHEDULES.lookup(cfg.get("name"), "name")
    if not issubclass(cls, ParamScheduler):
        raise ScheduleArgumentError("name", cls.name, "a where-fraction type",
                                    "mmengine and mmcv schedules count steps and cannot be composite children")
    interval = f.choice("update_interval", INTERVALS, required_interval or cls.default_update_interval)
    if required_interval is not None and interval != required_interval:
        raise ScheduleArgumentError("update_interval", interval, f"unset or {required_interval}",
                                    "the composite's own interval")
    schedule = cls.from_config(f, context)
    schedule.update_interval = interval
    return schedule


def _check_positive(**named) -> None:
    for argument, value in named.items():
        if not value > 0:
            raise ScheduleArgumentError(argument, value, "a number > 0")


@SCHEDULES.register
class ConstantParamScheduler(ParamScheduler):
    """s(w) = value.  value 0.1: 0.1 at every step."""

    name, default_update_interval, value_fields = "constant", "epoch", ("value",)

    def __init__(self, value: float):
        self.value = value

    def _values(self, w):
        return np.full(w.shape, self.value)

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("value"))


@SCHEDULES.register
class LinearParamScheduler(ParamScheduler):
    """s(w) = end * w + start * (1 - w) (fvcore's form).

    start 0.01, end 0.1: 0.01 at w = 0, 0.055 at w = 0.5, 0.0991 at w = 0.99.
    """

    name, value_fields = "linear", ("start_value", "end_value")

    def __init__(self, start_value: float, end_value: float):
        self.start_value, self.end_value = start_value, end_value

    def _values(self, w):
        return self.end_value * w + self.start_value * (1 - w)

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("start_value"), f.number("end_value"))


@SCHEDULES.register
class CosineParamScheduler(ParamScheduler):
    """s(w) = end + (start - end) * (1 + cos(pi * w)) / 2.

    start 0.1, end 0: 0.1 at w = 0, 0.05 at w = 0.5, 0.0146 at w = 0.75.
    """

    name, value_fields = "cosine", ("start_value", "end_value")

    def __init__(self, start_value: float, end_value: float):
        self.start_value, self.end_value = start_value, end_value

    def _values(self, w):
        return self.end_value + 0.5 * (self.start_value - self.end_value) * (1 + np.cos(np.pi * w))

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("start_value"), f.number("end_value"))


@SCHEDULES.register
class ExponentialParamScheduler(ParamScheduler):
    """s(w) = start_value * decay ** w (fvcore's ExponentialParamScheduler).

    start 2.0, decay 0.02: 2.0 at w = 0, 0.283 at w = 0.5, tending to 0.04 at the end.
    """

    name, value_fields = "exponential", ("start_value",)

    def __init__(self, start_value: float, decay: float):
        _check_positive(decay=decay)
        self.start_value, self.decay = start_value, decay

    def _values(self, w):
        return self.start_value * self.decay**w

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("start_value"), f.number("decay"))


@SCHEDULES.register
class MultiStepParamScheduler(ParamScheduler):
    """s(w) = values[i], i = #{m in milestones : m <= floor((w + 1e-6) * num_epochs)}.

    Milestones are epochs; empty milestones split num_epochs evenly, each piece
    ceil(num_epochs / len(values)) epochs long (fvcore). values [0.1, 0.01, 0.001], milestones
    [30, 60], 90 epochs: 0.1 for epochs 0-29, 0.01 for 30-59, 0.001 for 60-89.
    """

    name, default_update_interval, value_fields = "multistep", "epoch", ("values",)

    def __init__(self, values: Sequence[float], num_epochs: int, milestones: Sequence[int] = ()):
        values, milestones = list(values), list(milestones)
        if not values:
            raise ScheduleArgumentError("values", values, "a non-empty list of numbers")
        if not milestones:
            width = math.ceil(num_epochs / len(values))
            milestones = [width * (i + 1) for i in range(len(values) - 1)]
        if not (len(milestones) == len(values) - 1
                and all(a < b for a, b in zip([0] + milestones, milestones))
                and all(m < num_epochs for m in milestones)):
            raise ScheduleArgumentError(
                "milestones", milestones,
                f"{len(values) - 1} strictly increasing epochs in (0, {num_epochs}) "
                f"(one fewer than values, below num_epochs={num_epochs}, the length of training)")
        self.values, self.num_epochs, self.milestones = values, num_epochs, milestones

    def _values(self, w):
        epoch = np.floor((w + WHERE_EPSILON) * self.num_epochs)
        return np.asarray(self.values)[np.searchsorted(self.milestones, epoch, side="right")]

    @classmethod
    def from_config(cls, f, context):
        return cls(f.numbers("values"), context.num_epochs, f.integers("milestones", [], ge=1))


@SCHEDULES.register
class StepParamScheduler(ParamScheduler):
    """s(w) = values[floor((w + 1e-6) * len(values))]: equal-width pieces of training.

    values [0.1, 0.01, 0.001, 0.0001]: 0.1 for w in [0, 0.25), 0.01 for [0.25, 0.5), 0.001 for
    [0.5, 0.75), 0.0001 for [0.75, 1); over 120 epochs: epochs 0-29, 30-59, 60-89, 90-119.
    """

    name, default_update_interval, value_fields = "step", "epoch", ("values",)

    def __init__(self, values: Sequence[float]):
        if not values:
            raise ScheduleArgumentError("values", values, "a non-empty list of numbers")
        self.values = list(values)

    def _values(self, w):
        index = np.floor((w + WHERE_EPSILON) * len(self.values)).astype(np.int64)
        # fvcore indexes past the end for w within 1e-6 of 1; the last piece is meant there.
        return np.asarray(self.values)[np.minimum(index, len(self.values) - 1)]

    @classmethod
    def from_config(cls, f, context):
        return cls(f.numbers("values"))


@SCHEDULES.register
class StepWithFixedGammaParamScheduler(StepParamScheduler):
    """base_value * gamma**i in num_decays + 1 equal-width pieces of `where` (ClassyVision's
    step_with_fixed_gamma is fvcore's StepParamScheduler over those values).

    base 0.1, gamma 0.1, 3 decays: 0.1 for w in [0, 0.25), 0.01 for [0.25, 0.5), 0.001 for
    [0.5, 0.75), 0.0001 for [0.75, 1). Over 90 epochs by step the changes fall mid-epoch 22.5,
    45 and 67.5; with update_interval epoch at the first epochs past them: 23, 45, 68.
    """

    name, default_update_interval, value_fields = "step_with_fixed_gamma", "step", ("base_value",)

    def __init__(self, base_value: float, gamma: float, num_decays: int):
        _check_positive(base_value=base_value, gamma=gamma, num_decays=num_decays)
        self.base_value, self.gamma, self.num_decays = base_value, gamma, num_decays
        super().__init__([base_value * gamma**i for i in range(num_decays + 1)])

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("base_value"), f.number("gamma"), f.integer("num_decays"))


@SCHEDULES.register
class PolynomialDecayParamScheduler(ParamScheduler):
    """s(w) = base_value * (1 - w) ** power.

    base 0.1, power 2: 0.1 at w = 0, 0.025 at w = 0.5, 0.001 at w = 0.9.
    """

    name, value_fields = "polynomial", ("base_value",)

    def __init__(self, base_value: float, power: float):
        _check_positive(base_value=base_value)
        self.base_value, self.power = base_value, power

    def _values(self, w):
        return self.base_value * (1 - w) ** self.power

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("base_value"), f.number("power"))


@SCHEDULES.register
class InverseSqrtParamScheduler(ParamScheduler):
    """VISSL's inverse square root decay: s(w) = d / sqrt(w) for w > 0, s(0) = d, where
    d = start_value * sqrt(L) for L = warmup_interval_length > 0, else d = start_value.

    So s(L) = start_value; values before L are larger, which is why VISSL places it after a
    linear warmup of length L in a composite with interval_scaling `fixed`. start 4.8, L 0.25:
    d = 2.4; 4.8 at w = 0.25, 3.0 at w = 0.64, 2.67 at w = 0.81.
    """

    name, value_fields = "inverse_sqrt", ("start_value",)

    def __init__(self, start_value: float, warmup_interval_length: float):
        if not 0 <= warmup_interval_length < 1:
            raise ScheduleArgumentError("warmup_interval_length", warmup_interval_length, "a number in [0, 1)")
        self.start_value, self.warmup_interval_length = start_value, warmup_interval_length
        self.decay_factor = start_value * (math.sqrt(warmup_interval_length) if warmup_interval_length > 0 else 1.0)

    def _values(self, w):
        positive = w > 0
        return np.where(positive, self.decay_factor / np.sqrt(np.where(positive, w, 1.0)), self.decay_factor)

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("start_value"), f.number("warmup_interval_length"))


@SCHEDULES.register
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

    def __init__(self, start_value, end_value, restart_interval_length, wave_type="half", lr_multiplier=1.0,
                 is_adaptive=False):
        if not 0 < restart_interval_length <= 1:
            raise ScheduleArgumentError("restart_interval_length", restart_interval_length, "a number in (0, 1]")
        if wave_type not in ("half", "full"):
            raise ScheduleArgumentError("wave_type", wave_type, "half or full")
        _check_positive(lr_multiplier=lr_multiplier)
        self.start_value, self.end_value = start_value, end_value
        self.restart_interval_length, self.wave_type = restart_interval_length, wave_type
        self.lr_multiplier, self.is_adaptive = lr_multiplier, is_adaptive
        length = restart_interval_length
        stride = 2 * length if wave_type == "full" else length
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

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("start_value"), f.number("end_value"), f.number("restart_interval_length"),
                   f.choice("wave_type", ("half", "full"), "half"), f.number("lr_multiplier", 1.0),
                   f.boolean("is_adaptive", False))


@SCHEDULES.register
class CompositeParamScheduler(ParamScheduler):
    """Pieces in sequence: piece i covers [sum(lengths[:i]), sum(lengths[:i+1])).

    s(w) = child_i(w) for `fixed` scaling, child_i((w - start_i) / lengths[i]) for `rescaled`;
    a `where` within 1e-6 below a boundary already belongs to the next piece (fvcore).
    linear 0.6 -> 4.8 then cosine 4.8 -> 0.0048, lengths [0.1, 0.9], both rescaled: 0.6 at
    w = 0, 2.7 at w = 0.05, 4.8 at w = 0.1, 2.4024 at w = 0.55.
    """

    name = "composite"

    def __init__(self, schedulers: Sequence[ParamScheduler], lengths: Sequence[float],
                 interval_scaling: Sequence[str] = ()):
        count = len(schedulers)
        if not count:
            raise ScheduleArgumentError("schedulers", list(schedulers), "a non-empty list of schedules")
        lengths, scaling = list(lengths), list(interval_scaling) or ["rescaled"] * count
        if len(lengths) != count:
            raise ScheduleArgumentError("lengths", lengths, f"{count} numbers, one per entry of schedulers")
        if any(x <= 0 for x in lengths) or abs(sum(lengths) - 1) >= 1e-3:
            raise ScheduleArgumentError("lengths", lengths, "positive numbers summing to 1 (within 1e-3)")
        if len(scaling) != count or any(s not in ("rescaled", "fixed") for s in scaling):
            raise ScheduleArgumentError("interval_scaling", scaling,
                                        f"empty (all rescaled) or {count} words, each rescaled or fixed")
        self.schedulers, self.interval_scaling = list(schedulers), scaling
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
        yield from child_slots(SCHEDULES, cfg.get("schedulers"), "name", "schedulers")

    @classmethod
    def from_config(cls, f, context):
        interval = f.choice("update_interval", INTERVALS, cls.default_update_interval)
        children = []
        for i, child in enumerate(f.mappings("schedulers")):
            try:
                children.append(from_fields(child, context, required_interval=interval))
            except ScheduleArgumentError as err:
                raise err.inside(f"schedulers[{i}]") from None
        scaling = f.cfg.get("interval_scaling") or []
        if not isinstance(scaling, list):
            raise ScheduleArgumentError("interval_scaling", scaling, "a list of words, each rescaled or fixed")
        return cls(children, f.numbers("lengths"), scaling)

"""ClassyVision / fvcore-style parameter schedules: pure functions of `where` in [0, 1).

`where` is the fraction of training done: k / (E*B) before optimizer step k for
update_interval=step, e / E for every step of epoch e for update_interval=epoch
(`schedule_where` below). Formulas and default update intervals follow fvcore/ClassyVision;
`inverse_sqrt` and `cosine_warm_restart` follow VISSL.
"""

import math
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..errors import ConfigError

# fvcore's tolerance for float noise in `where` at interval boundaries.
WHERE_EPSILON = 1e-6


class ParamScheduler:
    """A pure function `where -> value` plus the interval at which the engine samples it.

    Calling it with a float returns a float; with a numpy array, an array of values (how
    `engine_name=explain` evaluates millions of steps at once). Subclasses write their formula
    once, in numpy, in `_values`.
    """

    update_interval: str = "step"

    def __call__(self, where):
        w = np.asarray(where, dtype=np.float64)
        values = self._values(w)
        return float(values) if w.ndim == 0 else values

    def _values(self, w: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ConstantParamScheduler(ParamScheduler):
    """s(w) = value."""

    def __init__(self, value: float):
        self.value = value

    def _values(self, w):
        return np.full(w.shape, self.value)


class LinearParamScheduler(ParamScheduler):
    """s(w) = start + (end - start) * w, written as fvcore does: end*w + start*(1-w)."""

    def __init__(self, start_value: float, end_value: float):
        self.start_value, self.end_value = start_value, end_value

    def _values(self, w):
        return self.end_value * w + self.start_value * (1 - w)


class CosineParamScheduler(ParamScheduler):
    """s(w) = end + (start - end) * (1 + cos(pi * w)) / 2."""

    def __init__(self, start_value: float, end_value: float):
        self.start_value, self.end_value = start_value, end_value

    def _values(self, w):
        return self.end_value + 0.5 * (self.start_value - self.end_value) * (1 + np.cos(np.pi * w))


class MultiStepParamScheduler(ParamScheduler):
    """s(w) = values[i] where i = #{m in milestones : m <= floor((w + 1e-6) * num_epochs)}.

    Milestones are epochs; empty milestones split num_epochs evenly, each piece
    ceil(num_epochs / len(values)) epochs long (fvcore).
    """

    def __init__(self, values: Sequence[float], num_epochs: int, milestones: Sequence[int]):
        self.values, self.num_epochs, self.milestones = list(values), num_epochs, list(milestones)

    def _values(self, w):
        epoch = np.floor((w + WHERE_EPSILON) * self.num_epochs)
        return np.asarray(self.values)[np.searchsorted(self.milestones, epoch, side="right")]


class StepParamScheduler(ParamScheduler):
    """s(w) = values[floor((w + 1e-6) * len(values))]: equal-length pieces."""

    def __init__(self, values: Sequence[float]):
        self.values = list(values)

    def _values(self, w):
        index = np.floor((w + WHERE_EPSILON) * len(self.values)).astype(np.int64)
        # fvcore indexes past the end for w within 1e-6 of 1; the last piece is meant there.
        return np.asarray(self.values)[np.minimum(index, len(self.values) - 1)]


class PolynomialDecayParamScheduler(ParamScheduler):
    """s(w) = base_value * (1 - w) ** power."""

    def __init__(self, base_value: float, power: float):
        self.base_value, self.power = base_value, power

    def _values(self, w):
        return self.base_value * (1 - w) ** self.power


class InverseSqrtParamScheduler(ParamScheduler):
    """VISSL's inverse square root decay: s(w) = d / sqrt(w) for w > 0, s(0) = d, where
    d = start_value * sqrt(L) for L = warmup_interval_length > 0, else d = start_value.

    So s(L) = start_value; values before L are larger, which is why VISSL places it after a
    linear warmup of length L in a composite with interval_scaling `fixed`.
    """

    def __init__(self, start_value: float, warmup_interval_length: float):
        self.start_value, self.warmup_interval_length = start_value, warmup_interval_length
        self.decay_factor = start_value * (math.sqrt(warmup_interval_length) if warmup_interval_length > 0 else 1.0)

    def _values(self, w):
        positive = w > 0
        return np.where(positive, self.decay_factor / np.sqrt(np.where(positive, w, 1.0)), self.decay_factor)


class CosineWarmRestartParamScheduler(ParamScheduler):
    """VISSL's cosine with warm restarts (SGDR). With R = restart_interval_length:

    restarts r_j = j*R (half waves) or (2j-1)*R after r_0 = 0 (full waves), below 1;
    the peak after restart j is start * lr_multiplier**j, or, when is_adaptive, the value the
    single cosine end + (start-end)(1+cos(pi*x))/2 has at x = r_j (half) or x = r_j + R (full).
    s(w) = end + (peak_j - end) * (1 + cos(pi * u)) / 2 with j the last restart <= w and
    u = (w mod R) / R for half waves, u = w / R for full waves (a cosine that keeps going).
    """

    def __init__(self, start_value, end_value, restart_interval_length, wave_type, lr_multiplier, is_adaptive):
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


class CompositeParamScheduler(ParamScheduler):
    """Pieces in sequence: piece i covers [sum(lengths[:i]), sum(lengths[:i+1])).

    s(w) = child_i(w) for `fixed` scaling, child_i((w - start_i) / lengths[i]) for `rescaled`;
    a `where` within 1e-6 below a boundary already belongs to the next piece (fvcore).
    """

    def __init__(self, schedulers: Sequence[ParamScheduler], lengths: Sequence[float], interval_scaling: Sequence[str]):
        self.schedulers, self.interval_scaling = list(schedulers), list(interval_scaling)
        self.lengths = list(lengths)
        self.lengths[-1] = 1.0 - sum(self.lengths[:-1])  # absorb rounding, as fvcore does
        self.ends = np.cumsum(self.lengths)

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


# ----------------------------------------------------------------------------- building

DEFAULT_UPDATE_INTERVAL = {
    "constant": "epoch",
    "linear": "step",
    "cosine": "step",
    "multistep": "epoch",
    "step": "epoch",
    "step_with_fixed_gamma": "step",
    "polynomial": "step",
    "inverse_sqrt": "step",
    "cosine_warm_restart": "step",
    "composite": "step",
}

# The fields of each type that hold a value of the scheduled quantity (scaled by auto scaling).
VALUE_FIELDS: Dict[str, List[str]] = {
    "constant": ["value"],
    "linear": ["start_value", "end_value"],
    "cosine": ["start_value", "end_value"],
    "multistep": ["values"],
    "step": ["values"],
    "step_with_fixed_gamma": ["base_value"],
    "polynomial": ["base_value"],
    "inverse_sqrt": ["start_value"],
    "cosine_warm_restart": ["start_value", "end_value"],
    "composite": [],
}


class _Fields:
    """Reads a schedule mapping and raises ConfigError naming `<key>.<field>`."""

    def __init__(self, cfg: Mapping, key: str):
        self.cfg, self.key = cfg, key

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def get(self, name: str, default=None):
        value = self.cfg.get(name, default)
        return default if value is None else value

    def number(self, name: str, check: Optional[Callable[[float], bool]] = None, allowed: str = "a number"):
        value = self.cfg.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (check and not check(value)):
            raise ConfigError(self.path(name), value, allowed, f"required by {self.cfg.get('name')} schedules")
        return float(value)

    def integer(self, name: str, allowed: str, check: Callable[[int], bool]):
        value = self.cfg.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not check(value):
            raise ConfigError(self.path(name), value, allowed, f"required by {self.cfg.get('name')} schedules")
        return value

    def values(self) -> List[float]:
        values = list(self.cfg.get("values") or [])
        if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
            raise ConfigError(self.path("values"), values, "a non-empty list of numbers")
        return [float(v) for v in values]

    def num_epochs(self) -> int:
        return self.integer("num_epochs", "a positive integer (injected from OPTIMIZER.num_epochs)", lambda n: n > 0)


def _positive(x):
    return x > 0


def build_param_scheduler(cfg: Mapping, key: str = "") -> ParamScheduler:
    """Build a schedule from one `OPTIMIZER.param_schedulers` entry (a mapping).

    `key` is the entry's full config path, used in error messages. Types that count epochs
    (multistep, step_with_fixed_gamma) read `num_epochs`, which the caller injects.
    """
    f = _Fields(cfg, key)
    name = cfg.get("name")
    if name not in DEFAULT_UPDATE_INTERVAL:
        raise ConfigError(f.path("name"), name, "one of " + ", ".join(DEFAULT_UPDATE_INTERVAL))
    interval = f.get("update_interval", DEFAULT_UPDATE_INTERVAL[name])
    if interval not in ("step", "epoch"):
        raise ConfigError(f.path("update_interval"), interval, "step or epoch")
    sched = _BUILDERS[name](f)
    sched.update_interval = interval
    return sched


def _constant(f):
    return ConstantParamScheduler(f.number("value"))


def _linear(f):
    return LinearParamScheduler(f.number("start_value"), f.number("end_value"))


def _cosine(f):
    return CosineParamScheduler(f.number("start_value"), f.number("end_value"))


def _multistep(f):
    values, num_epochs = f.values(), f.num_epochs()
    milestones = list(f.get("milestones", []))
    if not milestones:
        width = math.ceil(num_epochs / len(values))
        milestones = [width * (i + 1) for i in range(len(values) - 1)]
    ok = (
        len(milestones) == len(values) - 1
        and all(isinstance(m, int) and not isinstance(m, bool) for m in milestones)
        and all(a < b for a, b in zip([0] + milestones, milestones))
        and all(m < num_epochs for m in milestones)
    )
    if not ok:
        allowed = (
            f"{len(values) - 1} strictly increasing epochs in (0, {num_epochs}) "
            f"(one fewer than values, below OPTIMIZER.num_epochs={num_epochs})"
        )
        raise ConfigError(f.path("milestones"), milestones, allowed)
    return MultiStepParamScheduler(values, num_epochs, milestones)


def _step(f):
    return StepParamScheduler(f.values())


def _step_with_fixed_gamma(f):
    base = f.number("base_value", _positive, "a number > 0")
    gamma = f.number("gamma", _positive, "a number > 0")
    num_decays = f.integer("num_decays", "an integer > 0", _positive)
    num_epochs = f.num_epochs()
    values = [base * gamma**i for i in range(num_decays + 1)]
    if num_epochs < len(values):
        raise ConfigError(f.path("num_decays"), num_decays, f"at most num_epochs - 1 = {num_epochs - 1}")
    width = math.ceil(num_epochs / len(values))
    milestones = [width * (i + 1) for i in range(num_decays)]
    if milestones and milestones[-1] >= num_epochs:
        raise ConfigError(f.path("num_decays"), num_decays, f"few enough that every piece fits in {num_epochs} epochs")
    return MultiStepParamScheduler(values, num_epochs, milestones)


def _polynomial(f):
    return PolynomialDecayParamScheduler(f.number("base_value", _positive, "a number > 0"), f.number("power"))


def _inverse_sqrt(f):
    length = f.number("warmup_interval_length", lambda x: 0 <= x < 1, "a number in [0, 1)")
    return InverseSqrtParamScheduler(f.number("start_value"), length)


def _cosine_warm_restart(f):
    length = f.number("restart_interval_length", lambda x: 0 < x <= 1, "a number in (0, 1]")
    wave_type = f.get("wave_type", "half")
    if wave_type not in ("half", "full"):
        raise ConfigError(f.path("wave_type"), wave_type, "half or full")
    multiplier = f.number("lr_multiplier", _positive, "a number > 0") if "lr_multiplier" in f.cfg else 1.0
    return CosineWarmRestartParamScheduler(
        f.number("start_value"), f.number("end_value"), length, wave_type, multiplier, bool(f.get("is_adaptive", False))
    )


def _composite(f):
    children = list(f.get("schedulers", []))
    lengths = list(f.get("lengths", []))
    if not children:
        raise ConfigError(f.path("schedulers"), children, "a non-empty list of schedules")
    if len(lengths) != len(children):
        raise ConfigError(f.path("lengths"), lengths, f"{len(children)} numbers, one per entry of schedulers")
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0 for x in lengths) or abs(sum(lengths) - 1) >= 1e-3:
        raise ConfigError(f.path("lengths"), lengths, "positive numbers summing to 1 (within 1e-3)")
    scaling = list(f.get("interval_scaling", [])) or ["rescaled"] * len(children)
    if len(scaling) != len(children) or any(s not in ("rescaled", "fixed") for s in scaling):
        raise ConfigError(
            f.path("interval_scaling"), scaling, f"empty (all rescaled) or {len(children)} words, each rescaled or fixed"
        )
    interval = f.get("update_interval", "step")
    built = []
    for i, child in enumerate(children):
        child_key = f.path(f"schedulers[{i}]")
        child_interval = child.get("update_interval")
        if child_interval is not None and child_interval != interval:
            raise ConfigError(
                f"{child_key}.update_interval", child_interval, f"unset or {interval}, the composite's own interval"
            )
        if "num_epochs" in f.cfg and "num_epochs" not in child:
            child = {**child, "num_epochs": f.cfg["num_epochs"]}
        built.append(build_param_scheduler(child, child_key))
    return CompositeParamScheduler(built, [float(x) for x in lengths], scaling)


_BUILDERS = {
    "constant": _constant,
    "linear": _linear,
    "cosine": _cosine,
    "multistep": _multistep,
    "step": _step,
    "step_with_fixed_gamma": _step_with_fixed_gamma,
    "polynomial": _polynomial,
    "inverse_sqrt": _inverse_sqrt,
    "cosine_warm_restart": _cosine_warm_restart,
    "composite": _composite,
}


def schedule_where(step: int, update_interval: str, num_epochs: int, steps_per_epoch: int) -> float:
    """`where` for optimizer step `step` (0-based) of num_epochs * steps_per_epoch steps."""
    if update_interval == "epoch":
        return (step // steps_per_epoch) / num_epochs
    return step / (num_epochs * steps_per_epoch)

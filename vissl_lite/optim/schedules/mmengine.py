"""MMEngine's `param_scheduler` list, compiled to one value per optimizer step.

    name: mmengine
    base_value: 0.004        # the optimizer's lr in the MMEngine config (momentum: its momentum)
    schedulers:
      - {type: LinearLR, start_factor: 1.0e-5, by_epoch: false, begin: 0, end: 1000}
      - {type: CosineAnnealingLR, eta_min: 2.0e-4, begin: 150, end: 300, T_max: 150,
         by_epoch: true, convert_to_iter_based: true}

Types and arguments are MMEngine's (0.10), as are the runner's stepping rules:
- the schedulers are built in list order and each applies its step 0 when built, so the value
  of optimizer step 0 is already e.g. base_value x start_factor;
- after every iteration the iteration-based schedulers step, in list order; after an epoch's
  last iteration the epoch-based ones step next, in list order;
- a scheduler counts its own steps g (0 when built): inside its window begin <= g < end it
  sets the value from l = g - begin (MMEngine's `last_step`) and the current value, which the
  schedulers before it may have changed; outside, it leaves the value alone, so the last value
  holds after `end` and a scheduler that starts later picks up what the others left;
- end defaults to the end of training, in epochs or in iterations (the runner's default);
  convert_to_iter_based multiplies begin, end and the type's epoch counts by the optimizer
  steps per epoch. One MMEngine iteration is one optimizer step here.
The value used for optimizer step k is the one set before step k.

Every MMEngine form maps the current value v affinely, v -> a(l) v + b(l): a factor (LinearLR,
StepLR, ...), a pull towards eta_min (CosineAnnealingLR, PolyLR, CosineRestartLR), or a set
(OneCycleLR, a restart: a = 0). The maps of each transition are composed in runner order and the
run's values follow from one prefix composition over the transitions that change anything.
"""

import dataclasses
import math
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .registry import MMENGINE_TYPES, SCHEDULES, ScheduleArgumentError, ScheduleType, arg, child_slots
from .step import TabulatedStepSchedule


@dataclass(frozen=True)
class MMEngineScheduler(ScheduleType):
    """One entry of the list. Subclasses are dataclasses of MMEngine's arguments (with its
    defaults) and write `maps`: the affine map (a, b) of the local steps l inside the window
    [begin, end), counted in epochs when by_epoch, else iterations."""

    begin: int = arg(0, ge=0, kw_only=True, doc="first step of its window, in epochs when by_epoch else iterations")
    end: Optional[int] = arg(None, ge=1, kw_only=True, doc="end of its window (excluded); null: the end of training")
    by_epoch: bool = arg(True, kw_only=True, doc="steps once per epoch; false: once per iteration")
    convert_to_iter_based: bool = arg(False, kw_only=True,
                                      doc="an epoch window and epoch counts x steps per epoch, stepped every iteration")
    param_name: str = arg("lr", context=True, kw_only=True, doc="the scheduled quantity")

    epoch_counts = ()  # arguments counted in the scheduler's steps: convert_to_iter_based scales them
    sets_initial = False  # OneCycleLR replaces the initial value the later schedulers start from

    def __post_init__(self):
        if self.end is not None and self.end <= self.begin:
            raise ScheduleArgumentError("end", self.end, f"> begin = {self.begin}")
        if self.convert_to_iter_based and not self.by_epoch:
            raise ScheduleArgumentError("convert_to_iter_based", True, "false when by_epoch is false",
                                        "MMEngine converts epoch-based schedulers only")

    @property
    def length(self) -> int:
        return self.end - self.begin

    def resolved(self, num_epochs: int, steps_per_epoch: int) -> "MMEngineScheduler":
        """The entry in the steps it will count: end filled in, an epoch window converted."""
        end = self.end if self.end is not None else (num_epochs if self.by_epoch else num_epochs * steps_per_epoch)
        if end <= self.begin:
            raise ScheduleArgumentError("begin", self.begin, f"< {end}, the default end (the end of training)")
        if not self.convert_to_iter_based:
            return dataclasses.replace(self, end=end)
        scaled = {}
        for name in self.epoch_counts:
            value = getattr(self, name)
            if value is not None:
                scaled[name] = [v * steps_per_epoch for v in value] if isinstance(value, list) else value * steps_per_epoch
        return dataclasses.replace(self, begin=self.begin * steps_per_epoch, end=end * steps_per_epoch,
                                   by_epoch=False, convert_to_iter_based=False, **scaled)

    def maps(self, l: np.ndarray, base: float) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def factor_maps(factor: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return factor, np.zeros_like(factor)


def towards_maps(ratio: np.ndarray, floor: float) -> Tuple[np.ndarray, np.ndarray]:
    """v -> ratio * (v - floor) + floor, MMEngine's recursive cosine and polynomial steps."""
    return ratio, floor * (1 - ratio)


def check_eta_min(eta_min, ratio, required: bool) -> None:
    """eta_min or eta_min_ratio, at most one (exactly one when `required`)."""
    if eta_min is not None and ratio is not None:
        raise ScheduleArgumentError("eta_min_ratio", ratio, "null when eta_min is set", "give one of the two")
    if required and eta_min is None and ratio is None:
        raise ScheduleArgumentError("eta_min", None, "a number, or eta_min_ratio instead", "one is required")


def floor_of(eta_min, ratio, base: float) -> float:
    """The absolute floor: eta_min, or base x eta_min_ratio (neither: 0, CosineAnnealingLR's)."""
    return base * ratio if ratio is not None else (eta_min or 0.0)


@MMENGINE_TYPES.register
@dataclass(frozen=True)
class ConstantLR(MMEngineScheduler):
    """v x factor when the window opens, v / factor at its last step (l = end - begin - 1).

    base 0.1, factor 0.5, end 3 (by epoch): 0.05 in epochs 0-1, 0.1 from epoch 2 on.
    """

    name, aliases = "ConstantLR", ("ConstantMomentum", "ConstantParamScheduler")
    factor: float = arg(1.0 / 3, gt=0, le=1, doc="factor until end - 1, in (0, 1] (MMEngine divides by it at the end)")

    def maps(self, l, base):
        a = np.ones(l.shape)
        a[(l == self.length - 1) & (l != 0)] = 1.0 / self.factor
        a[l == 0] = self.factor
        return factor_maps(a)


@MMENGINE_TYPES.register
@dataclass(frozen=True)
class LinearLR(MMEngineScheduler):
    """Factor from start_factor to end_factor in a straight line over the window: at local step
    l the value is v_begin x (start + (end - start) x l / (end - begin - 1)), applied as MMEngine's
    chained ratios. base 0.1, start_factor 0.25, end 5 iterations: 0.025, 0.04375, 0.0625,
    0.08125, 0.1, then 0.1 held.
    """

    name, aliases = "LinearLR", ("LinearMomentum", "LinearParamScheduler")
    # start_factor 0 is MMEngine's bound too, but its next ratio then divides by zero.
    start_factor: float = arg(1.0 / 3, gt=0, le=1, doc="factor at begin, in (0, 1]")
    end_factor: float = arg(1.0, ge=0, le=1, doc="factor reached at end - 1, in [0, 1]")

    def maps(self, l, base):
        s, e, total = self.start_factor, self.end_factor, self.length - 1
        later = l[l > 0]
        a = np.full(l.shape, s)
        a[l > 0] = 1.0 + (e - s) / (total * s + (later - 1) * (e - s))
        return factor_maps(a)


@MMENGINE_TYPES.register
@dataclass(frozen=True)
class ExponentialLR(MMEngineScheduler):
    """v x gamma at every step after the first. base 0.1, gamma 0.5: 0.1, 0.05, 0.025, ..."""

    name, aliases = "ExponentialLR", ("ExponentialMomentum", "ExponentialParamScheduler")
    gamma: float = arg(gt=0, doc="factor per step")

    def maps(self, l, base):
        return factor_maps(np.where(l == 0, 1.0, self.gamma))


@MMENGINE_TYPES.register
@dataclass(frozen=True)
class StepLR(MMEngineScheduler):
    """v x gamma every step_size steps of the window (l = step_size, 2 step_size, ...).
    base 0.1, step_size 30, gamma 0.1, by epoch: 0.1 for epochs 0-29, 0.01 for 30-59, ..."""

    name, aliases = "StepLR", ("StepMomentum", "StepParamScheduler")
    step_size: int = arg(ge=1, doc="decay every step_size steps of its window")
    gamma: float = arg(0.1, doc="factor per decay")
    epoch_counts = ("step_size",)

    def maps(self, l, base):
        return factor_maps(np.where((l == 0) | (l % self.step_size != 0), 1.0, self.gamma))


@MMENGINE_TYPES.register
@dataclass(frozen=True)
class MultiStepLR(MMEngineScheduler):
    """v x gamma ** (times l is listed in milestones); milestones count the window's own steps
    (from begin). base 0.02, milestones [8, 11], gamma 0.1, by epoch: 0.02 for epochs 0-7,
    0.002 for 8-10, 0.0002 from 11."""

    name, aliases = "MultiStepLR", ("MultiStepMomentum", "MultiStepParamScheduler")
    milestones: List[int] = arg(ge=0, doc="steps of its window (from begin) where it decays")
    gamma: float = arg(0.1, doc="factor per milestone")
    epoch_counts = ("milestones",)

    def maps(self, l, base):
        count = np.zeros(l.shape, dtype=np.int64)
        for milestone, times in Counter(self.milestones).items():
            count[l == milestone] = times
        return factor_maps(np.where(count > 0, self.gamma ** count.astype(np.float64), 1.0))


@MMENGINE_TYPES.register
@dataclass(frozen=True)
class CosineAnnealingLR(MMEngineScheduler):
    """eta_min + (v_begin - eta_min)(1 + cos(pi l / T_max)) / 2 by MMEngine's recursion, T_max
    defaulting to end - begin; eta_min_ratio gives eta_min = base_value x ratio.
    base 0.1, eta_min 0, T_max 4 (by epoch): 0.1, 0.0854, 0.05, 0.0146."""

    name, aliases = "CosineAnnealingLR", ("CosineAnnealingMomentum", "CosineAnnealingParamScheduler")
    eta_min: Optional[float] = arg(None, doc="the absolute floor; null: 0 (or eta_min_ratio)")
    eta_min_ratio: Optional[float] = arg(None, ge=0, doc="floor = the base value x this, instead of eta_min")
    T_max: Optional[int] = arg(None, ge=1, doc="half-period of the cosine; null: end - begin")
    epoch_counts = ("T_max",)
    value_fields = ("eta_min",)

    def __post_init__(self):
        super().__post_init__()
        check_eta_min(self.eta_min, self.eta_min_ratio, required=False)

    def maps(self, l, base):
        period = self.T_max or self.length
        floor = floor_of(self.eta_min, self.eta_min_ratio, base)
        a, b = np.ones(l.shape), np.zeros(l.shape)
        # Past T_max MMEngine climbs back: at l - 1 = T_max (mod 2 T_max) it adds a fixed step.
        turn = (l != 0) & ((l - 1 - period) % (2 * period) == 0)
        b[turn] = (base - floor) * (1 - math.cos(math.pi / period)) / 2
        along = (l != 0) & ~turn
        k = l[along]
        a[along], b[along] = towards_maps(
            (1 + np.cos(np.pi * k / period)) / (1 + np.cos(np.pi * (k - 1) / period)), floor)
        return a, b


@MMENGINE_TYPES.register
@dataclass(frozen=True)
class PolyLR(MMEngineScheduler):
    """(v - eta_min)(1 - 1 / (T - l + 1)) ** power + eta_min with T = end - begin - 1, i.e.
    eta_min + (v_begin - eta_min)(1 - l / T) ** power, reaching eta_min at the window's last step.
    base 0.01, eta_min 0, power 1, end 5 iterations: 0.01, 0.0075, 0.005, 0.0025, 0."""

    name, aliases = "PolyLR", ("PolyMomentum", "PolyParamScheduler")
    eta_min: float = arg(0.0, doc="the absolute floor, reached at end - 1")
    power: float = arg(1.0, doc="exponent of the decay")
    value_fields = ("eta_min",)

    def maps(self, l, base):
        later = l > 0
        ratio = np.ones(l.shape)
        ratio[later] = (1 - 1 / (self.length - 1 - l[later] + 1)) ** self.power
        a, b = towards_maps(ratio, self.eta_min)
        return np.where(later, a, 1.0), np.where(later, b, 0.0)


@MMENGINE_TYPES.register
@dataclass(frozen=True)
class OneCycleLR(MMEngineScheduler):
    """Sets the value (ignores the current one): from eta_max / div_factor up to eta_max over the
    first pct_start of total_steps (default end - begin), then down to that / final_div_factor
    (three_phase: back to the start first); cos or linear annealing, MMEngine's phase ends at
    pct_start x total_steps - 1 (and 2 pct_start x total_steps - 2), total_steps - 1.
    eta_max 1, total_steps 11, pct_start 0.3, linear, div 10, final_div 10: 0.1 at l = 0, 0.883
    at l = 2 (the peak 1 would fall at l = 2.3), then down to 0.01 at l = 10."""

    name, aliases = "OneCycleLR", ("OneCycleParamScheduler",)
    eta_max: float = arg(gt=0, doc="the peak (the cycle starts at eta_max / div_factor)")
    total_steps: Optional[int] = arg(None, ge=1, doc="cycle length; null: end - begin")
    pct_start: float = arg(0.3, ge=0, le=1, doc="rising fraction of the cycle")
    anneal_strategy: str = arg("cos", choices=("cos", "linear"), doc="cos | linear")
    div_factor: float = arg(25.0, gt=0, doc="start = eta_max / div_factor")
    final_div_factor: float = arg(1e4, gt=0, doc="end = start / final_div_factor")
    three_phase: bool = arg(False, doc="rise, fall back to the start, then anneal")
    epoch_counts = ("total_steps",)
    value_fields = ("eta_max",)
    sets_initial = True

    def __post_init__(self):
        super().__post_init__()
        if self.param_name != "lr":
            raise ScheduleArgumentError("type", self.name, "a type that is not OneCycle",
                                        "MMEngine's OneCycle schedules the learning rate only")

    @property
    def initial(self) -> float:
        return self.eta_max / self.div_factor

    def maps(self, l, base):
        total = self.total_steps or self.length
        if l.size and l.max() > total:
            raise ScheduleArgumentError("total_steps", total, f">= {int(l.max())}, the steps it takes in training",
                                        "MMEngine stops with an error past total_steps")
        low, high = self.initial, self.eta_max
        phases = [(float(self.pct_start * total) - 1, low, high)]
        if self.three_phase:
            phases.append((float(2 * self.pct_start * total) - 2, high, low))
            phases.append((total - 1, low, low / self.final_div_factor))
        else:
            phases.append((total - 1, high, low / self.final_div_factor))
        values, todo, start = np.empty(l.shape), np.ones(l.shape, dtype=bool), 0.0
        for i, (end, first, last) in enumerate(phases):
            here = todo & ((l <= end) | (i == len(phases) - 1))
            if here.any() and end == start:
                raise ScheduleArgumentError("pct_start", self.pct_start, "a value that gives each phase a step",
                                            "MMEngine divides by the phase length")
            pct = (l[here] - start) / (end - start)
            if self.anneal_strategy == "cos":
                values[here] = last + (first - last) / 2.0 * (np.cos(np.pi * pct) + 1)
            else:
                values[here] = (last - first) * pct + first
            todo &= ~here
            start = end
        return np.zeros(l.shape), values


@MMENGINE_TYPES.register
@dataclass(frozen=True)
class CosineRestartLR(MMEngineScheduler):
    """Cosine cycles of the given periods: each starts at base_value x its restart weight (a set)
    and falls by MMEngine's recursion towards eta_min; after the last period the value holds.
    base 1, periods [2, 2], restart_weights [1, 0.5], eta_min 0: 1, 0.5, 0.5, 0.25, then 0.25."""

    name, aliases = "CosineRestartLR", ("CosineRestartMomentum", "CosineRestartParamScheduler")
    periods: List[int] = arg(ge=1, doc="length of each cosine cycle")
    restart_weights: List[float] = arg(factory=lambda: [1.0], doc="each cycle starts at the base value x its weight")
    eta_min: Optional[float] = arg(None, doc="the absolute floor (or eta_min_ratio; one is required)")
    eta_min_ratio: Optional[float] = arg(None, ge=0, doc="floor = the base value x this, instead of eta_min")
    epoch_counts = ("periods",)
    value_fields = ("eta_min",)

    def __post_init__(self):
        super().__post_init__()
        check_eta_min(self.eta_min, self.eta_min_ratio, required=True)
        if len(self.periods) != len(self.restart_weights):
            raise ScheduleArgumentError("restart_weights", self.restart_weights,
                                        f"{len(self.periods)} numbers, one per period")

    def maps(self, l, base):
        floor = floor_of(self.eta_min, self.eta_min_ratio, base)
        ends = np.cumsum(self.periods)
        cycle = np.searchsorted(ends, l, side="right")
        a, b = np.ones(l.shape), np.zeros(l.shape)
        inside = cycle < len(self.periods)
        c = cycle[inside]
        step = l[inside] - np.concatenate([[0], ends])[c]
        period = np.asarray(self.periods, dtype=np.float64)[c]
        ratio = np.ones(step.shape)
        later = step > 0
        ratio[later] = ((1 + np.cos(np.pi * step[later] / period[later]))
                        / (1 + np.cos(np.pi * (step[later] - 1) / period[later])))
        a_in, b_in = towards_maps(ratio, floor)
        restart = base * np.asarray(self.restart_weights)[c]
        a[inside] = np.where(later, a_in, 0.0)
        b[inside] = np.where(later, b_in, restart)
        return a, b


def prefix_compose(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Maps v -> a[i] v + b[i] applied in order: the map of the first i + 1 of them, for every i
    (Hillis-Steele scan, log2(n) vectorised passes)."""
    a, b = a.copy(), b.copy()
    shift = 1
    while shift < len(a):
        b[shift:] = a[shift:] * b[:-shift] + b[shift:]  # reads the old a, updated next
        a[shift:] = a[shift:] * a[:-shift]
        shift *= 2
    return a, b


@contextmanager
def entry(i: int):
    """Errors of the i-th scheduler, named from the list."""
    try:
        yield
    except ScheduleArgumentError as err:
        raise err.inside(f"schedulers[{i}]") from None


@SCHEDULES.register
@dataclass
class MMEngineSchedule(ScheduleType):
    """`name: mmengine`: base_value (the optimizer's lr) and MMEngine's param_scheduler list,
    stepped as MMEngine's runner steps it (the module docstring has the rules)."""

    name, value_fields = "mmengine", ("base_value",)
    # Auto LR scaling multiplies the optimizer's LR only, as MMEngine's auto_scale_lr does: an
    # absolute eta_min or eta_max stays, an eta_min_ratio follows the scaled base.
    scaled_fields = ("base_value",)
    default_update_interval = None  # the schedulers count iterations or epochs themselves
    base_value: float = arg(doc="the optimizer's lr in the MMEngine config (momentum: its momentum)")
    schedulers: List[MMEngineScheduler] = arg(children=(MMENGINE_TYPES, MMEngineScheduler),
                                              doc="MMEngine's param_scheduler entries {type: ..., its arguments}, in list order")

    def __post_init__(self):
        if sum(s.sets_initial for s in self.schedulers) > 1:
            raise ScheduleArgumentError("schedulers", [s.name for s in self.schedulers], "at most one OneCycleLR",
                                        "each would overwrite the other's initial value")

    @classmethod
    def value_slots(cls, cfg):
        yield from super().value_slots(cfg)
        yield from child_slots(MMENGINE_TYPES, cfg.get("schedulers"), "schedulers")

    def compile(self, num_epochs: int, steps_per_epoch: int) -> TabulatedStepSchedule:
        total = num_epochs * steps_per_epoch
        resolved = []
        for i, scheduler in enumerate(self.schedulers):
            with entry(i):
                resolved.append(scheduler.resolved(num_epochs, steps_per_epoch))
        warn_unreached_milestones(resolved, num_epochs, total)
        start, bases = self._built(resolved)
        a, b = self._transitions(resolved, bases, num_epochs, steps_per_epoch)
        changing = np.flatnonzero((a != 1.0) | (b != 0.0))
        a_c, b_c = prefix_compose(a[changing], b[changing])
        after = np.concatenate([[start], a_c * start + b_c])
        # Step k holds the value after the last changing transition before it.
        latest = np.zeros(total, dtype=np.int64)
        latest[changing + 1] = np.arange(1, len(changing) + 1)
        return TabulatedStepSchedule(after[np.maximum.accumulate(latest)], num_epochs, steps_per_epoch)

    def _built(self, resolved) -> Tuple[float, List[float]]:
        """(the value of step 0, each scheduler's initial value): the schedulers are built in list
        order, each applying its step 0, and OneCycleLR resets the initial value of those after it."""
        value, initial, bases = self.base_value, self.base_value, []
        for i, scheduler in enumerate(resolved):
            initial = scheduler.initial if scheduler.sets_initial else initial
            bases.append(initial)
            if scheduler.begin == 0:
                with entry(i):
                    a0, b0 = scheduler.maps(np.zeros(1, dtype=np.int64), initial)
                value = a0[0] * value + b0[0]
        return value, bases

    @staticmethod
    def _transitions(resolved, bases, num_epochs: int, steps_per_epoch: int) -> Tuple[np.ndarray, np.ndarray]:
        """The affine map (a[j], b[j]) that carries the value of step j to step j + 1: the
        iteration-based schedulers' steps, then at an epoch's end the epoch-based ones (runner order)."""
        total = num_epochs * steps_per_epoch
        a, b = np.ones(max(total - 1, 0)), np.zeros(max(total - 1, 0))
        order = sorted(range(len(resolved)), key=lambda i: resolved[i].by_epoch)  # stable: list order kept
        for i in order:
            window = resolved[i]
            last = num_epochs if window.by_epoch else total  # scheduler steps g past the run are never taken
            g = np.arange(max(window.begin, 1), min(window.end, last), dtype=np.int64)
            j = g * steps_per_epoch - 1 if window.by_epoch else g - 1
            with entry(i):
                a_s, b_s = resolved[i].maps(g - window.begin, bases[i])
            a[j], b[j] = a_s * a[j], a_s * b[j] + b_s
        return a, b


def warn_unreached_milestones(resolved, num_epochs: int, total: int) -> None:
    """MultiStepLR milestones at or past the end of their window or of the run never decay."""
    for i, entry_ in enumerate(resolved):
        if not isinstance(entry_, MultiStepLR):
            continue
        last = min(entry_.end, num_epochs if entry_.by_epoch else total)
        unreached = [m for m in entry_.milestones if entry_.begin + m >= last]
        if unreached:
            unit = "epochs" if entry_.by_epoch else "iterations"
            warnings.warn(f"schedulers[{i}].milestones {unreached} are never reached: its window and the run end "
                          f"at {last} {unit}, counted from begin {entry_.begin}", stacklevel=2)

"""mmcv 1.x's `lr_config` (LrUpdaterHook) and `momentum_config` (MomentumUpdaterHook), with the
keys mmdet 2.x writes, compiled to one value per optimizer step.

    name: mmcv
    base_value: 0.02         # the optimizer's lr (momentum_config: its momentum)
    policy: step             # step | poly | CosineAnnealing | exp | cyclic
    step: [8, 11]
    warmup: linear           # null | linear | constant | exp
    warmup_iters: 500
    warmup_ratio: 0.001

mmcv's hooks set the value before every iteration (and, when by_epoch, before every epoch):

    regular(k) = policy(base_value, progress, max_progress)   progress = epoch e of max_epochs
                                                              when by_epoch, else iteration k of
                                                              max_iters
    value(k)   = warmup(k, regular(k)) for k < W, else regular(k)

with W = warmup_iters (times the steps per epoch when warmup_by_epoch). The LR hook's warmup
multiplies regular(k) by ratio (constant), 1 - (1 - k/W)(1 - ratio) (linear) or
ratio ** (1 - k/W) (exp); the momentum hook divides by the same factor. One mmcv iteration is one
optimizer step here. A policy written in lower case is title-cased first, as mmcv does.
"""

import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .registry import MMCV_POLICIES, SCHEDULES, ScheduleArgumentError, ScheduleType, arg
from .step import TabulatedStepSchedule

WARMUPS = ("constant", "linear", "exp")


def annealing_cos(start, end, factor):
    """Cosine from start (factor 0) to end (factor 1)."""
    return end + 0.5 * (start - end) * (np.cos(np.pi * factor) + 1)


def annealing_linear(start, end, factor):
    return start + (end - start) * factor


@dataclass
class MmcvPolicy(ScheduleType):
    """A policy: `regular(base, progress, max_progress)` for arrays of progress."""

    by_epoch_default = True
    momentum_hook = False  # also a momentum_config policy (MomentumUpdaterHook) here
    param_name: str = arg("lr", context=True, kw_only=True, doc="the scheduled quantity")

    def regular(self, base: float, progress: np.ndarray, max_progress: int) -> np.ndarray:
        raise NotImplementedError


def _positive_ints(step) -> bool:
    steps = step if isinstance(step, list) else [step]
    return bool(steps) and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in steps)


@MMCV_POLICIES.register
@dataclass
class StepPolicy(MmcvPolicy):
    """base x gamma ** n, n the number of `step` entries passed (a list: the index of the first
    entry above progress; an int: progress // step), clipped below at min_lr.
    base 0.02, step [8, 11]: 0.02 for epochs 0-7, 0.002 for 8-10, 0.0002 for 11."""

    name, value_fields = "Step", ("min_lr",)
    step: Any = arg(doc="decay epochs (iterations when not by_epoch) as a list, or a period as an int")
    gamma: float = arg(0.1, doc="factor per decay")
    min_lr: Optional[float] = arg(None, doc="the absolute floor; null: none")

    def __post_init__(self):
        if not _positive_ints(self.step):
            raise ScheduleArgumentError("step", self.step, "an integer > 0 or a non-empty list of them")

    def regular(self, base, progress, max_progress):
        if isinstance(self.step, int):
            exponent = progress // self.step
        else:
            unreached = [s for s in self.step if s >= max_progress]
            if unreached:
                warnings.warn(f"step {unreached} are never reached: training ends at {max_progress}", stacklevel=2)
            exponent = np.full(progress.shape, len(self.step))
            for i in reversed(range(len(self.step))):  # the first entry above progress wins
                exponent = np.where(progress < self.step[i], i, exponent)
        values = base * self.gamma ** exponent.astype(np.float64)
        return values if self.min_lr is None else np.maximum(values, self.min_lr)


@MMCV_POLICIES.register
@dataclass
class PolyPolicy(MmcvPolicy):
    """(base - min_lr)(1 - progress / max_progress) ** power + min_lr.
    base 0.01, power 0.9, min_lr 1e-4, 80 000 iterations: 0.01 at 0, 0.00542 at 40 000."""

    name, value_fields = "Poly", ("min_lr",)
    power: float = arg(1.0, doc="exponent of the decay")
    min_lr: float = arg(0.0, doc="the absolute floor")

    def regular(self, base, progress, max_progress):
        return (base - self.min_lr) * (1 - progress / max_progress) ** self.power + self.min_lr


@MMCV_POLICIES.register
@dataclass
class ExpPolicy(MmcvPolicy):
    """base x gamma ** progress. base 0.1, gamma 0.9, by epoch: 0.1, 0.09, 0.081, ..."""

    name = "Exp"
    gamma: float = arg(gt=0, doc="factor per epoch (iteration when not by_epoch)")

    def regular(self, base, progress, max_progress):
        return base * self.gamma ** progress.astype(np.float64)


@MMCV_POLICIES.register
@dataclass
class CosineAnnealingPolicy(MmcvPolicy):
    """target + (base - target)(1 + cos(pi progress / max_progress)) / 2, target = min_lr or
    base x min_lr_ratio (exactly one). base 0.02, min_lr_ratio 1e-5, 12 epochs: 0.02 in epoch 0,
    0.01 in epoch 6, 0.000341 in epoch 11."""

    name, value_fields = "CosineAnnealing", ("min_lr",)
    min_lr: Optional[float] = arg(None, doc="the absolute floor (or min_lr_ratio; exactly one)")
    min_lr_ratio: Optional[float] = arg(None, ge=0, doc="floor = base_value x this, instead of min_lr")

    def __post_init__(self):
        if (self.min_lr is None) == (self.min_lr_ratio is None):
            raise ScheduleArgumentError("min_lr", self.min_lr, "a number when min_lr_ratio is null, else null",
                                        "give exactly one of min_lr and min_lr_ratio")

    def regular(self, base, progress, max_progress):
        target = self.min_lr if self.min_lr_ratio is None else base * self.min_lr_ratio
        return annealing_cos(base, target, progress / max_progress)


@MMCV_POLICIES.register
@dataclass
class CyclicPolicy(MmcvPolicy):
    """Cycles of max_iters // cyclic_times iterations; each rises from base to base x r0 over its
    first int(step_ratio_up x length) iterations and falls to base x r1 over the rest (cos or
    linear). In cycle c the peak ratio is 1 - s + r0 s with s = gamma ** c. target_ratio (r0, r1);
    a single r means (r, r / 1e5). LR default (10, 1e-4); momentum (0.85 / 0.95, 1).
    base 0.0018, 100 iterations, defaults: 0.0018 at 0, 0.0099 at 20, 0.018 at 40, then down
    towards 1.8e-7 (reached at iteration 100, just past the run)."""

    name = "Cyclic"
    by_epoch_default, momentum_hook = False, True
    target_ratio: Any = arg(None, doc="[peak, end] / base_value; one number r: [r, r / 1e5]; "
                                      "null: [10, 1e-4] (momentum [0.85/0.95, 1])")
    cyclic_times: int = arg(1, ge=1, doc="cycles over training")
    step_ratio_up: float = arg(0.4, ge=0, lt=1, doc="rising fraction of each cycle, in [0, 1)")
    anneal_strategy: str = arg("cos", choices=("cos", "linear"), doc="cos | linear")
    gamma: float = arg(1.0, gt=0, le=1, doc="peak ratio scale per cycle, in (0, 1]")

    def __post_init__(self):
        ratio = self.target_ratio
        if ratio is None:
            ratio = (0.85 / 0.95, 1.0) if self.param_name == "momentum" else (10.0, 1e-4)
        elif isinstance(ratio, (int, float)) and not isinstance(ratio, bool):
            ratio = (ratio, ratio / 1e5)
        elif isinstance(ratio, (list, tuple)) and len(ratio) in (1, 2) and all(
                isinstance(r, (int, float)) and not isinstance(r, bool) for r in ratio):
            ratio = (ratio[0], ratio[0] / 1e5) if len(ratio) == 1 else tuple(ratio)
        else:
            raise ScheduleArgumentError("target_ratio", ratio,
                                        "a number r (meaning r, r / 1e5) or a list of one or two numbers")
        self.ratios = tuple(float(r) for r in ratio)
        self.anneal = annealing_cos if self.anneal_strategy == "cos" else annealing_linear

    def regular(self, base, progress, max_progress):
        length = max_progress // self.cyclic_times
        if length < 1:
            raise ScheduleArgumentError("cyclic_times", self.cyclic_times, f"at most {max_progress}, the iterations")
        up = int(self.step_ratio_up * length)
        position, scale = progress % length, self.gamma ** (progress // length).astype(np.float64)
        peak = 1 - scale + self.ratios[0] * scale
        rising = position < up
        # mmcv's phase ratios: [start, end) iterations, ratio from -> to
        start = np.where(rising, 0, up)
        end = np.where(rising, up, length)
        first = np.where(rising, 1.0, peak)
        last = np.where(rising, peak, self.ratios[1])
        return self.anneal(base * first, base * last, (position - start) / (end - start))


def policy_name(policy) -> str:
    """mmcv's spelling rule: a policy written all in lower case is title-cased."""
    return policy.title() if isinstance(policy, str) and policy == policy.lower() else policy


@SCHEDULES.register
@dataclass
class MmcvSchedule(ScheduleType):
    """`name: mmcv`: base_value (the optimizer's lr or momentum) and an lr_config /
    momentum_config as mmdet 2.x writes it: these arguments and those of its policy."""

    name, value_fields = "mmcv", ("base_value",)
    default_update_interval = None  # the hooks count iterations or epochs themselves
    base_value: float = arg(doc="the optimizer's lr (momentum_config: its momentum)")
    policy: str = arg(doc="step | poly | CosineAnnealing | exp | cyclic; lower case is title-cased as mmcv does")
    by_epoch: Optional[bool] = arg(None, doc="progress counts epochs; null: true (cyclic: false)")
    warmup: Optional[str] = arg(None, choices=WARMUPS, doc="constant | linear | exp; null: none")
    warmup_iters: int = arg(0, ge=0, doc="warmup length in iterations (epochs when warmup_by_epoch)")
    warmup_ratio: Optional[float] = arg(None, gt=0, le=1,
                                        doc="warmup starts at regular x this, in (0, 1]; null: 0.1 (momentum: regular / 0.9)")
    warmup_by_epoch: bool = arg(False, doc="warmup_iters counts epochs")
    param_name: str = arg("lr", context=True, doc="the scheduled quantity")
    rule: MmcvPolicy = field(default=None, metadata={"inline": True})  # the policy, from its arguments here

    @classmethod
    def inline(cls, section):
        written = section.get("policy")
        if not isinstance(written, str) or policy_name(written) not in MMCV_POLICIES:
            raise ScheduleArgumentError("policy", written, "one of " + ", ".join(MMCV_POLICIES),
                                        "a name in lower case is title-cased first, as mmcv does")
        return MMCV_POLICIES[policy_name(written)]

    def __post_init__(self):
        momentum = self.param_name == "momentum"
        if momentum and not self.rule.momentum_hook:
            raise ScheduleArgumentError("policy", self.policy, "cyclic", "the momentum_config policy supported here")
        if momentum and self.warmup_by_epoch:
            raise ScheduleArgumentError("warmup_by_epoch", True, "false",
                                        "mmcv's MomentumUpdaterHook counts warmup in iterations")
        if self.by_epoch is None:
            self.by_epoch = self.rule.by_epoch_default
        if isinstance(self.rule, CyclicPolicy) and self.by_epoch:
            raise ScheduleArgumentError("by_epoch", self.by_epoch, "false", "mmcv's cyclic policy counts iterations")
        if self.warmup_ratio is None:
            self.warmup_ratio = 0.9 if momentum else 0.1
        if self.warmup is not None and self.warmup_iters < 1:
            raise ScheduleArgumentError("warmup_iters", self.warmup_iters, "an integer >= 1 when warmup is set")

    @classmethod
    def value_slots(cls, cfg):
        yield from super().value_slots(cfg)
        policy = MMCV_POLICIES.get(policy_name(cfg.get("policy")))
        if policy is not None:
            yield from policy.value_slots(cfg)

    def compile(self, num_epochs: int, steps_per_epoch: int) -> TabulatedStepSchedule:
        k = np.arange(num_epochs * steps_per_epoch, dtype=np.int64)
        if self.by_epoch:
            values = self.rule.regular(self.base_value, k // steps_per_epoch, num_epochs)
        else:
            values = self.rule.regular(self.base_value, k, len(k))
        if self.warmup is not None:
            length = self.warmup_iters * (steps_per_epoch if self.warmup_by_epoch else 1)
            early = k[:length] / length
            factor = {"constant": np.full(early.shape, self.warmup_ratio),
                      "linear": 1 - (1 - early) * (1 - self.warmup_ratio),
                      "exp": self.warmup_ratio ** (1 - early)}[self.warmup]
            values[:length] = values[:length] / factor if self.param_name == "momentum" else values[:length] * factor
        return TabulatedStepSchedule(values, num_epochs, steps_per_epoch)

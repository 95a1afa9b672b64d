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

import numpy as np

from .registry import MMCV_POLICIES, SCHEDULES, ScheduleArgumentError, ScheduleType
from .step import TabulatedStepSchedule

WARMUPS = ("constant", "linear", "exp")


def annealing_cos(start, end, factor):
    """Cosine from start (factor 0) to end (factor 1)."""
    return end + 0.5 * (start - end) * (np.cos(np.pi * factor) + 1)


def annealing_linear(start, end, factor):
    return start + (end - start) * factor


class MmcvPolicy(ScheduleType):
    """A policy: `regular(base, progress, max_progress)` for arrays of progress."""

    by_epoch_default = True
    momentum_hook = False  # also a momentum_config policy (MomentumUpdaterHook) here

    def regular(self, base: float, progress: np.ndarray, max_progress: int) -> np.ndarray:
        raise NotImplementedError


@MMCV_POLICIES.register
class StepPolicy(MmcvPolicy):
    """base x gamma ** n, n the number of `step` entries passed (a list: the index of the first
    entry above progress; an int: progress // step), clipped below at min_lr.
    base 0.02, step [8, 11]: 0.02 for epochs 0-7, 0.002 for 8-10, 0.0002 for 11."""

    name, value_fields = "Step", ("min_lr",)

    def __init__(self, step, gamma: float = 0.1, min_lr=None):
        steps = step if isinstance(step, list) else [step]
        if not steps or any(not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in steps):
            raise ScheduleArgumentError("step", step, "an integer > 0 or a non-empty list of them")
        self.step, self.gamma, self.min_lr = step, gamma, min_lr

    @classmethod
    def from_config(cls, f, context):
        step = f.cfg.get("step")
        if step is None:
            raise ScheduleArgumentError("step", step, "an integer > 0 or a non-empty list of them", "required by step")
        return cls(list(step) if isinstance(step, (list, tuple)) else step, f.number("gamma", 0.1),
                   f.number("min_lr", None))

    def regular(self, base, progress, max_progress):
        if isinstance(self.step, int):
            exponent = progress // self.step
        else:
            exponent = np.full(progress.shape, len(self.step))
            for i in reversed(range(len(self.step))):  # the first entry above progress wins
                exponent = np.where(progress < self.step[i], i, exponent)
        values = base * self.gamma ** exponent.astype(np.float64)
        return values if self.min_lr is None else np.maximum(values, self.min_lr)


@MMCV_POLICIES.register
class PolyPolicy(MmcvPolicy):
    """(base - min_lr)(1 - progress / max_progress) ** power + min_lr.
    base 0.01, power 0.9, min_lr 1e-4, 80 000 iterations: 0.01 at 0, 0.00542 at 40 000."""

    name, value_fields = "Poly", ("min_lr",)

    def __init__(self, power: float = 1.0, min_lr: float = 0.0):
        self.power, self.min_lr = power, min_lr

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("power", 1.0), f.number("min_lr", 0.0))

    def regular(self, base, progress, max_progress):
        return (base - self.min_lr) * (1 - progress / max_progress) ** self.power + self.min_lr


@MMCV_POLICIES.register
class ExpPolicy(MmcvPolicy):
    """base x gamma ** progress. base 0.1, gamma 0.9, by epoch: 0.1, 0.09, 0.081, ..."""

    name = "Exp"

    def __init__(self, gamma: float):
        self.gamma = gamma

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("gamma", gt=0))

    def regular(self, base, progress, max_progress):
        return base * self.gamma ** progress.astype(np.float64)


@MMCV_POLICIES.register
class CosineAnnealingPolicy(MmcvPolicy):
    """target + (base - target)(1 + cos(pi progress / max_progress)) / 2, target = min_lr or
    base x min_lr_ratio (exactly one). base 0.02, min_lr_ratio 1e-5, 12 epochs: 0.02 in epoch 0,
    0.01 in epoch 6, 0.000341 in epoch 11."""

    name, value_fields = "CosineAnnealing", ("min_lr",)

    def __init__(self, min_lr=None, min_lr_ratio=None):
        if (min_lr is None) == (min_lr_ratio is None):
            raise ScheduleArgumentError("min_lr", min_lr, "a number when min_lr_ratio is null, else null",
                                        "give exactly one of min_lr and min_lr_ratio")
        self.min_lr, self.min_lr_ratio = min_lr, min_lr_ratio

    @classmethod
    def from_config(cls, f, context):
        return cls(f.number("min_lr", None), f.number("min_lr_ratio", None, ge=0))

    def regular(self, base, progress, max_progress):
        target = self.min_lr if self.min_lr_ratio is None else base * self.min_lr_ratio
        return annealing_cos(base, target, progress / max_progress)


@MMCV_POLICIES.register
class CyclicPolicy(MmcvPolicy):
    """Cycles of max_iters // cyclic_times iterations; each rises from base to base x r0 over its
    first int(step_ratio_up x length) iterations and falls to base x r1 over the rest (cos or
    linear). In cycle c the peak ratio is 1 - s + r0 s with s = gamma ** c. target_ratio (r0, r1);
    a single r means (r, r / 1e5). LR default (10, 1e-4); momentum (0.85 / 0.95, 1).
    base 0.0018, 100 iterations, defaults: 0.0018 at 0, 0.0099 at 20, 0.018 at 40, then down
    towards 1.8e-7 (reached at iteration 100, just past the run)."""

    name = "Cyclic"
    by_epoch_default, momentum_hook = False, True

    def __init__(self, target_ratio, cyclic_times: int = 1, step_ratio_up: float = 0.4,
                 anneal_strategy: str = "cos", gamma: float = 1.0):
        if not 0 <= step_ratio_up < 1:
            raise ScheduleArgumentError("step_ratio_up", step_ratio_up, "a number in [0, 1)")
        if not 0 < gamma <= 1:
            raise ScheduleArgumentError("gamma", gamma, "a number in (0, 1]")
        self.target_ratio, self.cyclic_times, self.step_ratio_up = tuple(target_ratio), cyclic_times, step_ratio_up
        self.anneal = annealing_cos if anneal_strategy == "cos" else annealing_linear
        self.gamma = gamma

    @classmethod
    def from_config(cls, f, context):
        default = (0.85 / 0.95, 1.0) if context.param_name == "momentum" else (10.0, 1e-4)
        ratio = f.cfg.get("target_ratio")
        allowed = "a number r (meaning r, r / 1e5) or a list of one or two numbers"
        if ratio is None:
            ratio = default
        elif isinstance(ratio, (int, float)) and not isinstance(ratio, bool):
            ratio = (ratio, ratio / 1e5)
        elif isinstance(ratio, (list, tuple)) and len(ratio) in (1, 2) and all(
                isinstance(r, (int, float)) and not isinstance(r, bool) for r in ratio):
            ratio = (ratio[0], ratio[0] / 1e5) if len(ratio) == 1 else tuple(ratio)
        else:
            raise ScheduleArgumentError("target_ratio", ratio, allowed)
        return cls(ratio, f.integer("cyclic_times", 1, ge=1), f.number("step_ratio_up", 0.4),
                   f.choice("anneal_strategy", ("cos", "linear"), "cos"), f.number("gamma", 1.0))

    def regular(self, base, progress, max_progress):
        length = max_progress // self.cyclic_times
        if length < 1:
            raise ScheduleArgumentError("cyclic_times", self.cyclic_times, f"at most {max_progress}, the iterations")
        up = int(self.step_ratio_up * length)
        position, scale = progress % length, self.gamma ** (progress // length).astype(np.float64)
        peak = 1 - scale + self.target_ratio[0] * scale
        rising = position < up
        # mmcv's phase ratios: [start, end) iterations, ratio from -> to
        start = np.where(rising, 0, up)
        end = np.where(rising, up, length)
        first = np.where(rising, 1.0, peak)
        last = np.where(rising, peak, self.target_ratio[1])
        return self.anneal(base * first, base * last, (position - start) / (end - start))


def policy_name(policy) -> str:
    """mmcv's spelling rule: a policy written all in lower case is title-cased."""
    return policy.title() if isinstance(policy, str) and policy == policy.lower() else policy


@SCHEDULES.register
class MmcvSchedule(ScheduleType):
    """`name: mmcv`: base_value + an lr_config / momentum_config (module docstring)."""

    name, value_fields = "mmcv", ("base_value",)
    default_update_interval = None  # the hooks count iterations or epochs themselves

    def __init__(self, base_value: float, policy: MmcvPolicy, by_epoch: bool, warmup=None, warmup_iters: int = 0,
                 warmup_ratio: float = 0.1, warmup_by_epoch: bool = False, momentum: bool = False):
        if isinstance(policy, CyclicPolicy) and by_epoch:
            raise ScheduleArgumentError("by_epoch", by_epoch, "false", "mmcv's cyclic policy counts iterations")
        if warmup is not None:
            if warmup not in WARMUPS:
                raise ScheduleArgumentError("warmup", warmup, "null or one of " + ", ".join(WARMUPS))
            if warmup_iters < 1:
                raise ScheduleArgumentError("warmup_iters", warmup_iters, "an integer >= 1 when warmup is set")
            if not 0 < warmup_ratio <= 1:
                raise ScheduleArgumentError("warmup_ratio", warmup_ratio, "a number in (0, 1]")
        self.base_value, self.policy, self.by_epoch = base_value, policy, by_epoch
        self.warmup, self.warmup_iters, self.warmup_ratio = warmup, warmup_iters, warmup_ratio
        self.warmup_by_epoch, self.momentum = warmup_by_epoch, momentum

    @classmethod
    def value_slots(cls, cfg):
        yield from super().value_slots(cfg)
        policy = MMCV_POLICIES.get(policy_name(cfg.get("policy")))
        if policy is not None:
            yield from policy.value_slots(cfg)

    @classmethod
    def from_config(cls, f, context):
        momentum = context.param_name == "momentum"
        written = f.cfg.get("policy")
        if not isinstance(written, str) or policy_name(written) not in MMCV_POLICIES:
            raise ScheduleArgumentError("policy", written, "one of " + ", ".join(MMCV_POLICIES),
                                        "a name in lower case is title-cased first, as mmcv does")
        policy = MMCV_POLICIES[policy_name(written)]
        if momentum and not policy.momentum_hook:
            raise ScheduleArgumentError("policy", written, "cyclic",
                                        "the momentum_config policy supported here")
        if momentum and f.boolean("warmup_by_epoch", False):
            raise ScheduleArgumentError("warmup_by_epoch", True, "false",
                                        "mmcv's MomentumUpdaterHook counts warmup in iterations")
        return cls(f.number("base_value"), policy.from_config(f, context),
                   f.boolean("by_epoch", policy.by_epoch_default), f.choice("warmup", WARMUPS, None),
                   f.integer("warmup_iters", 0), f.number("warmup_ratio", 0.9 if momentum else 0.1),
                   f.boolean("warmup_by_epoch", False), momentum)

    def compile(self, num_epochs: int, steps_per_epoch: int) -> TabulatedStepSchedule:
        k = np.arange(num_epochs * steps_per_epoch, dtype=np.int64)
        if self.by_epoch:
            values = self.policy.regular(self.base_value, k // steps_per_epoch, num_epochs)
        else:
            values = self.policy.regular(self.base_value, k, len(k))
        if self.warmup is not None:
            length = self.warmup_iters * (steps_per_epoch if self.warmup_by_epoch else 1)
            early = k[:length] / length
            factor = {"constant": np.full(early.shape, self.warmup_ratio),
                      "linear": 1 - (1 - early) * (1 - self.warmup_ratio),
                      "exp": self.warmup_ratio ** (1 - early)}[self.warmup]
            values[:length] = values[:length] / factor if self.momentum else values[:length] * factor
        return TabulatedStepSchedule(values, num_epochs, steps_per_epoch)

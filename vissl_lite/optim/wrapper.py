"""Optimizer wrappers with MMEngine's names and meaning: the one object the engine loop talks to.

An `OptimWrapper` owns the optimizer (LARC-wrapped or not), gradient accumulation, clipping, and
the application of the schedules: before optimizer step k it sets every group's hyperparameters
for k, so the step counter k is the only schedule state. `AmpOptimWrapper` adds autocast and a
loss scaler. `OptimWrapperDict` holds several named wrappers (e.g. the model's and an online
linear probe's), each with its own groups and schedules.

The MMEngine loop reads the same here:

    with wrapper.optim_context(model):      # autocast (AMP); DDP no_sync on non-updating micro-steps
        loss = model(inputs)
    wrapper.update_params(loss)             # loss / accumulative_counts, backward, and every
                                            # accumulative_counts calls: clip, step (the
                                            # gradients are cleared before the next update's
                                            # first backward)

and so does its fine-grained form: `backward` accumulates, `step` steps, `zero_grad` clears.
"""

import contextlib
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch

# The top-level keys of an MMEngine OptimWrapper's state_dict (the torch optimizer's own).
MMENGINE_KEYS = {"state", "param_groups"}


def _sizes(sizes: Sequence[int]) -> str:
    return ", ".join(map(str, sizes)) if len(sizes) <= 6 else ", ".join(map(str, sizes[:6])) + ", ..."


class OptimWrapper:
    """`optimizer` + accumulation + clipping + schedules.

    clip_grad: None, or MMEngine's dict: `dict(max_norm=..., norm_type=2)` (clip_grad_norm_) or
    `dict(type="value", clip_value=...)` (clip_grad_value_). `scheduler` is anything with
    `apply(optimizer, step)` (a GroupScheduler); without one the groups keep their values.
    temp_frozen: [(parameters, steps)]: those parameters do not move for optimizer steps
    0 .. steps-1 (VISSL's TEMP_FROZEN_PARAMS_ITER_MAP, DINO's freeze_last_layer, SwAV's frozen
    prototypes). Their gradients are dropped after clipping, so every torch optimizer skips
    them: no update, no weight decay, no change to their momentum or Adam moments.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, accumulative_counts: int = 1,
                 clip_grad: Optional[dict] = None, scheduler=None,
                 temp_frozen: Sequence[Tuple[Sequence[torch.Tensor], int]] = ()):
        if accumulative_counts < 1:
            raise ValueError(f"accumulative_counts must be >= 1, got {accumulative_counts}")
        self.optimizer = optimizer
        self.accumulative_counts = int(accumulative_counts)
        self.clip_grad_kwargs = self._check_clip(clip_grad)
        self.scheduler = scheduler
        self.temp_frozen = [(list(params), int(steps)) for params, steps in temp_frozen]
        self.step_count = 0  # optimizer steps taken: the schedules' only state
        self._inner_count = 0  # backward calls (micro-steps) taken
        self.last_grad_norm: Optional[torch.Tensor] = None  # a device tensor: read it at log steps only
        self.apply_schedules()

    @staticmethod
    def _check_clip(clip_grad: Optional[dict]) -> Optional[dict]:
        if not clip_grad:
            return None
        clip = dict(clip_grad)
        kind = clip.pop("type", "norm")
        if kind == "norm" and "max_norm" in clip:
            return {"type": "norm", "max_norm": float(clip["max_norm"]), "norm_type": float(clip.get("norm_type", 2.0))}
        if kind == "value" and "clip_value" in clip:
            return {"type": "value", "clip_value": float(clip["clip_value"])}
        raise ValueError(f"clip_grad must be dict(max_norm=..., norm_type=2) or dict(type='value', clip_value=...), "
                         f"got {clip_grad}")

    # ----------------------------------------------------------------- MMEngine's interface

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def should_update(self) -> bool:
        """True after the last micro-step of an optimizer step."""
        return self._inner_count % self.accumulative_counts == 0

    def should_sync(self) -> bool:
        """True when the next backward completes an optimizer step (DDP must all-reduce)."""
        return (self._inner_count + 1) % self.accumulative_counts == 0

    @contextlib.contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        """Around the forward: skips DDP's gradient all-reduce on micro-steps that do not update."""
        if not self.should_sync() and hasattr(model, "no_sync"):
            with model.no_sync():
                yield
        else:
            yield

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss / self.accumulative_counts if self.accumulative_counts > 1 else loss

    def backward(self, loss: torch.Tensor) -> None:
        """loss.backward(), counted; gradients accumulate (MMEngine's fine-grained loop
        `backward, backward, step, zero_grad` sums two micro-steps)."""
        loss.backward()
        self._inner_count += 1

    def update_params(self, loss: torch.Tensor) -> None:
        """scale, backward, and at the last micro-step of an update: step. The previous update's
        gradients are dropped right before this update's first backward rather than right after
        the step (MMEngine's order): the same result, and the allocator hands their memory
        straight to this backward (clearing after the step cost 10-15% on a CPU)."""
        if self._inner_count % self.accumulative_counts == 0:
            self.zero_grad()
        self.backward(self.scale_loss(loss))
        if self.should_update():
            self.step()

    def step(self) -> None:
        """Set the schedules' values for this step, clip, step the optimizer, count the step."""
        self.apply_schedules()
        self._clip()
        self._drop_frozen_grads()
        self.optimizer.step()
        self.step_count += 1

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def get_lr(self) -> Dict[str, list]:
        return {"lr": [group["lr"] for group in self.param_groups]}

    def get_momentum(self) -> Dict[str, list]:
        """SGD / RMSprop / LARS momentum, or Adam's beta1 (as MMEngine reports it)."""
        values = [g["momentum"] if "momentum" in g else g["betas"][0] if "betas" in g else 0.0
                  for g in self.param_groups]
        return {"momentum": values}

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "step_count": self.step_count,
                "inner_count": self._inner_count}

    def load_state_dict(self, state: dict) -> None:
        """This wrapper's own state_dict(), or an MMEngine OptimWrapper's (see load_mmengine_state)."""
        if MMENGINE_KEYS <= set(state):
            self.load_mmengine_state(state)
            return
        if set(state) - {"loss_scaler"} != {"optimizer", "step_count", "inner_count"}:
            raise ValueError(f"an optimizer wrapper state has optimizer, step_count, inner_count (vissl_lite) or "
                             f"state, param_groups (MMEngine); this one has {sorted(state)}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.set_step(state["step_count"])
        self._inner_count = state["inner_count"]

    def load_mmengine_state(self, state: dict) -> None:
        """An MMEngine OptimWrapper's state_dict(): the torch optimizer's (state, param_groups),
        plus base_param_settings (MMEngine's record of the optimizer's defaults, for its log:
        not needed here) and, from an AmpOptimWrapper, loss_scaler.

        The groups must match this optimizer's in number and size, in order (MMEngine's
        DefaultOptimWrapperConstructor makes one group of every parameter, or one per parameter
        with paramwise_cfg). A saved group's hyperparameters replace ours (torch's rule); keys
        MMEngine does not write (name, lr_mult, lr_schedule, ...) stay. MMEngine keeps the
        iteration in its runner, not in the wrapper: the step counter is left as it is; call
        set_step(iteration) to continue the schedules there.
        """
        groups, ours = state["param_groups"], self.optimizer.param_groups
        saved_sizes, our_sizes = [len(g["params"]) for g in groups], [len(g["params"]) for g in ours]
        if saved_sizes != our_sizes:
            raise ValueError(f"the MMEngine optimizer state has {len(groups)} parameter group(s) of "
                             f"{_sizes(saved_sizes)} tensors, this optimizer {len(ours)} of {_sizes(our_sizes)}")
        if "loss_scaler" in state and not isinstance(self, AmpOptimWrapper):
            raise ValueError("the MMEngine state is an AmpOptimWrapper's (it has loss_scaler); this is an OptimWrapper")
        merged = [{**{k: v for k, v in our.items() if k != "params"}, **saved} for our, saved in zip(ours, groups)]
        self.optimizer.load_state_dict({"state": state["state"], "param_groups": merged})
        if "loss_scaler" in state:
            self.loss_scaler.load_state_dict(state["loss_scaler"])
        self.apply_schedules()

    # ----------------------------------------------------------------- vissl_lite's additions

    def set_step(self, step: int) -> None:
        """Continue at optimizer step `step` (resume): the schedules follow from it alone."""
        self.step_count = int(step)
        self._inner_count = self.step_count * self.accumulative_counts
        self.apply_schedules()

    def apply_schedules(self) -> None:
        if self.scheduler is not None:
            self.scheduler.apply(self.optimizer, self.step_count)

    def _drop_frozen_grads(self) -> None:
        for params, steps in self.temp_frozen:
            if self.step_count < steps:
                for p in params:
                    p.grad = None

    def _params(self):
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None]

    def _clip(self) -> None:
        clip = self.clip_grad_kwargs
        if clip is None:
            return
        self._unscale()
        if clip["type"] == "norm":
            self.last_grad_norm = torch.nn.utils.clip_grad_norm_(self._params(), clip["max_norm"], clip["norm_type"],
                                                                 foreach=True)
        else:
            torch.nn.utils.clip_grad_value_(self._params(), clip["clip_value"], foreach=True)

    def _unscale(self) -> None:
        """Gradients are already in true units without a loss scaler."""


class AmpOptimWrapper(OptimWrapper):
    """OptimWrapper + autocast(dtype) around the forward + a loss scaler.

    loss_scale: "dynamic" (torch's GradScaler: scale 2**16, halved on inf/nan, doubled after
    2000 clean steps), a number (a static scale), or a dict of GradScaler arguments. A bfloat16
    run needs no scaling (its exponent range is float32's), so its scaler is disabled: a
    documented difference from MMEngine, which scales bfloat16 too.
    """

    def __init__(self, optimizer, dtype: str = "bfloat16", loss_scale="dynamic", accumulative_counts: int = 1,
                 clip_grad: Optional[dict] = None, scheduler=None, temp_frozen=(), device_type: Optional[str] = None):
        if dtype not in ("bfloat16", "float16"):
            raise ValueError(f"dtype must be bfloat16 or float16, got {dtype!r}")
        self.dtype = getattr(torch, dtype)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        self.device_type = device_type or (params[0].device.type if params else "cpu")
        enabled = self.dtype == torch.float16
        if loss_scale == "dynamic":
            self.loss_scaler = torch.amp.GradScaler(self.device_type, enabled=enabled)
            self._static_scale = None
        elif isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool) and loss_scale > 0:
            # A static scale: no growth, no backoff; update(new_scale) pins it after every step.
            self.loss_scaler = torch.amp.GradScaler(self.device_type, init_scale=float(loss_scale), enabled=enabled)
            self._static_scale = float(loss_scale)
        elif isinstance(loss_scale, dict):
            self.loss_scaler = torch.amp.GradScaler(self.device_type, enabled=enabled, **loss_scale)
            self._static_scale = None
        else:
            raise ValueError(f"loss_scale must be 'dynamic', a number > 0 or a dict, got {loss_scale!r}")
        super().__init__(optimizer, accumulative_counts, clip_grad, scheduler, temp_frozen)

    @contextlib.contextmanager
    def optim_context(self, model):
        with super().optim_context(model), torch.autocast(self.device_type, dtype=self.dtype):
            yield

    def backward(self, loss):
        super().backward(self.loss_scaler.scale(loss))

    def step(self):
        self.apply_schedules()
        self._clip()
        self._drop_frozen_grads()
        self.loss_scaler.step(self.optimizer)
        self.loss_scaler.update(self._static_scale)
        self.step_count += 1

    def _unscale(self):
        self.loss_scaler.unscale_(self.optimizer)

    def state_dict(self):
        return {**super().state_dict(), "loss_scaler": self.loss_scaler.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if not MMENGINE_KEYS <= set(state):  # load_mmengine_state took MMEngine's loss_scaler, if any
            self.loss_scaler.load_state_dict(state["loss_scaler"])


class OptimWrapperDict:
    """Named wrappers, each stepping its own parameters with its own schedules (MMEngine's
    OptimWrapperDict). There is no update_params: each loss goes to its own wrapper."""

    def __init__(self, **wrappers: OptimWrapper):
        self.optim_wrappers: Dict[str, OptimWrapper] = dict(wrappers)

    def __getitem__(self, name: str) -> OptimWrapper:
        return self.optim_wrappers[name]

    def __contains__(self, name: str) -> bool:
        return name in self.optim_wrappers

    def __iter__(self):
        return iter(self.optim_wrappers)

    def __len__(self) -> int:
        return len(self.optim_wrappers)

    def items(self):
        return self.optim_wrappers.items()

    def get_lr(self) -> Dict[str, list]:
        return {f"{name}.lr": w.get_lr()["lr"] for name, w in self.items()}

    def get_momentum(self) -> Dict[str, list]:
        return {f"{name}.momentum": w.get_momentum()["momentum"] for name, w in self.items()}

    def zero_grad(self) -> None:
        for wrapper in self.optim_wrappers.values():
            wrapper.zero_grad()

    def set_step(self, step: int) -> None:
        for wrapper in self.optim_wrappers.values():
            wrapper.set_step(step)

    def state_dict(self) -> dict:
        return {name: w.state_dict() for name, w in self.items()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self.optim_wrappers):
            raise ValueError(f"optimizer wrappers {sorted(state)} in the checkpoint, {sorted(self.optim_wrappers)} here")
        for name, wrapper in self.items():
            wrapper.load_state_dict(state[name])

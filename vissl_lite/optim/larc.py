"""LARC (layer-wise adaptive rate control, as in apex) around any torch optimizer.

LARC is a full torch.optim.Optimizer (step hooks, profiler labels, lr_scheduler and GradScaler
work on it) that shares the wrapped optimizer's param_groups and state. Its step has a
readable single-tensor path, apex's loop as written, and a vectorised one with no
per-parameter Python work; tests compare the two.
"""

import functools
from typing import List

import torch

from ..distributed import full_tensor, global_norms, local

# Parameters up to this size are stacked by shape: below it per-tensor launch overhead, not
# memory traffic, dominates a foreach op.
_STACK_MAX_NUMEL = 1 << 16


class LARC(torch.optim.Optimizer):
    """The apex LARC algorithm. For every parameter p with gradient g in a group with learning
    rate lr and weight decay wd, when ||p|| > 0 and ||g|| > 0:

        a = trust_coefficient * ||p|| / (||g|| + wd * ||p|| + eps)
        a = min(a / lr, 1)                    if clip  (lr = 0 gives a = 1)
        g = a * (g + wd * p)

    then the wrapped optimizer steps with weight_decay 0 (restored after the step). E.g.
    p = (3, 4), g = (0, 1), wd = 0, trust_coefficient 0.01: a = 0.01 * 5 / 1 = 0.05, and SGD at
    lr 1 moves p to (3, 3.95). Parameters with a zero norm or zero gradient norm keep g as it is
    (no weight decay folded). With exclude_bias_and_norm, 1-D parameters (biases, norm weights)
    are not adapted (a = 1) but still get g + wd * p, the inner optimizer's coupled weight
    decay. foreach=False takes the single-tensor path.

    Sharded parameters (DTensors, DISTRIBUTED.STRATEGY=fsdp) use the norms of the whole
    parameter and gradient, ||p|| = sqrt(sum over shards of ||shard||^2), so every process
    scales its shard by the same factor a replica would use.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, trust_coefficient=1e-3, clip=False, eps=1e-8,
                 exclude_bias_and_norm=False, foreach: bool = True):
        for key, value in dict(trust_coefficient=trust_coefficient, eps=eps).items():
            if value < 0:
                raise ValueError(f"LARC {key} must be >= 0, got {value}")
        self.optim = optimizer
        self.trust_coefficient, self.clip, self.eps = trust_coefficient, clip, eps
        self.exclude_bias_and_norm, self.foreach = exclude_bias_and_norm, foreach
        self._bucket_cache = None
        # The base init sets up the hooks and the profiled step. It gets copies of the groups so
        # the inner optimizer is left untouched; then the wrapper adopts the inner's own groups,
        # state and defaults: schedules, GradScaler and checkpoints see one set of objects.
        super().__init__([dict(g) for g in optimizer.param_groups], optimizer.defaults)
        self.param_groups, self.state, self.defaults = optimizer.param_groups, optimizer.state, optimizer.defaults

    def __repr__(self):
        return (f"LARC(trust_coefficient={self.trust_coefficient}, clip={self.clip}, eps={self.eps}, "
                f"exclude_bias_and_norm={self.exclude_bias_and_norm}) around {self.optim!r}")

    def __getstate__(self):
        # All of it, the inner optimizer included (the base keeps only defaults, state and
        # groups); __setstate__ recreates the hook tables.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_optimizer_")}

    def load_state_dict(self, state_dict):
        """Loads as any optimizer (this wrapper's hooks run), then hands the new groups and state
        to the inner optimizer's __setstate__, as its own load_state_dict would."""
        super().load_state_dict(state_dict)
        self.optim.__setstate__({"state": self.state, "param_groups": self.param_groups})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        weight_decays = [group.get("weight_decay", 0.0) for group in self.param_groups]
        params, wds, lrs, adapt = [], [], [], []
        for group, wd in zip(self.param_groups, weight_decays):
            for p in group["params"]:
                if p.grad is not None:
                    params.append(p)
                    wds.append(wd)
                    lrs.append(group["lr"])
                    adapt.append(not (self.exclude_bias_and_norm and p.ndim == 1))
        if params and self.foreach:
            self._adapt_multi_tensor(params, wds, lrs, adapt)
        elif params:
            _adapt_single_tensor(params, wds, lrs, adapt, trust_coefficient=self.trust_coefficient, clip=self.clip,
                                 eps=self.eps)
        try:
            for group in self.param_groups:
                group["weight_decay"] = 0.0
            self.optim.step()
        finally:
            for group, wd in zip(self.param_groups, weight_decays):
                group["weight_decay"] = wd
        return loss

    def _adapt_multi_tensor(self, params, wds, lrs, adapt):
        # Sharded parameters (fsdp's DTensors) are rescaled through their local shards; their
        # norms are the whole tensors', from the shards' squared norms summed over processes.
        whole = params
        grads = [local(p.grad) for p in params]
        params = [local(p) for p in params]
        stacks, rest = self._buckets(whole, params)
        device = params[0].device
        # Norms and factors in float32, or wider when parameters are (float64 stays float64).
        acc = functools.reduce(torch.promote_types, {p.dtype for p in params}, torch.float32)
        p_norm = torch.empty(len(params), dtype=acc, device=device)
        g_norm = torch.empty_like(p_norm)
        stacked = []
        for index, members in stacks:
            ps = torch.stack([params[i] for i in members])
            gs = torch.stack([grads[i] for i in members])
            p_norm[index] = torch.linalg.vector_norm(ps.flatten(1), dim=1, dtype=acc)
            g_norm[index] = torch.linalg.vector_norm(gs.flatten(1), dim=1, dtype=acc)
            stacked.append((index, members, ps, gs))
        if rest:
            norms = torch._foreach_norm([params[i] for i in rest] + [grads[i] for i in rest])
            rest_index = torch.tensor(rest, device=device)
            p_norm[rest_index] = torch.stack(norms[: len(rest)]).to(acc)
            g_norm[rest_index] = torch.stack(norms[len(rest):]).to(acc)
        p_norm, g_norm = global_norms(whole, torch.stack([p_norm, g_norm])).unbind()

        wd = torch.tensor(wds, dtype=acc, device=device)
        adaptive = self.trust_coefficient * p_norm / (g_norm + p_norm * wd + self.eps)
        if self.clip:
            lr = torch.tensor(lrs, dtype=acc, device=device)
            adaptive = torch.clamp(adaptive / lr, max=1.0)  # lr = 0: inf -> 1
        active = (p_norm > 0) & (g_norm > 0)
        adapt = torch.tensor(adapt, device=device)
        scale = torch.where(active & adapt, adaptive, torch.ones_like(adaptive))
        fold = torch.where(active | ~adapt, wd, torch.zeros_like(wd))

        for index, members, ps, gs in stacked:
            shape = (-1,) + (1,) * (ps.dim() - 1)
            new = gs.add_(ps * fold[index].view(shape).to(ps.dtype)).mul_(scale[index].view(shape).to(gs.dtype))
            torch._foreach_copy_([grads[i] for i in members], list(new.unbind(0)))
        if rest:
            rest_grads = [grads[i] for i in rest]
            torch._foreach_addcmul_(rest_grads, [params[i] for i in rest], list(fold[rest_index].unbind()))
            torch._foreach_mul_(rest_grads, list(scale[rest_index].unbind()))

    def _buckets(self, whole, params):
        """Small parameters of one shape, dtype and device go through stacked tensors (one
        kernel each for norms and rescaling); the rest through per-tensor foreach ops, which
        cost nothing extra when tensors are large. `params` are the local parts of `whole`
        (the parameters themselves when unsharded); cached for the same parameter list."""
        key = tuple(map(id, whole))
        if self._bucket_cache is None or self._bucket_cache[0] != key:
            by_shape = {}
            for i, p in enumerate(params):
                if p.numel() <= _STACK_MAX_NUMEL:
                    by_shape.setdefault((p.shape, p.dtype, p.device), []).append(i)
            stacks = [(torch.tensor(m, device=params[m[0]].device), m) for m in by_shape.values() if len(m) > 1]
            stacked = {i for _, m in stacks for i in m}
            rest = [i for i in range(len(params)) if i not in stacked]
            self._bucket_cache = (key, (stacks, rest))
        return self._bucket_cache[1]


def _adapt_single_tensor(params: List[torch.Tensor], wds: List[float], lrs: List[float], adapt: List[bool], *,
                         trust_coefficient: float, clip: bool, eps: float) -> None:
    """apex's loop as written, one parameter at a time: the reference for the vectorised path."""
    for p, wd, lr, adapted in zip(params, wds, lrs, adapt):
        if not adapted:
            local(p.grad).add_(local(p), alpha=wd)
            continue
        acc = torch.promote_types(p.dtype, torch.float32)
        # A sharded parameter's norm through DTensor's own reduction, gathered to every process.
        p_norm = full_tensor(torch.linalg.vector_norm(p, dtype=acc))
        g_norm = full_tensor(torch.linalg.vector_norm(p.grad, dtype=acc))
        if p_norm != 0 and g_norm != 0:
            factor = trust_coefficient * p_norm / (g_norm + p_norm * wd + eps)
            if clip:
                factor = torch.clamp(factor / lr, max=1.0)  # lr = 0: inf -> 1
            local(p.grad).add_(local(p), alpha=wd).mul_(factor)

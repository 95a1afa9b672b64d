"""LARS in the Barlow Twins / VISSL form, with a readable single-tensor path beside the
multi-tensor one (torch.optim's habit); tests compare the two."""

from typing import List

import torch

from ..distributed import full_tensor, global_norms, local


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling with its own momentum buffer. Per parameter p with
    gradient g, in a group with lr, momentum, weight_decay wd and eta:

        d  = g + wd * p
        d *= eta * ||p|| / ||d||     if ||p|| > 0 and ||d|| > 0 and p is not excluded
        mu = momentum * mu + d       (mu starts at 0)
        p -= lr * mu

    E.g. p = (3, 4), g = (0, 1), wd = 0, eta = 0.1, lr = 1, momentum 0: d = (0, 1) * 0.1 * 5 / 1,
    p becomes (3, 3.5). With exclude_bias_and_norm, 1-D parameters (biases, norm weights) skip
    the adaptation. foreach=False takes the single-tensor path, one parameter at a time.
    Sharded parameters (DTensors, DISTRIBUTED.STRATEGY=fsdp) use the whole tensors' norms.
    """

    def __init__(self, params, lr=0.1, momentum=0.9, weight_decay=0.0, eta=1e-3, exclude_bias_and_norm=False,
                 foreach: bool = True):
        for key, value in dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta).items():
            if value < 0:
                raise ValueError(f"LARS {key} must be >= 0, got {value}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                        exclude_bias_and_norm=exclude_bias_and_norm, foreach=foreach)
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", True)  # groups saved before the single-tensor path existed

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            bufs = []
            for p in params:
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                bufs.append(state["mu"])
            step = _multi_tensor_lars if group["foreach"] else _single_tensor_lars
            step(params, bufs, lr=group["lr"], momentum=group["momentum"], weight_decay=group["weight_decay"],
                 eta=group["eta"], exclude_bias_and_norm=group["exclude_bias_and_norm"])
        return loss


def _single_tensor_lars(params: List[torch.Tensor], bufs: List[torch.Tensor], *, lr, momentum, weight_decay, eta,
                        exclude_bias_and_norm):
    for p, mu in zip(params, bufs):
        d = p.grad + weight_decay * p
        if not (exclude_bias_and_norm and p.ndim == 1):
            # A sharded parameter's norms through DTensor's own reduction, on every process.
            p_norm, d_norm = full_tensor(torch.linalg.vector_norm(p)), full_tensor(torch.linalg.vector_norm(d))
            if p_norm > 0 and d_norm > 0:
                d = local(d) * (eta * p_norm / d_norm)
        local(mu).mul_(momentum).add_(local(d))
        local(p).add_(local(mu), alpha=-lr)


def _multi_tensor_lars(params: List[torch.Tensor], bufs: List[torch.Tensor], *, lr, momentum, weight_decay, eta,
                       exclude_bias_and_norm):
    adapt = [i for i, p in enumerate(params) if not (exclude_bias_and_norm and p.ndim == 1)]
    whole = [params[i] for i in adapt]
    # Sharded parameters (fsdp's DTensors) update through their local shards, with the whole
    # tensors' norms (global_norms); a plain tensor is its own local part.
    grads = [local(p.grad) for p in params]
    params, bufs = [local(p) for p in params], [local(mu) for mu in bufs]
    d = torch._foreach_add(grads, params, alpha=weight_decay)
    if adapt:
        p_norm = torch.stack(torch._foreach_norm([params[i] for i in adapt]))
        d_norm = torch.stack(torch._foreach_norm([d[i] for i in adapt]))
        p_norm, d_norm = global_norms(whole, torch.stack([p_norm, d_norm])).unbind()
        # Zero norms keep d as it is; the division is masked out, so no NaN leaks.
        q = torch.where((p_norm > 0) & (d_norm > 0), eta * p_norm / d_norm, torch.ones_like(p_norm))
        torch._foreach_mul_([d[i] for i in adapt], list(q.unbind()))
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, d)
    torch._foreach_add_(params, bufs, alpha=-lr)

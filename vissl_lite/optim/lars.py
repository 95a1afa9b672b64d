"""LARS in the Barlow Twins / VISSL form, with multi-tensor ops."""

import torch


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling with its own momentum buffer. Per parameter p:

        d  = g + wd * p
        d *= eta * ||p|| / ||d||     if ||p|| > 0 and ||d|| > 0 and p is not excluded
        mu = momentum * mu + d
        p -= lr * mu

    With exclude_bias_and_norm, 1-D parameters (biases, norm weights) skip the adaptation.
    """

    def __init__(self, params, lr=0.1, momentum=0.9, weight_decay=0.0, eta=1e-3, exclude_bias_and_norm=False):
        for key, value in dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta).items():
            if value < 0:
                raise ValueError(f"LARS {key} must be >= 0, got {value}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                        exclude_bias_and_norm=exclude_bias_and_norm)
        super().__init__(params, defaults)

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
            d = torch._foreach_add([p.grad for p in params], params, alpha=group["weight_decay"])
            adapt = [i for i, p in enumerate(params) if not (group["exclude_bias_and_norm"] and p.ndim == 1)]
            if adapt:
                p_norm = torch.stack(torch._foreach_norm([params[i] for i in adapt]))
                d_norm = torch.stack(torch._foreach_norm([d[i] for i in adapt]))
                q = torch.where((p_norm > 0) & (d_norm > 0), group["eta"] * p_norm / d_norm, torch.ones_like(p_norm))
                torch._foreach_mul_([d[i] for i in adapt], list(q.unbind()))
            bufs = []
            for p in params:
                state = self.state[p]
                if "mu" not in state:
                    state["mu"] = torch.zeros_like(p)
                bufs.append(state["mu"])
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, d)
            torch._foreach_add_(params, bufs, alpha=-group["lr"])
        return loss

"""LARC and LARS against per-parameter references written here from their formulas."""

import copy

import pytest
import torch

from vissl_lite.optim.larc import LARC
from vissl_lite.optim.lars import LARS


def make_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(8, 4, 3, 3), (8,), (16, 8), (5,), (3, 3), (7,)] + [(6,)] * 20  # many small: the stacked path
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    params[3].zero_()  # a zero-weight parameter: untouched by LARC
    params.append(torch.randn(70000, generator=g, dtype=torch.float64))  # a large one: the foreach path
    return params


def grads_for(params, step, seed=1):
    g = torch.Generator().manual_seed(seed + step)
    grads = [torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.1 for p in params]
    grads[4].zero_()  # a zero-gradient parameter
    return grads


def reference_larc_sgd(params, grads_per_step, groups, tc, clip, eps, momentum, exclude=False):
    """apex LARC + SGD(momentum, weight decay handled by LARC), one parameter at a time."""
    params = [p.clone() for p in params]
    bufs = [None] * len(params)
    for grads in grads_per_step:
        for i, (p, g) in enumerate(zip(params, grads)):
            lr, wd = groups[i]
            g = g.clone()
            excluded = exclude and p.ndim == 1
            p_norm, g_norm = p.norm().item(), g.norm().item()
            if excluded:
                g = g + wd * p
            elif p_norm != 0 and g_norm != 0:
                local = tc * p_norm / (g_norm + p_norm * wd + eps)
                if clip:
                    local = 1.0 if lr == 0 else min(local / lr, 1.0)
                g = (g + wd * p) * local
            bufs[i] = g if bufs[i] is None else momentum * bufs[i] + g
            params[i] = p - lr * bufs[i]
    return params


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("wd", [0.0, 5e-2])
@pytest.mark.parametrize("exclude", [False, True])
def test_larc_matches_reference(clip, wd, exclude):
    base = make_params()
    params = [p.clone().requires_grad_() for p in base]
    # two groups with different LR and weight decay; the second has lr 0
    split = 10
    inner = torch.optim.SGD([{"params": params[:split], "lr": 0.5, "weight_decay": wd},
                             {"params": params[split:], "lr": 0.0, "weight_decay": wd / 2}],
                            lr=0.1, momentum=0.9, foreach=True)
    opt = LARC(inner, trust_coefficient=0.02, clip=clip, eps=1e-8, exclude_bias_and_norm=exclude)
    steps = [grads_for(base, s) for s in range(4)]
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    groups = [(0.5, wd)] * split + [(0.0, wd / 2)] * (len(base) - split)
    expected = reference_larc_sgd(base, steps, groups, 0.02, clip, 1e-8, 0.9, exclude)
    for i, (p, e) in enumerate(zip(params, expected)):
        torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-12, msg=f"parameter {i}")
    assert [g["weight_decay"] for g in opt.param_groups] == [wd, wd / 2]  # restored after the step


def test_larc_is_a_faithful_wrapper():
    params = [torch.randn(4, 4, requires_grad=True)]
    inner = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    opt = LARC(inner)
    assert isinstance(opt, torch.optim.Optimizer) and opt.param_groups is inner.param_groups
    params[0].grad = torch.ones(4, 4)
    opt.step()
    state = copy.deepcopy(opt.state_dict())
    other = LARC(torch.optim.SGD([torch.nn.Parameter(params[0].detach().clone())], lr=0.1, momentum=0.9))
    other.load_state_dict(state)
    assert torch.equal(other.state_dict()["state"][0]["momentum_buffer"], state["state"][0]["momentum_buffer"])
    opt.zero_grad()
    assert params[0].grad is None
    with pytest.raises(ValueError, match="trust_coefficient"):
        LARC(inner, trust_coefficient=-1.0)


def test_larc_with_grad_scaler_and_lambda_lr():
    p = torch.nn.Parameter(torch.ones(3))
    opt = LARC(torch.optim.SGD([p], lr=0.1))
    torch.optim.lr_scheduler.LambdaLR(opt.optim, lambda e: 1.0)  # torch schedulers accept it
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=4.0)
    (scaler.scale(p.sum())).backward()
    scaler.step(opt)
    scaler.update()
    # grad 1 per element: local = 1e-3 * sqrt(3) / sqrt(3) = 1e-3; p = 1 - 0.1 * 1e-3
    torch.testing.assert_close(p.detach(), torch.full((3,), 1 - 1e-4))


def reference_lars(params, grads_per_step, lr, momentum, wd, eta, exclude):
    params = [p.clone() for p in params]
    mus = [torch.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for i, (p, g) in enumerate(zip(params, grads)):
            d = g + wd * p
            if not (exclude and p.ndim == 1):
                pn, dn = p.norm().item(), d.norm().item()
                if pn > 0 and dn > 0:
                    d = d * (eta * pn / dn)
            mus[i] = momentum * mus[i] + d
            params[i] = p - lr * mus[i]
    return params


@pytest.mark.parametrize("exclude", [False, True])
def test_lars_matches_reference(exclude):
    base = make_params()
    params = [p.clone().requires_grad_() for p in base]
    opt = LARS(params, lr=0.3, momentum=0.9, weight_decay=1e-2, eta=0.02, exclude_bias_and_norm=exclude)
    steps = [grads_for(base, s) for s in range(3)]
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    expected = reference_lars(base, steps, 0.3, 0.9, 1e-2, 0.02, exclude)
    for p, e in zip(params, expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-12)


def test_lars_rejects_negative_eta():
    with pytest.raises(ValueError, match="eta"):
        LARS([torch.nn.Parameter(torch.ones(2))], eta=-1.0)

"""LARC and LARS against per-parameter references written here from their formulas, their
vectorised paths against their in-package single-tensor paths, and LARC as a torch optimizer
(hooks, profiler label, lr_scheduler, GradScaler, state_dict)."""

import copy
import warnings

import pytest
import torch

from vissl_lite.optim.larc import LARC
from vissl_lite.optim.lars import LARS


def make_params(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    shapes = [(8, 4, 3, 3), (8,), (16, 8), (5,), (3, 3), (7,)] + [(6,)] * 20  # many small: the stacked path
    params = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    params[3].zero_()  # a zero-weight parameter: untouched by LARC
    params.append(torch.randn(70000, generator=g, dtype=torch.float64))  # a large one: the foreach path
    return [p.to(dtype) for p in params]


def grads_for(params, step, seed=1):
    g = torch.Generator().manual_seed(seed + step)
    grads = [(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.1).to(p.dtype) for p in params]
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


def larc_run(base, steps, wd, clip, exclude, foreach, split=10):
    """LARC(SGD) over two groups (the second at lr 0) for the given gradients."""
    params = [p.clone().requires_grad_() for p in base]
    inner = torch.optim.SGD([{"params": params[:split], "lr": 0.5, "weight_decay": wd},
                             {"params": params[split:], "lr": 0.0, "weight_decay": wd / 2}],
                            lr=0.1, momentum=0.9, foreach=True)
    opt = LARC(inner, trust_coefficient=0.02, clip=clip, eps=1e-8, exclude_bias_and_norm=exclude, foreach=foreach)
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    assert [g["weight_decay"] for g in opt.param_groups] == [wd, wd / 2]  # restored after the step
    return [p.detach() for p in params]


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("wd", [0.0, 5e-2])
@pytest.mark.parametrize("exclude", [False, True])
def test_larc_matches_reference(clip, wd, exclude, foreach):
    base = make_params()
    steps = [grads_for(base, s) for s in range(4)]
    got = larc_run(base, steps, wd, clip, exclude, foreach)
    groups = [(0.5, wd)] * 10 + [(0.0, wd / 2)] * (len(base) - 10)
    expected = reference_larc_sgd(base, steps, groups, 0.02, clip, 1e-8, 0.9, exclude)
    for i, (p, e) in enumerate(zip(got, expected)):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-12, msg=f"parameter {i}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_larc_vectorised_path_equals_the_single_tensor_path(dtype):
    base = make_params(dtype=dtype)
    steps = [grads_for(base, s) for s in range(3)]
    fast = larc_run(base, steps, 1e-2, True, True, foreach=True)
    loop = larc_run(base, steps, 1e-2, True, True, foreach=False)
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-15)
    for p, q in zip(fast, loop):
        torch.testing.assert_close(p, q, **tol)


def test_larc_docstring_example():
    p = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = LARC(torch.optim.SGD([p], lr=1.0), trust_coefficient=0.01)
    p.grad = torch.tensor([0.0, 1.0])
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([3.0, 3.95]))


def test_larc_is_a_faithful_wrapper():
    params = [torch.randn(4, 4, requires_grad=True)]
    inner = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    opt = LARC(inner)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is inner.param_groups and opt.state is inner.state and opt.defaults is inner.defaults
    params[0].grad = torch.ones(4, 4)
    opt.step()
    opt.zero_grad()
    assert params[0].grad is None
    with pytest.raises(ValueError, match="LARC trust_coefficient must be >= 0"):
        LARC(inner, trust_coefficient=-1.0)
    extra = torch.nn.Parameter(torch.ones(2))
    opt.add_param_group({"params": [extra], "lr": 0.3})
    assert inner.param_groups[-1]["params"] == [extra] and inner.param_groups[-1]["momentum"] == 0.9
    clone = copy.deepcopy(opt)
    assert clone.param_groups is clone.optim.param_groups and clone.state is clone.optim.state


def test_larc_step_hooks_and_profiler_label():
    p = torch.nn.Parameter(torch.ones(3))
    opt = LARC(torch.optim.SGD([p], lr=0.1))
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append(("pre", o is opt, p.grad.clone())))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(("post", o is opt, p.detach().clone())))
    p.grad = torch.ones(3)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        opt.step()
    assert [(c[0], c[1]) for c in calls] == [("pre", True), ("post", True)]
    torch.testing.assert_close(calls[0][2], torch.ones(3))  # before LARC rescaled the gradient
    torch.testing.assert_close(calls[1][2], torch.full((3,), 1 - 0.1 * 1e-3))  # after the inner step
    names = {e.name for e in prof.events()}
    assert "Optimizer.step#LARC.step" in names and "Optimizer.step#SGD.step" in names


def test_larc_with_torch_lr_scheduler():
    p = torch.nn.Parameter(torch.ones(3))
    inner = torch.optim.SGD([p], lr=0.1)
    opt = LARC(inner, trust_coefficient=0.5, clip=True)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        for k in range(3):
            lr = 0.1 * 0.5**k
            assert inner.param_groups[0]["lr"] == pytest.approx(lr)
            before = p.detach().clone()
            p.grad = torch.ones(3)
            opt.step()
            scheduler.step()
            # clip: local = min(0.5 * ||p|| / ||g|| / lr, 1) = 1 here, so plain SGD at lr
            torch.testing.assert_close(p.detach(), before - lr)


def test_larc_with_grad_scaler():
    p = torch.nn.Parameter(torch.ones(3))
    opt = LARC(torch.optim.SGD([p], lr=0.1))
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=4.0)
    scaler.scale(p.sum()).backward()
    scaler.unscale_(opt)  # as before clipping: LARC's groups are the gradients' groups
    torch.testing.assert_close(p.grad, torch.ones(3))
    scaler.step(opt)
    scaler.update()
    # grad 1 per element: local = 1e-3 * sqrt(3) / sqrt(3) = 1e-3; p = 1 - 0.1 * 1e-3
    torch.testing.assert_close(p.detach(), torch.full((3,), 1 - 1e-4))
    opt.zero_grad()
    scaler.scale(p.sum() * float("inf")).backward()
    scaler.step(opt)  # an inf gradient: the step is skipped and the scale backs off
    scaler.update()
    torch.testing.assert_close(p.detach(), torch.full((3,), 1 - 1e-4))
    assert scaler.get_scale() == 2.0


def test_larc_state_dict_round_trip_resumes_exactly():
    base = make_params()
    steps = [grads_for(base, s) for s in range(4)]

    def make():
        params = [p.clone().requires_grad_() for p in base]
        return params, LARC(torch.optim.SGD(params, lr=0.3, momentum=0.9, weight_decay=1e-3), trust_coefficient=0.02)

    def step(params, opt, grads):
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()

    straight_params, straight = make()
    for grads in steps:
        step(straight_params, straight, grads)
    first_params, first = make()
    for grads in steps[:2]:
        step(first_params, first, grads)
    saved = copy.deepcopy(first.state_dict())
    assert saved["state"][0]["momentum_buffer"].shape == base[0].shape
    resumed_params, resumed = make()
    with torch.no_grad():
        for p, q in zip(resumed_params, first_params):
            p.copy_(q)
    loaded = []
    resumed.register_load_state_dict_post_hook(lambda o: loaded.append(o))
    resumed.load_state_dict(saved)
    assert loaded == [resumed]
    assert resumed.param_groups is resumed.optim.param_groups and resumed.state is resumed.optim.state
    for grads in steps[2:]:
        step(resumed_params, resumed, grads)
    for p, q in zip(resumed_params, straight_params):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


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


def lars_run(base, steps, exclude, foreach):
    params = [p.clone().requires_grad_() for p in base]
    opt = LARS(params, lr=0.3, momentum=0.9, weight_decay=1e-2, eta=0.02, exclude_bias_and_norm=exclude,
               foreach=foreach)
    for grads in steps:
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("exclude", [False, True])
def test_lars_matches_reference(exclude, foreach):
    base = make_params()
    steps = [grads_for(base, s) for s in range(3)]
    expected = reference_lars(base, steps, 0.3, 0.9, 1e-2, 0.02, exclude)
    for p, e in zip(lars_run(base, steps, exclude, foreach), expected):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-12)


def test_lars_foreach_equals_single_tensor():
    base = make_params(dtype=torch.float32)
    steps = [grads_for(base, s) for s in range(3)]
    for p, q in zip(lars_run(base, steps, True, True), lars_run(base, steps, True, False)):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_lars_docstring_example():
    p = torch.nn.Parameter(torch.tensor([3.0, 4.0]))
    opt = LARS([p], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.1)
    p.grad = torch.tensor([0.0, 1.0])
    opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([3.0, 3.5]))


def test_lars_loads_a_state_dict_saved_before_foreach_existed():
    p = torch.nn.Parameter(torch.ones(2))
    opt = LARS([p])
    state = opt.state_dict()
    del state["param_groups"][0]["foreach"]
    opt.load_state_dict(state)
    assert opt.param_groups[0]["foreach"] is True


def test_lars_rejects_negative_eta():
    with pytest.raises(ValueError, match="eta"):
        LARS([torch.nn.Parameter(torch.ones(2))], eta=-1.0)

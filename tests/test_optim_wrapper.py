"""OptimWrapper against a hand-written PyTorch loop and against MMEngine's own wrappers: the
three cases of MMEngine's optimizer-wrapper tutorial (single precision, AMP, accumulation),
clipping, schedules, counters and state."""

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vissl_lite.optim.wrapper import AmpOptimWrapper, OptimWrapper, OptimWrapperDict

mmengine_optim = pytest.importorskip("mmengine.optim")


def make_model_and_data(steps=6, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    data = [(torch.randn(5, 8), torch.randint(0, 4, (5,))) for _ in range(steps)]
    return model, data


def sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)


def run_wrapper(wrapper, model, data):
    for x, y in data:
        with wrapper.optim_context(model):
            loss = F.cross_entropy(model(x), y)
        wrapper.update_params(loss)
    return model


def assert_same_params(a, b, rtol=1e-6):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=rtol, atol=0, msg=name)


def test_single_precision_matches_hand_written_loop_and_mmengine():
    model, data = make_model_and_data()
    ours, theirs, hand = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    run_wrapper(OptimWrapper(sgd(ours)), ours, data)
    run_wrapper(mmengine_optim.OptimWrapper(sgd(theirs)), theirs, data)
    opt = sgd(hand)
    for x, y in data:
        opt.zero_grad()
        F.cross_entropy(hand(x), y).backward()
        opt.step()
    assert_same_params(ours, hand)
    assert_same_params(ours, theirs)


def test_accumulation_matches_hand_written_loop_and_mmengine():
    model, data = make_model_and_data(steps=6)
    ours, theirs, hand = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    wrapper = OptimWrapper(sgd(ours), accumulative_counts=2)
    run_wrapper(wrapper, ours, data)
    assert wrapper.step_count == 3
    run_wrapper(mmengine_optim.OptimWrapper(sgd(theirs), accumulative_counts=2), theirs, data)
    opt = sgd(hand)
    for i, (x, y) in enumerate(data):
        (F.cross_entropy(hand(x), y) / 2).backward()
        if i % 2 == 1:
            opt.step()
            opt.zero_grad()
    assert_same_params(ours, hand)
    assert_same_params(ours, theirs)


def test_amp_bfloat16_matches_hand_written_autocast_loop():
    model, data = make_model_and_data()
    ours, hand = copy.deepcopy(model), copy.deepcopy(model)
    wrapper = AmpOptimWrapper(sgd(ours), dtype="bfloat16")
    run_wrapper(wrapper, ours, data)
    opt = sgd(hand)
    for x, y in data:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(hand(x), y)
        loss.backward()
        opt.step()
    assert_same_params(ours, hand)
    assert not wrapper.loss_scaler.is_enabled()  # bfloat16 needs no loss scaling


def test_amp_float16_static_scale_matches_hand_written_grad_scaler_loop():
    model, data = make_model_and_data()
    ours, hand = copy.deepcopy(model), copy.deepcopy(model)
    run_wrapper(AmpOptimWrapper(sgd(ours), dtype="float16", loss_scale=512.0,
                                clip_grad=dict(max_norm=0.5)), ours, data)
    opt = sgd(hand)
    scaler = torch.amp.GradScaler("cpu", init_scale=512.0)
    for x, y in data:
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.float16):
            loss = F.cross_entropy(hand(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        nn.utils.clip_grad_norm_(hand.parameters(), 0.5)
        scaler.step(opt)
        scaler.update(512.0)
    assert_same_params(ours, hand)


def test_clip_grad_norm_and_value():
    model, data = make_model_and_data(steps=1)
    ours, hand = copy.deepcopy(model), copy.deepcopy(model)
    wrapper = OptimWrapper(sgd(ours), clip_grad=dict(max_norm=0.1, norm_type=2))
    run_wrapper(wrapper, ours, data)
    opt = sgd(hand)
    F.cross_entropy(hand(data[0][0]), data[0][1]).backward()
    norm = nn.utils.clip_grad_norm_(hand.parameters(), 0.1)
    opt.step()
    assert_same_params(ours, hand)
    assert float(wrapper.last_grad_norm) == pytest.approx(float(norm), rel=1e-6)
    value_model = copy.deepcopy(model)
    run_wrapper(OptimWrapper(torch.optim.SGD(value_model.parameters(), lr=1.0),
                             clip_grad=dict(type="value", clip_value=1e-3)), value_model, data)
    # every gradient entry clipped to +-1e-3, so with lr 1 no parameter moves more than 1e-3
    moved = max((p - q).abs().max().item() for p, q in zip(value_model.parameters(), model.parameters()))
    assert 0 < moved <= 1e-3 + 1e-7
    with pytest.raises(ValueError, match="clip_grad"):
        OptimWrapper(sgd(model), clip_grad=dict(norm_type=2))


class RecordingScheduler:
    """Sets lr = 0.1 / (k + 1) before step k, like any GroupScheduler would."""

    def __init__(self):
        self.applied = []

    def apply(self, optimizer, step):
        self.applied.append(step)
        for group in optimizer.param_groups:
            group["lr"] = 0.1 / (step + 1)


def test_schedules_are_applied_before_each_optimizer_step_and_on_resume():
    model, data = make_model_and_data(steps=6)
    scheduler = RecordingScheduler()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0), accumulative_counts=2, scheduler=scheduler)
    assert wrapper.get_lr() == {"lr": [0.1]}  # step 0's value as soon as it is built
    lrs = []
    for x, y in data:
        with wrapper.optim_context(model):
            loss = F.cross_entropy(model(x), y)
        wrapper.update_params(loss)
        if wrapper.should_update():
            lrs.append(wrapper.get_lr()["lr"][0])
    assert lrs == [0.1, 0.05, 0.1 / 3]  # the value used by optimizer steps 0, 1, 2
    assert scheduler.applied == [0, 0, 1, 2]
    state = wrapper.state_dict()
    other = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0), accumulative_counts=2,
                         scheduler=RecordingScheduler())
    other.load_state_dict(state)
    assert other.step_count == 3 and other.get_lr() == {"lr": [0.025]} and other.should_update()


class NoSyncCounter(nn.Module):
    def __init__(self):
        super().__init__()
        self.entered = 0

    @contextlib.contextmanager
    def no_sync(self):
        self.entered += 1
        yield


def test_optim_context_skips_gradient_sync_on_micro_steps_that_do_not_update():
    model = NoSyncCounter()
    param = nn.Parameter(torch.ones(1))
    wrapper = OptimWrapper(torch.optim.SGD([param], lr=0.1), accumulative_counts=3)
    for _ in range(6):
        with wrapper.optim_context(model):
            loss = (param * 2).sum()
        wrapper.update_params(loss)
    assert model.entered == 4  # micro-steps 1, 2, 4, 5 of 6: the 3rd and 6th all-reduce


def test_momentum_and_dict_of_wrappers():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    sgd_wrapper = OptimWrapper(torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.8))
    adam_wrapper = OptimWrapper(torch.optim.Adam(b.parameters(), lr=0.01, betas=(0.7, 0.9)))
    assert sgd_wrapper.get_momentum() == {"momentum": [0.8]} and adam_wrapper.get_momentum() == {"momentum": [0.7]}
    both = OptimWrapperDict(model=sgd_wrapper, probe=adam_wrapper)
    assert both.get_lr() == {"model.lr": [0.1], "probe.lr": [0.01]}
    assert both.get_momentum() == {"model.momentum": [0.8], "probe.momentum": [0.7]}
    state = both.state_dict()
    assert set(state) == {"model", "probe"}
    with pytest.raises(ValueError, match="probe"):
        OptimWrapperDict(model=sgd_wrapper).load_state_dict(state)


def fine_grained_loop(wrapper, model, data, per_update=2):
    """MMEngine's fine-grained loop: backward on every micro-batch, then step and zero_grad."""
    for i, (x, y) in enumerate(data):
        with wrapper.optim_context(model):
            loss = F.cross_entropy(model(x), y)
        wrapper.backward(loss)
        if (i + 1) % per_update == 0:
            wrapper.step()
            wrapper.zero_grad()


def test_fine_grained_backward_accumulates_like_mmengine():
    """backward, backward, step, zero_grad: the step sees the sum of both micro-batches' gradients."""
    model, data = make_model_and_data(steps=6)
    ours, theirs, hand = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    fine_grained_loop(OptimWrapper(sgd(ours)), ours, data)
    fine_grained_loop(mmengine_optim.OptimWrapper(sgd(theirs)), theirs, data)
    opt = sgd(hand)
    for i in range(0, len(data), 2):
        opt.zero_grad()
        sum(F.cross_entropy(hand(x), y) for x, y in data[i:i + 2]).backward()
        opt.step()
    assert_same_params(ours, hand)
    assert_same_params(ours, theirs)


def adam(params):
    return torch.optim.Adam(params, lr=0.01, betas=(0.8, 0.95), weight_decay=1e-3)


def test_load_state_dict_takes_an_mmengine_optim_wrapper_state():
    """Three Adam steps under MMEngine, its state_dict() loaded here, three more steps on each
    side: the same parameters. MMEngine keeps the iteration in its runner, so the step counter
    is set separately; keys MMEngine does not write (a group's name) stay."""
    model, data = make_model_and_data(steps=6)
    theirs = copy.deepcopy(model)
    mm = mmengine_optim.OptimWrapper(adam(theirs.parameters()))
    run_wrapper(mm, theirs, data[:3])
    state = mm.state_dict()
    assert set(state) == {"state", "param_groups"}  # MMEngine's layout: the torch optimizer's own
    ours = copy.deepcopy(theirs)
    wrapper = OptimWrapper(adam([{"params": list(ours.parameters()), "name": "all"}]))
    wrapper.load_state_dict(copy.deepcopy(state))
    wrapper.set_step(3)
    assert wrapper.param_groups[0]["name"] == "all" and wrapper.step_count == 3
    run_wrapper(mm, theirs, data[3:])
    run_wrapper(wrapper, ours, data[3:])
    assert_same_params(ours, theirs)


def test_load_state_dict_of_another_layout_says_what_differs():
    model, _ = make_model_and_data()
    mm_state = mmengine_optim.OptimWrapper(adam(model.parameters())).state_dict()  # one group of 4 tensors
    weights, biases = [model[0].weight, model[2].weight], [model[0].bias, model[2].bias]
    two_groups = OptimWrapper(adam([{"params": weights}, {"params": biases, "weight_decay": 0.0}]))
    with pytest.raises(ValueError, match=r"^the MMEngine optimizer state has 1 parameter group\(s\) of 4 tensors, "
                                         r"this optimizer 2 of 2, 2$"):
        two_groups.load_state_dict(mm_state)
    with pytest.raises(ValueError, match="has optimizer, step_count, inner_count .* this one has \\['lr'\\]"):
        OptimWrapper(adam(model.parameters())).load_state_dict({"lr": 0.1})
    amp_state = {**mm_state, "loss_scaler": torch.amp.GradScaler("cpu").state_dict()}  # AmpOptimWrapper's layout
    with pytest.raises(ValueError, match="AmpOptimWrapper's .* this is an OptimWrapper"):
        OptimWrapper(adam(model.parameters())).load_state_dict(amp_state)


def test_amp_wrapper_takes_an_mmengine_amp_state():
    """MMEngine's AmpOptimWrapper (CUDA-only there) saves {**optimizer.state_dict(), 'loss_scaler':
    GradScaler.state_dict()}; the scale and growth counter come back."""
    model, _ = make_model_and_data()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    scaler._lazy_init_scale_growth_tracker(torch.device("cpu"))
    state = {**adam(model.parameters()).state_dict(), "loss_scaler": scaler.state_dict()}
    wrapper = AmpOptimWrapper(adam(model.parameters()), dtype="float16")
    wrapper.load_state_dict(state)
    assert wrapper.loss_scaler.get_scale() == 2.0 ** 10

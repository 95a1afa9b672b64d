"""Each schedule type and each optimizer declares its arguments once: a section is checked
against the type it names, defaults are said to be defaults, a type written on the command line
replaces the experiment's section; MMEngine's auto_scale_lr and mmcv's momentum on Adam; the
warnings and the torch optimizer's defaults users read."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from vissl_lite.config.load import compose, resolve
from vissl_lite.config.reference import render
from vissl_lite.config.schema import OptimizerConfig
from vissl_lite.errors import ConfigError
from vissl_lite.optim import build_optimizer
from vissl_lite.optim.auto_scaling import auto_scale_schedule
from vissl_lite.optim.group_scheduler import GroupScheduler
from vissl_lite.optim.optimizers import check_optimizer_arguments
from vissl_lite.optim.schedules import build_step_schedule

KEY = "OPTIMIZER.param_schedulers.lr"

REFUSED = [
    ({"name": "mmengine", "base_value": 0.1, "schedulers": [
        {"type": "LinearLR", "end": 2}, {"type": "CosineAnnealingLR", "end_value": 0.001}]},
     "OPTIMIZER.param_schedulers.lr.schedulers[1].end_value: got 0.001; allowed: CosineAnnealingLR takes eta_min, "
     "eta_min_ratio, T_max, begin, end, by_epoch, convert_to_iter_based"),
    ({"name": "cosine", "start_value": 0.1, "end_value": 0.0, "eta_min": 0.001},
     "OPTIMIZER.param_schedulers.lr.eta_min: got 0.001; allowed: cosine takes start_value, end_value, update_interval"),
    ({"name": "mmengine", "base_value": 0.1, "update_interval": "step", "schedulers": [{"type": "LinearLR"}]},
     "OPTIMIZER.param_schedulers.lr.update_interval: got 'step'; allowed: mmengine takes base_value, schedulers"),
    ({"name": "mmcv", "base_value": 0.1, "policy": "step", "step": [3], "min_lr_ratio": 0.1},
     "OPTIMIZER.param_schedulers.lr.min_lr_ratio: got 0.1; allowed: mmcv with Step takes base_value, policy, "
     "by_epoch, warmup, warmup_iters, warmup_ratio, warmup_by_epoch, step, gamma, min_lr"),
    ({"name": "composite", "lengths": [0.5, 0.5], "schedulers": [
        {"name": "constant", "value": 1.0}, {"name": "linear", "start_value": 1.0, "end_value": 0.0, "value": 2}]},
     "OPTIMIZER.param_schedulers.lr.schedulers[1].value: got 2; allowed: linear takes start_value, end_value, "
     "update_interval"),
    ({"name": "cosine", "start_value": 0.1, "end_value": 0.0, "auto_lr_scaling": {"auto_scale": True, "peak": 1}},
     "OPTIMIZER.param_schedulers.lr.auto_lr_scaling.peak: got 1; allowed: auto_lr_scaling takes auto_scale, "
     "base_value, base_lr_batch_size, scaling_type"),
]


@pytest.mark.parametrize("section,message", REFUSED, ids=[m.split(":")[0] for _, m in REFUSED])
def test_an_argument_the_named_type_does_not_take_is_refused(section, message):
    with pytest.raises(ConfigError) as err:
        build_step_schedule(section, KEY, 4, 2)
    assert str(err.value) == message


def opt_cfg(**changes):
    cfg = OmegaConf.structured(OptimizerConfig)
    for key, value in changes.items():
        OmegaConf.update(cfg, key, value, merge=True)
    return cfg


def test_an_error_in_the_default_schedule_says_it_is_the_default():
    # 10 epochs and no LR schedule written: VISSL's default milestones 30, 60 do not fit.
    with pytest.raises(ConfigError) as err:
        GroupScheduler(opt_cfg(num_epochs=10), steps_per_epoch=2)
    message = str(err.value)
    assert message.startswith(f"{KEY}.milestones: got [30, 60]")
    assert f"it is the default of {KEY}, {{name: multistep, values: [0.1, 0.01, 0.001], milestones: [30, 60]}}" \
        in message


def test_the_command_line_replaces_a_section_of_another_type():
    # simclr_digits (the default experiment) writes a composite LR and SGD's momentum.
    cfg, _ = resolve(compose([f"{KEY}={{name:cosine,start_value:0.1,end_value:0}}", "OPTIMIZER.name=adamw"]))
    assert OmegaConf.to_container(cfg.OPTIMIZER.param_schedulers.lr) == {"name": "cosine", "start_value": 0.1,
                                                                           "end_value": 0}
    assert cfg.OPTIMIZER.momentum is None  # SGD's, written by the experiment: adamw's beta1 is betas[0]
    # the same type: a single argument merges into the preset's section, no `+` needed
    cfg, _ = resolve(compose(["+config/optimization=sscma_rtmdet", f"{KEY}.base_value=0.3"]))
    lr = cfg.OPTIMIZER.param_schedulers.lr
    assert lr.name == "mmengine" and lr.base_value == 0.3 and len(lr.schedulers) == 2


def test_mmengine_auto_scaling_scales_the_optimizer_lr_as_mmengine_does():
    # MMEngine's Runner.scale_lr multiplies the optimizer's lr before the schedulers are built:
    # CosineAnnealingLR's absolute eta_min stays, CosineRestartLR's eta_min_ratio follows the base.
    from test_schedules_mmengine import mmengine_values  # skips without mmengine-lite, the oracle

    schedulers = [{"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "end": 4},
                  {"type": "CosineAnnealingLR", "eta_min": 0.002, "begin": 1, "end": 4},
                  {"type": "CosineRestartLR", "periods": [2], "eta_min_ratio": 0.1, "begin": 4, "end": 6}]
    section = {"name": "mmengine", "base_value": 0.01, "schedulers": schedulers,
               "auto_lr_scaling": {"auto_scale": True, "base_lr_batch_size": 256}}
    scaled, _ = auto_scale_schedule(section, KEY, 1024)  # factor 4
    ours = build_step_schedule(scaled, KEY, 6, 3).values(np.arange(18))
    np.testing.assert_allclose(ours, mmengine_values(0.04, schedulers, 6, 3), rtol=1e-12, atol=1e-15)


def test_mmcv_cyclic_momentum_on_adamw_starts_from_beta1():
    cfg = opt_cfg(name="adamw", betas=[0.95, 0.99], num_epochs=1, **{
        "param_schedulers.lr": {"name": "constant", "value": 0.001},
        "param_schedulers.momentum": {"name": "mmcv", "policy": "cyclic"}})
    optimizer = build_optimizer(cfg, torch.nn.Linear(2, 2))
    scheduler = GroupScheduler(cfg, steps_per_epoch=100)
    # mmcv's cyclic momentum: base at step 0, base x 0.85 / 0.95 at the end of the rise (40%)
    for step, beta1 in ((0, 0.95), (40, 0.85)):
        scheduler.apply(optimizer, step)
        assert optimizer.param_groups[0]["betas"] == (pytest.approx(beta1, rel=1e-12), 0.99)


def test_milestones_past_the_run_are_named_in_a_warning():
    mmengine = {"name": "mmengine", "base_value": 0.1, "schedulers": [{"type": "MultiStepLR", "milestones": [2, 30]}]}
    with pytest.warns(UserWarning, match=r"lr\.schedulers\[0\]\.milestones \[30\] are never reached"):
        build_step_schedule(mmengine, KEY, 10, 1)
    with pytest.warns(UserWarning, match=r"lr\.step \[12\] are never reached: training ends at 12"):
        build_step_schedule({"name": "mmcv", "base_value": 0.1, "policy": "step", "step": [8, 12]}, KEY, 12, 1)


@pytest.mark.parametrize("lr,base", [({"name": "cosine", "start_value": 0.2, "end_value": 0.0}, 0.2),
                                     ({"name": "mmengine", "base_value": 0.004,
                                       "schedulers": [{"type": "LinearLR", "start_factor": 0.1}]}, 0.004)])
def test_the_torch_optimizer_defaults_carry_the_base_lr_and_weight_decay(lr, base):
    cfg = opt_cfg(name="adamw", weight_decay=0.05, construct_single_param_group_only=True,
                  **{"param_schedulers.lr": lr})
    optimizer = build_optimizer(cfg, torch.nn.Linear(2, 2))
    assert optimizer.defaults["weight_decay"] == 0.05 and optimizer.defaults["lr"] == base


def test_an_optimizer_key_the_optimizer_does_not_take_is_refused():
    with pytest.raises(ConfigError) as err:
        check_optimizer_arguments(opt_cfg(name="sgd", betas=[0.9, 0.99]))
    assert str(err.value).startswith("OPTIMIZER.betas: got [0.9, 0.99]; allowed: sgd takes momentum, dampening, "
                                     "nesterov, maximize")
    check_optimizer_arguments(opt_cfg(name="adamw", betas=[0.9, 0.99]))


def test_the_reference_lists_each_type_with_its_own_arguments():
    text = render()
    cosine = text.split("### type: CosineAnnealingLR (name: mmengine)")[1].split("###")[0]
    rows = [line.split("|")[1].strip(" `") for line in cosine.splitlines() if line.startswith("| `")]
    assert rows == ["eta_min", "eta_min_ratio", "T_max", "begin", "end", "by_epoch", "convert_to_iter_based"]
    assert '| `OPTIMIZER.param_schedulers.lr` | `{"name": "multistep", "values": [0.1, 0.01, 0.001], ' \
           '"milestones": [30, 60]}`' in text

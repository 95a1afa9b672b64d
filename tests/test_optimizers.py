"""The optimizer table: each row built from config steps exactly like the torch class built
directly with the same hyperparameters; MMEngine's spellings; refused and unknown names."""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from vissl_lite.config.schema import OptimizerConfig
from vissl_lite.errors import ConfigError
from vissl_lite.optim import LARC, LARS, OPTIMIZERS, build_optimizer, register_optimizer

LR, WD = 0.05, 0.01


def opt_cfg(**changes):
    cfg = OmegaConf.structured(OptimizerConfig)
    for key, value in {"construct_single_param_group_only": True, "weight_decay": WD, **changes}.items():
        OmegaConf.update(cfg, key, value, merge=True)
    return cfg


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()


def run_steps(model, optimizer, steps=3):
    """Deterministic losses; returns the parameters after `steps` optimizer steps."""
    x = torch.linspace(-1, 1, 30, dtype=torch.float64).reshape(6, 5)
    for _ in range(steps):
        optimizer.zero_grad()
        (model(x) ** 2).sum().backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


# name -> (OPTIMIZER keys set to non-default values, the torch class, the same as its keyword arguments)
CASES = {
    "sgd": ({"momentum": 0.8, "dampening": 0.1}, torch.optim.SGD, dict(momentum=0.8, dampening=0.1)),
    "sgd_nesterov": ({"name": "sgd", "momentum": 0.7, "nesterov": True, "maximize": True}, torch.optim.SGD,
                     dict(momentum=0.7, nesterov=True, maximize=True)),
    "adam": ({"betas": [0.8, 0.99], "eps": 1e-6, "amsgrad": True, "decoupled_weight_decay": True}, torch.optim.Adam,
             dict(betas=(0.8, 0.99), eps=1e-6, amsgrad=True, decoupled_weight_decay=True)),
    "adamw": ({"betas": [0.85, 0.9], "eps": 1e-7, "amsgrad": True}, torch.optim.AdamW,
              dict(betas=(0.85, 0.9), eps=1e-7, amsgrad=True)),
    "nadam": ({"momentum_decay": 0.01, "decoupled_weight_decay": True, "betas": [0.8, 0.99]}, torch.optim.NAdam,
              dict(momentum_decay=0.01, decoupled_weight_decay=True, betas=(0.8, 0.99))),
    "radam": ({"decoupled_weight_decay": True, "eps": 1e-5}, torch.optim.RAdam,
              dict(decoupled_weight_decay=True, eps=1e-5)),
    "adamax": ({"betas": [0.7, 0.95], "eps": 1e-6}, torch.optim.Adamax, dict(betas=(0.7, 0.95), eps=1e-6)),
    "adagrad": ({"lr_decay": 0.1, "initial_accumulator_value": 0.2, "eps": 1e-8}, torch.optim.Adagrad,
                dict(lr_decay=0.1, initial_accumulator_value=0.2, eps=1e-8)),
    "adadelta": ({"rho": 0.8, "eps": 1e-5}, torch.optim.Adadelta, dict(rho=0.8, eps=1e-5)),
    "rmsprop": ({"alpha": 0.9, "eps": 1e-6, "momentum": 0.5, "centered": True}, torch.optim.RMSprop,
                dict(alpha=0.9, eps=1e-6, momentum=0.5, centered=True)),
    "asgd": ({"lambd": 1e-3, "alpha": 0.6, "t0": 1.0}, torch.optim.ASGD, dict(lambd=1e-3, alpha=0.6, t0=1.0)),
    "rprop": ({"etas": [0.4, 1.3], "step_sizes": [1e-5, 10.0], "weight_decay": 0.0}, torch.optim.Rprop,
              dict(etas=(0.4, 1.3), step_sizes=(1e-5, 10.0))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_optimizer_steps_like_its_torch_class(case):
    keys, cls, kwargs = CASES[case]
    keys = {"name": case, **keys}
    ours = make_model()
    optimizer = build_optimizer(opt_cfg(**keys), ours)
    assert type(optimizer) is cls
    assert optimizer.defaults["foreach"] is True  # every torch row takes foreach
    for group in optimizer.param_groups:  # what the schedules do before the first step
        group["lr"] = LR
    reference = make_model()
    wd = {} if cls is torch.optim.Rprop else {"weight_decay": WD}
    expected = run_steps(reference, cls(reference.parameters(), lr=LR, foreach=True, **wd, **kwargs))
    for got, want in zip(run_steps(ours, optimizer), expected):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)


def test_sgd_step_by_hand():
    """p -= lr * (g + wd * p) on the first step (momentum buffer = that gradient)."""
    p = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = build_optimizer(opt_cfg(), nn.ParameterList([p]))
    optimizer.param_groups[0]["lr"] = 0.5
    p.grad = torch.tensor([0.2, 0.4], dtype=torch.float64)
    optimizer.step()
    torch.testing.assert_close(p.detach(), torch.tensor([1.0 - 0.5 * (0.2 + 0.01), -2.0 - 0.5 * (0.4 - 0.02)],
                                                        dtype=torch.float64))


def test_lars_row_reads_its_section():
    cfg = opt_cfg(name="lars", momentum=0.5, **{"lars_config.eta": 0.02, "lars_config.exclude_bias_and_norm": True})
    ours = make_model()
    optimizer = build_optimizer(cfg, ours)
    assert type(optimizer) is LARS and optimizer.defaults["foreach"] is True
    optimizer.param_groups[0]["lr"] = LR
    reference = make_model()
    direct = LARS(reference.parameters(), lr=LR, momentum=0.5, weight_decay=WD, eta=0.02, exclude_bias_and_norm=True)
    for got, want in zip(run_steps(ours, optimizer), run_steps(reference, direct)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("name, key, value", [("adagrad", "eps", 1e-10), ("adadelta", "eps", 1e-6),
                                              ("adam", "eps", 1e-8),
                                              ("rmsprop", "alpha", 0.99), ("asgd", "alpha", 0.75)])
def test_null_keys_take_the_optimizers_own_default(name, key, value):
    assert build_optimizer(opt_cfg(name=name), make_model()).defaults[key] == value


@pytest.mark.parametrize("alias, cls", [("SGD", torch.optim.SGD), ("AdamW", torch.optim.AdamW),
                                        ("RMSprop", torch.optim.RMSprop), ("NAdam", torch.optim.NAdam),
                                        ("ASGD", torch.optim.ASGD), ("LARS", LARS)])
def test_mmengine_spellings_name_the_same_rows(alias, cls):
    assert alias in OPTIMIZERS and alias not in list(OPTIMIZERS)
    assert type(build_optimizer(opt_cfg(name=alias), make_model())) is cls


@pytest.mark.parametrize("name, reason", [("lbfgs", "closure"), ("LBFGS", "closure"),
                                          ("sparse_adam", "sparse gradients"),
                                          ("SparseAdam", "sparse gradients")])
def test_closure_and_sparse_optimizers_are_refused_with_the_reason(name, reason):
    with pytest.raises(ConfigError, match=f"OPTIMIZER.name: got '{name}'.*{reason}"):
        build_optimizer(opt_cfg(name=name), make_model())


def test_unknown_name_lists_the_table():
    with pytest.raises(ConfigError, match="adadelta, adagrad, adam, adamax, adamw, asgd, lars, nadam, radam, rmsprop, "
                                          "rprop, sgd.*SGD, AdamW"):
        build_optimizer(opt_cfg(name="nadm"), make_model())


def test_rprop_has_no_weight_decay():
    with pytest.raises(ConfigError, match="OPTIMIZER.weight_decay: got 0.01; allowed: 0 with OPTIMIZER.name=rprop"):
        build_optimizer(opt_cfg(name="rprop"), make_model())
    head_wd = {"construct_single_param_group_only": False, "weight_decay": 0.0,
               "head_optimizer_params": {"use_different_wd": True, "weight_decay": 0.2}}
    with pytest.raises(ConfigError, match="OPTIMIZER.head_optimizer_params.weight_decay: got 0.2"):
        build_optimizer(opt_cfg(name="Rprop", **head_wd), nn.ModuleDict({"trunk": nn.Linear(2, 2),
                                                                         "heads": nn.Linear(2, 2)}))
    assert isinstance(build_optimizer(opt_cfg(name="rprop", use_larc=True), make_model()), LARC)


@pytest.mark.parametrize("changes, message", [
    ({"name": "sgd", "momentum": 0.0, "nesterov": True}, "Nesterov momentum requires"),
    ({"name": "rprop", "weight_decay": 0.0, "etas": [1.5, 1.2]}, "Invalid eta values: 1.5, 1.2"),
])
def test_torch_range_checks_become_config_errors(changes, message):
    with pytest.raises(ConfigError, match=f"OPTIMIZER: got .*allowed: values torch.optim.* accepts.*{message}"):
        build_optimizer(opt_cfg(**changes), make_model())


def test_register_optimizer_for_users():
    @register_optimizer("test_plain_sgd")
    def plain_sgd(groups, cfg):
        return torch.optim.SGD(groups, lr=0.0)

    try:
        optimizer = build_optimizer(opt_cfg(name="test_plain_sgd"), make_model())
        assert type(optimizer) is torch.optim.SGD and optimizer.param_groups[0]["name"] == "all"
        with pytest.raises(ValueError, match="already registered"):
            register_optimizer("SGD")(plain_sgd)  # an alias is taken too
    finally:
        del OPTIMIZERS["test_plain_sgd"]

"""vissl_lite.api, as a notebook uses it: the names and signatures stay, the values are the ones
the command line gives."""

import inspect
import math

import numpy as np
import pytest
import torch

from vissl_lite import api
from vissl_lite.errors import ConfigError
from vissl_lite.optim.wrapper import OptimWrapper

SMALL = ["MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125", "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,32]}]]"]


def test_the_stable_names_and_signatures():
    expected = {
        "compose": ["overrides"],
        "resolve": ["cfg"],
        "build_model": ["cfg"],
        "build_param_groups": ["cfg", "model"],
        "build_optim_wrapper": ["cfg", "model", "steps_per_epoch"],
        "build_schedule": ["section", "num_epochs", "steps_per_epoch", "param_name", "key"],
        "explain": ["cfg", "run_dir"],
    }
    assert sorted(api.__all__) == sorted(expected)
    for name, params in expected.items():
        assert list(inspect.signature(getattr(api, name)).parameters) == params, name


def test_compose_resolve_and_build_as_the_command_line_does():
    cfg = api.resolve(api.compose([*SMALL, "OPTIMIZER.name=adamw", "OPTIMIZER.momentum=null",
                                   "OPTIMIZER.use_larc=false", "OPTIMIZER.weight_decay=0.05"]))
    assert cfg.OPTIMIZER.name == "adamw" and cfg.OPTIMIZER.weight_decay == 0.05
    model = api.build_model(cfg)
    groups = api.build_param_groups(cfg, model)
    grouped = sorted(n for g in groups for n in g["param_names"])
    assert grouped == sorted(n for n, p in model.named_parameters() if p.requires_grad)
    wrapper = api.build_optim_wrapper(cfg, model, steps_per_epoch=3)
    assert isinstance(wrapper, OptimWrapper) and isinstance(wrapper.optimizer, torch.optim.AdamW)
    assert [g["name"] for g in wrapper.param_groups] == [g["name"] for g in groups]
    with pytest.raises(ConfigError, match=r"^OPTIMIZER\.momentum: got 1\.5"):
        api.resolve(api.compose(["OPTIMIZER.momentum=1.5"]))


def test_build_schedule_per_step_in_every_dialect():
    """Two epochs of two steps, against the formulas written out."""
    cosine = api.build_schedule({"name": "cosine", "start_value": 1.0, "end_value": 0.0, "update_interval": "step"},
                                num_epochs=2, steps_per_epoch=2)
    np.testing.assert_allclose(cosine, [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)], rtol=1e-12)
    # MMEngine's LinearLR on [0, 3): factor 0.5 + 0.5 k / T with T = end - begin - 1 = 2 (MMEngine's
    # total_iters), then the last value holds
    mmengine = api.build_schedule({"name": "mmengine", "base_value": 0.2, "schedulers": [
        {"type": "LinearLR", "start_factor": 0.5, "by_epoch": False, "begin": 0, "end": 3}]},
        num_epochs=2, steps_per_epoch=2)
    np.testing.assert_allclose(mmengine, [0.1, 0.15, 0.2, 0.2], rtol=1e-12)
    # mmcv: step policy at epoch 1, gamma 0.1
    mmcv = api.build_schedule({"name": "mmcv", "base_value": 0.2, "policy": "step", "step": [1]},
                              num_epochs=2, steps_per_epoch=2)
    np.testing.assert_allclose(mmcv, [0.2, 0.2, 0.02, 0.02], rtol=1e-12)
    cfg = api.resolve(api.compose([]))
    lr = api.build_schedule(cfg.OPTIMIZER.param_schedulers.lr, cfg.OPTIMIZER.num_epochs, steps_per_epoch=5)
    assert lr.shape == (cfg.OPTIMIZER.num_epochs * 5,)


def test_explain_of_a_composed_or_resolved_config_is_the_same(tmp_path, capsys):
    overrides = [*SMALL, "OPTIMIZER.num_epochs=2"]
    from_composed = api.explain(api.compose(overrides), run_dir=str(tmp_path))
    from_resolved = api.explain(api.resolve(api.compose(overrides)))
    assert from_composed["total_steps"] == 2 * from_composed["steps_per_epoch"]
    assert [(g["name"], g["lr_peak"]) for g in from_composed["groups"]] == \
           [(g["name"], g["lr_peak"]) for g in from_resolved["groups"]]
    assert (tmp_path / "explain.json").is_file()
    assert "parameter groups:" in capsys.readouterr().out

"""MODEL.TEMP_FROZEN_PARAMS_ITER_MAP (SwAV's frozen prototypes): the named parameters stay
exactly still for N optimizer steps (no update, no weight decay, no optimizer state), then take
the step a fresh optimizer would take, with SGD, SGD + LARC and AdamW; explain lists them."""

import pytest
import torch
from torch import nn

from vissl_lite.config.load import compose, resolve
from vissl_lite.models.model import SSLModel
from vissl_lite.models.swav_head import SwAVHead
from vissl_lite.optim.build_wrapper import build_optim_wrapper

LR, WD, FROZEN = 0.1, 0.01, 3


def sgd_first_step(p, g):
    return p - LR * (g + WD * p)  # torch's SGD: the momentum buffer starts as the first d_p


def larc_first_step(p, g, trust=1e-3, eps=1e-8):
    adaptive = trust * p.norm() / (g.norm() + WD * p.norm() + eps)
    return p - LR * adaptive * (g + WD * p)  # apex LARC folds wd into g, the inner SGD has none


def adamw_first_step(p, g, eps=1e-8):
    return p * (1 - LR * WD) - LR * g / (g.abs() + eps)  # bias-corrected m / sqrt(v) = g / |g|


CASES = {
    "sgd": (["OPTIMIZER.name=sgd", "OPTIMIZER.momentum=0.9", "OPTIMIZER.use_larc=false"], sgd_first_step),
    "sgd_larc": (["OPTIMIZER.name=sgd", "OPTIMIZER.momentum=0.9", "OPTIMIZER.use_larc=true",
                  "OPTIMIZER.larc_config.clip=false"], larc_first_step),
    "adamw": (["OPTIMIZER.name=adamw", "OPTIMIZER.use_larc=false"], adamw_first_step),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_frozen_prototypes_stay_still_then_move_like_a_first_step(case):
    overrides, first_step = CASES[case]
    cfg, _ = resolve(compose(["~config", *overrides, "OPTIMIZER.param_schedulers.lr={name:constant,value:0.1}",
                              f"OPTIMIZER.weight_decay={WD}", "OPTIMIZER.regularize_bias=true",
                              "OPTIMIZER.regularize_bn=true"]))
    torch.manual_seed(0)
    trunk = nn.Linear(4, 6)
    trunk.out_dim = 6
    model = SSLModel(trunk, nn.Sequential(SwAVHead(dims=[6, 5], num_clusters=[7])))
    wrapper = build_optim_wrapper(cfg.OPTIMIZER, model, steps_per_epoch=10,
                                  temp_frozen_params=[["module.heads.0.prototypes0.weight", FROZEN]])
    prototypes, trunk_weight = model.heads[0].prototypes0.weight, trunk.weight
    start, trunk_start = prototypes.detach().clone(), trunk_weight.detach().clone()
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    for step in range(FROZEN + 1):
        loss = (model(x)[1][0] - 1).pow(2).mean()
        grad = torch.autograd.grad(loss, prototypes, retain_graph=True)[0]
        before = prototypes.detach().clone()
        wrapper.update_params(loss)
        if step < FROZEN:
            assert torch.equal(prototypes, start), step  # not a bit moved: no update, no weight decay
            assert not wrapper.optimizer.state.get(prototypes), step  # no momentum / moments yet
            assert not torch.equal(trunk_weight, trunk_start)  # the rest trains from step 0
        else:
            torch.testing.assert_close(prototypes.detach(), first_step(before, grad), rtol=1e-6, atol=1e-7)
            assert wrapper.optimizer.state.get(prototypes)


def test_explain_lists_the_frozen_parameters(tmp_path, capsys, monkeypatch):
    from vissl_lite.engine.explain import explain

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg, inferred = resolve(compose(["config=pretrain/swav/swav_digits", "engine_name=explain",
                                     "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP=[[prototypes0,7]]"]))
    report = explain(cfg, inferred, str(tmp_path))
    assert report["temp_frozen"] == [{"param_names": ["heads.0.prototypes0.weight"], "until_step": 7,
                                      "until_epoch": 1.4}]  # 5 optimizer steps per epoch
    assert "heads.0.prototypes0.weight: optimizer steps 0-6, moving from step 7 (epoch 1.4)" in capsys.readouterr().out

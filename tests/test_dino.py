"""DINO: the loss and its center against hand-written formulas, the EMA teacher, the head, the
teacher's schedules at given steps, multi-crop, freeze_last_layer, exact resume after SIGKILL,
torchrun equivalence, explain, and a short digits run with linear evaluation."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from conftest import finish, sigkill_after_steps, start_cli
from vissl_lite.config.load import compose, resolve
from vissl_lite.config.schema import TransformsConfig
from vissl_lite.data import SSLAugment
from vissl_lite.engine import checkpoint as ckpt
from vissl_lite.engine.method import build_method
from vissl_lite.engine.methods.dino import dino_schedule
from vissl_lite.engine.train import train
from vissl_lite.losses.dino import DINOLoss, updated_center
from vissl_lite.models import build_model
from vissl_lite.models.dino_head import DINOHead, WeightNormLinear
from vissl_lite.models.ema import ema_update, momentum_teacher
from vissl_lite.models.vit import DropPath

# A ViT of width 32 on 128 digits, 32 per step: 4 optimizer steps per epoch, 8 in all.
TINY = [
    "config=pretrain/dino/dino_digits", "OPTIMIZER.num_epochs=2",
    "DATA.TRAIN.DATA_LIMIT=128", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=32", "DATA.TEST.DATA_LIMIT=64",
    "MODEL.TRUNK.VISION_TRANSFORMERS.HIDDEN_DIM=32", "MODEL.TRUNK.VISION_TRANSFORMERS.NUM_LAYERS=2",
    "MODEL.TRUNK.VISION_TRANSFORMERS.NUM_HEADS=2", "MODEL.TRUNK.VISION_TRANSFORMERS.MLP_DIM=64",
    "MODEL.HEAD.PARAMS=[[dino_head,{in_dim:32,num_clusters:[64],hidden_dim:64,bottleneck_dim:16,"
    "normalize_last_layer:false}]]",
    "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP=[]", "DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER=2",
    "LOSS.dino_loss.momentum={name:cosine,start_value:0.9,end_value:1.0}",
    "LOSS.dino_loss.teacher_temp={name:linear,start_value:0.04,end_value:0.07}",
    "HOOKS.PROGRESS_BAR=false", "HOOKS.LOG_FREQUENCY=1", "HOOKS.KNN_MONITOR.ENABLED=false",
]


def reference_dino_loss(student, teacher, center, teacher_temp, student_temp, ncrops):
    """The official DINO code's DINOLoss.forward, written out."""
    student_out = (student / student_temp).chunk(ncrops)
    teacher_out = F.softmax((teacher - center) / teacher_temp, dim=-1).chunk(2)
    total, terms = 0, 0
    for iq, q in enumerate(teacher_out):
        for v in range(ncrops):
            if v == iq:
                continue
            total += torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1).mean()
            terms += 1
    return total / terms


# ----------------------------------------------------------------------------- the maths


def test_loss_by_hand_on_two_crops():
    # K = 2, one image, temperatures 1, center 0. Teacher: q0 = (1/2, 1/2), q1 = (3/4, 1/4);
    # student: p0 = (1/2, 1/2), p1 = (3/4, 1/4). Pairs (q0, p1) and (q1, p0):
    # -(1/2 ln 3/4 + 1/2 ln 1/4) = 0.8369882 and -(3/4 ln 1/2 + 1/4 ln 1/2) = ln 2 = 0.6931472.
    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]])
    loss = DINOLoss(student_temp=1.0)(logits, logits, torch.zeros(1, 2), teacher_temp=1.0)
    assert loss.item() == pytest.approx((0.8369882 + 0.6931472) / 2, abs=1e-6)


def test_loss_equals_the_official_formula_with_local_crops_and_center():
    torch.manual_seed(0)
    b, k, ncrops = 3, 7, 5  # 2 global + 3 local crops
    student, teacher, center = torch.randn(ncrops * b, k), torch.randn(2 * b, k), torch.randn(1, k)
    student.requires_grad_(True)
    loss = DINOLoss(student_temp=0.1)(student, teacher, center, teacher_temp=0.04)
    expected = reference_dino_loss(student, teacher, center, 0.04, 0.1, ncrops)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    loss.backward()  # the teacher side carries no gradient; the student side does
    assert student.grad.abs().sum() > 0


def test_center_update_by_hand_and_over_ranks():
    center = torch.tensor([[1.0, 2.0]])
    rows = torch.tensor([[1.0, 1.0], [3.0, 5.0]])  # mean (2, 3)
    torch.testing.assert_close(updated_center(center, rows, 0.9), torch.tensor([[1.1, 2.1]]))
    # another rank holds the row (5, 3): its sums and count join ours -> mean (3, 3)
    other = torch.tensor([5.0, 3.0, 1.0])
    torch.testing.assert_close(updated_center(center, rows, 0.9, all_reduce=lambda t: t + other),
                               torch.tensor([[1.2, 2.1]]))


def test_teacher_is_a_frozen_copy_that_follows_by_ema():
    student = torch.nn.Sequential(torch.nn.Linear(1, 2), DropPath(0.5))
    with torch.no_grad():
        student[0].weight.copy_(torch.tensor([[1.0], [2.0]]))
        student[0].bias.zero_()
    teacher = momentum_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters()) and teacher[1].p == 0.0
    assert teacher.training  # DINO keeps its teacher in train mode (BatchNorm trunks)
    with torch.no_grad():
        student[0].weight.copy_(torch.tensor([[3.0], [4.0]]))
        student[0].bias.fill_(1.0)
    ema_update(teacher, student, 0.75)  # 0.75 t + 0.25 s
    torch.testing.assert_close(teacher[0].weight, torch.tensor([[1.5], [2.5]]))
    torch.testing.assert_close(teacher[0].bias, torch.tensor([0.25, 0.25]))


def test_weight_normalised_layer_is_torchs_weight_norm():
    torch.manual_seed(0)
    ours = WeightNormLinear(5, 3)
    with torch.no_grad():
        ours.weight_g.copy_(torch.tensor([[0.5], [2.0], [1.0]]))
    reference = torch.nn.Linear(5, 3, bias=False)
    reference.weight.data.copy_(ours.weight_v.data)
    reference = torch.nn.utils.parametrizations.weight_norm(reference)  # g = ||v|| per row
    with torch.no_grad():
        reference.parametrizations.weight.original0.copy_(ours.weight_g)
    x = torch.randn(4, 5)
    torch.testing.assert_close(ours(x), reference(x))


def test_head_outputs_cosines_with_a_normalised_last_layer():
    torch.manual_seed(0)
    head = DINOHead(in_dim=6, num_clusters=[10], hidden_dim=8, bottleneck_dim=4, normalize_last_layer=True)
    assert not head.prototypes0.weight_g.requires_grad and head.out_dim == 10
    kinds = [type(m).__name__ for m in head.mlp]
    assert kinds == ["Linear", "GELU", "Linear", "GELU", "Linear"]  # num_layers 3, bottleneck last
    x = torch.randn(5, 6)
    z = F.normalize(head.mlp(x), dim=-1)
    cosines = z @ F.normalize(head.prototypes0.weight_v, dim=-1).t()
    torch.testing.assert_close(head(x), cosines)
    trained = DINOHead(in_dim=6, num_clusters=[10], use_bn=True, normalize_last_layer=False)
    assert trained.prototypes0.weight_g.requires_grad and "BatchNorm1d" in [type(m).__name__ for m in trained.mlp]


def teacher_schedules(cfg, steps_per_epoch):
    """The schedules a DINO method builds from LOSS.dino_loss (what DINOMethod.schedules() returns)."""
    return {f"LOSS.dino_loss.{name}": dino_schedule(cfg, name, steps_per_epoch) for name in ("momentum", "teacher_temp")}


def test_teacher_schedules_at_given_steps():
    # The recipe's defaults over 10 epochs of 10 steps: momentum = 1 - 0.004 (1 + cos(pi k / 100)) / 2,
    # temperature 0.04 -> 0.07 linearly over the first 10 steps, then 0.07.
    cfg, _ = resolve(compose(["OPTIMIZER.num_epochs=10"]))
    schedules = teacher_schedules(cfg, steps_per_epoch=10)
    momentum, temp = schedules["LOSS.dino_loss.momentum"], schedules["LOSS.dino_loss.teacher_temp"]
    for k, expected in [(0, 0.996), (25, 0.99658579), (50, 0.998), (75, 0.99941421)]:
        assert momentum.values(k) == pytest.approx(expected, abs=1e-8)
    for k, expected in [(0, 0.04), (5, 0.055), (9, 0.067), (10, 0.07), (99, 0.07)]:
        assert temp.values(k) == pytest.approx(expected, abs=1e-12)
    # any dialect: MMEngine's LinearLR from 4/7 of 0.07 over iterations [0, 30), which reaches its
    # end factor at iteration end - 1 = 29: 0.04 + 0.03 k / 29
    cfg, _ = resolve(compose(["OPTIMIZER.num_epochs=10", "LOSS.dino_loss.teacher_temp={name:mmengine,base_value:0.07,"
                              "schedulers:[{type:LinearLR,start_factor:0.5714285714285714,by_epoch:false,end:30}]}"]))
    temp = teacher_schedules(cfg, steps_per_epoch=10)["LOSS.dino_loss.teacher_temp"]
    for k, expected in [(0, 0.04), (15, 0.04 + 0.03 * 15 / 29), (29, 0.07), (60, 0.07)]:
        assert temp.values(k) == pytest.approx(expected, abs=1e-12)


def test_bad_teacher_schedules_name_the_key():
    from vissl_lite.errors import ConfigError

    cfg, _ = resolve(compose(["LOSS.dino_loss.momentum={name:cosine,start_value:0.996,end_value:1.5}"]))
    with pytest.raises(ConfigError, match=r"LOSS.dino_loss.momentum.end_value: got 1.5"):
        teacher_schedules(cfg, steps_per_epoch=4)
    cfg, _ = resolve(compose(["LOSS.dino_loss.teacher_temp={name:constant}"]))
    with pytest.raises(ConfigError, match=r"LOSS.dino_loss.teacher_temp.value"):
        teacher_schedules(cfg, steps_per_epoch=4)


# ----------------------------------------------------------------------------- crops and the model


def multi_crop_augment(**kw):
    off = dict(COLOR_JITTER_P=0.0, GRAYSCALE_P=0.0, BLUR_P=0.0, SOLARIZE_P=0.0, HFLIP_P=0.0, MEAN=[0.0], STD=[1.0],
               CROP_SIZE=8, CROP_SCALE=[1.0, 1.0], LOCAL_CROP_SIZE=4, LOCAL_CROP_SCALE=[1.0, 1.0])
    return SSLAugment(OmegaConf.structured(TransformsConfig(**{**off, **kw})), channels=1)


def test_multi_crop_sizes_and_per_crop_probabilities():
    x = torch.rand(3, 1, 8, 8)
    crops = multi_crop_augment(LOCAL_CROPS_NUMBER=3, CROP_SOLARIZE_P=[0.0, 1.0]).multi_crop(x, 2, torch.Generator())
    assert [c.shape[-1] for c in crops] == [8, 8, 4, 4, 4]
    solarized = torch.where(x >= 0.5, 1 - x, x)
    torch.testing.assert_close(crops[0], x, atol=1e-5, rtol=0)  # probability 0
    torch.testing.assert_close(crops[1], solarized, atol=1e-5, rtol=0)  # probability 1
    # a whole-image local crop at half the side is the 2x2 average; the last probability (1) carries on
    local = F.avg_pool2d(x, 2)
    torch.testing.assert_close(crops[4], torch.where(local >= 0.5, 1 - local, local), atol=1e-5, rtol=0)


def test_model_runs_the_trunk_once_per_crop_size_and_the_heads_once():
    cfg, _ = resolve(compose(TINY))
    model = build_model(cfg.MODEL).eval()
    calls = {"trunk": [], "heads": 0}
    model.trunk.register_forward_hook(lambda m, inp, out: calls["trunk"].append(inp[0].shape[0]))
    model.heads.register_forward_hook(lambda m, inp, out: calls.__setitem__("heads", calls["heads"] + 1))
    crops = [torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)]
    out, features = model(crops, return_features=True)
    assert calls == {"trunk": [4, 4], "heads": 1} and out.shape == (8, 64)
    with torch.no_grad():
        torch.testing.assert_close(features, model.trunk(crops[0]))
        torch.testing.assert_close(out[4:6], model.heads(model.trunk(crops[2])))


def test_method_step_by_hand():
    """One micro-batch through DINOMethod: the loss is the official formula on its own teacher's
    outputs, the center moves by ema_center, and after the step the teacher is the EMA."""
    cfg, _ = resolve(compose(TINY + ["MODEL.TRUNK.VISION_TRANSFORMERS.DROP_PATH_RATE=0.0"]))
    model = build_model(cfg.MODEL)
    method = build_method(cfg, model, steps_per_epoch=4, augment=SSLAugment(cfg.DATA.TRAIN.TRANSFORMS, 1))
    images = torch.rand(4, 1, 8, 8)
    loss, features = method.forward(model, images, None, torch.Generator().manual_seed(0))
    crops = method.augment.multi_crop(images, 2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        teacher_out, student_out = method.teacher(crops[:2]), model(crops)
    expected = reference_dino_loss(student_out, teacher_out, torch.zeros(1, 64), 0.04, 0.1, 4)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert features.shape == (4, 32)
    torch.testing.assert_close(method.center, 0.1 * teacher_out.mean(0, keepdim=True))
    before = {n: p.clone() for n, p in method.teacher.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    method.after_step(model, 1)  # momentum(0) = 0.9
    for name, p in method.teacher.named_parameters():
        torch.testing.assert_close(p, 0.9 * before[name] + 0.1 * dict(model.named_parameters())[name])
    assert method.scalars(1) == {"teacher_momentum": 0.9, "teacher_temp": 0.04}


# ----------------------------------------------------------------------------- through the engine


def test_freeze_last_layer_and_logged_schedules(tmp_path):
    freeze = "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP=[[module.heads.0.prototypes0.weight_v,3],[heads.0.prototypes0.weight_g,3]]"
    cfg, inferred = resolve(compose(TINY + [freeze, "CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=1", "CHECKPOINT.CHECKPOINT_FREQUENCY=1",
                                            "CHECKPOINT.MAX_KEEP=0"]))
    train(cfg, inferred, str(tmp_path))
    states = {k: torch.load(tmp_path / "checkpoints" / (ckpt.step_file(k) if k < 8 else ckpt.FINAL),
                            weights_only=True) for k in range(1, 9)}
    for name in ("heads.0.prototypes0.weight_v", "heads.0.prototypes0.weight_g"):
        assert all(torch.equal(states[k]["model"][name], states[1]["model"][name]) for k in (2, 3))  # steps 0-2
        assert not torch.equal(states[4]["model"][name], states[3]["model"][name])  # step 3 moves it
    assert not torch.equal(states[2]["model"]["trunk.pos_embed"], states[1]["model"]["trunk.pos_embed"])
    method = states[8]["method"]
    assert set(method) == {"teacher", "center"} and method["center"].shape == (1, 64)
    assert not torch.equal(method["teacher"]["trunk.pos_embed"], states[8]["model"]["trunk.pos_embed"])
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r for r in records if "teacher_temp" in r}
    assert sorted(logged) == list(range(1, 9))
    for step, r in logged.items():  # the values used by optimizer step k = step - 1, of 8 steps
        k = step - 1
        assert r["teacher_temp"] == pytest.approx(0.04 + 0.03 * k / 8, abs=1e-12)
        assert r["teacher_momentum"] == pytest.approx(1 - 0.1 * (1 + math.cos(math.pi * k / 8)) / 2, abs=1e-12)


def test_sigkill_then_the_same_command_resumes_bitwise(tmp_path):
    args = [*TINY, "OPTIMIZER.num_epochs=3", "CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=1"]  # 12 steps
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = start_cli(straight, *args)  # trains beside the run that gets killed
    assert sigkill_after_steps(start_cli(killed, *args), killed, 5) < 12, "the run finished before the kill"
    finish(start_cli(killed, *args))
    finish(reference)
    a, b = (torch.load(d / "checkpoints" / ckpt.FINAL, weights_only=True) for d in (straight, killed))
    assert a["step"] == b["step"] == 12
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["method"]["teacher"]:
        assert torch.equal(a["method"]["teacher"][key], b["method"]["teacher"][key]), key
    assert torch.equal(a["method"]["center"], b["method"]["center"])
    for index, state in a["optim_wrappers"]["model"]["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optim_wrappers"]["model"]["optimizer"]["state"][index][name])


# Deterministic crops (whole image, no colour, no solarization) and no stochastic depth: both
# runs see the same inputs, only their split over processes differs.
EQUIV = [*TINY, "DATA.TRAIN.DATA_LIMIT=48", "OPTIMIZER.num_epochs=1", "DATA.TRAIN.TRANSFORMS.CROP_SCALE=[1.0,1.0]",
         "DATA.TRAIN.TRANSFORMS.LOCAL_CROP_SCALE=[1.0,1.0]", "DATA.TRAIN.TRANSFORMS.COLOR_JITTER_P=0.0",
         "DATA.TRAIN.TRANSFORMS.CROP_SOLARIZE_P=[]", "MODEL.TRUNK.VISION_TRANSFORMERS.DROP_PATH_RATE=0.0",
         "OPTIMIZER.param_schedulers.lr.auto_lr_scaling.auto_scale=false"]


def test_two_processes_equal_one_with_the_global_batch(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    running = start_cli(two, *EQUIV, "DATA.TRAIN.BATCHSIZE_PER_REPLICA=8", nproc=2)
    finish(start_cli(one, *EQUIV, "DATA.TRAIN.BATCHSIZE_PER_REPLICA=16"))
    finish(running)

    def losses(d):
        return [r["loss"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if "loss" in r]

    assert len(losses(one)) == 3  # 48 images / 16
    for x, y in zip(losses(two), losses(one), strict=True):
        assert x == pytest.approx(y, rel=1e-5)
    a, b = (torch.load(d / "checkpoints" / ckpt.FINAL, weights_only=True) for d in (two, one))
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=1e-5, atol=1e-6, msg=key)
    for key in a["method"]["teacher"]:
        torch.testing.assert_close(a["method"]["teacher"][key], b["method"]["teacher"][key], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a["method"]["center"], b["method"]["center"], rtol=1e-5, atol=1e-7)


def test_explain_shows_the_imagenet_recipe_and_its_teacher_schedules(tmp_path, cli_in_process, monkeypatch):
    # explain counts the images of DATA_PATHS; with no ImageNet here, a synthetic split of
    # ImageNet's size stands in for it.
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    status, output = cli_in_process(f"hydra.run.dir={tmp_path / 'explain'}", "config=pretrain/dino/dino_vits16_in1k",
                                    "engine_name=explain", "DISTRIBUTED.NUM_NODES=2", "DISTRIBUTED.NUM_PROC_PER_NODE=8",
                                    "DATA.TRAIN.DATA_SOURCES=[synthetic]", "DATA.TRAIN.NUM_SAMPLES_SYNTHETIC=1281167")
    assert status == 0, output[-3000:]
    report = json.loads((tmp_path / "explain" / "explain.json").read_text())
    assert report["global_batch_size"] == 1024 and report["steps_per_epoch"] == 1251
    summary = report["schedule_summary"]
    # 1e-5 -> 0.002 (0.0005 x 1024 / 256) linearly over 10 epochs, then the cosine of the whole run
    # ("fixed"), per epoch: its value at epoch 10 of 300 is the peak
    assert summary["lr"]["start"] == pytest.approx(1e-5)
    assert summary["lr"]["peak"] == pytest.approx(1e-5 + (0.002 - 1e-5) * (1 + math.cos(math.pi * 10 / 300)) / 2)
    assert summary["lr"]["warmup_end_epoch"] == pytest.approx(10, abs=0.01)
    assert summary["weight_decay"]["start"] == pytest.approx(0.04)
    assert summary["weight_decay"]["final"] == pytest.approx(0.4, abs=1e-4)
    assert summary["LOSS.dino_loss.momentum"]["start"] == pytest.approx(0.996)
    assert summary["LOSS.dino_loss.momentum"]["final"] == pytest.approx(1.0, abs=1e-9)
    temp = summary["LOSS.dino_loss.teacher_temp"]
    assert temp["start"] == pytest.approx(0.04) and temp["peak"] == pytest.approx(0.07)
    assert temp["warmup_end_epoch"] == pytest.approx(30, abs=0.01)
    assert "LOSS.dino_loss.teacher_temp" in output and (tmp_path / "explain" / "schedule.png").exists()
    names = {g["name"]: g for g in report["groups"]}
    assert "trunk.cls_token" in names["trunk_unregularized"]["param_names"]


def test_digits_run_and_linear_evaluation_from_its_checkpoint(tmp_path):
    pre = tmp_path / "pre"
    cfg, inferred = resolve(compose(TINY + ["OPTIMIZER.num_epochs=1", "HOOKS.KNN_MONITOR.ENABLED=true"]))
    result = train(cfg, inferred, str(pre))
    assert result["steps"] == 4 and 0.0 < result["knn_top1"] <= 1.0
    weights = pre / "checkpoints" / ckpt.FINAL
    cfg, inferred = resolve(compose([
        "config=benchmark/linear_eval/linear_eval_dino_digits", *TINY[2:9], "OPTIMIZER.num_epochs=1",
        "HOOKS.PROGRESS_BAR=false", f"MODEL.WEIGHTS_INIT.PARAMS_FILE={weights}", "MODEL.HEAD.PARAMS=[[mlp,{dims:[32,10]}]]"]))
    result = train(cfg, inferred, str(tmp_path / "linear"))
    assert 0.1 < result["test_top1"] <= 1.0
    trained = torch.load(tmp_path / "linear" / "checkpoints" / ckpt.FINAL, weights_only=True)["model"]
    assert torch.equal(trained["trunk.pos_embed"], torch.load(weights, weights_only=True)["model"]["trunk.pos_embed"])

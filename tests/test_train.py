"""The training engine on tiny real data: what it writes, what it logs, and how it refuses."""

import json
import math

import numpy as np
import pytest
import torch
import yaml

from vissl_lite.errors import ConfigError
from vissl_lite.config.load import compose, resolve
from vissl_lite.engine.train import train
from vissl_lite.errors import TrainingError
from vissl_lite.losses import LOSSES, register_loss

TINY = [
    "OPTIMIZER.num_epochs=2",
    "DATA.TRAIN.DATA_LIMIT=256",
    "DATA.TRAIN.BATCHSIZE_PER_REPLICA=32",
    "DATA.TEST.DATA_LIMIT=128",
    "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125",
    "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,64,32],use_bn:true,use_relu:true}]]",
    "HOOKS.PROGRESS_BAR=false",
    "HOOKS.LOG_FREQUENCY=1",
    "HOOKS.ONLINE_LINEAR_PROBE.ENABLED=false",  # on in the digits experiment; its own test below
]


def run(tmp_path, *overrides):
    cfg, inferred = resolve(compose(TINY + list(overrides)))
    return train(cfg, inferred, str(tmp_path)), cfg


def read_metrics(tmp_path):
    return [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]


def test_run_writes_metrics_config_and_checkpoint(tmp_path):
    results, cfg = run(tmp_path, "OPTIMIZER.accumulation_steps=2")
    records = read_metrics(tmp_path)
    steps = [r for r in records if "loss" in r]
    # 256 images / 32 = 8 micro-batches = 4 optimizer steps per epoch, 2 epochs
    assert [r["step"] for r in steps] == list(range(1, 9)) and results["steps"] == 8
    # the LR logged for step k (1-based) is the schedule at where = (k-1) / 8, by hand:
    # composite: linear 0.25 -> 1.0 over the first 10%, then cosine 1.0 -> 0.001, all x 0.25 by auto
    # scaling (batch 32 x 2 accumulation = 64 images; base 1.0 at 256)
    for r in steps:
        w = (r["step"] - 1) / 8
        if w < 0.1 - 1e-6:
            u = w / 0.1
            expected = 0.25 * (1.0 * u + 0.25 * (1 - u))
        else:
            u = (w - 0.1) / 0.9
            expected = 0.25 * (0.001 + 0.5 * (1.0 - 0.001) * (1 + math.cos(math.pi * u)))
        assert r["lr/trunk_regularized"] == pytest.approx(expected, rel=1e-12)
        assert r["weight_decay/trunk_unregularized"] == 0.0 and r["weight_decay/trunk_regularized"] == 1e-6
        assert math.isfinite(r["loss"]) and r["images_per_s"] > 0
    knn = [r["knn_top1"] for r in records if "knn_top1" in r]
    assert len(knn) == 1 and 0.0 <= knn[0] <= 1.0 and results["knn_top1"] == knn[0]
    saved = yaml.safe_load((tmp_path / "resolved_config.yaml").read_text())
    assert saved["RUNTIME"]["global_batch_size"] == 64
    assert saved["OPTIMIZER"]["param_schedulers"]["lr"]["schedulers"][0]["end_value"] == pytest.approx(0.25)
    ckpt = torch.load(tmp_path / "checkpoints" / "model_final.torch", weights_only=True)
    assert ckpt["step"] == 8 and "trunk.conv1.weight" in ckpt["model"]


def test_same_seed_same_run(tmp_path):
    run(tmp_path / "a", "OPTIMIZER.num_epochs=1", "HOOKS.KNN_MONITOR.ENABLED=false")
    run(tmp_path / "b", "OPTIMIZER.num_epochs=1", "HOOKS.KNN_MONITOR.ENABLED=false")
    losses = [[r["loss"] for r in read_metrics(tmp_path / d)] for d in "ab"]
    assert losses[0] == losses[1]


def test_barlow_twins_and_grad_clip_and_bf16(tmp_path):
    results, _ = run(tmp_path, "LOSS.name=barlow_twins_loss", "LOSS.barlow_twins_loss.embedding_dim=32",
                     "MODEL.GRAD_CLIP.USE_GRAD_CLIP=true", "MODEL.GRAD_CLIP.MAX_NORM=0.5",
                     "MODEL.AMP_PARAMS.USE_AMP=true", "OPTIMIZER.num_epochs=1", "HOOKS.KNN_MONITOR.ENABLED=false",
                     "HOOKS.TENSORBOARD_SETUP.USE_TENSORBOARD=true")
    records = read_metrics(tmp_path)
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in records)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_non_finite_loss_stops_with_the_step(tmp_path):
    @register_loss("test_nan_loss")
    def _nan(loss_cfg):
        return lambda embeddings, labels: embeddings.sum() * float("nan")

    try:
        with pytest.raises(TrainingError, match="loss is nan at optimizer step 0 \\(epoch 1, iteration 1\\)"):
            run(tmp_path, "LOSS.name=test_nan_loss")
    finally:
        del LOSSES["test_nan_loss"]
    assert not (tmp_path / "checkpoints").exists()


def test_batch_larger_than_dataset(tmp_path):
    with pytest.raises(ConfigError, match="DATA.TRAIN.BATCHSIZE_PER_REPLICA: got 512; allowed: at most 256"):
        run(tmp_path, "DATA.TRAIN.BATCHSIZE_PER_REPLICA=512")


def write_images(root, count, size=12, corrupt=0):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
        for i in range(corrupt):
            (root / c / f"broken{i}.png").write_bytes(b"not a png at all")


FOLDER = ["DATA.TRAIN.DATA_SOURCES=[disk_folder]", "DATA.TEST.DATA_SOURCES=[disk_folder]",
          "MODEL.TRUNK.RESNETS.INPUT_CHANNELS=3", "DATA.TRAIN.TRANSFORMS.MEAN=[0.5]", "DATA.TRAIN.TRANSFORMS.STD=[0.25]",
          "DATA.TEST.TRANSFORMS.MEAN=[0.5]", "DATA.TEST.TRANSFORMS.STD=[0.25]", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=8",
          "OPTIMIZER.num_epochs=1"]


def test_image_folder_with_unreadable_files(tmp_path, caplog):
    write_images(tmp_path / "img", 12, corrupt=2)
    paths = [f"DATA.TRAIN.DATA_PATHS=[{tmp_path / 'img'}]", f"DATA.TEST.DATA_PATHS=[{tmp_path / 'img'}]"]
    with caplog.at_level("WARNING"):
        results, _ = run(tmp_path / "run", *FOLDER, *paths)
    assert "skipped" in caplog.text and results["steps"] == 28 // 8


def test_image_folder_errors(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match="DATA.TRAIN.DATA_PATHS\\[0\\]: got .*nope.*an existing folder"):
        run(tmp_path / "run", *FOLDER, f"DATA.TRAIN.DATA_PATHS=[{missing}]")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="found none"):
        run(tmp_path / "run", *FOLDER, f"DATA.TRAIN.DATA_PATHS=[{tmp_path / 'empty'}]",
            f"DATA.TEST.DATA_PATHS=[{tmp_path / 'empty'}]")
    with pytest.raises(ConfigError, match="DATA.TRAIN.DATA_PATHS: got \\[\\]"):
        run(tmp_path / "run", *FOLDER)
    write_images(tmp_path / "broken", 0, corrupt=8)
    with pytest.raises(ConfigError, match="every image failed to decode"):
        run(tmp_path / "run", *FOLDER, f"DATA.TRAIN.DATA_PATHS=[{tmp_path / 'broken'}]",
            "HOOKS.KNN_MONITOR.ENABLED=false")


def test_head_width_must_match_the_trunk(tmp_path):
    with pytest.raises(ConfigError, match=r"MODEL.HEAD.PARAMS\[0\]\[1\].dims\[0\]: got 128; allowed: 64"):
        run(tmp_path, "MODEL.HEAD.PARAMS=[[mlp,{dims:[128,32]}]]")


def test_online_linear_probe_learns_without_touching_pretraining(tmp_path):
    probe = ["HOOKS.KNN_MONITOR.ENABLED=false", "HOOKS.ONLINE_LINEAR_PROBE.EVAL_PERIOD_EPOCHS=1",
             "HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER.param_schedulers.lr.start_value=0.5"]
    results, _ = run(tmp_path / "with", *probe, "HOOKS.ONLINE_LINEAR_PROBE.ENABLED=true")
    run(tmp_path / "without", *probe)
    records = read_metrics(tmp_path / "with")
    top1 = [r["online_linear_top1"] for r in records if "online_linear_top1" in r]
    assert len(top1) == 2 and results["online_linear_top1"] == top1[-1]
    assert top1[-1] > 0.15  # 10 classes: above chance (0.1) after 16 steps on detached features
    # its own schedule: cosine 0.5 -> 0 over the 16 steps, logged under its wrapper's name
    lrs = [r["online_linear_probe/lr/trunk_regularized"] for r in records if "loss" in r]
    assert lrs == pytest.approx([0.25 * (1 + math.cos(math.pi * k / 16)) for k in range(16)], rel=1e-12)
    # the pretraining loss never sees the probe: the trunk and heads end bitwise equal
    final = [torch.load(tmp_path / d / "checkpoints/model_final.torch", weights_only=True) for d in ("with", "without")]
    assert final[0]["model"].keys() == final[1]["model"].keys()
    assert all(torch.equal(final[0]["model"][k], final[1]["model"][k]) for k in final[0]["model"])
    assert set(final[0]["optim_wrappers"]) == {"model", "online_linear_probe"}

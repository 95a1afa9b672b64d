"""MODEL.ACTIVATION_CHECKPOINTING (gradients and BatchNorm statistics equal the plain forward's)
and MODEL.COMPILE (no recompilation after the first step across multi-crop's two sizes, the eager
losses, one warning where the backend cannot run).

The suite compiles with the aot_eager backend (dynamo's graph capture and AOT autograd, eager
kernels): inductor's C++ compilation takes minutes on two CPU cores; scripts/bench_trainer.py
--compile measures inductor."""

import copy
import json
import logging

import pytest
import torch

from vissl_lite.engine.compile import compile_model, compiled_graphs
from vissl_lite.errors import ConfigError
from vissl_lite.models.activation_checkpointing import checkpoint_units, enable_activation_checkpointing
from vissl_lite.models.resnet import ResNet
from vissl_lite.models.vit import VisionTransformer


def vit():
    return VisionTransformer.from_preset("digits", input_channels=1, drop_path_rate=0.3, dropout_rate=0.1)


def resnet():
    return ResNet(depth=18, width_multiplier=0.125, small_image_stem=True, input_channels=1)


@pytest.mark.parametrize("make, units", [(vit, 4), (resnet, 4)])  # 4 blocks of the digits ViT, 4 stages
def test_activation_checkpointing_gives_the_plain_gradients_and_statistics(make, units):
    torch.manual_seed(0)
    plain = make()
    checkpointed = copy.deepcopy(plain)
    assert enable_activation_checkpointing(checkpointed) == units
    assert [n for n, _ in checkpointed.named_parameters()] == [n for n, _ in plain.named_parameters()]
    x = torch.rand(6, 1, 8, 8)
    for model in (plain, checkpointed):  # the same random draws (dropout, stochastic depth) in both
        torch.manual_seed(1)
        model(x).pow(2).sum().backward()
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-6, msg=name)
    # the recomputation in the backward does not count its batch twice in BatchNorm's statistics
    for (name, a), b in zip(plain.named_buffers(), checkpointed.buffers()):
        assert torch.equal(a, b), name


def test_a_copy_checkpoints_its_own_units():
    torch.manual_seed(0)
    model = vit()
    enable_activation_checkpointing(model)
    teacher = copy.deepcopy(model)  # what an EMA teacher is
    for unit, original in zip(checkpoint_units(teacher), checkpoint_units(model)):
        assert unit.forward.__self__ is unit and unit is not original
    with torch.no_grad():
        teacher.blocks[0].mlp.fc2.bias.add_(1.0)  # the copy's own weights must be the ones used
    x = torch.rand(2, 1, 8, 8)
    assert not torch.equal(teacher.eval()(x), model.eval()(x))


class TwoPartModel(torch.nn.Module):
    """The trunk + heads shape of SSLModel, small."""

    def __init__(self):
        super().__init__()
        self.trunk = VisionTransformer.from_preset("digits", input_channels=1, hidden_dim=32, num_heads=2,
                                                   mlp_dim=64, num_layers=2)
        self.heads = torch.nn.Sequential(torch.nn.Linear(32, 8))


def test_a_backend_that_cannot_compile_leaves_the_model_eager_with_one_warning(caplog):
    model = TwoPartModel()
    with caplog.at_level(logging.WARNING, logger="vissl_lite"):
        assert not compile_model(model, "relu_compile_error_TESTING_ONLY", "cpu")  # dynamo's failing backend
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "relu_compile_error_TESTING_ONLY" in warnings[0] and "eagerly" in warnings[0]
    assert model.trunk._compiled_call_impl is None
    with pytest.raises(ConfigError, match="MODEL.COMPILE_BACKEND: got 'inductr'"):
        compile_model(model, "inductr", "cpu")


DINO_STEPS = [
    "config=pretrain/dino/dino_digits", "OPTIMIZER.num_epochs=1", "DATA.TRAIN.DATA_LIMIT=96",
    "DATA.TRAIN.BATCHSIZE_PER_REPLICA=32", "MODEL.TRUNK.VISION_TRANSFORMERS.HIDDEN_DIM=32",
    "MODEL.TRUNK.VISION_TRANSFORMERS.NUM_LAYERS=2", "MODEL.TRUNK.VISION_TRANSFORMERS.NUM_HEADS=2",
    "MODEL.TRUNK.VISION_TRANSFORMERS.MLP_DIM=64",
    "MODEL.HEAD.PARAMS=[[dino_head,{in_dim:32,num_clusters:[64],hidden_dim:64,bottleneck_dim:16,"
    "normalize_last_layer:false}]]",
    "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP=[]", "DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER=2",
    "DATA.TRAIN.TRANSFORMS.LOCAL_CROP_SIZE=4", "HOOKS.PROGRESS_BAR=false", "HOOKS.LOG_FREQUENCY=1",
    "DATA.TEST.DATA_LIMIT=40",
]


def test_dino_training_compiled_and_checkpointed_gives_the_eager_losses(tmp_path, caplog, monkeypatch):
    from vissl_lite.config.load import compose, resolve
    from vissl_lite.engine.compile import FirstStepTimer
    from vissl_lite.engine.train import train

    graphs_after_first_step, log_first_step = [], FirstStepTimer.after_step
    monkeypatch.setattr(FirstStepTimer, "after_step",
                        lambda timer: graphs_after_first_step.append(compiled_graphs()) or log_first_step(timer))
    losses = {}
    for name, extra in (("eager", []), ("compiled", ["MODEL.COMPILE=true", "MODEL.COMPILE_BACKEND=aot_eager",
                                                     "MODEL.ACTIVATION_CHECKPOINTING=true"])):
        cfg, inferred = resolve(compose(DINO_STEPS + extra))
        with caplog.at_level(logging.INFO, logger="vissl_lite"):
            train(cfg, inferred, str(tmp_path / name))
        records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        losses[name] = [r["loss"] for r in records if "loss" in r]
    assert len(losses["eager"]) == 3
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=1e-3)
    first_step = [r.getMessage() for r in caplog.records if "first optimizer step" in r.getMessage()]
    # logged once: the trunk at 8x8 and at 4x4 and the heads compiled in the first step, and no
    # graph after it (the kNN monitor at the epoch's end runs eager)
    assert len(first_step) == 1 and first_step[0].endswith("backend, 3 graphs)")
    assert graphs_after_first_step == [compiled_graphs()]

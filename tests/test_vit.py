"""Vision Transformer trunk: sizes, attention, position-embedding interpolation, depths for
layer-wise decay, the dino param groups, and other methods on a ViT by override."""

import math

import pytest
import torch

from vissl_lite.config.load import compose, resolve
from vissl_lite.models import SSLModel, VisionTransformer, build_model
from vissl_lite.models.heads import build_heads
from vissl_lite.models.vit import Attention, DropPath
from vissl_lite.optim.build import build_param_groups


def small_vit(**kw):
    return VisionTransformer(**{**dict(image_size=8, patch_size=2, input_channels=1, hidden_dim=16, num_layers=3,
                                       num_heads=2, mlp_dim=32), **kw})


@pytest.mark.parametrize("preset, expected", [
    # timm's deit_tiny / deit_small_patch16_224 without the 1000-class head (5,717,416 - 193,000
    # and 22,050,664 - 385,000 parameters)
    ("tiny", 5_524_416), ("small", 21_665_664)])
def test_presets_have_deit_sizes(preset, expected):
    vit = VisionTransformer.from_preset(preset)
    assert sum(p.numel() for p in vit.parameters()) == expected
    assert vit.out_dim == {"tiny": 192, "small": 384}[preset] and vit.num_layers == 12


def test_features_are_the_class_token_for_any_crop_size():
    vit = small_vit().eval()
    assert vit(torch.rand(3, 1, 8, 8)).shape == (3, 16)
    assert vit(torch.rand(3, 1, 4, 4)).shape == (3, 16)  # a local crop: 2x2 patches
    with pytest.raises(ValueError, match="multiple of the patch size"):
        vit(torch.rand(1, 1, 5, 5))


def test_attention_matches_the_written_out_formula():
    torch.manual_seed(0)
    attn = Attention(dim=8, num_heads=2, qkv_bias=True, attention_dropout=0.0, dropout=0.0)
    x = torch.randn(2, 5, 8)
    q, k, v = attn.qkv(x).reshape(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(4), dim=-1)  # VISSL's explicit form
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 5, 8))
    torch.testing.assert_close(attn(x), expected, atol=1e-6, rtol=1e-5)


def test_drop_path_drops_whole_samples_in_training_only():
    x = torch.ones(1000, 3, 4)
    out = DropPath(0.25).train()(x)
    per_sample = out[:, 0, 0]
    assert set(per_sample.unique().tolist()) <= {0.0, torch.tensor(1 / 0.75).item()}  # float32
    assert torch.equal(out, per_sample.view(-1, 1, 1).expand_as(out))  # one decision per sample
    assert 0.18 < (per_sample == 0).float().mean() < 0.32
    assert torch.equal(DropPath(0.25).eval()(x), x)


def test_position_embeddings_keep_their_layout_when_resized():
    vit = small_vit()
    assert vit.pos_embed_for(4, 4) is vit.pos_embed  # the training grid: the parameter itself
    with torch.no_grad():
        grid = torch.arange(4.0).repeat(4, 1)  # value = column index, constant down each column
        vit.pos_embed[0, 1:] = grid.reshape(16, 1).expand(16, 16)
        vit.pos_embed[0, 0] = 7.0
    resized = vit.pos_embed_for(2, 6)[0]
    assert resized.shape == (1 + 12, 16)
    assert torch.all(resized[0] == 7.0)  # the class token's embedding is not interpolated
    patches = resized[1:, 0].reshape(2, 6)  # row-major: 2 rows of 6 columns
    assert torch.allclose(patches[0], patches[1])  # rows agree: the column ramp did not turn
    assert torch.all(patches[0, 1:] > patches[0, :-1])  # and it still rises left to right
    with torch.no_grad():
        vit.pos_embed[0, 1:] = 0.5
    torch.testing.assert_close(vit.pos_embed_for(3, 3)[0, 1:], torch.full((9, 16), 0.5))


def test_depths_for_layer_wise_decay():
    vit = small_vit()
    depths = {name: vit.param_depth(name) for name, _ in vit.named_parameters()}
    assert depths["patch_embed.proj.weight"] == depths["cls_token"] == depths["pos_embed"] == 0
    assert depths["blocks.0.attn.qkv.weight"] == 1 and depths["blocks.2.mlp.fc2.bias"] == 3
    assert depths["norm.weight"] == 3  # the final norm goes with the last block (VISSL)
    model = SSLModel(vit, build_heads([["mlp", {"dims": [16, 4]}]]))
    cfg, _ = resolve(compose(["OPTIMIZER.param_group_constructor=lr_decay",
                              "OPTIMIZER.layer_wise_lr_decay.decay=0.5"]))
    groups = build_param_groups(cfg.OPTIMIZER, model)
    mult = {n: g["lr_mult"] for g in groups for n in g["param_names"]}
    # decay ** (num_layers + 1 - depth), num_layers = 3
    assert mult["trunk.pos_embed"] == 0.5 ** 4 and mult["trunk.blocks.1.attn.proj.weight"] == 0.5 ** 2
    assert mult["trunk.norm.bias"] == 0.5 and mult["heads.0.layers.0.weight"] == 1.0


def test_dino_param_groups_exempt_biases_norms_1d_and_tokens():
    model = SSLModel(small_vit(), build_heads([["dino_head", {"in_dim": 16, "num_clusters": [8], "hidden_dim": 12,
                                                              "bottleneck_dim": 4, "normalize_last_layer": False}]]))
    cfg, _ = resolve(compose(["OPTIMIZER.param_group_constructor=dino", "OPTIMIZER.weight_decay=0.04",
                              "OPTIMIZER.regularize_bn=true"]))  # dino exempts norms whatever the flags say
    groups = build_param_groups(cfg.OPTIMIZER, model)
    wd = {n: g["weight_decay"] for g in groups for n in g["param_names"]}
    unregularized = {n for n, v in wd.items() if v == 0.0}
    expected = {n for n, p in model.named_parameters() if n.endswith(".bias") or p.ndim == 1}
    expected |= {"trunk.cls_token", "trunk.pos_embed"}
    assert unregularized == expected
    assert {"trunk.blocks.0.norm1.weight", "trunk.norm.weight", "trunk.blocks.2.attn.qkv.bias"} <= unregularized
    assert wd["trunk.patch_embed.proj.weight"] == wd["heads.0.prototypes0.weight_v"] == 0.04
    assert wd["heads.0.prototypes0.weight_g"] == 0.04  # [K, 1], 2-D: decayed, as in DINO


VIT_DIGITS = ["MODEL.TRUNK.NAME=vision_transformer", "MODEL.TRUNK.VISION_TRANSFORMERS.PRESET=digits",
              "MODEL.TRUNK.VISION_TRANSFORMERS.INPUT_CHANNELS=1", "MODEL.TRUNK.VISION_TRANSFORMERS.HIDDEN_DIM=32",
              "MODEL.TRUNK.VISION_TRANSFORMERS.NUM_LAYERS=2", "MODEL.TRUNK.VISION_TRANSFORMERS.MLP_DIM=64",
              "OPTIMIZER.num_epochs=1", "DATA.TRAIN.DATA_LIMIT=128", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=64",
              "DATA.TEST.DATA_LIMIT=64", "HOOKS.PROGRESS_BAR=false", "HOOKS.ONLINE_LINEAR_PROBE.ENABLED=false"]


@pytest.mark.parametrize("experiment, head", [
    ("pretrain/simclr/simclr_digits", "[[mlp,{dims:[32,64,16],use_bn:true,use_relu:true}]]"),
    ("pretrain/barlow_twins/barlow_twins_digits", "[[mlp,{dims:[32,64,256],use_bn:true,use_relu:true}]]")])
def test_simclr_and_barlow_twins_train_a_vit_by_override(tmp_path, experiment, head):
    from vissl_lite.engine.train import train

    cfg, inferred = resolve(compose([f"config={experiment}", *VIT_DIGITS, f"MODEL.HEAD.PARAMS={head}"]))
    result = train(cfg, inferred, str(tmp_path))
    assert result["steps"] == 2 and 0.0 <= result["knn_top1"] <= 1.0
    state = torch.load(tmp_path / "checkpoints" / "model_final.torch", weights_only=True)["model"]
    assert state["trunk.pos_embed"].shape == (1, 5, 32)  # the digits preset: 2 x 2 patches + the class token


def test_vit_input_channels_drive_the_data_checks():
    from vissl_lite.errors import ConfigError

    with pytest.raises(ConfigError, match=r"DATA.TRAIN.TRANSFORMS.MEAN.*MODEL.TRUNK.VISION_TRANSFORMERS.INPUT_CHANNELS"):
        resolve(compose([*VIT_DIGITS, "DATA.TRAIN.TRANSFORMS.MEAN=[0.1,0.2]"]))
    model = build_model(resolve(compose([*VIT_DIGITS, "MODEL.HEAD.PARAMS=[[mlp,{dims:[32,8]}]]"]))[0].MODEL)
    assert model.trunk.patch_embed.proj.in_channels == 1

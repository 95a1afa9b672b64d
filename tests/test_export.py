"""`python -m vissl_lite.export`: the trunk with timm's / torchvision's names, key for key as those
libraries write them (lists below from their model definitions), a JSON beside it, and
export -> import round trips that change no bit."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from vissl_lite.config.schema import WeightsInitConfig
from vissl_lite.engine.checkpoint import save_trunk_weights
from vissl_lite.engine.restore import init_weights
from vissl_lite.export import main
from vissl_lite.models import ResNet, SSLModel, VisionTransformer
from vissl_lite.models.heads import build_heads
from vissl_lite.models.weight_files import read_weights


def torchvision_resnet50_trunk_keys():
    """torchvision's resnet50 state dict without fc (timm's resnet50 has the same names):
    conv1, bn1, then layer1..4 of 3, 4, 6, 3 Bottlenecks (conv1 1x1, conv2 3x3, conv3 1x1 x4),
    the first of each with downsample.0 (1x1 conv) and downsample.1 (BatchNorm)."""
    bn = lambda name, c: {f"{name}.weight": (c,), f"{name}.bias": (c,), f"{name}.running_mean": (c,),  # noqa: E731
                          f"{name}.running_var": (c,), f"{name}.num_batches_tracked": ()}
    keys = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    inplanes = 64
    for layer, blocks in enumerate([3, 4, 6, 3], start=1):
        planes = 64 * 2 ** (layer - 1)
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            keys.update({f"{p}.conv1.weight": (planes, inplanes, 1, 1), **bn(f"{p}.bn1", planes),
                         f"{p}.conv2.weight": (planes, planes, 3, 3), **bn(f"{p}.bn2", planes),
                         f"{p}.conv3.weight": (4 * planes, planes, 1, 1), **bn(f"{p}.bn3", 4 * planes)})
            if b == 0:
                keys.update({f"{p}.downsample.0.weight": (4 * planes, inplanes, 1, 1), **bn(f"{p}.downsample.1", 4 * planes)})
            inplanes = 4 * planes
    return keys


def timm_vit_small_patch16_224_keys():
    """timm's vit_small_patch16_224 without head: 384 wide, 12 blocks, MLP 1536, 14x14 patches + cls."""
    keys = {"cls_token": (1, 1, 384), "pos_embed": (1, 197, 384), "patch_embed.proj.weight": (384, 3, 16, 16),
            "patch_embed.proj.bias": (384,), "norm.weight": (384,), "norm.bias": (384,)}
    for i in range(12):
        keys.update({f"blocks.{i}.{k}": s for k, s in {
            "norm1.weight": (384,), "norm1.bias": (384,), "attn.qkv.weight": (1152, 384), "attn.qkv.bias": (1152,),
            "attn.proj.weight": (384, 384), "attn.proj.bias": (384,), "norm2.weight": (384,), "norm2.bias": (384,),
            "mlp.fc1.weight": (1536, 384), "mlp.fc1.bias": (1536,), "mlp.fc2.weight": (384, 1536),
            "mlp.fc2.bias": (384,)}.items()})
    return keys


def torchvision_vit_keys(dim, layers, mlp, patch, tokens):
    """torchvision's VisionTransformer without heads: conv_proj, class_token, encoder.pos_embedding,
    encoder.layers.encoder_layer_i.{ln_1, self_attention.in_proj_*, out_proj, ln_2, mlp.0, mlp.3}, encoder.ln."""
    keys = {"conv_proj.weight": (dim, 3, patch, patch), "conv_proj.bias": (dim,), "class_token": (1, 1, dim),
            "encoder.pos_embedding": (1, tokens, dim), "encoder.ln.weight": (dim,), "encoder.ln.bias": (dim,)}
    for i in range(layers):
        keys.update({f"encoder.layers.encoder_layer_{i}.{k}": s for k, s in {
            "ln_1.weight": (dim,), "ln_1.bias": (dim,), "self_attention.in_proj_weight": (3 * dim, dim),
            "self_attention.in_proj_bias": (3 * dim,), "self_attention.out_proj.weight": (dim, dim),
            "self_attention.out_proj.bias": (dim,), "ln_2.weight": (dim,), "ln_2.bias": (dim,),
            "mlp.0.weight": (mlp, dim), "mlp.0.bias": (mlp,), "mlp.3.weight": (dim, mlp), "mlp.3.bias": (dim,)}.items()})
    return keys


@pytest.fixture(scope="module")
def resnet50():
    torch.manual_seed(0)
    return ResNet(depth=50).eval()


@pytest.fixture(scope="module")
def vit_s16():
    torch.manual_seed(0)
    return VisionTransformer.from_preset("small").eval()


def vissl_lite_checkpoint(path, trunk, **extra):
    model = SSLModel(trunk, build_heads([["mlp", {"dims": [trunk.out_dim, 8]}]]))
    torch.save({"model": model.state_dict(), "step": 3, **extra}, path)
    return path


def shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


def load_trunk(trunk, path, **kw):
    model = SSLModel(trunk, build_heads([["mlp", {"dims": [trunk.out_dim, 8]}]]))
    init_weights(model, OmegaConf.merge(OmegaConf.structured(WeightsInitConfig), {"PARAMS_FILE": str(path), **kw}))
    return model.trunk


def bitwise_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("fmt", ["torchvision", "timm"])
def test_resnet50_exports_with_exactly_torchvisions_and_timms_names(tmp_path, resnet50, fmt):
    source = vissl_lite_checkpoint(tmp_path / "model_final.torch", resnet50)
    assert main([str(source), "--format", fmt, "--output", str(tmp_path / "r50.safetensors")]) == 0
    exported = read_weights(tmp_path / "r50.safetensors")
    assert shapes(exported) == torchvision_resnet50_trunk_keys()
    assert len(exported) == 318 and sum(v.numel() for k, v in exported.items() if "running" not in k
                                        and "num_batches" not in k) == 23_508_032  # 25,557,032 - fc's 2,049,000
    info = json.loads((tmp_path / "r50.json").read_text())
    assert info["architecture"]["torchvision_model"] == "resnet50" and info["source"]["layout"] == "vissl_lite"
    # round trip: bitwise
    assert bitwise_equal(load_trunk(ResNet(depth=50), tmp_path / "r50.safetensors").state_dict(), resnet50.state_dict())


def test_vit_s16_exports_with_timms_names_and_torchvisions_vit_names(tmp_path, vit_s16):
    source = vissl_lite_checkpoint(tmp_path / "model_final.torch", vit_s16,
                                   config="DATA:\n  TRAIN:\n    TRANSFORMS: {CROP_SIZE: 224, MEAN: [0.5, 0.5, 0.5], "
                                          "STD: [0.2, 0.2, 0.2]}\nMODEL:\n  TRUNK:\n    NAME: vision_transformer\n"
                                          "    VISION_TRANSFORMERS: {PRESET: small}\n")
    assert main([str(source), "--format", "timm", "--output", str(tmp_path / "vit.pth")]) == 0
    timm_state = read_weights(tmp_path / "vit.pth")
    assert shapes(timm_state) == timm_vit_small_patch16_224_keys()
    info = json.loads((tmp_path / "vit.json").read_text())
    assert info["image_size"] == 224 and info["normalisation"]["mean"] == [0.5, 0.5, 0.5]
    assert info["architecture"]["timm_model"] == "vit_small_patch16_224"
    assert bitwise_equal(load_trunk(VisionTransformer.from_preset("small"), tmp_path / "vit.pth").state_dict(),
                         vit_s16.state_dict())

    assert main([str(source), "--format", "torchvision", "--output", str(tmp_path / "tv.pth")]) == 0
    tv_state = read_weights(tmp_path / "tv.pth")
    assert shapes(tv_state) == torchvision_vit_keys(384, 12, 1536, 16, 197)
    # torchvision's in_proj_weight is timm's qkv weight, rows q; k; v (MultiheadAttention's packing)
    assert torch.equal(tv_state["encoder.layers.encoder_layer_3.self_attention.in_proj_weight"],
                       vit_s16.blocks[3].attn.qkv.weight)
    assert bitwise_equal(load_trunk(VisionTransformer.from_preset("small"), tmp_path / "tv.pth").state_dict(),
                         vit_s16.state_dict())


@pytest.mark.parametrize("method", [{"teacher": None, "center": torch.zeros(8)},  # DINO's method state
                                    {"key_encoder": None, "queue": {"keys": torch.zeros(4, 8)}}])  # MoCo's
def test_teacher_part_and_vissl_lite_format_round_trip(tmp_path, method):
    torch.manual_seed(1)
    student, teacher = ResNet(depth=18, width_multiplier=0.25), ResNet(depth=18, width_multiplier=0.25)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(1.0)
    teacher_model = SSLModel(teacher, build_heads([["mlp", {"dims": [128, 8]}]]))
    ema = next(k for k, v in method.items() if v is None)
    source = vissl_lite_checkpoint(tmp_path / "model_final.torch", student,
                                   method={**method, ema: teacher_model.state_dict()})
    assert main([str(source), "--format", "vissl_lite", "--part", "teacher", "--output", str(tmp_path / "t.torch")]) == 0
    written = read_weights(tmp_path / "t.torch")
    assert all(k.startswith("trunk.") for k in written)
    fresh = ResNet(depth=18, width_multiplier=0.25)
    assert bitwise_equal(load_trunk(fresh, tmp_path / "t.torch").state_dict(), teacher.state_dict())


def test_dinov2_layout_with_registers_exports_to_timm_and_features_survive(tmp_path):
    torch.manual_seed(2)
    vit = VisionTransformer(image_size=28, patch_size=14, hidden_dim=32, num_layers=2, num_heads=2, mlp_dim=64,
                            layer_scale_init=1e-5, num_register_tokens=4).eval()
    with torch.no_grad():
        vit.pos_embed.normal_()
    dinov2 = {("register_tokens" if k == "reg_token" else k): v for k, v in vit.state_dict().items()}
    torch.save({**dinov2, "mask_token": torch.zeros(1, 32)}, tmp_path / "dinov2.pth")
    assert main([str(tmp_path / "dinov2.pth"), "--format", "timm", "--output", str(tmp_path / "timm.safetensors")]) == 0
    timm_state = read_weights(tmp_path / "timm.safetensors")
    # timm's _reg models: no class row in pos_embed, reg_token [1, 4, D], layer scale ls1/ls2.gamma
    assert timm_state["pos_embed"].shape == (1, 4, 32) and timm_state["reg_token"].shape == (1, 4, 32)
    assert "blocks.1.ls2.gamma" in timm_state and "mask_token" not in timm_state
    info = json.loads((tmp_path / "timm.json").read_text())
    assert info["architecture"]["num_register_tokens"] == 4 and info["source"]["layout"] == "dinov2"
    back = load_trunk(VisionTransformer(image_size=28, patch_size=14, hidden_dim=32, num_layers=2, num_heads=2,
                                        mlp_dim=64, layer_scale_init=1e-5, num_register_tokens=4),
                      tmp_path / "timm.safetensors").eval()
    images = torch.rand(2, 3, 28, 28)
    assert torch.equal(back(images), vit(images))  # cls + pos[0] is the sum the class token saw


def test_export_refusals_are_one_line(tmp_path, capsys):
    torch.manual_seed(3)
    vit = VisionTransformer(image_size=8, patch_size=4, hidden_dim=16, num_layers=1, num_heads=2, mlp_dim=16,
                            layer_scale_init=1e-5)
    torch.save(vit.state_dict(), tmp_path / "ls.pth")
    assert main([str(tmp_path / "ls.pth"), "--format", "torchvision", "--output", str(tmp_path / "o.pth")]) == 2
    assert "no register tokens or layer scale: export this trunk with --format timm" in capsys.readouterr().err
    assert main([str(tmp_path / "ls.pth"), "--format", "timm", "--output", str(tmp_path / "o.npz")]) == 2
    assert "ends in one of" in capsys.readouterr().err and not (tmp_path / "o.npz").exists()


def test_final_checkpoint_gets_trunk_safetensors(tmp_path):
    torch.manual_seed(4)
    model = SSLModel(ResNet(depth=18, width_multiplier=0.25), build_heads([["mlp", {"dims": [128, 8]}]]))
    path = save_trunk_weights(tmp_path, model.state_dict(), "model_final.torch")
    assert path.name == "trunk.safetensors"
    assert bitwise_equal(read_weights(path), model.trunk.state_dict())

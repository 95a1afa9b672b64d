"""MODEL.WEIGHTS_INIT reads the checkpoint layouts people download. Each file below is written
by hand from the layout facts of the reference code (torchvision's / timm's parameter names,
DINO's main_dino.py save_dict, DINOv2's hub backbone, MoCo's main_moco.py, SwAV's main_swav.py,
VISSL's classy_state_dict), from a trunk with known random weights; after import every tensor
must sit where it belongs and the features must equal the source trunk's."""

import argparse
import logging

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from vissl_lite.config.schema import WeightsInitConfig
from vissl_lite.engine.restore import init_weights
from vissl_lite.errors import CheckpointError, ConfigError
from vissl_lite.models import ResNet, SSLModel, VisionTransformer
from vissl_lite.models.heads import build_heads


def randomised(module, seed):
    """Every parameter and BatchNorm buffer drawn at random: a load that misses one shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(seed)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    return module.eval()


def resnet(seed=None):
    net = ResNet(depth=18, width_multiplier=0.25, small_image_stem=True)
    return randomised(net, seed) if seed is not None else net.eval()


def vit(seed=None, **kw):
    args = dict(image_size=8, patch_size=2, input_channels=3, hidden_dim=16, num_layers=2, num_heads=2, mlp_dim=32)
    net = VisionTransformer(**{**args, **kw})
    return randomised(net, seed) if seed is not None else net.eval()


IMAGES = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(5))


def cfg(path, **kw):
    return OmegaConf.merge(OmegaConf.structured(WeightsInitConfig), {"PARAMS_FILE": str(path), **kw})


def load_into(trunk, path, **kw):
    model = SSLModel(trunk, build_heads([["mlp", {"dims": [trunk.out_dim, 4]}]]))
    init_weights(model, cfg(path, **kw))
    return model.trunk.eval()


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def prefixed(module, prefix):
    return {prefix + k: v for k, v in module.state_dict().items()}


def save(tmp_path, name, content):
    path = tmp_path / name
    torch.save(content, path)
    return path


# ----------------------------------------------------------------------------- plain state dicts


def test_torchvision_resnet_state_dict_loads_without_its_classifier(tmp_path, caplog):
    source = resnet(seed=1)
    file = {**source.state_dict(), "fc.weight": torch.randn(1000, 128), "fc.bias": torch.randn(1000)}
    with caplog.at_level(logging.INFO, logger="vissl_lite"):
        trunk = load_into(resnet(), save(tmp_path, "resnet18.pth", file))
    assert same_state(trunk, source) and torch.equal(trunk(IMAGES), source(IMAGES))
    # ResNet-18: 20 convolutions (1 stem, 16 in blocks, 3 downsample) and 20 BatchNorms x (weight,
    # bias, running mean, running var); the 20 step counters do not count
    assert "format found: torchvision" in caplog.text
    assert "loaded 100 of 100 trunk tensors" in caplog.text and "fc.weight" in caplog.text


def test_torchvision_files_without_batchnorm_counters_still_load(tmp_path):
    source = resnet(seed=2)
    file = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}  # torchvision <0.4
    trunk = load_into(resnet(), save(tmp_path, "old.pth", file))
    assert torch.equal(trunk(IMAGES), source(IMAGES))


def test_timm_vit_state_dict_loads_without_its_head(tmp_path):
    source = vit(seed=3)
    file = {**source.state_dict(), "head.weight": torch.randn(1000, 16), "head.bias": torch.randn(1000)}
    trunk = load_into(vit(), save(tmp_path, "vit.bin", file))
    assert same_state(trunk, source) and torch.equal(trunk(IMAGES), source(IMAGES))


def test_timm_register_models_fold_the_class_row_into_cls_token(tmp_path):
    """timm's `_reg` DINOv2 models (no_embed_class): pos_embed has no class row, cls_token holds
    cls + pos[0] (timm's _convert_dinov2), reg_token the registers."""
    source = vit(seed=4, layer_scale_init=1e-5, num_register_tokens=2)
    sd = source.state_dict()
    file = {**sd, "cls_token": sd["cls_token"] + sd["pos_embed"][:, :1], "pos_embed": sd["pos_embed"][:, 1:]}
    assert file["pos_embed"].shape == (1, 16, 16) and file["reg_token"].shape == (1, 2, 16)
    trunk = load_into(vit(layer_scale_init=1e-5, num_register_tokens=2), save(tmp_path, "reg.pth", file))
    torch.testing.assert_close(trunk(IMAGES), source(IMAGES), rtol=0, atol=1e-6)
    assert torch.equal(trunk.pos_embed[0, 0], torch.zeros(16))


# ----------------------------------------------------------------------------- DINOv2


def dinov2_reference_features(sd, images, patch, heads, registers):
    """DINOv2's DinoVisionTransformer forward written out from its names: cls + patches get
    pos_embed, registers go in after the class token without one, each block
    x + ls1.gamma * attn(norm1 x), x + ls2.gamma * mlp(norm2 x); features: norm(x)[:, 0]."""
    x = F.conv2d(images, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd["cls_token"].expand(len(x), -1, -1), x], dim=1) + sd["pos_embed"]
    x = torch.cat([x[:, :1], sd["register_tokens"].expand(len(x), -1, -1), x[:, 1:]], dim=1)
    b, n, d = x.shape
    for i in range(len({k.split(".")[1] for k in sd if k.startswith("blocks.")})):
        p = lambda name: sd[f"blocks.{i}.{name}"]  # noqa: E731
        h = F.layer_norm(x, (d,), p("norm1.weight"), p("norm1.bias"), eps=1e-6)
        q, k, v = F.linear(h, p("attn.qkv.weight"), p("attn.qkv.bias")).reshape(b, n, 3, heads, d // heads).permute(
            2, 0, 3, 1, 4)
        w = torch.softmax(q @ k.transpose(-2, -1) / (d // heads) ** 0.5, dim=-1)
        a = F.linear((w @ v).transpose(1, 2).reshape(b, n, d), p("attn.proj.weight"), p("attn.proj.bias"))
        x = x + p("ls1.gamma") * a
        h = F.layer_norm(x, (d,), p("norm2.weight"), p("norm2.bias"), eps=1e-6)
        m = F.linear(F.gelu(F.linear(h, p("mlp.fc1.weight"), p("mlp.fc1.bias"))), p("mlp.fc2.weight"), p("mlp.fc2.bias"))
        x = x + p("ls2.gamma") * m
    return F.layer_norm(x, (d,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)[:, 0]


def dinov2_file(seed, grid=4, registers=2, dim=16, layers=2, patch=2):
    """DINOv2's hub backbone: timm's names, layer scale gammas, mask_token [1, D], register_tokens
    [1, R, D] for the _reg variants, pos_embed [1, 1 + grid^2, D] (518 px / 14 = 37 in the release)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.2  # noqa: E731
    sd = {"cls_token": r(1, 1, dim), "pos_embed": r(1, 1 + grid * grid, dim), "mask_token": r(1, dim),
          "patch_embed.proj.weight": r(dim, 3, patch, patch), "patch_embed.proj.bias": r(dim),
          "norm.weight": 1 + r(dim), "norm.bias": r(dim)}
    if registers:
        sd["register_tokens"] = r(1, registers, dim)
    for i in range(layers):
        sd.update({f"blocks.{i}.{name}": t for name, t in {
            "norm1.weight": 1 + r(dim), "norm1.bias": r(dim), "attn.qkv.weight": r(3 * dim, dim),
            "attn.qkv.bias": r(3 * dim), "attn.proj.weight": r(dim, dim), "attn.proj.bias": r(dim),
            "ls1.gamma": r(dim), "norm2.weight": 1 + r(dim), "norm2.bias": r(dim),
            "mlp.fc1.weight": r(2 * dim, dim), "mlp.fc1.bias": r(2 * dim), "mlp.fc2.weight": r(dim, 2 * dim),
            "mlp.fc2.bias": r(dim), "ls2.gamma": r(dim)}.items()})
    return sd


def test_dinov2_hub_backbone_with_registers_and_layer_scale(tmp_path, caplog):
    sd = dinov2_file(seed=6)
    with caplog.at_level(logging.INFO, logger="vissl_lite"):
        trunk = load_into(vit(layer_scale_init=1e-5, num_register_tokens=2), save(tmp_path, "dinov2_vits14_reg4.pth", sd))
    assert "format found: dinov2" in caplog.text and "loaded 35 of 35 trunk tensors" in caplog.text
    assert torch.equal(trunk.reg_token, sd["register_tokens"]) and torch.equal(trunk.blocks[1].ls2.gamma, sd["blocks.1.ls2.gamma"])
    expected = dinov2_reference_features(sd, IMAGES, patch=2, heads=2, registers=2)
    torch.testing.assert_close(trunk(IMAGES), expected, rtol=1e-5, atol=1e-5)


def test_dinov2_position_grid_is_resized_to_the_runs_class_row_kept(tmp_path, caplog):
    sd = dinov2_file(seed=7, grid=6, registers=0)
    with caplog.at_level(logging.INFO, logger="vissl_lite"):
        trunk = load_into(vit(layer_scale_init=1e-5), save(tmp_path, "dinov2.pth", sd))
    assert "pos_embed resized 6x6 -> 4x4" in caplog.text
    assert torch.equal(trunk.pos_embed[0, 0], sd["pos_embed"][0, 0])
    grid = sd["pos_embed"][0, 1:].reshape(6, 6, 16).permute(2, 0, 1)[None]  # row-major grid -> [1, D, 6, 6]
    expected = F.interpolate(grid, size=(4, 4), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).reshape(16, 16)
    assert torch.equal(trunk.pos_embed[0, 1:], expected)


def test_a_layer_scale_file_into_a_trunk_without_it_stops_and_says_what_to_set(tmp_path):
    with pytest.raises(CheckpointError, match=r"unused \(4\): trunk.blocks.0.ls1.gamma.*LAYER_SCALE_INIT"):
        load_into(vit(), save(tmp_path, "dinov2.pth", dinov2_file(seed=8, registers=0)))


# ----------------------------------------------------------------------------- DINO, MoCo, SwAV


def dino_checkpoint(student, teacher, ddp_teacher):
    """main_dino.py's save_dict: student is DDP(MultiCropWrapper(backbone, head)); the teacher is
    DDP-wrapped only when it has BatchNorm; its args are an argparse.Namespace."""
    head = {"head.mlp.0.weight": torch.randn(32, student.out_dim), "head.last_layer.weight_g": torch.ones(64, 1),
            "head.last_layer.weight_v": torch.randn(64, 32)}
    return {"student": {**prefixed(student, "module.backbone."), **{f"module.{k}": v for k, v in head.items()}},
            "teacher": {**prefixed(teacher, "module.backbone." if ddp_teacher else "backbone."), **head},
            "optimizer": {"state": {}, "param_groups": []}, "epoch": 100,
            "args": argparse.Namespace(arch="vit_small", patch_size=16, out_dim=65536),
            "dino_loss": {"center": torch.zeros(1, 64)}}


def test_dino_full_checkpoint_takes_the_teacher_by_default_and_the_student_on_request(tmp_path):
    student, teacher = vit(seed=10), vit(seed=11)
    path = save(tmp_path, "dino_deitsmall16_full_checkpoint.pth", dino_checkpoint(student, teacher, ddp_teacher=False))
    assert same_state(load_into(vit(), path), teacher)
    assert same_state(load_into(vit(), path, PART="student"), student)


def test_dino_resnet_checkpoint_has_a_ddp_teacher(tmp_path):
    student, teacher = resnet(seed=12), resnet(seed=13)
    path = save(tmp_path, "dino_resnet50.pth", dino_checkpoint(student, teacher, ddp_teacher=True))
    trunk = load_into(resnet(), path)
    assert same_state(trunk, teacher) and torch.equal(trunk(IMAGES), teacher(IMAGES))


@pytest.mark.parametrize("query, key, extra", [
    # MoCo v2 main_moco.py: DDP(MoCo) with encoder_q / encoder_k (fc = the MLP head) and the queue
    ("module.encoder_q.", "module.encoder_k.", {"module.queue": torch.randn(32, 64), "module.queue_ptr": torch.zeros(1)}),
    # MoCo v3: base_encoder / momentum_encoder and a predictor
    ("module.base_encoder.", "module.momentum_encoder.", {"module.predictor.0.weight": torch.randn(8, 8)}),
])
def test_moco_takes_the_query_encoder_and_the_key_encoder_as_teacher(tmp_path, query, key, extra):
    q, k = resnet(seed=14), resnet(seed=15)
    state = {**prefixed(q, query), **prefixed(k, key), **extra,
             f"{query}fc.0.weight": torch.randn(128, 128), f"{query}fc.2.weight": torch.randn(32, 128),
             f"{key}fc.0.weight": torch.randn(128, 128), f"{key}fc.2.weight": torch.randn(32, 128)}
    path = save(tmp_path, "moco_v2_800ep_pretrain.pth.tar", {"epoch": 800, "arch": "resnet50", "state_dict": state,
                                                            "optimizer": {}})
    assert same_state(load_into(resnet(), path), q)
    assert same_state(load_into(resnet(), path, PART="teacher"), k)


@pytest.mark.parametrize("wrapped", [True, False])
def test_swav_drops_projection_head_and_prototypes(tmp_path, wrapped):
    source = resnet(seed=16)
    state = {**prefixed(source, "module."), "module.projection_head.0.weight": torch.randn(64, 128),
             "module.projection_head.0.bias": torch.randn(64), "module.prototypes.weight": torch.randn(30, 64)}
    content = {"epoch": 800, "state_dict": state, "optimizer": {}} if wrapped else state  # the release: bare
    trunk = load_into(resnet(), save(tmp_path, "swav_800ep_pretrain.pth.tar", content))
    assert same_state(trunk, source) and torch.equal(trunk(IMAGES), source(IMAGES))


# ----------------------------------------------------------------------------- VISSL


def test_vissl_checkpoint_trunk_from_classy_state_dict(tmp_path, caplog):
    source = resnet(seed=17)
    content = {"type": "consolidated", "phase_idx": 9, "iteration": 100, "loss": {},
               "classy_state_dict": {"base_model": {"model": {
                   "trunk": prefixed(source, "_feature_blocks."),
                   "heads": {"0.clf.0.weight": torch.randn(10, 128), "0.clf.0.bias": torch.randn(10)}}, "meta": {}}}}
    with caplog.at_level(logging.INFO, logger="vissl_lite"):
        trunk = load_into(resnet(), save(tmp_path, "model_final_checkpoint_phase9.torch", content))
    assert same_state(trunk, source) and "format found: vissl" in caplog.text


def test_vissl_vit_checkpoint_names_its_tokens_its_own_way(tmp_path):
    """VISSL's vision_transformer trunk: timm's names but class_token and pos_embedding."""
    source = vit(seed=24)
    trunk = {{"cls_token": "class_token", "pos_embed": "pos_embedding"}.get(k, k): v for k, v in source.state_dict().items()}
    content = {"classy_state_dict": {"base_model": {"model": {"trunk": trunk, "heads": {}}}}}
    assert same_state(load_into(vit(), save(tmp_path, "vissl_vit.torch", content)), source)


def test_vissl_keys_rename_a_moco_file_like_vissl_does(tmp_path):
    """VISSL's recipe for MoCo weights: STATE_DICT_KEY_NAME state_dict, REMOVE_PREFIX
    module.encoder_q., APPEND_PREFIX trunk._feature_blocks., SKIP_LAYERS num_batches_tracked."""
    q = resnet(seed=18)
    path = save(tmp_path, "moco.pth", {"state_dict": {**prefixed(q, "module.encoder_q."),
                                                      "module.encoder_q.fc.0.weight": torch.randn(4, 128)}})
    fresh = resnet()
    counters = {k: v.clone() for k, v in fresh.state_dict().items() if k.endswith("num_batches_tracked")}
    trunk = load_into(fresh, path, STATE_DICT_KEY_NAME="state_dict", REMOVE_PREFIX="module.encoder_q.",
                      APPEND_PREFIX="trunk._feature_blocks.", SKIP_LAYERS=["num_batches_tracked"])
    assert torch.equal(trunk(IMAGES), q(IMAGES))
    assert all(torch.equal(trunk.state_dict()[k], v) for k, v in counters.items())  # skipped: kept at 0


def test_vissl_lite_checkpoint_with_heads_and_teacher(tmp_path):
    student, teacher = SSLModel(resnet(seed=19), build_heads([["mlp", {"dims": [128, 4]}]])), resnet(seed=20)
    teacher_model = SSLModel(teacher, build_heads([["mlp", {"dims": [128, 4]}]]))
    path = save(tmp_path, "model_final.torch", {"model": student.state_dict(), "step": 10,
                                               "method": {"teacher": teacher_model.state_dict(), "center": torch.zeros(4)}})
    model = SSLModel(resnet(), build_heads([["mlp", {"dims": [128, 4]}]]))
    init_weights(model, cfg(path, TRUNK_ONLY=False))
    assert same_state(model, student)
    assert same_state(load_into(resnet(), path, PART="teacher"), teacher)


# ----------------------------------------------------------------------------- files and refusals


@pytest.mark.parametrize("name", ["w.pth", "w.pt", "w.pth.tar", "w.torch", "w.bin", "w.ckpt", "w.safetensors"])
def test_every_file_ending_loads(tmp_path, name):
    from vissl_lite.models.weight_files import write_weights

    source = resnet(seed=21)
    write_weights(tmp_path / name, source.state_dict())
    assert same_state(load_into(resnet(), tmp_path / name), source)


def test_unknown_ending_and_pickled_objects_are_refused_by_name(tmp_path):
    (tmp_path / "w.h5").write_bytes(b"\0")
    with pytest.raises(ConfigError, match=r"MODEL.WEIGHTS_INIT.PARAMS_FILE.*\.safetensors"):
        load_into(resnet(), tmp_path / "w.h5")
    path = save(tmp_path, "evil.pth", {"state_dict": resnet().state_dict(), "extra": logging.Formatter()})
    with pytest.raises(ConfigError, match=r"weights_only refuses: .*logging.Formatter"):
        load_into(resnet(), path)


def test_missing_and_mis_shaped_trunk_tensors_stop_unless_not_strict(tmp_path, caplog):
    source = resnet(seed=22)
    file = dict(source.state_dict())
    del file["layer2.0.conv1.weight"]
    file["layer3.1.bn2.weight"] = torch.zeros(3)
    path = save(tmp_path, "broken.pth", file)
    with pytest.raises(CheckpointError, match=r"missing \(1\): trunk.layer2.0.conv1.weight; "
                                              r"mis-shaped \(1\): trunk.layer3.1.bn2.weight \(3,\) -> \(64,\)"):
        load_into(resnet(), path)
    with caplog.at_level(logging.INFO, logger="vissl_lite"):
        trunk = load_into(resnet(), path, STRICT=False)
    assert "loaded 98 of 100 trunk tensors" in caplog.text and "layer2.0.conv1.weight" in caplog.text
    assert torch.equal(trunk.layer4[0].conv2.weight, source.layer4[0].conv2.weight)


def test_format_named_explicitly_and_a_wrong_part(tmp_path):
    path = save(tmp_path, "r.pth", resnet(seed=23).state_dict())
    assert same_state(load_into(resnet(), path, FORMAT="timm"), resnet(seed=23))
    with pytest.raises(ConfigError, match=r"MODEL.WEIGHTS_INIT.PART.*no part 'teacher'"):
        load_into(resnet(), path, PART="teacher")
    with pytest.raises(ConfigError, match=r"MODEL.WEIGHTS_INIT.FORMAT.*vissl_lite layout found no trunk tensors"):
        load_into(resnet(), path, FORMAT="vissl_lite")


# ----------------------------------------------------------------------------- training from imported weights

SIMCLR_SMALL = ["config=pretrain/simclr/simclr_digits", "DATA.TRAIN.DATA_LIMIT=256", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=64",
                "DATA.TEST.DATA_LIMIT=256", "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125",
                "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,64,32],use_bn:true,use_relu:true}]]", "HOOKS.PROGRESS_BAR=false",
                "HOOKS.ONLINE_LINEAR_PROBE.ENABLED=false", "HOOKS.KNN_MONITOR.EVAL_PERIOD_EPOCHS=1"]


def knn_by_epoch(run_dir):
    import json

    return {r["epoch"]: r["knn_top1"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "knn_top1" in r}


def test_frozen_trunk_epochs_keep_the_loaded_trunk_and_its_knn(tmp_path, cli_in_process):
    """simclr_digits started from its own final checkpoint with FREEZE_TRUNK_EPOCHS=1: during the
    frozen epoch the trunk is in eval mode and takes no step, so its weights and BatchNorm
    statistics stay bit for bit and kNN stays within 0.5 point (here: equal); afterwards it trains."""
    from vissl_lite.engine import checkpoint as ckpt

    status, out = cli_in_process(*SIMCLR_SMALL, f"hydra.run.dir={tmp_path / 'a'}", "OPTIMIZER.num_epochs=2")
    assert status == 0, out[-2000:]
    final = tmp_path / "a" / "checkpoints" / ckpt.FINAL
    exported = read_weights_file(tmp_path / "a" / "checkpoints" / "trunk.safetensors")
    source = torch.load(final, weights_only=True)["model"]
    assert all(torch.equal(exported[k], source[f"trunk.{k}"]) for k in exported)
    status, out = cli_in_process(*SIMCLR_SMALL, f"hydra.run.dir={tmp_path / 'b'}", "OPTIMIZER.num_epochs=2",
                                 f"MODEL.WEIGHTS_INIT.PARAMS_FILE={final}", "MODEL.WEIGHTS_INIT.FREEZE_TRUNK_EPOCHS=1",
                                 "CHECKPOINT.CHECKPOINT_FREQUENCY=1")
    assert status == 0, out[-2000:]
    assert abs(knn_by_epoch(tmp_path / "b")[1] - knn_by_epoch(tmp_path / "a")[2]) <= 0.005
    after_frozen = torch.load(tmp_path / "b" / "checkpoints" / ckpt.step_file(4), weights_only=True)["model"]
    trunk_keys = [k for k in source if k.startswith("trunk.")]
    assert all(torch.equal(after_frozen[k], source[k]) for k in trunk_keys)  # running stats included
    assert not all(torch.equal(after_frozen[k], source[k]) for k in source if k.startswith("heads."))
    last = torch.load(tmp_path / "b" / "checkpoints" / ckpt.FINAL, weights_only=True)["model"]
    assert not torch.equal(last["trunk.conv1.weight"], source["trunk.conv1.weight"])


def read_weights_file(path):
    from vissl_lite.models.weight_files import read_weights

    return read_weights(path)


def test_dinov2_continue_recipe_explains_and_trains_from_a_dinov2_file(tmp_path, cli_in_process):
    """A randomly initialised ViT-S/14 in DINOv2's hub layout (518 px grid: 37x37 + 1 rows, layer
    scale, mask_token); the recipe at 28 px crops (2x2 patches) and 14 px local crops here."""
    import json

    torch.manual_seed(0)
    released = VisionTransformer.from_preset("small", patch_size=14, image_size=518, layer_scale_init=1e-5)
    assert released.pos_embed.shape == (1, 37 * 37 + 1, 384)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save({**released.state_dict(), "mask_token": torch.zeros(1, 384)}, path)
    small = ["config=pretrain/dino/dinov2_vits14_continue", f"MODEL.WEIGHTS_INIT.PARAMS_FILE={path}",
             "MACHINE.DEVICE=cpu", "MODEL.AMP_PARAMS.USE_AMP=false", "DATA.TRAIN.DATA_SOURCES=[synthetic]",
             "DATA.TEST.DATA_SOURCES=[synthetic]", "DATA.TRAIN.NUM_SAMPLES_SYNTHETIC=8",
             "DATA.TEST.NUM_SAMPLES_SYNTHETIC=8", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=8",
             "DATA.TRAIN.NUM_DATALOADER_WORKERS=0", "DATA.TEST.NUM_DATALOADER_WORKERS=0",
             "DATA.TRAIN.TRANSFORMS.CROP_SIZE=28", "DATA.TEST.TRANSFORMS.CROP_SIZE=28",
             "DATA.TRAIN.TRANSFORMS.LOCAL_CROP_SIZE=14", "DATA.TRAIN.TRANSFORMS.LOCAL_CROPS_NUMBER=2",
             "MODEL.TRUNK.VISION_TRANSFORMERS.IMAGE_SIZE=28",
             "MODEL.HEAD.PARAMS=[[dino_head,{in_dim:384,num_clusters:[64],hidden_dim:64,bottleneck_dim:32}]]",
             "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP=[]", "HOOKS.PROGRESS_BAR=false", "HOOKS.KNN_MONITOR.ENABLED=false",
             "HOOKS.LOG_FREQUENCY=1", "CHECKPOINT.CHECKPOINT_FREQUENCY=1", "DISTRIBUTED.NUM_NODES=1",
             "DISTRIBUTED.NUM_PROC_PER_NODE=1"]
    status, out = cli_in_process(*small, "engine_name=explain", f"hydra.run.dir={tmp_path / 'explain'}")
    assert status == 0, out[-3000:]
    report = json.loads((tmp_path / "explain" / "explain.json").read_text())
    assert "trunk.blocks.0.ls1.gamma" in {n for g in report["groups"] for n in g["param_names"]}
    frozen = [f for f in report["temp_frozen"] if "trunk.cls_token" in f["param_names"]]
    assert len(frozen) == 1 and frozen[0]["until_epoch"] == 2 and len(frozen[0]["param_names"]) == 174
    status, out = cli_in_process(*small, "OPTIMIZER.num_epochs=2", "MODEL.WEIGHTS_INIT.FREEZE_TRUNK_EPOCHS=1",
                                 f"hydra.run.dir={tmp_path / 'run'}")
    assert status == 0, out[-3000:]
    log = (tmp_path / "run" / "train.log").read_text() if (tmp_path / "run" / "train.log").exists() else out
    assert "format found: dinov2" in log and "loaded 174 of 174 trunk tensors" in log  # 150 + 12 x 2 gammas
    assert "pos_embed resized 37x37 -> 2x2" in log
    from vissl_lite.engine import checkpoint as ckpt

    frozen = torch.load(tmp_path / "run" / "checkpoints" / ckpt.step_file(1), weights_only=True)["model"]
    assert torch.equal(frozen["trunk.blocks.5.ls2.gamma"], released.blocks[5].ls2.gamma)
    final = torch.load(tmp_path / "run" / "checkpoints" / ckpt.FINAL, weights_only=True)
    assert not torch.equal(final["model"]["trunk.blocks.5.ls2.gamma"], released.blocks[5].ls2.gamma)


def test_fulltune_digits_trains_the_whole_trunk_with_layer_decay(tmp_path, cli_in_process):
    """benchmark/fulltune/fulltune_digits: the digits ViT from a checkpoint, every block trained,
    block LRs x 0.75^(L + 1 - depth) (L = 4 blocks; embeddings depth 0, the head depth L + 1)."""
    import json

    torch.manual_seed(0)
    pre = SSLModel(VisionTransformer.from_preset("digits", input_channels=1),
                   build_heads([["mlp", {"dims": [96, 10]}]]))
    path = tmp_path / "model_final.torch"
    torch.save({"model": pre.state_dict(), "step": 1}, path)
    small = ["config=benchmark/fulltune/fulltune_digits", f"MODEL.WEIGHTS_INIT.PARAMS_FILE={path}",
             "DATA.TRAIN.DATA_LIMIT=128", "DATA.TEST.DATA_LIMIT=128", "OPTIMIZER.num_epochs=1", "HOOKS.PROGRESS_BAR=false"]
    status, out = cli_in_process(*small, "engine_name=explain", f"hydra.run.dir={tmp_path / 'explain'}")
    assert status == 0, out[-3000:]
    groups = json.loads((tmp_path / "explain" / "explain.json").read_text())["groups"]
    mults = {n: g["lr_mult"] for g in groups for n in g["param_names"]}
    assert mults["trunk.pos_embed"] == pytest.approx(0.75 ** 5) and mults["trunk.blocks.0.attn.qkv.weight"] == pytest.approx(0.75 ** 4)
    assert mults["trunk.norm.weight"] == pytest.approx(0.75) and mults["heads.0.layers.0.weight"] == 1.0
    status, out = cli_in_process(*small, f"hydra.run.dir={tmp_path / 'run'}")
    assert status == 0, out[-3000:]
    assert "loaded 54 of 54 trunk tensors" in out and "final test top-1" in out
    final = torch.load(tmp_path / "run" / "checkpoints" / "model_final.torch", weights_only=True)["model"]
    assert not torch.equal(final["trunk.blocks.0.attn.qkv.weight"], pre.trunk.blocks[0].attn.qkv.weight)

"""vissl-lite-convert on VISSL-format files (tests/vissl_configs/, one per construct): the
converted experiment's explain numbers against VISSL's rules, written out here as formulas.

VISSL's rules used below (vissl/utils/hydra_config.py, infer_learning_rate):
  scaled = base_value x BATCHSIZE_PER_REPLICA x NUM_NODES x NUM_PROC_PER_NODE / base_lr_batch_size;
  cosine start = scaled, end = scaled x end / start; linear end = scaled; multistep values
  scaled x gamma**i with gamma = values[1] / values[0]; in a composite a linear child starts at
  base_value x BATCHSIZE_PER_REPLICA x NUM_PROC_PER_NODE / base_lr_batch_size, and on one node
  a warmup whose start >= end is removed, the composite becoming its other child.
ClassyVision's `where`: k / (epochs x steps per epoch) per step, floor(k / steps per epoch) /
epochs per epoch; a composite's piece starts at its boundary (fvcore's 1e-6 tolerance).
"""

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import yaml
import pytest

from vissl_lite.config.load import compose, resolve
from vissl_lite.convert import convert
from vissl_lite.convert.__main__ import main as convert_main
from vissl_lite.engine.explain import explain

FIXTURES = Path(__file__).parent / "vissl_configs"


@pytest.fixture(autouse=True)
def _no_launcher(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def converted(tmp_path, *names, vissl_numbers=False, as_name="converted"):
    """Convert fixture(s) into tmp_path/config/<as_name>.yaml; the Result."""
    result = convert([str(FIXTURES / f"{n}.yaml") for n in names], vissl_numbers=vissl_numbers)
    assert result.text is not None, result.report.format(result.numbers)
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / f"{as_name}.yaml").write_text(result.text)
    return result


def explained(tmp_path, global_batch, steps_per_epoch, as_name="converted", extra=()):
    """explain.json and the printed report of the converted file, on synthetic data sized for
    `steps_per_epoch` optimizer steps per epoch at the planned world size."""
    overrides = [f"hydra.searchpath=[file://{tmp_path}]", f"config={as_name}", "engine_name=explain",
                 "DATA.TRAIN.DATA_SOURCES=[synthetic]",
                 f"DATA.TRAIN.NUM_SAMPLES_SYNTHETIC={global_batch * steps_per_epoch}", *extra]
    cfg, inferred = resolve(compose(overrides))
    run_dir = tmp_path / f"run_{as_name}"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        explain(cfg, inferred, str(run_dir))
    saved = json.loads((run_dir / "explain.json").read_text())
    saved["schedules"] = dict(np.load(run_dir / saved["schedules_file"]))  # the arrays: schedules.npz
    assert saved["steps_per_epoch"] == steps_per_epoch
    return saved, printed.getvalue()


def group_of(saved, name):
    return next(g for g in saved["groups"] if name in g["param_names"])


def group_lr(saved, name):
    g = group_of(saved, name)
    return np.array(saved["schedules"][g["lr_schedule"]]) * g["lr_mult"]


def group_wd(saved, name, total):
    g = group_of(saved, name)
    if g["wd_schedule"] in saved["schedules"]:
        return np.array(saved["schedules"][g["wd_schedule"]]) * g["decay_mult"]
    return np.full(total, g["weight_decay_start"])


# ClassyVision / VISSL formulas, written out.
def where_by_step(epochs, steps_per_epoch):
    total = epochs * steps_per_epoch
    return np.arange(total) / total


def where_by_epoch(epochs, steps_per_epoch):
    return np.repeat(np.arange(epochs) / epochs, steps_per_epoch)


def linear(w, start, end):
    return start + (end - start) * w


def cosine(w, start, end):
    return end + 0.5 * (start - end) * (1 + np.cos(np.pi * w))


def first_piece(w, length):
    return w + 1e-6 < length


# ----------------------------------------------------------------------------- the recipes


def test_simclr_8_nodes_reproduces_vissl_at_every_step(tmp_path):
    result = converted(tmp_path, "simclr_8node")
    saved, printed = explained(tmp_path, global_batch=64 * 8 * 8, steps_per_epoch=4)
    w = where_by_step(100, 4)
    scaled, warm_start = 0.3 * 4096 / 256, 0.3 * 64 * 8 / 256  # 4.8, 0.6: the written values
    vissl = np.where(first_piece(w, 0.1), linear(w / 0.1, warm_start, scaled), cosine(w, scaled, 0.0))
    np.testing.assert_allclose(group_lr(saved, "trunk.conv1.weight"), vissl, rtol=1e-12)
    np.testing.assert_allclose(group_lr(saved, "heads.0.layers.0.weight"), vissl, rtol=1e-12)
    # the one difference: VISSL's SyncBatchNorm groups of 8 (GROUP_SIZE 8), printed beside the schedules
    assert [d.key for d in result.report.differences] == ["MODEL.SYNC_BN_CONFIG.GROUP_SIZE"]
    assert "differences from VISSL" in printed and "groups of 8 processes (512 images)" in printed
    text = result.text
    assert "CHECKPOINT_ITER_FREQUENCY: 0" in text and "use_larc: true" in text and "KNN_MONITOR:" in text
    assert "DATA.TRAIN.DATASET_NAMES" in result.report.format(result.numbers)


@pytest.mark.parametrize("vissl_numbers", [False, True])
def test_swav_warmup_start_is_vissls_with_the_flag(tmp_path, vissl_numbers):
    result = converted(tmp_path, "swav_8node", vissl_numbers=vissl_numbers)
    saved, _ = explained(tmp_path, global_batch=4096, steps_per_epoch=2)
    w = where_by_step(400, 2)
    scaled = 0.3 * 4096 / 256
    vissl_start = 0.3 * 64 * 8 / 256  # 0.6, where the file writes 0.3
    ours_start = 0.3 * scaled / 4.8  # the written start x scaled / peak
    start = vissl_start if vissl_numbers else ours_start
    expected = np.where(first_piece(w, 0.025), linear(w / 0.025, start, scaled), cosine(w, scaled, 0.0048))
    np.testing.assert_allclose(group_lr(saved, "trunk.conv1.weight"), expected, rtol=1e-12)
    (warmup,) = [d for d in result.report.differences if d.key.endswith("schedulers[0].start_value")]
    assert (warmup.vissl, warmup.vissl_lite) == ("0.6", "0.3") and warmup.reproducible
    cfg = yaml_of(result)
    assert cfg["LOSS"]["swav_loss"]["queue"]["queue_length"] == 8192  # 9000 - 9000 % 4096, VISSL's rounding
    assert cfg["MODEL"]["TEMP_FROZEN_PARAMS_ITER_MAP"] == [["heads.0.prototypes0.weight", 313]]
    assert cfg["MODEL"]["AMP_PARAMS"] == {"USE_AMP": True, "AMP_DTYPE": "float16"}
    t = cfg["DATA"]["TRAIN"]["TRANSFORMS"]
    assert (t["CROP_SIZE"], t["LOCAL_CROPS_NUMBER"], t["LOCAL_CROP_SIZE"], t["LOCAL_CROP_SCALE"]) == (224, 6, 96, [0.05, 0.14])


@pytest.mark.parametrize("vissl_numbers", [False, True])
def test_barlow_twins_warmup_from_zero(tmp_path, vissl_numbers):
    result = converted(tmp_path, "barlow_twins_4node", vissl_numbers=vissl_numbers)
    saved, _ = explained(tmp_path, global_batch=2048, steps_per_epoch=1)
    w = where_by_step(1000, 1)
    scaled = 0.2 * 2048 / 256  # 1.6
    start = 0.2 * 64 * 8 / 256 if vissl_numbers else 0.0  # VISSL's 0.4; vissl_lite keeps the written 0
    expected = np.where(first_piece(w, 0.01), linear(w / 0.01, start, scaled), cosine(w, scaled, scaled / 100))
    np.testing.assert_allclose(group_lr(saved, "trunk.conv1.weight"), expected, rtol=1e-12, atol=1e-15)
    cfg = yaml_of(result)
    assert cfg["OPTIMIZER"]["lars_config"] == {"exclude_bias_and_norm": True}
    # per-view blur [1.0, 0.1] and solarize [0.0, 0.2]: the mean on both views, reported as not reproducible
    assert cfg["DATA"]["TRAIN"]["TRANSFORMS"]["BLUR_P"] == pytest.approx(0.55)
    assert cfg["DATA"]["TRAIN"]["TRANSFORMS"]["SOLARIZE_P"] == pytest.approx(0.1)
    blur = next(d for d in result.report.differences if d.key == "DATA.TRAIN.TRANSFORMS.BLUR_P")
    assert not blur.reproducible


def test_moco_multistep_and_constant_momentum(tmp_path):
    result = converted(tmp_path, "moco_1node")
    saved, _ = explained(tmp_path, global_batch=256, steps_per_epoch=2)
    epoch = np.repeat(np.arange(200), 2)
    expected = np.select([epoch < 120, epoch < 160], [0.03, 0.003], 0.0003)
    np.testing.assert_allclose(group_lr(saved, "trunk.conv1.weight"), expected, rtol=1e-12)
    np.testing.assert_array_equal(saved["schedules"]["LOSS.moco_loss.momentum"], 0.999)
    assert result.report.differences == []
    assert "ZERO_INIT_RESIDUAL" in "\n".join(result.report.lines["dropped"])


@pytest.mark.parametrize("vissl_numbers", [False, True])
def test_dino_teacher_schedules_and_token_weight_decay(tmp_path, vissl_numbers):
    result = converted(tmp_path, "dino_deits16", vissl_numbers=vissl_numbers)
    spe, epochs = 2, 300
    saved, _ = explained(tmp_path, global_batch=64 * 16, steps_per_epoch=spe)
    total = spe * epochs
    w = where_by_epoch(epochs, spe)
    lr = np.where(first_piece(w, 0.0333), linear(w / 0.0333, 1e-5, 0.002), cosine(w, 0.002, 1e-5))
    np.testing.assert_allclose(group_lr(saved, "trunk.blocks.0.attn.qkv.weight"), lr, rtol=1e-12)
    wd = cosine(w, 0.04, 0.4)
    np.testing.assert_allclose(group_wd(saved, "trunk.blocks.0.attn.qkv.weight", total), wd, rtol=1e-12)
    np.testing.assert_array_equal(group_wd(saved, "trunk.blocks.0.norm1.weight", total), 0.0)
    # VISSL's dino groups decay the class token and position embedding; vissl_lite's do not
    token_wd = group_wd(saved, "trunk.cls_token", total)
    np.testing.assert_allclose(token_wd, wd if vissl_numbers else 0.0, rtol=1e-12)
    k = np.arange(total)
    momentum = 1 - 0.5 * (1 - 0.996) * (np.cos(np.pi * k / total) + 1)  # VISSL's DINOHook
    np.testing.assert_allclose(saved["schedules"]["LOSS.dino_loss.momentum"], momentum, rtol=1e-12)
    temp = np.concatenate([np.linspace(0.04, 0.07, 300), np.full(total - 300, 0.07)])  # torch.linspace in VISSL
    np.testing.assert_allclose(saved["schedules"]["LOSS.dino_loss.teacher_temp"], temp, rtol=1e-12)
    (tokens,) = result.report.differences
    assert "trunk.cls_token" in tokens.key and tokens.reproducible


def test_linear_evaluation_head_lr(tmp_path):
    result = converted(tmp_path, "linear_eval_head_lr")
    saved, _ = explained(tmp_path, global_batch=512, steps_per_epoch=3)
    assert [g["name"] for g in saved["groups"]] == ["head_regularized"]  # the trunk is frozen
    epoch = np.repeat(np.arange(28), 3)
    scaled = 0.04 * 512 / 256
    expected = np.select([epoch < 8, epoch < 16, epoch < 24], [scaled, scaled * 0.1, scaled * 0.01], scaled * 0.001)
    np.testing.assert_allclose(group_lr(saved, "heads.0.layers.0.weight"), expected, rtol=1e-12)
    np.testing.assert_array_equal(group_wd(saved, "heads.0.layers.0.weight", 84), 1e-4)
    cfg = yaml_of(result)
    assert cfg["MODEL"]["HEAD"]["PARAMS"] == [["mlp", {"dims": [2048, 1000]}]]  # the res5avg head
    assert cfg["MODEL"]["FEATURE_EVAL_SETTINGS"] == {"FREEZE_TRUNK": True}
    assert cfg["LOSS"]["name"] == "cross_entropy" and cfg["DATA"]["TEST"]["TRANSFORMS"]["CROP_SIZE"] == 224
    assert result.report.differences == []


@pytest.mark.parametrize("vissl_numbers", [False, True])
def test_supervised_multistep_groupnorm_and_scheduled_weight_decay(tmp_path, vissl_numbers):
    result = converted(tmp_path, "supervised_multistep", vissl_numbers=vissl_numbers)
    saved, _ = explained(tmp_path, global_batch=512, steps_per_epoch=2)
    total, w = 180, where_by_epoch(90, 2)
    epoch = np.repeat(np.arange(90), 2)
    scaled = 0.1 * 512 / 256
    # VISSL: a geometric sequence from values[1] / values[0]; vissl_lite: the written ratios
    values = [scaled * 0.1**i for i in range(4)] if vissl_numbers else [scaled, scaled * 0.1, scaled * 0.05,
                                                                        scaled * 0.005]
    expected = np.select([epoch < 30, epoch < 60, epoch < 80], values[:3], values[3])
    np.testing.assert_allclose(group_lr(saved, "trunk.conv1.weight"), expected, rtol=1e-12)
    trunk_wd = cosine(w, 1e-4, 1e-5)
    np.testing.assert_allclose(group_wd(saved, "trunk.conv1.weight", total), trunk_wd, rtol=1e-12)
    # VISSL decays GroupNorm with the trunk's schedule (its norm list lacks GroupNorm) and keeps
    # the head's weight decay at a constant 1e-4 while the trunk's is scheduled
    gn = group_wd(saved, "trunk.layer1.0.bn1.weight", total)
    head = group_wd(saved, "heads.0.layers.0.weight", total)
    if vissl_numbers:
        np.testing.assert_allclose(gn, trunk_wd, rtol=1e-12)
        np.testing.assert_array_equal(head, 1e-4)
    else:
        np.testing.assert_array_equal(gn, 0.0)
        np.testing.assert_allclose(head, trunk_wd, rtol=1e-12)
    keys = [d.key for d in result.report.differences]
    assert keys[:2] == ["OPTIMIZER.param_schedulers.lr.values[2]", "OPTIMIZER.param_schedulers.lr.values[3]"]
    assert all(d.reproducible for d in result.report.differences) and len(keys) == 4


@pytest.mark.parametrize("vissl_numbers", [False, True])
def test_cosine_warm_restart_after_a_warmup(tmp_path, vissl_numbers):
    converted(tmp_path, "cosine_warm_restart", vissl_numbers=vissl_numbers)
    saved, _ = explained(tmp_path, global_batch=2048, steps_per_epoch=2)
    w = where_by_step(100, 2)
    scaled = 0.3 * 2048 / 256  # 2.4
    end = scaled * 0.0048 / 4.8
    start = 0.3 * 64 * 8 / 256 if vissl_numbers else 0.6 * scaled / 4.8
    # VISSL's cosine_warm_restart, half waves of 0.5, adaptive: the peak after the restart at
    # 0.5 is the single cosine's value there; the piece is rescaled to [0, 1)
    u = np.clip((w - 0.1) / 0.9, 0, None)
    peak = np.where(u < 0.5, scaled, end + 0.5 * (scaled - end) * (1 + np.cos(np.pi * 0.5)))
    wave = end + 0.5 * (peak - end) * (1 + np.cos(np.pi * (u % 0.5) / 0.5))
    expected = np.where(first_piece(w, 0.1), linear(w / 0.1, start, scaled), wave)
    np.testing.assert_allclose(group_lr(saved, "trunk.conv1.weight"), expected, rtol=1e-9)


@pytest.mark.parametrize("vissl_numbers", [False, True])
@pytest.mark.parametrize("nodes", [1, 8])
def test_composite_warmup_on_1_and_8_nodes(tmp_path, nodes, vissl_numbers):
    overlay = ["composite_warmup_8nodes"] if nodes == 8 else []
    result = converted(tmp_path, "composite_warmup", *overlay, vissl_numbers=vissl_numbers)
    saved, printed = explained(tmp_path, global_batch=512 * nodes, steps_per_epoch=5)
    w = where_by_step(20, 5)
    scaled = 0.1 * 512 * nodes / 256
    vissl_start = 0.1 * 512 / 256  # base_value x per-node batch / base batch
    ours_start = 0.01 * scaled / 0.4
    if vissl_numbers and nodes == 1:
        expected = cosine(w, scaled, 0.0)  # VISSL drops the warmup: start 0.2 >= end 0.2
    else:
        start = vissl_start if vissl_numbers else ours_start
        expected = np.where(first_piece(w, 0.05), linear(w / 0.05, start, scaled),
                            cosine((w - 0.05) / 0.95, scaled, 0.0))
    np.testing.assert_allclose(group_lr(saved, "trunk.conv1.weight"), expected, rtol=1e-12, atol=1e-15)
    (difference,) = result.report.differences
    assert difference.key.startswith("OPTIMIZER.param_schedulers.lr")
    assert ("VISSL issue #106" in difference.reason) == (nodes == 1)
    assert f"VISSL {difference.vissl} | vissl_lite {difference.vissl_lite}" in printed


# ----------------------------------------------------------------------------- the command line


def vissl_file(tmp_path, name, body):
    path = tmp_path / f"{name}.yaml"
    path.write_text("# @package _global_\nconfig:\n" + "".join(f"  {line}\n" for line in body.splitlines()))
    return path


REFUSALS = [
    ("MODEL:\n  TRUNK:\n    NAME: regnet", "MODEL.TRUNK.NAME: regnet: vissl_lite has no such trunk"),
    ("OPTIMIZER:\n  name: sgd_fsdp", "OPTIMIZER.name: sgd_fsdp: an FSDP / ZeRO optimizer"),
    ("OPTIMIZER:\n  param_group_constructor: linear_eval_heads",
     "OPTIMIZER.param_group_constructor: linear_eval_heads: vissl_lite has no such parameter-group constructor"),
    ("LOSS:\n  name: ibot_loss", "LOSS.name: ibot_loss: vissl_lite has no such loss"),
    ("MODEL:\n  FSDP_CONFIG:\n    AUTO_SETUP_FSDP: true", "MODEL.FSDP_CONFIG.AUTO_SETUP_FSDP: true: FSDP"),
    ("DATA:\n  TRAIN:\n    TRANSFORMS:\n      - name: ImgPilRandomPhotometric", "ImgPilRandomPhotometric"),
]


@pytest.mark.parametrize("body, reason", REFUSALS)
def test_what_vissl_lite_lacks_is_refused_with_exit_2(tmp_path, capsys, body, reason):
    path = vissl_file(tmp_path, "recipe", body)
    out = tmp_path / "out.yaml"
    assert convert_main([str(path), "-o", str(out)]) == 2
    printed = capsys.readouterr()
    assert reason in printed.out and "refused" in printed.out and "nothing written" in printed.err
    assert not out.exists()


def test_converted_file_is_written_and_named_for_config(tmp_path, capsys):
    out = tmp_path / "mine" / "config" / "vissl" / "linear_eval.yaml"
    assert convert_main([str(FIXTURES / "linear_eval_head_lr.yaml"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text().startswith("# @package _global_\n")
    assert f"config=vissl/linear_eval hydra.searchpath=[file://{tmp_path / 'mine'}]" in printed
    for heading in ("kept (", "translated (", "VISSL defaults written out", "dropped: vissl_lite has no such thing"):
        assert heading in printed


def test_a_file_without_a_config_root_is_not_vissl(tmp_path, capsys):
    path = tmp_path / "ours.yaml"
    path.write_text("# @package _global_\nOPTIMIZER:\n  name: sgd\n")
    assert convert_main([str(path), "-o", str(tmp_path / "x.yaml")]) == 2
    assert "no `config:` root" in capsys.readouterr().err


def test_run_py_names_the_converter_for_a_vissl_file(cli, tmp_path):
    mine = tmp_path / "mine" / "config"
    mine.mkdir(parents=True)
    (mine / "simclr.yaml").write_text((FIXTURES / "simclr_8node.yaml").read_text())
    (mine / "rootless.yaml").write_text("VERBOSE: false\nDATA:\n  TRAIN:\n    TRANSFORMS:\n      - name: ToTensor\n")
    for name in ("simclr", "rootless"):
        result = cli(f"hydra.searchpath=[file://{tmp_path / 'mine'}]", f"config={name}")
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and len(lines[0]) < 400, result.stderr
        assert "python -m vissl_lite.convert FILE -o OUT.yaml" in lines[0]


def yaml_of(result):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.create(result.text))


def test_disk_filelist_sources_and_label_paths_carry_over(tmp_path):
    """VISSL's disk_filelist (a .npy of paths, labels in LABEL_PATHS) is a vissl_lite source too."""
    text = (FIXTURES / "simclr_8node.yaml").read_text()
    assert "      DATA_SOURCES: [disk_folder]\n" in text
    vissl = tmp_path / "filelist.yaml"
    vissl.write_text(text.replace("      DATA_SOURCES: [disk_folder]\n",
                                  "      DATA_SOURCES: [disk_filelist]\n      DATA_PATHS: [/data/train_images.npy]\n"
                                  "      LABEL_PATHS: [/data/train_labels.npy]\n", 1))
    result = convert([str(vissl)])
    assert result.text is not None, result.report.format(result.numbers)
    train = yaml.safe_load(result.text)["DATA"]["TRAIN"]
    assert train["DATA_SOURCES"] == ["disk_filelist"]
    assert train["DATA_PATHS"] == ["/data/train_images.npy"] and train["LABEL_PATHS"] == ["/data/train_labels.npy"]

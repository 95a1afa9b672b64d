"""What a new user met first (issue 22, item 4-5): each case the way the user met it, and the one
line they now get."""

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from vissl_lite.config.load import CONF_DIR, compose, resolve
from vissl_lite.config.overrides import check_experiment_file, check_override_keys
from vissl_lite.distributed import DistEnv
from vissl_lite.engine.method import METHODS, Method, TwoViewMethod, build_method
from vissl_lite.errors import CheckpointError, ConfigError
from vissl_lite.models import build_model
from vissl_lite.models.trunks import TRUNKS, register_trunk
from vissl_lite.optim.build import build_param_groups
from vissl_lite.registry import Registry

ROOT = Path(__file__).resolve().parents[1]

TINY = ["OPTIMIZER.num_epochs=1", "DATA.TRAIN.DATA_LIMIT=64", "DATA.TRAIN.BATCHSIZE_PER_REPLICA=32",
        "MODEL.TRUNK.RESNETS.WIDTH_MULTIPLIER=0.125", "MODEL.HEAD.PARAMS=[[mlp,{dims:[64,32]}]]",
        "HOOKS.PROGRESS_BAR=false", "HOOKS.KNN_MONITOR.ENABLED=false", "HOOKS.ONLINE_LINEAR_PROBE.ENABLED=false"]


def test_resume_with_another_optimizer_names_both(tmp_path):
    """Before: KeyError: 'step' from inside torch's Adam.__setstate__."""
    from vissl_lite.engine.train import train

    train(*resolve(compose(TINY)), str(tmp_path))  # sgd, 2 optimizer steps
    cfg, inferred = resolve(compose([*TINY, "OPTIMIZER.num_epochs=2", "OPTIMIZER.name=rmsprop"]))
    with pytest.raises(CheckpointError, match=r"model_final\.torch was saved with OPTIMIZER\.name=sgd, this run has "
                                              r"OPTIMIZER\.name=rmsprop: .*LOAD_WEIGHTS_ONLY=true"):
        train(cfg, inferred, str(tmp_path))
    # MMEngine's spelling of the same optimizer is the same optimizer
    from omegaconf import OmegaConf

    from vissl_lite.engine.restore import check_optimizer_types

    saved = OmegaConf.to_yaml(resolve(compose(TINY))[0])
    check_optimizer_types(saved, resolve(compose([*TINY, "OPTIMIZER.name=SGD"]))[0], ["model"], "a checkpoint")


def test_custom_keys_on_the_command_line_without_plus():
    """Before: Hydra's `Key 'trunk.layer1' is not in struct ... use +OPTIMIZER.paramwise...`."""
    override = "OPTIMIZER.paramwise.custom_keys={trunk.layer1:{lr_mult:0.1}}"
    check_override_keys([override], CONF_DIR)
    cfg, _ = resolve(compose([override]))
    groups = build_param_groups(cfg.OPTIMIZER, build_model(cfg.MODEL))
    mults = {name: g["lr_mult"] for g in groups for name in g["param_names"]}
    assert {m for n, m in mults.items() if "trunk.layer1." in n} == {0.1}
    assert {m for n, m in mults.items() if "trunk.layer1." not in n} == {1.0}
    with pytest.raises(ConfigError, match=r"custom_keys\.trunk\.layer1\.lr_mul: .*did you mean"):
        check_override_keys(["OPTIMIZER.paramwise.custom_keys={trunk.layer1:{lr_mul:0.1}}"], CONF_DIR)


def test_yaml_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("OPTIMIZER:\n  name: sgd\n  weight_decay: [1e-4\nDATA:\n  TRAIN: {}\n")
    # PyYAML stops at line 4, column 5 (the ':' after DATA), inside the list opened at line 3, column 17
    with pytest.raises(ConfigError, match=re.escape(f"{path}:4:5: got 'DATA:'; allowed: valid YAML (expected ',' or "
                                                    "']', but got ':' while parsing a flow sequence started at "
                                                    "line 3, column 17)")):
        check_experiment_file(path)
    path.write_text("OPTIMIZER:\n\tname: sgd\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2:1: got 'name: sgd'")):
        check_experiment_file(path)


def test_name_lists_that_match_no_parameter_are_said():
    cfg, _ = resolve(compose(["OPTIMIZER.non_regularized_parameters=[pos_embed,layer1]"]))
    model = build_model(cfg.MODEL)
    with pytest.warns(UserWarning, match=r"^OPTIMIZER\.non_regularized_parameters: 'pos_embed' is in no trainable "
                                         r"parameter's name$") as caught:
        build_param_groups(cfg.OPTIMIZER, model)
    assert len([w for w in caught if "non_regularized" in str(w.message)]) == 1  # layer1 matches
    from vissl_lite.optim.build_wrapper import resolve_temp_frozen

    with pytest.raises(ConfigError, match=r"MODEL\.TEMP_FROZEN_PARAMS_ITER_MAP\[0\]\[0\]: got 'prototypes'"):
        resolve_temp_frozen(model, [["prototypes", 10]], "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP")


@pytest.mark.parametrize("override,points_to", [
    ("OPTIMIZER.lr=0.1", "OPTIMIZER.param_schedulers.lr (a schedule, e.g. {name: constant, value: 0.1})"),
    ("OPTIMIZER.type=AdamW", "OPTIMIZER.name (MMEngine's class names are accepted: AdamW)"),
    ("HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER.lr=0.5", "HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER.param_schedulers.lr"),
])
def test_other_libraries_optimizer_keys_point_to_ours(override, points_to):
    with pytest.raises(ConfigError, match=re.escape(f"unknown key; vissl_lite sets it as {points_to}")):
        check_override_keys([override], CONF_DIR)


def test_docs_cite_only_files_in_the_repository():
    """Every link and every repository path the README and docs/ name is a file a user has."""
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    top = ("vissl_lite/", "docs/", "conf/", "scripts/", "tests/")
    for doc in docs:
        text = doc.read_text()
        assert "DESIGN.md" not in text, doc.name
        for target in re.findall(r"\]\(([^)#\s]+)", text):
            if not target.startswith(("http://", "https://")):
                assert (doc.parent / target).exists(), f"{doc.name} links {target}"
        for path in re.findall(r"(?<![\w/.])((?:%s)[\w/.-]+\.(?:py|md|yaml|sh))\b" % "|".join(map(re.escape, top)), text):
            assert (ROOT / path).exists(), f"{doc.name} names {path}"


# ----------------------------------------------------------------------------- registries and methods


def test_one_registry_class_and_a_registered_trunk_passes_validation():
    from vissl_lite.losses import LOSSES
    from vissl_lite.models.heads import HEADS
    from vissl_lite.optim.optimizers import OPTIMIZERS
    from vissl_lite.optim.param_groups import PARAM_GROUP_CONSTRUCTORS

    for table in (LOSSES, HEADS, OPTIMIZERS, PARAM_GROUP_CONSTRUCTORS, TRUNKS, METHODS):
        assert isinstance(table, Registry), table
    assert "AdamW" in OPTIMIZERS and OPTIMIZERS["AdamW"] is OPTIMIZERS["adamw"] and "AdamW" not in list(OPTIMIZERS)
    with pytest.raises(ConfigError, match=r"^MODEL\.TRUNK\.NAME: got 'papercut_trunk'; allowed: one of resnet, "):
        resolve(compose(["MODEL.TRUNK.NAME=papercut_trunk"]))
    if "papercut_trunk" not in TRUNKS:  # a user's trunk reading an existing section
        register_trunk("papercut_trunk", "RESNETS")(TRUNKS["resnet"][0])
    with pytest.raises(ValueError, match="trunk 'papercut_trunk' is already registered"):
        register_trunk("papercut_trunk", "RESNETS")(TRUNKS["resnet"][0])
    cfg, _ = resolve(compose(["MODEL.TRUNK.NAME=papercut_trunk"]))
    assert cfg.MODEL.TRUNK.NAME == "papercut_trunk"


def test_methods_share_one_base_and_load_their_state_at_once():
    """Every method is a Method; a DINO method built with the model takes a checkpoint's state
    straight away (no two-step load), and its schedules are its own."""
    assert all(issubclass(cls, Method) for cls in METHODS.values()) and issubclass(TwoViewMethod, Method)
    cfg, _ = resolve(compose(["config=pretrain/dino/dino_digits"]))
    torch.manual_seed(0)
    model = build_model(cfg.MODEL)
    first = build_method(cfg, model, DistEnv(), steps_per_epoch=4)
    with torch.no_grad():
        for p in first.teacher.parameters():
            p.add_(1.0)
    first.center = torch.full((1, 8), 0.5)
    second = build_method(cfg, model, DistEnv(), steps_per_epoch=4)
    second.load_state_dict(first.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(first.teacher.parameters(), second.teacher.parameters()))
    assert torch.equal(second.center, first.center)
    assert set(second.schedules()) == {"LOSS.dino_loss.momentum", "LOSS.dino_loss.teacher_temp"}
    assert second.schedules()["LOSS.dino_loss.momentum"].total_steps == cfg.OPTIMIZER.num_epochs * 4
    plain = build_method(resolve(compose([]))[0], nn.Linear(1, 1), steps_per_epoch=4)  # SimCLR: the no-op defaults
    assert (plain.schedules(), plain.scalars(3), plain.state_dict()) == ({}, {}, {})
    with pytest.raises(ValueError, match="keeps no state"):
        plain.load_state_dict({"teacher": {}})


def train_data(path: Path):
    """(DATA.TRAIN.DATA_SOURCES, DATA.TRAIN.NUM_SAMPLES) an experiment file leaves, after the
    experiments its defaults list includes (None: the schema's default, digits / unset)."""
    import yaml

    data = yaml.safe_load(path.read_text())
    sources = num_samples = None
    for entry in data.get("defaults") or []:
        if isinstance(entry, str) and entry.startswith("/config/"):
            sources, num_samples = train_data(ROOT / "conf" / f"{entry[1:]}.yaml")
    train = (data.get("DATA") or {}).get("TRAIN") or {}
    return train.get("DATA_SOURCES", sources), train.get("NUM_SAMPLES", num_samples)


def test_every_shipped_recipe_explains_without_its_data(capsys):
    """Each recipe's training split is counted (digits, synthetic) or assumed (DATA.TRAIN.NUM_SAMPLES,
    said in the report); presets leave DATA alone. One ImageNet recipe is explained in full here,
    every recipe by scripts/check_recipes_explain.py."""
    from vissl_lite import api

    root = ROOT / "conf" / "config"
    experiments = [p for p in sorted(root.rglob("*.yaml")) if p.parent.name != "optimization"]
    assert len(experiments) >= 12
    for path in experiments:
        sources, num_samples = train_data(path)
        assert sources in (None, ["digits"], ["synthetic"]) or num_samples, path
    for preset in (root / "optimization").glob("*.yaml"):
        assert "DATA" not in (preset.read_text()), preset
    report = api.explain(api.compose(["config=pretrain/simclr/simclr_resnet50_in1k"]))
    assert report["notes"] == ["DATA.TRAIN.DATA_PATHS: nothing to count yet ([a path] for disk_folder); assuming "
                               "1,281,167 images per epoch (DATA.TRAIN.NUM_SAMPLES)"]
    assert report["steps_per_epoch"] == 1_281_167 // (64 * 64)  # 64 per process, a preview of 8 x 8 processes
    assert "assuming 1,281,167 images" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"^DATA\.TRAIN\.DATA_PATHS: .*or set DATA\.TRAIN\.NUM_SAMPLES to explain"):
        api.explain(api.compose(["config=pretrain/simclr/simclr_resnet50_in1k", "DATA.TRAIN.NUM_SAMPLES=null"]))


def test_a_continue_recipe_explains_before_its_weights_file_is_named():
    """dinov2_vits14_continue freezes the loaded trunk for 2 epochs: explain previews the freeze
    without MODEL.WEIGHTS_INIT.PARAMS_FILE; training refuses it."""
    from vissl_lite import api

    report = api.explain(api.compose(["config=pretrain/dino/dinov2_vits14_continue"]))
    steps_per_epoch = report["steps_per_epoch"]
    assert steps_per_epoch == 1_281_167 // (64 * 16)  # 64 per process, the recipe's 2 x 8 preview
    assert report["total_steps"] == 30 * steps_per_epoch
    from omegaconf import OmegaConf

    from vissl_lite.engine.restore import freeze_trunk_epochs

    weights = OmegaConf.create({"FREEZE_TRUNK_EPOCHS": 2, "PARAMS_FILE": ""})
    with pytest.raises(ConfigError, match=r"^MODEL\.WEIGHTS_INIT\.FREEZE_TRUNK_EPOCHS: got 2"):
        freeze_trunk_epochs(None, None, weights, steps_per_epoch=10)  # training: a file is required


def test_the_converters_preview_runs_before_the_data_is_there(tmp_path, cli_in_process):
    """vissl-lite-convert's printed preview command, on a VISSL ImageNet recipe, with no data."""
    from vissl_lite.convert.converter import convert, preview_command

    result = convert([str(ROOT / "tests" / "vissl_configs" / "simclr_8node.yaml")])
    assert "DATA.TRAIN.DATASET_NAMES: [imagenet1k_folder] -> DATA.TRAIN.NUM_SAMPLES: 1281167" in \
        result.report.format(result.numbers)
    written = tmp_path / "mine" / "config" / "simclr.yaml"
    written.parent.mkdir(parents=True)
    written.write_text(result.text)
    preview = preview_command(written).split()
    assert preview[:2] == ["python", "run.py"]
    status, output = cli_in_process(*preview[2:])
    assert status == 0, output
    assert "100 epochs x 312 steps" in output and "assuming 1,281,167 images per epoch" in output

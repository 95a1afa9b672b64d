"""conf/defaults.yaml documents exactly the schema; composition, presets and sweeps work."""

import re
from pathlib import Path

from omegaconf import OmegaConf

from vissl_lite.config.load import CONF_DIR, compose, resolve
from vissl_lite.config.schema import VisslLiteConfig


def test_defaults_yaml_is_the_schema_key_by_key():
    documented = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "defaults.yaml"))
    documented.pop("defaults")
    documented.pop("hydra")
    assert documented == OmegaConf.to_container(OmegaConf.structured(VisslLiteConfig))


def test_every_key_line_has_a_comment():
    # Blocks that repeat another block's keys share its comments: the optional schedules repeat
    # `lr`, DATA.TEST repeats DATA.TRAIN.
    repeats = {(4, "lr_head"), (4, "weight_decay"), (4, "weight_decay_head"), (4, "momentum"), (2, "TEST")}
    skip_below = None
    for line in (CONF_DIR / "defaults.yaml").read_text().splitlines():
        key = re.match(r"^( *)([A-Za-z_]\w*):", line)
        if not key:
            continue
        indent = len(key.group(1))
        if skip_below is not None and indent > skip_below:
            continue
        skip_below = indent if (indent, key.group(2)) in repeats else None
        assert "#" in line or line.rstrip().endswith(":"), f"undocumented: {line}"


def test_experiments_validate():
    for path in sorted((CONF_DIR / "config").rglob("*.yaml")):
        name = str(path.relative_to(CONF_DIR / "config").with_suffix(""))
        override = f"+config/optimization={Path(name).name}" if name.startswith("optimization/") else f"config={name}"
        cfg, inferred = resolve(compose([override]))
        assert cfg.OPTIMIZER.num_epochs > 0 and inferred.global_batch_size > 0, name


def test_preset_merges_and_head_defaults_follow(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg, _ = resolve(compose(["+config/optimization=adamw_cosine"]))
    assert cfg.OPTIMIZER.name == "adamw" and cfg.OPTIMIZER.weight_decay == 0.05
    assert cfg.OPTIMIZER.head_optimizer_params.weight_decay == 0.05  # follows weight_decay
    assert cfg.OPTIMIZER.param_schedulers.lr_head == cfg.OPTIMIZER.param_schedulers.lr


def test_world_size_comes_from_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    _, inferred = resolve(compose(["DISTRIBUTED.NUM_PROC_PER_NODE=8"]))
    assert inferred.world_size == 4 and inferred.global_batch_size == 4 * 256
    assert "but the world size is 4" in inferred.notes[0]


def test_cli_explain_and_sweep(cli, tmp_path):
    result = cli("engine_name=explain", "+config/optimization=lars_multistep")
    assert result.returncode == 0, result.stderr
    assert "parameter groups:" in result.stdout and "sgd" not in result.stdout.split("\n")[0]
    # one folder per experiment and set of overrides
    run_dir = tmp_path / "outputs/pretrain/simclr/simclr_digits/+config/optimization=lars_multistep,engine_name=explain"
    assert (run_dir / "explain.json").exists() and (run_dir / "schedule.png").exists()
    sweep = cli("-m", "engine_name=explain", "OPTIMIZER.weight_decay=1e-4,1e-5")
    assert sweep.returncode == 0, sweep.stderr
    assert len(list((tmp_path / "multirun").glob("*/*/*/explain.json"))) == 2

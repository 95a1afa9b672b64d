"""The schema is the single source of keys, defaults and docs; composition, presets, sweeps."""

from pathlib import Path

from omegaconf import OmegaConf

from vissl_lite.config.load import CONF_DIR, compose, resolve
from vissl_lite.config.reference import rows, render
from vissl_lite.config.schema import VisslLiteConfig

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_is_current():
    # docs/config_reference.md is generated from the schema; regenerate it when this fails:
    #   python -m vissl_lite.config.reference -o docs/config_reference.md
    assert (ROOT / "docs/config_reference.md").read_text() == render()


def test_every_key_is_documented():
    undocumented = [key for key, _, allowed, doc in rows() if allowed != "section" and not doc.strip()]
    assert undocumented == []


def test_composed_defaults_are_the_schema_defaults():
    # The schema is the one source: composition with no experiment file gives its values.
    composed = OmegaConf.to_container(compose(["~config"]))
    assert composed == OmegaConf.to_container(OmegaConf.structured(VisslLiteConfig))


def test_experiments_validate():
    for path in sorted((CONF_DIR / "config").rglob("*.yaml")):
        name = str(path.relative_to(CONF_DIR / "config").with_suffix(""))
        override = f"+config/optimization={Path(name).name}" if name.startswith("optimization/") else f"config={name}"
        cfg, inferred = resolve(compose([override, "engine_name=explain"]))  # no data or checkpoint needed
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

"""`pip install .` (not editable) gives a `vissl-lite` that works from any directory, with the
config tree as package data and users' own experiment folders on hydra.searchpath."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

USER_EXPERIMENT = """# @package _global_
defaults:
  - /config/pretrain/simclr/simclr_digits
  - _self_
OPTIMIZER:
  num_epochs: 7
  weight_decay: 0.0003
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    # --no-deps: torch and friends are already here; --target keeps the install out of this env.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, timeout=300)
    return target


def run_installed(target, cwd, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PYTHONPATH"] = str(target)  # the installed copy, not the checkout
    return subprocess.run([sys.executable, str(target / "bin" / "vissl-lite"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_installed_command_runs_from_any_directory(installed, tmp_path):
    where = subprocess.run([sys.executable, "-c", "import vissl_lite; print(vissl_lite.__file__)"], cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True, text=True)
    assert where.stdout.startswith(str(installed))  # the installed copy, not the checkout
    conf = installed / "vissl_lite" / "conf"
    assert (conf / "defaults.yaml").is_file() and (conf / "config/pretrain/simclr/simclr_digits.yaml").is_file()
    result = run_installed(installed, tmp_path, "engine_name=explain")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "outputs/pretrain/simclr/simclr_digits/engine_name=explain/explain.json").is_file()


def test_users_experiment_folder_on_the_search_path(installed, tmp_path):
    (tmp_path / "mine/config/lab").mkdir(parents=True)
    (tmp_path / "mine/config/lab/short.yaml").write_text(USER_EXPERIMENT)
    result = run_installed(installed, tmp_path, f"hydra.searchpath=[file://{tmp_path / 'mine'}]",
                           "config=lab/short", "engine_name=explain")
    assert result.returncode == 0, result.stderr
    resolved = (tmp_path / "outputs/lab/short").rglob("explain.json")
    assert len(list(resolved)) == 1
    # a misspelt key in the user's file is named with the file
    (tmp_path / "mine/config/lab/bad.yaml").write_text("# @package _global_\nOPTIMIZER:\n  wieght_decay: 0.1\n")
    bad = run_installed(installed, tmp_path, f"hydra.searchpath=[file://{tmp_path / 'mine'}]", "config=lab/bad")
    assert bad.returncode == 2
    assert "OPTIMIZER.wieght_decay" in bad.stderr and "did you mean OPTIMIZER.weight_decay" in bad.stderr
    assert "lab/bad.yaml" in bad.stderr and "Traceback" not in bad.stderr

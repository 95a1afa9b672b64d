#!/usr/bin/env python
"""engine_name=explain of every shipped recipe (conf/config/**) and every optimization preset,
without their data: the ImageNet and folder recipes assume DATA.TRAIN.NUM_SAMPLES images and
say so. Prints the time, optimizer steps and the assumption of each; exits 1 if any fails.

    python scripts/check_recipes_explain.py            # about 2 minutes on 2 busy CPU cores
"""

import contextlib
import io
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vissl_lite import api  # noqa: E402


def shipped_overrides() -> list:
    """config=<experiment> for every experiment, +config/optimization=<preset> for every preset."""
    root = ROOT / "conf" / "config"
    experiments = [f"config={p.relative_to(root).with_suffix('').as_posix()}" for p in sorted(root.rglob("*.yaml"))
                   if p.parent.name != "optimization"]
    presets = [f"+config/optimization={p.stem}" for p in sorted((root / "optimization").glob("*.yaml"))]
    return experiments + presets


def main() -> int:
    failed = 0
    for override in shipped_overrides():
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                report = api.explain(api.compose([override]))
        except Exception as err:  # every failure is listed, then the exit status says so
            failed += 1
            print(f"FAILED  {override}: {type(err).__name__}: {err}")
            continue
        assumed = [n for n in report["notes"] if "NUM_SAMPLES" in n]
        print(f"{time.perf_counter() - start:6.1f} s  {override}: {report['total_steps']} optimizer steps"
              + (f"; {assumed[0]}" if assumed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

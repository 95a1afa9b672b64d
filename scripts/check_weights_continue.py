"""Continue a full simclr_digits run from its own final checkpoint with the trunk frozen for the
first epochs (MODEL.WEIGHTS_INIT.FREEZE_TRUNK_EPOCHS) and check what the README promises: kNN
within 0.5 point of the source run's during the frozen epochs, and the trunk bit for bit the
source's (weights and BatchNorm statistics) when they end. tests/test_weights_layouts.py runs a
small case of this; this is the full-size one (100 + 10 epochs, a few minutes on 2 CPU cores).

    python scripts/check_weights_continue.py [--frozen 5] [--epochs 10] [--out /tmp/continue]

Prints JSON: the source kNN, the continued run's kNN per epoch, the largest difference during the
frozen epochs, whether the trunk was unchanged after them, and the verdict.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vissl_lite.config.load import compose, resolve  # noqa: E402
from vissl_lite.engine import checkpoint as ckpt  # noqa: E402
from vissl_lite.engine.train import train  # noqa: E402

COMMON = ["HOOKS.PROGRESS_BAR=false", "HOOKS.KNN_MONITOR.EVAL_PERIOD_EPOCHS=1"]


def knn_by_epoch(run_dir: Path) -> dict:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["epoch"]: r["knn_top1"] for r in records if "knn_top1" in r}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frozen", type=int, default=5, help="FREEZE_TRUNK_EPOCHS of the continued run")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the continued run")
    parser.add_argument("--out", default=None, help="where the two runs go (a temporary folder by default)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="continue_"))

    cfg, inferred = resolve(compose(["config=pretrain/simclr/simclr_digits", "HOOKS.PROGRESS_BAR=false"]))
    source = train(cfg, inferred, str(out / "source"))
    final = out / "source" / "checkpoints" / ckpt.FINAL

    cfg, inferred = resolve(compose(["config=pretrain/simclr/simclr_digits", *COMMON,
                                     f"OPTIMIZER.num_epochs={args.epochs}", "CHECKPOINT.CHECKPOINT_FREQUENCY=1",
                                     "CHECKPOINT.MAX_KEEP=0", f"MODEL.WEIGHTS_INIT.PARAMS_FILE={final}",
                                     f"MODEL.WEIGHTS_INIT.FREEZE_TRUNK_EPOCHS={args.frozen}"]))
    train(cfg, inferred, str(out / "continued"))
    knn = knn_by_epoch(out / "continued")
    worst = max(abs(knn[e] - source["knn_top1"]) for e in range(1, args.frozen + 1))

    before = torch.load(final, weights_only=True)["model"]
    steps_per_epoch = torch.load(final, weights_only=True)["steps_per_epoch"]
    after = torch.load(out / "continued" / "checkpoints" / ckpt.step_file(args.frozen * steps_per_epoch),
                       weights_only=True)["model"]
    unchanged = all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("trunk."))
    report = {"source_knn_top1": source["knn_top1"], "continued_knn_top1_by_epoch": knn,
              "largest_difference_while_frozen_points": 100 * worst, "trunk_unchanged_after_frozen_epochs": unchanged,
              "ok": worst <= 0.005 and unchanged, "runs": str(out)}
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

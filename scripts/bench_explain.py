"""Time of `engine_name=explain` on a long run: 1000 epochs x 5000 optimizer steps (5M steps),
LR in the MMEngine dialect (warmup iterations then a cosine converted to iterations, the
costliest to compile), first alone, then with scheduled weight decay and momentum beside it,
side by side in one process.

    python scripts/bench_explain.py [--epochs 1000] [--steps 5000]

Prints JSON: seconds of each case and their ratio (what each extra scheduled key costs). The
aim: at most 2 s with weight decay and momentum on a quiet machine (explain.json stays small;
the 15 million values go to schedules.npz).
"""

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vissl_lite.config.load import compose, resolve  # noqa: E402
from vissl_lite.engine.explain import explain  # noqa: E402


def overrides(epochs, steps, more_keys):
    lr = ("OPTIMIZER.param_schedulers.lr={name:mmengine,base_value:0.004,schedulers:["
          "{type:LinearLR,start_factor:1.0e-5,by_epoch:false,end:1000},"
          f"{{type:CosineAnnealingLR,eta_min:2.0e-4,begin:{epochs // 2},by_epoch:true,"
          "convert_to_iter_based:true}],auto_lr_scaling:{auto_scale:false}}")
    extra = ["OPTIMIZER.param_schedulers.weight_decay={name:cosine,start_value:0.04,end_value:0.4}",
             "OPTIMIZER.param_schedulers.momentum={name:linear,start_value:0.85,end_value:0.95}"]
    return [lr, *(extra if more_keys else []), f"OPTIMIZER.num_epochs={epochs}",
            "DATA.TRAIN.DATA_SOURCES=[synthetic]", f"DATA.TRAIN.NUM_SAMPLES_SYNTHETIC={steps}",
            "DATA.TRAIN.BATCHSIZE_PER_REPLICA=1", "engine_name=explain"]


def seconds_to_explain(epochs, steps, more_keys):
    cfg, inferred = resolve(compose(overrides(epochs, steps, more_keys)))
    with tempfile.TemporaryDirectory() as run_dir, contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        explain(cfg, inferred, run_dir)
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=5000)
    args = parser.parse_args()
    os.environ.pop("WORLD_SIZE", None)
    seconds_to_explain(2, 10, more_keys=True)  # once small first: torch's and matplotlib's imports are not explain's
    lr_only = seconds_to_explain(args.epochs, args.steps, more_keys=False)
    three = seconds_to_explain(args.epochs, args.steps, more_keys=True)
    print(json.dumps({"total_steps": args.epochs * args.steps, "lr_only_s": round(lr_only, 2),
                      "lr_wd_momentum_s": round(three, 2), "ratio": round(three / lr_only, 2)}, indent=1))


if __name__ == "__main__":
    main()

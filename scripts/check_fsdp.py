"""DISTRIBUTED.STRATEGY=fsdp against ddp, with torchrun x2 on CPU (gloo). One PASS/FAIL line per
check; exit status 1 if any failed.

    python scripts/check_fsdp.py [--epochs 4] [--only losses,memory,sigkill,resume]

  losses   simclr_digits (SGD + LARC) and dino_digits (AdamW, clipping, EMA teacher and center):
           the loss logged at every step under fsdp within 1e-3 relative of ddp's, --epochs epochs.
  memory   parameter + gradient + optimizer bytes per rank for a ViT-S: fsdp <= 0.55 x ddp
           (scripts/fsdp_memory.py).
  sigkill  fsdp x2 dino_digits killed (SIGKILL) after a step checkpoint, then rerun: its final
           checkpoint equals an uninterrupted run's bit for bit (every tensor: model, optimizer,
           teacher, center), and so do the losses logged after the resume.
  resume   that fsdp x2 checkpoint continued for one more epoch by ddp x2 (the same losses as
           fsdp x2 continuing, within 1e-3) and by one process without torchrun; and the ddp x2
           run of `losses` (a single file) continued by fsdp x2, as ddp x2 continues it.

Takes about 5 minutes on 2 CPU cores (load average 8-13).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from vissl_lite.engine.checkpoint import load_sharded  # noqa: E402

QUIET = ["HOOKS.PROGRESS_BAR=false", "HOOKS.LOG_FREQUENCY=1", "HOOKS.KNN_MONITOR.ENABLED=false"]
FAILED = []


def report(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        FAILED.append(name)


def start(run_dir: Path, *overrides, nproc: int = 2) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    launcher = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
                                   if nproc > 1 else [])
    log = open(f"{run_dir}.log", "w")
    proc = subprocess.Popen([*launcher, str(ROOT / "run.py"), *QUIET, *overrides, f"hydra.run.dir={run_dir}"],
                            cwd=run_dir.parent, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = Path(f"{run_dir}.log")
    return proc


def finish(proc: subprocess.Popen) -> str:
    proc.wait(timeout=1200)
    out = proc.log_path.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{proc.args} failed:\n{out[-3000:]}")
    return out


def losses(run_dir: Path) -> dict:
    rows = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def max_relative_difference(a: dict, b: dict) -> float:
    if a.keys() != b.keys():
        return float("inf")
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in a)


def check_losses(tmp: Path, epochs: int) -> None:
    for config in ("pretrain/simclr/simclr_digits", "pretrain/dino/dino_digits"):
        name = config.rsplit("/", 1)[1]
        common = [f"config={config}", f"OPTIMIZER.num_epochs={epochs}"]
        runs = {s: start(tmp / f"{name}_{s}", *common, f"DISTRIBUTED.STRATEGY={s}") for s in ("ddp", "fsdp")}
        for proc in runs.values():
            finish(proc)
        ddp, fsdp = losses(tmp / f"{name}_ddp"), losses(tmp / f"{name}_fsdp")
        diff = max_relative_difference(fsdp, ddp)
        report(f"losses {name}", diff <= 1e-3 and len(ddp) > 0,
               f"{len(ddp)} steps over {epochs} epochs, max relative difference fsdp vs ddp {diff:.2e} (<= 1e-3)")


def check_memory() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(ROOT / "scripts" / "fsdp_memory.py")], capture_output=True, text=True, env=env,
                         timeout=600)
    line = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if not line:
        report("memory vit_small", False, out.stdout[-500:] + out.stderr[-1500:])
        return
    result = json.loads(line[-1])
    report("memory vit_small", result["ratio"] <= 0.55,
           "parameters + gradients + AdamW state per rank: "
           f"ddp {result['ddp_bytes_per_rank']['total'] / 2**20:.1f} MiB, "
           f"fsdp {result['fsdp_max_total_over_ranks'] / 2**20:.1f} MiB, ratio {result['ratio']:.4f} (<= 0.55)")


DINO = ["config=pretrain/dino/dino_digits", "DISTRIBUTED.STRATEGY=fsdp", "CHECKPOINT.CHECKPOINT_FREQUENCY=1"]


def kill_after(proc: subprocess.Popen, run_dir: Path, steps: int) -> int:
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= steps):
        time.sleep(0.01)
    # torchrun starts its workers in sessions of their own: SIGKILL every process of the tree.
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    return metrics.read_text().count("\n")


def descendants(pid: int) -> list:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [d for child in map(int, children) for d in (*descendants(child), child)]


def tensors(tree, where=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from tensors(v, where + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from tensors(v, where + (i,))
    elif isinstance(tree, torch.Tensor):
        yield ".".join(map(str, where)), tree


def check_sigkill(tmp: Path, epochs: int) -> None:
    reference = start(tmp / "reference", *DINO, f"OPTIMIZER.num_epochs={epochs}")
    finish(reference)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    killed_dir = tmp / "killed"
    log = open(f"{killed_dir}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(ROOT / "run.py"), *QUIET, *DINO, f"OPTIMIZER.num_epochs={epochs}",
                             f"hydra.run.dir={killed_dir}"], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    steps_at_kill = kill_after(proc, killed_dir, 3)
    os.replace(f"{killed_dir}.log", f"{killed_dir}.killed.log")
    rerun = finish(start(killed_dir, *DINO, f"OPTIMIZER.num_epochs={epochs}"))
    resumed_at = [line for line in rerun.splitlines() if "resumed from" in line and "model_final" not in line]
    a = dict(tensors(load_sharded(tmp / "reference" / "checkpoints" / "model_final.dcp", alone=True)))
    b = dict(tensors(load_sharded(killed_dir / "checkpoints" / "model_final.dcp", alone=True)))
    unequal = sorted(k for k in a if k not in b or not torch.equal(a[k], b[k]))
    logged_a, logged_b = losses(tmp / "reference"), losses(killed_dir)
    same_losses = all(logged_a[k] == v for k, v in logged_b.items())
    resumed = resumed_at[0].split(" - ")[-1] if resumed_at else "no resume from a step checkpoint"
    differing = f"{len(unequal)} differ" + (f": {', '.join(unequal[:4])}" if unequal else "")
    report("sigkill fsdp x2", bool(resumed_at) and not unequal and a.keys() == b.keys() and same_losses,
           f"killed after {steps_at_kill} logged steps; {resumed}; {len(a)} tensors in the final checkpoint, "
           f"{differing}; losses after the resume {'equal' if same_losses else 'differ'}")


def check_resume(tmp: Path, epochs: int) -> None:
    more = f"OPTIMIZER.num_epochs={epochs + 1}"
    runs = {}
    for name, strategy, nproc in (("fsdp_x2", "fsdp", 2), ("ddp_x2", "ddp", 2), ("one_process", "ddp", 1)):
        shutil.copytree(tmp / "reference", tmp / name)
        (tmp / name / "metrics.jsonl").write_text("")
        runs[name] = (start(tmp / name, *DINO[:1], f"DISTRIBUTED.STRATEGY={strategy}", more, nproc=nproc), nproc)
    outs = {name: finish(proc) for name, (proc, _) in runs.items()}
    for name, out in outs.items():
        ok = "resumed from" in out and "model_final.dcp" in out
        report(f"resume {name}", ok and bool(losses(tmp / name)),
               f"continued the fsdp x2 checkpoint to epoch {epochs + 1}: "
               f"{len(losses(tmp / name))} steps, last loss {list(losses(tmp / name).values())[-1]:.4f}")
    diff = max_relative_difference(losses(tmp / "ddp_x2"), losses(tmp / "fsdp_x2"))
    report("resume ddp x2 = fsdp x2", diff <= 1e-3, f"max relative difference of the continued losses {diff:.2e}")


def check_ddp_to_fsdp(tmp: Path, epochs: int) -> None:
    """The ddp x2 dino_digits run of check_losses (a single-file checkpoint) continued for one
    more epoch under fsdp x2 and under ddp x2: the same losses."""
    more = [f"OPTIMIZER.num_epochs={epochs + 1}", "config=pretrain/dino/dino_digits"]
    runs = {}
    for strategy in ("fsdp", "ddp"):
        shutil.copytree(tmp / "dino_digits_ddp", tmp / f"file_to_{strategy}")
        (tmp / f"file_to_{strategy}" / "metrics.jsonl").write_text("")
        runs[strategy] = start(tmp / f"file_to_{strategy}", *more, f"DISTRIBUTED.STRATEGY={strategy}")
    outs = {strategy: finish(proc) for strategy, proc in runs.items()}
    diff = max_relative_difference(losses(tmp / "file_to_fsdp"), losses(tmp / "file_to_ddp"))
    report("resume ddp file -> fsdp x2", "model_final.torch at optimizer step" in outs["fsdp"] and diff <= 1e-3,
           f"continued to epoch {epochs + 1}: max relative difference from ddp x2 continuing {diff:.2e}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--only", default="memory,losses,sigkill,resume")
    args = parser.parse_args()
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        checks = [("memory", check_memory, ()), ("losses", check_losses, (tmp, args.epochs)),
                  # 2 steps per epoch, a checkpoint every epoch: killed mid-run
                  ("sigkill", check_sigkill, (tmp, args.epochs)), ("resume", check_resume, (tmp, args.epochs)),
                  ("ddp_to_fsdp", check_ddp_to_fsdp, (tmp, args.epochs))]
        for name, check, arguments in checks:
            # resume continues sigkill's reference run, ddp_to_fsdp the ddp run of losses
            if name in only or (name == "sigkill" and "resume" in only) or (
                    name == "ddp_to_fsdp" and "losses" in only):
                try:
                    check(*arguments)
                except RuntimeError as err:  # a run that failed: its output's end
                    report(name, False, str(err)[-1500:])
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()

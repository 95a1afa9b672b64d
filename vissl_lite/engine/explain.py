"""engine_name=explain: build the model and optimizer, read no data, and show the parameter
groups, the LR scaling and every schedule over the whole run, the method's own (DINO's teacher
momentum and temperature, keyed by their config path) included.

Writes <run dir>/explain.json (the summary), <run dir>/schedules.npz (one float64 array per
schedule, a value per optimizer step; `numpy.load(path)[key]`) and <run dir>/schedule.png.
Schedules are evaluated for all steps at once (numpy): 5 million steps of LR, weight decay and
momentum take about a second (scripts/bench_explain.py).
"""

import json
import logging
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..config.infer import Inferred
from ..config.plain import plain
from ..data.build import count_samples, micro_batches_per_epoch
from ..errors import ConfigError
from ..models import build_model
from ..optim.build_wrapper import build_optim_wrapper
from .method import build_method
from .restore import freeze_trunk_epochs

log = logging.getLogger(__name__)

PERCENTS = (0, 25, 50, 75, 100)
SCHEDULES_FILE = "schedules.npz"


def train_samples(train) -> Tuple[int, Optional[str]]:
    """(images per epoch, None) counted from the data, or, while the data cannot be counted
    (not downloaded yet), (DATA.TRAIN.NUM_SAMPLES, a note saying it was assumed)."""
    try:
        return count_samples(train, "TRAIN"), None
    except ConfigError as err:
        if train.NUM_SAMPLES is None:
            raise ConfigError(err.key, err.got, err.allowed,
                              "or set DATA.TRAIN.NUM_SAMPLES to explain without the data") from None
        n = train.NUM_SAMPLES if train.DATA_LIMIT < 0 else min(train.NUM_SAMPLES, train.DATA_LIMIT)
        return n, f"{err.key}: nothing to count yet ({err.allowed}); assuming {n:,} images per epoch (DATA.TRAIN.NUM_SAMPLES)"


def steps_per_epoch(cfg, world_size: int, num_samples: Optional[int] = None) -> int:
    """Optimizer steps per epoch: this rank's micro-batches // accumulation steps (of
    `num_samples` images, counted when not given)."""
    train = cfg.DATA.TRAIN
    num_samples = train_samples(train)[0] if num_samples is None else num_samples
    micro = micro_batches_per_epoch(num_samples, world_size, train.BATCHSIZE_PER_REPLICA,
                                    train.DROP_LAST, "DATA.TRAIN.BATCHSIZE_PER_REPLICA")
    steps = micro // cfg.OPTIMIZER.accumulation_steps
    if steps == 0:
        raise ConfigError("OPTIMIZER.accumulation_steps", cfg.OPTIMIZER.accumulation_steps,
                          f"at most {micro}, the micro-batches per epoch")
    return steps


def explain(cfg, inferred: Inferred, run_dir: str) -> dict:
    """Print the run's groups, LR scaling and schedules and write explain.json, schedules.npz and
    schedule.png to `run_dir`. Returns explain.json's content, its "schedules" the arrays."""
    model = build_model(cfg.MODEL)
    num_samples, assumed = train_samples(cfg.DATA.TRAIN)
    per_epoch = steps_per_epoch(cfg, inferred.world_size, num_samples)
    # The trainer's own builder: groups, LARC, schedules and the temporarily frozen parameters.
    wrapper = build_optim_wrapper(cfg.OPTIMIZER, model, per_epoch,
                                  non_trainable_params=cfg.MODEL.NON_TRAINABLE_PARAMS,
                                  temp_frozen_params=cfg.MODEL.TEMP_FROZEN_PARAMS_ITER_MAP,
                                  schedules=inferred.schedules.get("OPTIMIZER"))
    freeze_trunk_epochs(wrapper, model.trunk, cfg.MODEL.WEIGHTS_INIT, per_epoch, preview=True)
    optimizer, scheduler = wrapper.optimizer, wrapper.scheduler
    steps = np.arange(scheduler.total_steps)
    used = {g["lr_schedule"] for g in optimizer.param_groups}
    used |= {g["wd_schedule"] for g in optimizer.param_groups if g["regularized"]} | {"momentum"}
    series = {key: scheduler.schedule_values(key, steps) for key in scheduler.schedules if key in used}
    method = build_method(cfg, model, steps_per_epoch=per_epoch)  # one process: explain runs no collective
    method_series = {key: s.values(steps) for key, s in method.schedules().items()}
    series.update(method_series)
    plotted = plotted_steps(scheduler.total_steps)
    sampled = {key: values[plotted] for key, values in series.items()}
    groups = group_reports(optimizer, scheduler, series, sampled, bool(cfg.OPTIMIZER.use_larc))

    report = {
        "world_size": inferred.world_size,
        "world_size_source": inferred.world_size_source,
        "global_batch_size": inferred.global_batch_size,
        "num_epochs": scheduler.num_epochs,
        "steps_per_epoch": per_epoch,
        "total_steps": scheduler.total_steps,
        "optimizer": cfg.OPTIMIZER.name + (" + LARC" if cfg.OPTIMIZER.use_larc else ""),
        "lr_scaling": [
            {"key": r.key, "factor": r.factor, "scaled_peak": r.scaled,
             "changes": [{"key": k, "before": b, "after": a} for k, b, a in r.changes]}
            for r in inferred.scaling
        ],
        "notes": inferred.notes + ([assumed] if assumed else []),
        "schedule_summary": {key: summarize(values, per_epoch) for key, values in series.items()},
        # A converted VISSL experiment's differences in numbers (vissl-lite-convert), shown beside the schedules.
        "converted_from_vissl": plain(cfg.CONVERTED_FROM_VISSL) if cfg.CONVERTED_FROM_VISSL.source else None,
        "groups": [{k: v for k, v in g.items() if not k.startswith("_")} for g in groups],
        "temp_frozen": temp_frozen_report(model, wrapper.temp_frozen, per_epoch),
        # Per optimizer step k: group lr = schedules[lr_schedule][k] * lr_mult; group weight
        # decay = schedules[wd_schedule][k] * decay_mult, or weight_decay_start when wd_schedule
        # is null or unscheduled. One array per schedule: in schedules.npz beside explain.json,
        # which lists their keys.
        "schedules_file": SCHEDULES_FILE,
        "schedules": series,
    }
    scalars = {key: sampled[key] for key in ["momentum"] * ("momentum" in sampled) + list(method_series)}
    print(format_report(report, inferred))
    write_outputs(Path(run_dir), report, groups, scalars, plotted, per_epoch)
    return report


def group_reports(optimizer, scheduler, series: dict, sampled: dict, larc: bool) -> list:
    """Each group's summary, and its LR and weight decay at the plotted steps (`_lr`, `_wd`). A
    group's value is its schedule's times a multiplier >= 0, so its peak is the schedule's times it."""
    groups = []
    for group in optimizer.param_groups:
        values = scheduler.values_from(group, sampled)
        lr = values["lr"]
        wd = values["weight_decay"]
        wd = np.full(len(lr), group["weight_decay"]) if wd is None else wd
        groups.append({
            "name": group["name"],
            "num_tensors": len(group["params"]),
            "num_parameters": int(sum(p.numel() for p in group["params"])),
            "param_names": list(group["param_names"]),
            "lr_schedule": group["lr_schedule"], "lr_mult": group["lr_mult"],
            "wd_schedule": group["wd_schedule"] if group["regularized"] else None,
            "decay_mult": group["decay_mult"], "regularized": group["regularized"],
            "larc": larc,
            "lr_start": float(lr[0]), "lr_peak": float(series[group["lr_schedule"]].max()) * group["lr_mult"],
            "lr_final": float(lr[-1]),
            "weight_decay_start": float(wd[0]), "weight_decay_final": float(wd[-1]),
            "_lr": lr, "_wd": wd,
        })
    return groups


def write_outputs(out: Path, report: dict, groups: list, scalars: dict, plotted, per_epoch: int) -> None:
    """explain.json (the summary, naming the arrays), schedules.npz (the arrays), schedule.png."""
    out.mkdir(parents=True, exist_ok=True)
    series = report["schedules"]
    (out / "explain.json").write_text(json.dumps({**report, "schedules": list(series)}))
    np.savez(out / SCHEDULES_FILE, **series)
    plot_schedules(groups, scalars, plotted, per_epoch, report["num_epochs"], out / "schedule.png")
    print(f"\nwrote {out / 'explain.json'}, {out / SCHEDULES_FILE} and {out / 'schedule.png'}")


def temp_frozen_report(model, temp_frozen, per_epoch: int) -> list:
    """MODEL.TEMP_FROZEN_PARAMS_ITER_MAP resolved: which parameters stay still (no update, no
    weight decay) for optimizer steps 0 .. until_step - 1."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [{"param_names": [names[id(p)] for p in params], "until_step": steps,
             "until_epoch": round(steps / per_epoch, 3)} for params, steps in temp_frozen]


def summarize(values: np.ndarray, per_epoch: int) -> dict:
    peak_step = int(np.argmax(values))
    last = len(values) - 1
    return {
        "start": float(values[0]),
        "peak": float(values[peak_step]),
        "peak_step": peak_step,
        # The warmup ends where the peak is first reached, when that is not the first step.
        "warmup_end_step": peak_step if peak_step > 0 else None,
        "warmup_end_epoch": round(peak_step / per_epoch, 3) if peak_step > 0 else None,
        "final": float(values[-1]),
        "at_percent": {str(p): float(values[round(last * p / 100)]) for p in PERCENTS},
    }


def format_report(report: dict, inferred: Inferred) -> str:
    lines = [
        f"optimizer: {report['optimizer']}   world size {report['world_size']} ({report['world_size_source']})   "
        f"global batch {report['global_batch_size']}   {report['num_epochs']} epochs x "
        f"{report['steps_per_epoch']} steps = {report['total_steps']} optimizer steps",
        "",
        "parameter groups:",
    ]
    header = ("name", "tensors", "params", "lr start", "lr peak", "wd", "LARC")
    rows = [(g["name"], str(g["num_tensors"]), f"{g['num_parameters']:,}", f"{g['lr_start']:.6g}", f"{g['lr_peak']:.6g}",
             f"{g['weight_decay_start']:.3g}", "on" if g["larc"] else "off") for g in report["groups"]]
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    if report["temp_frozen"]:
        lines += ["", "temporarily frozen (MODEL.TEMP_FROZEN_PARAMS_ITER_MAP: no update, no weight decay):"]
        lines += [f"  {', '.join(f['param_names'])}: optimizer steps 0-{f['until_step'] - 1}, moving from step "
                  f"{f['until_step']} (epoch {f['until_epoch']:g})" for f in report["temp_frozen"]]
    lines += ["", "LR scaling:"]
    lines += ["  " + line for r in inferred.scaling for line in r.lines()] or ["  off (auto_lr_scaling.auto_scale false)"]
    lines += ["  note: " + n for n in report["notes"]]
    lines += ["", "schedules:"]
    for key, s in report["schedule_summary"].items():
        warm = f"warmup ends at step {s['warmup_end_step']} (epoch {s['warmup_end_epoch']})" if s["warmup_end_step"] else "no warmup"
        at = ", ".join(f"{p}%: {v:.6g}" for p, v in s["at_percent"].items())
        lines.append(f"  {key}: start {s['start']:.6g}, peak {s['peak']:.6g} at step {s['peak_step']}, "
                     f"final {s['final']:.6g}; {warm}")
        lines.append(f"      {at}")
    converted = report.get("converted_from_vissl")
    if converted:
        holds = "VISSL's values" if converted["numbers"] == "vissl" else "vissl_lite's values"
        lines += ["", f"differences from VISSL ({converted['source']}; this run uses {holds}):"]
        lines += [f"  {d['key']}: VISSL {d['vissl']} | vissl_lite {d['vissl_lite']} ({d['reason']})"
                  for d in converted["differences"]] or ["  none: vissl_lite's rules give VISSL's numbers"]
    return "\n".join(lines)


def plotted_steps(total: int, max_points: int = 4000) -> np.ndarray:
    """At most `max_points` optimizer steps spread over the run, the first and the last included."""
    return np.unique(np.linspace(0, total - 1, min(total, max_points)).round().astype(np.int64))


def plot_schedules(groups, scalars, idx: np.ndarray, per_epoch: int, num_epochs: int, path: Path) -> None:
    """LR and weight decay per group, then one panel per entry of `scalars` {label: values}, all
    given at the optimizer steps `idx`."""
    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib.pyplot as plt

    panels = [("learning rate", "_lr"), ("weight decay", "_wd")]
    fig, axes = plt.subplots(len(panels) + len(scalars), 1, figsize=(9, 2.4 * (len(panels) + len(scalars))),
                             sharex=True)
    for ax, (title, key) in zip(axes, panels):
        for g in groups:
            ax.plot(idx, g[key], label=g["name"], linewidth=1.2)
        ax.set_ylabel(title)
    for ax, (label, values) in zip(axes[len(panels):], scalars.items()):
        ax.plot(idx, values, color="black", linewidth=1.2)
        ax.set_ylabel(label.split(".", 1)[-1])  # LOSS.dino_loss.momentum -> dino_loss.momentum
    every = max(1, num_epochs // 100)  # at most ~100 boundary lines
    boundaries = np.arange(every, num_epochs, every) * per_epoch
    for ax in axes:  # one collection per panel: 100 separate lines cost seconds
        ax.vlines(boundaries, 0, 1, transform=ax.get_xaxis_transform(), colors="0.85", linewidths=0.5, zorder=0)
    axes[0].legend(fontsize=8)
    axes[-1].set_xlabel(f"optimizer step ({per_epoch} per epoch; grey lines: epoch boundaries)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

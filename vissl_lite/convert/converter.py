"""One conversion: VISSL file(s) -> table walk -> checks -> differences -> (VISSL's numbers) ->
the experiment's text, validated as `python run.py config=...` would validate it."""

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

from omegaconf import OmegaConf

from ..config.load import compose, resolve
from ..config.overrides import check_experiment_file
from ..config.validate import validate_config
from ..errors import ConfigError
from ..models import build_model
from ..optim.build_wrapper import resolve_temp_frozen
from . import differences as diff
from .report import Report, show
from .rules import Conversion, walk
from .table import ADDED, OUTSIDE_CONFIG, SECTION_ORDER, TABLE, VISSL_DEFAULTS
from .vissl_groups import vissl_places
from .vissl_lr import PlannedRun
from .yaml_style import dump


class NotVissl(ValueError):
    """An input that is not a VISSL config file (unreadable, or no `config:` root)."""


@dataclass
class Result:
    report: Report
    numbers: str  # "vissl_lite" or "vissl": whose values the text holds where the two differ
    text: Optional[str]  # the experiment YAML; None when refused


def load_vissl(paths: Sequence[str]) -> Tuple[dict, dict]:
    """(VISSL's `config:` mappings of `paths` merged in order, as VISSL's +config/... overlays
    merge: a later file's keys win, lists are replaced; the keys beside `config:`)."""
    merged, beside = {}, {}
    for path in paths:
        try:
            data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        except Exception as err:  # a missing file or a YAML syntax error: say which
            raise NotVissl(f"{path}: {str(err).splitlines()[0]}") from None
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            raise NotVissl(f"{path}: not a VISSL config (no `config:` root)")
        _merge(merged, data.pop("config"))
        _merge(beside, data)
    return merged, beside


def _merge(into: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


_ABSENT = object()


def _set(source: dict, path: str, value) -> None:
    node = source
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def walk_config(source: dict, report: Report) -> Conversion:
    """Walk VISSL's config through the table, VISSL's defaults written out where they matter."""
    conv = Conversion(source, report)
    for key, default, applies in VISSL_DEFAULTS:
        if conv.get(key, _ABSENT) is _ABSENT and applies(conv):
            _set(source, key, copy.deepcopy(default))
            conv.carried.add(key)
    order = [s for s in SECTION_ORDER if s in source] + [s for s in source if s not in SECTION_ORDER]
    for section in order:
        walk(conv, TABLE, source[section], section)
    for key, value, why in ADDED:
        conv.add(key, value, why)
    return conv


def convert(paths: Sequence[str], vissl_numbers: bool = False) -> Result:
    """Convert VISSL file(s) (later ones overlay earlier ones). `vissl_numbers`: where VISSL's
    rules and vissl_lite's give other values, write VISSL's. Raises NotVissl."""
    source, beside = load_vissl(paths)
    report = Report([str(p) for p in paths])
    numbers = "vissl" if vissl_numbers else "vissl_lite"
    for key, value in beside.items():
        report.add("dropped", key, f"{show(value)} ({OUTSIDE_CONFIG})")
    conv = walk_config(copy.deepcopy(source), report)
    if report.refused:
        return Result(report, numbers, None)
    experiment = conv.out
    try:
        cfg, model = _checked(experiment)
        experiment["OPTIMIZER"] = _with_differences(experiment.get("OPTIMIZER", {}), cfg, model, report,
                                                    vissl_numbers)
    except ConfigError as err:
        report.add("refused", err.key, str(err).split(": ", 1)[-1])
        return Result(report, numbers, None)
    experiment["CONVERTED_FROM_VISSL"] = {"source": ", ".join(report.sources), "numbers": numbers,
                                          "differences": [d.as_config() for d in report.differences]}
    text = render(experiment, report, numbers)
    try:
        validate_text(text)
    except ConfigError as err:
        report.add("refused", err.key, f"the converted file does not validate: {err}")
        return Result(report, numbers, None)
    return Result(report, numbers, text)


def _checked(experiment: dict):
    """The validated config and its model (ConfigError for what vissl_lite refuses)."""
    cfg = validate_config({**copy.deepcopy(experiment), "engine_name": "explain"})
    model = build_model(cfg.MODEL)
    resolve_temp_frozen(model, OmegaConf.to_container(cfg.MODEL.TEMP_FROZEN_PARAMS_ITER_MAP),
                        "MODEL.TEMP_FROZEN_PARAMS_ITER_MAP")
    return cfg, model


def _with_differences(opt: dict, cfg, model, report: Report, vissl_numbers: bool) -> dict:
    """Record every difference in numbers; with `vissl_numbers`, the OPTIMIZER section that
    gives VISSL's numbers instead. `cfg` is the validated config of the converted file, which
    holds the world VISSL's rules read (VISSL's defaults written out)."""
    run = PlannedRun(cfg.DATA.TRAIN.BATCHSIZE_PER_REPLICA, cfg.DISTRIBUTED.NUM_NODES, cfg.DISTRIBUTED.NUM_PROC_PER_NODE)
    out = copy.deepcopy(opt)
    for key, found, vissl in diff.schedule_differences(opt, run):
        report.differences += found
        if vissl_numbers and found and vissl is not None:
            name = key.rsplit(".", 1)[1]
            out["param_schedulers"][name] = diff.vissl_numbers_schedule(vissl)
            report.add("translated", "--vissl-numbers", f"{key}: VISSL's resolved values, auto scaling off (they "
                                                        f"hold for {run.num_nodes} x {run.procs_per_node} processes "
                                                        f"of {run.batch_per_replica} images)")
    non_trainable = list(cfg.MODEL.NON_TRAINABLE_PARAMS)
    trunk = cfg.MODEL.TRUNK.NAME
    vissl = vissl_places(model, opt, trunk, non_trainable)
    found = diff.group_differences(vissl, diff.groups_for(opt, model, non_trainable, cfg.OPTIMIZER), opt, opt)
    if found:
        regrouped, notes = diff.vissl_numbers_groups(out, opt, vissl, model, non_trainable, cfg.OPTIMIZER)
        left = set(diff.differing(vissl, diff.groups_for(regrouped, model, non_trainable, cfg.OPTIMIZER), opt,
                                  regrouped))
        for difference, names in found:
            difference.reproducible = not left.intersection(names)
            report.differences.append(difference)
        if vissl_numbers:
            out = regrouped
            for note in notes:
                report.add("translated", "--vissl-numbers", note)
    return out


# The order of vissl_lite's top-level sections in the written file (the schema's).
TOP_LEVEL = ("engine_name", "SEED_VALUE", "OPTIMIZER", "DATA", "MODEL", "LOSS", "HOOKS", "CHECKPOINT", "DISTRIBUTED",
             "MACHINE", "CONVERTED_FROM_VISSL")


def render(experiment: dict, report: Report, numbers: str) -> str:
    ordered = {k: experiment[k] for k in TOP_LEVEL if k in experiment}
    ordered.update({k: v for k, v in experiment.items() if k not in ordered})
    header = ["# @package _global_",
              f"# Converted from VISSL by vissl-lite-convert: {', '.join(report.sources)}.",
              "# Its report lists every VISSL key: kept, translated, dropped. CONVERTED_FROM_VISSL below",
              "# holds the differences for engine_name=explain.",
              "#"] + report.comment_block(numbers)
    body = dump(ordered)
    return "\n".join(header) + "\n" + body


def validate_text(text: str) -> None:
    """Compose the text as `python run.py config=<it> engine_name=explain` would, and resolve it
    (validation + inference): ConfigError when vissl_lite would refuse it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config" / "converted.yaml"
        path.parent.mkdir()
        path.write_text(text)
        check_experiment_file(path)
        resolve(compose([f"hydra.searchpath=[file://{tmp}]", "config=converted", "engine_name=explain"]))


def preview_command(output: Path) -> str:
    """How to select the written file with config=... (it must sit under a folder named config)."""
    output = output.resolve()
    for parent in output.parents:
        if parent.name == "config":
            name = output.relative_to(parent).with_suffix("")
            return f"python run.py config={name} hydra.searchpath=[file://{parent.parent}] engine_name=explain"
    return "to select it with config=..., put it under <dir>/config/ and add hydra.searchpath=[file://<dir>]"

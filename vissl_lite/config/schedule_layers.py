"""A schedule section written with its type replaces the one an earlier layer wrote.

Hydra merges every layer (the experiment file, then `+config/...` presets, then command-line
overrides) key by key, so `OPTIMIZER.param_schedulers.lr={name:cosine,...}` over an experiment
whose lr is a composite would keep the composite's `schedulers` and `lengths`, arguments cosine
does not take. A schedule section is a tagged union: a layer that names another type
(`lr={name: cosine, ...}`, or `lr.name=cosine`) starts the section anew; layers that keep the
type still merge key by key (`...lr.base_value=0.3`). Likewise OPTIMIZER.name tags the
per-optimizer keys: `OPTIMIZER.name=adamw` over an experiment that wrote SGD's momentum unsets
it. `restack_schedules` redoes the merge so after composition.
"""

from pathlib import Path
from typing import List, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from .overrides import _search_dirs, find_config_choice
from .validate import schedule_slots


def _file_layers(path: Path, dirs: List[Path]) -> List[tuple]:
    """(top-level key, value) of a config file, after those of the files its defaults list
    names before `_self_` (Hydra's order)."""
    data = OmegaConf.to_container(OmegaConf.load(path))
    before, after, seen_self = [], [], False
    for entry in data.pop("defaults", None) or []:
        if entry == "_self_":
            seen_self = True
        elif isinstance(entry, str) and entry.startswith("/config/"):
            group, _, choice = entry[1:].partition("/")
            (after if seen_self else before).extend(_file_layers(find_config_choice(dirs, group, choice), dirs))
    return before + list(data.items()) + after


def _experiment(parsed, dirs: List[Path]):
    """The experiment file chosen (config=...; conf/defaults.yaml's when unset), or None (~config)."""
    choice = next((o for o in reversed(parsed) if o.key_or_group == "config"), None)
    if choice is not None and choice.is_delete():
        return None
    if choice is None:
        defaults = OmegaConf.to_container(OmegaConf.load(dirs[0] / "defaults.yaml"))["defaults"]
        name = next((d["config"] for d in defaults if isinstance(d, dict) and "config" in d), None)
        return None if name is None else find_config_choice(dirs, "config", name)
    return find_config_choice(dirs, "config", choice.value())


def _layers(overrides: Sequence[str], conf_dir: Path) -> List[tuple]:
    """(dotted key, value) in Hydra's order: the experiment file (after the files it includes),
    each preset file, then each command-line override."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if "=" in o or o.startswith("~")])
    dirs = _search_dirs(parsed, conf_dir)
    experiment = _experiment(parsed, dirs)
    files = _file_layers(experiment, dirs) if experiment is not None else []
    values = []
    for o in parsed:
        key = o.key_or_group
        if key.startswith("config/") and isinstance(o.value(), str):
            files += _file_layers(find_config_choice(dirs, key, o.value()), dirs)
        elif not o.is_delete() and not key.startswith("hydra") and "/" not in key and key != "config":
            values.append((key, o.value()))
    return files + values


def _at(key: str, slot: str, value):
    """The part of a layer (key, value) that falls on `slot`: (whole section or None, sub-key
    update or None)."""
    if key == slot:
        return value, None
    if key.startswith(slot + "."):
        return None, (key[len(slot) + 1:], value)
    if slot.startswith(key + "."):
        for part in slot[len(key) + 1:].split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value, None
    return None, None


def _restacked(layers: List[tuple], slot: str) -> Optional[dict]:
    """The section after every layer, a layer that names another type starting it anew; None
    when no layer changed the type (then Hydra's merge already is the answer)."""
    section, restarted = {}, False
    for key, value in layers:
        whole, update = _at(key, slot, value)
        if isinstance(whole, dict):
            if section and "name" in whole and whole["name"] != section.get("name"):
                section, restarted = {}, True
            section = OmegaConf.to_container(OmegaConf.merge(section, whole))
        elif update is not None:
            if section and update[0] == "name" and update[1] != section.get("name"):
                section, restarted = {}, True
            node = OmegaConf.create(section)
            OmegaConf.update(node, update[0], update[1], merge=True)
            section = OmegaConf.to_container(node)
    return section if restarted else None


def _orphaned_arguments(layers: List[tuple], prefix: str) -> List[str]:
    """Per-optimizer keys written before a layer switched {prefix}.name, and not since, that
    the final optimizer does not take (they belonged to the optimizer before)."""
    from ..optim.optimizers import OPTIMIZER_ARGUMENTS, OPTIMIZERS, OptimInfo

    name, before, since = None, set(), set()
    for key, value in layers:
        new_name, _ = _at(key, f"{prefix}.name", value)
        if isinstance(new_name, str):
            if name is not None and new_name != name:
                before, since = before | since, set()
            name = new_name
        since |= {a for a in OPTIMIZER_ARGUMENTS if _at(key, f"{prefix}.{a}", value)[0] is not None}
    row = OPTIMIZERS.get(name)
    return [a for a in before - since if isinstance(row, OptimInfo) and a not in row.keys]


def restack_schedules(cfg: DictConfig, overrides: Sequence[str], conf_dir: Path) -> None:
    """Redo what Hydra merged where a layer switched a type, in place: a schedule section that a
    layer names anew holds that layer's section plus later changes; per-optimizer keys written
    for an optimizer that a later layer replaced are unset."""
    layers = _layers(overrides, conf_dir)
    for slot, _ in schedule_slots():
        section = _restacked(layers, slot)
        if section is not None:
            OmegaConf.update(cfg, slot, section, merge=False)
    for prefix in ("OPTIMIZER", "HOOKS.ONLINE_LINEAR_PROBE.OPTIMIZER"):
        for argument in _orphaned_arguments(layers, prefix):
            OmegaConf.update(cfg, f"{prefix}.{argument}", None, merge=False)

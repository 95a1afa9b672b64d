"""Where vissl_lite's rules give other numbers than VISSL's, and the rewrite that writes VISSL's
instead (--vissl-numbers).

Schedules: each auto-scaled LR schedule is resolved by VISSL's rules (vissl_lr) and by
vissl_lite's (optim.auto_scaling), then compared value by value; VISSL's numbers are its
resolved schedule written out with auto scaling off (they hold for the planned world size,
which is also the only one VISSL's rules read).

Parameter groups: every trainable parameter of the model the converted config builds gets its
LR and weight-decay source under VISSL's rules (vissl_groups) and under vissl_lite's groups;
VISSL's numbers come from regrouping with vissl_lite's own keys (regularize_bn, regularize_bias,
non_regularized_parameters, the head's weight decay).
"""

import copy
import math
from typing import Dict, List, Optional, Tuple

from omegaconf import OmegaConf

from ..optim.auto_scaling import auto_scale_schedule
from ..optim.build import build_param_groups
from ..optim.paramwise import NORM_LAYERS
from ..optim.schedules import SCHEDULES
from .report import Difference, number
from .schedule_words import describe
from .vissl_groups import Place, vissl_lite_places
from .vissl_lr import PlannedRun, VisslStops, vissl_resolved, warmup_start

AUTO_SCALING_DEFAULTS = {"auto_scale": False, "base_value": 0.1, "base_lr_batch_size": 256, "scaling_type": "linear"}


def _close(a, b) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


# ----------------------------------------------------------------------------- schedules


def lr_schedules_in_use(opt: dict) -> List[str]:
    head = opt.get("head_optimizer_params") or {}
    return ["lr", "lr_head"] if head.get("use_different_lr") else ["lr"]


def schedule_differences(opt: dict, run: PlannedRun) -> List[Tuple[str, List[Difference], Optional[dict]]]:
    """[(schedule key, differences, VISSL's resolved schedule or None where VISSL stops)] for the
    auto-scaled LR schedules of the converted OPTIMIZER section `opt`."""
    out = []
    for name in lr_schedules_in_use(opt):
        written = (opt.get("param_schedulers") or {}).get(name)
        if not written or not (written.get("auto_lr_scaling") or {}).get("auto_scale"):
            continue  # nothing scaled: both run the written values
        key = f"OPTIMIZER.param_schedulers.{name}"
        full = {**written, "auto_lr_scaling": {**AUTO_SCALING_DEFAULTS, **written["auto_lr_scaling"]}}
        ours, _ = auto_scale_schedule(copy.deepcopy(full), key, run.global_batch)
        try:
            vissl = vissl_resolved(written, run)
        except VisslStops as stop:
            out.append((key, [Difference(key, f"stops: {stop}", describe(ours, False), "VISSL cannot run this schedule",
                                         reproducible=False)], None))
            continue
        out.append((key, compare_schedules(key, written, vissl, ours, run), vissl))
    return out


def _same_shape(a: dict, b: dict) -> bool:
    if a.get("name") != b.get("name"):
        return False
    if a.get("name") != "composite":
        return True
    ca, cb = a.get("schedulers") or [], b.get("schedulers") or []
    return len(ca) == len(cb) and all(_same_shape(x, y) for x, y in zip(ca, cb))


def _slots(vissl: dict, ours: dict, key: str, in_composite: bool = False):
    """(key, VISSL's value, vissl_lite's value, type, in a composite) for every written LR value."""
    name = ours.get("name")
    if name == "composite":
        for i, (v, o) in enumerate(zip(vissl["schedulers"], ours["schedulers"])):
            yield from _slots(v, o, f"{key}.schedulers[{i}]", True)
        return
    for field in SCHEDULES[name].value_fields:
        v, o = vissl.get(field), ours.get(field)
        if isinstance(o, list):
            for i, (a, b) in enumerate(zip(v, o)):
                yield f"{key}.{field}[{i}]", a, b, name, in_composite
        elif o is not None:
            yield f"{key}.{field}", v, o, name, in_composite


def compare_schedules(key: str, written: dict, vissl: dict, ours: dict, run: PlannedRun) -> List[Difference]:
    if not _same_shape(vissl, ours):
        return [_warmup_removed(key, written, vissl, ours, run)]
    diffs = []
    for slot, v, o, name, in_composite in _slots(vissl, ours, key):
        if _close(v, o):
            continue
        if name == "linear" and in_composite and slot.endswith("start_value"):
            scaling = written["auto_lr_scaling"]
            why = (f"VISSL starts a composite's linear warmup at base_value x per-node batch / base_lr_batch_size = "
                   f"{number(scaling.get('base_value', 0.1))} x {run.node_batch} / "
                   f"{scaling.get('base_lr_batch_size', 256)}; vissl_lite scales the written start like every "
                   f"other value")
        elif name in ("multistep", "step"):
            why = ("VISSL rewrites the values as scaled x gamma**i, gamma = values[1] / values[0] (rounded); "
                   "vissl_lite keeps the written ratios")
        else:
            why = ("VISSL's rule per piece: cosine start = scaled with its end / start ratio kept, linear end = "
                   "scaled with its start as written, constant value = scaled; vissl_lite multiplies every written "
                   "value by scaled / peak, keeping the shape")
        diffs.append(Difference(slot, number(v), number(o), why))
    return diffs


def _warmup_removed(key: str, written: dict, vissl: dict, ours: dict, run: PlannedRun) -> Difference:
    start = warmup_start(written, run)
    return Difference(
        key, f"{describe(vissl, False)} over the whole training", describe(ours, False),
        f"on one node VISSL drops a composite's linear warmup whose start (base_value x per-node batch / "
        f"base_lr_batch_size = {number(start)}) is >= its end; vissl_lite keeps it (VISSL issue #106)")


def vissl_numbers_schedule(vissl: dict) -> dict:
    """VISSL's resolved schedule as vissl_lite runs it unchanged: auto scaling off."""
    out = copy.deepcopy(vissl)
    out["auto_lr_scaling"] = {**(out.get("auto_lr_scaling") or {}), "auto_scale": False}
    return out


# ----------------------------------------------------------------------------- parameter groups


def _wd_source(place_wd: str, opt: dict, side: str) -> tuple:
    """('const', value) or ('sched', key) for a Place's weight decay under `side`'s rules."""
    schedules = opt.get("param_schedulers") or {}
    head = opt.get("head_optimizer_params") or {}
    weight_decay = opt.get("weight_decay", 1e-4)
    if place_wd == "none":
        return ("const", 0.0)
    if place_wd == "trunk" or (side == "vissl_lite" and not head.get("use_different_wd")):
        return ("sched", "weight_decay") if (schedules.get("weight_decay") or {}).get("name") else ("const", weight_decay)
    if (schedules.get("weight_decay_head") or {}).get("name"):
        return ("sched", "weight_decay_head")
    # VISSL copies the trunk's weight decay into the head's when use_different_wd is off.
    return ("const", head.get("weight_decay", 1e-4) if head.get("use_different_wd") else weight_decay)


def _lr_source(place: Place, opt: dict) -> tuple:
    use_head = (opt.get("head_optimizer_params") or {}).get("use_different_lr")
    return (place.lr if use_head else "lr", place.lr_scale)


def _sources(places: Dict[str, Place], opt: dict, side: str) -> Dict[str, tuple]:
    return {n: (_lr_source(p, opt), _wd_source(p.wd, opt, side)) for n, p in places.items()}


def _same(a: tuple, b: tuple) -> bool:
    (lr_a, scale_a), wd_a = a
    (lr_b, scale_b), wd_b = b
    same_wd = wd_a[0] == wd_b[0] and (wd_a[1] == wd_b[1] if wd_a[0] == "sched" else _close(wd_a[1], wd_b[1]))
    return lr_a == lr_b and _close(scale_a, scale_b) and same_wd


def _words(source: tuple, opt: dict) -> str:
    (lr, scale), (kind, wd) = source
    lr_words = f"LR {lr}" + (f" x {scale:.6g}" if not _close(scale, 1.0) else "")
    if kind == "sched":
        wd_words = f"weight decay {wd} ({describe(opt['param_schedulers'][wd], False)})"
    else:
        wd_words = f"weight decay {wd:.6g}" + (" constant" if wd else "")
    return f"{lr_words}, {wd_words}"


REASONS = {
    "remaining": "VISSL's groups know Linear, Conv, BatchNorm, SyncBatchNorm and LayerNorm only: other parameters "
                 "({module}) are decayed with the trunk's values even inside the heads",
    "non_regularized_parameters": "VISSL moves non_regularized_parameters to a group with the trunk's LR",
    "dino": "VISSL's dino groups decay every parameter whose name neither ends in '.bias' nor contains 'norm' "
            "(the class token and position embedding too)",
    "lr_decay": "VISSL's lr_decay groups take the trunk's LR and weight decay for all, biases and norms by name",
    "head layer": "VISSL's head weight decay is head_optimizer_params.weight_decay, constant unless "
                  "param_schedulers.weight_decay_head is set, while the trunk's follows param_schedulers.weight_decay",
    "head norm layer": "VISSL's head weight decay is head_optimizer_params.weight_decay, constant unless "
                       "param_schedulers.weight_decay_head is set, while the trunk's follows "
                       "param_schedulers.weight_decay",
}


def _reason(rule: str) -> str:
    kind, _, module = rule.partition(":")
    return REASONS.get(kind, f"VISSL's rule for a {kind}").format(module=module)


def _names(names: List[str]) -> str:
    shown = ", ".join(names[:3])
    return f"{len(names)} parameters ({shown}{', ...' if len(names) > 3 else ''})"


def group_differences(vissl: Dict[str, Place], ours: Dict[str, Place], opt_vissl: dict, opt_ours: dict
                      ) -> List[Tuple[Difference, List[str]]]:
    """(Difference, parameter names) per (VISSL's source, vissl_lite's source, VISSL's rule) of
    the parameters whose LR or weight decay differ."""
    ours_src = _sources(ours, opt_ours, "vissl_lite")
    vissl_src = _sources(vissl, opt_vissl, "vissl")
    buckets: Dict[tuple, List[str]] = {}
    for name, source in vissl_src.items():
        if not _same(source, ours_src[name]):
            buckets.setdefault((source, ours_src[name], vissl[name].rule), []).append(name)
    return [(Difference(_names(names), _words(v, opt_vissl), _words(o, opt_ours), _reason(rule)), names)
            for (v, o, rule), names in buckets.items()]


def differing(vissl: Dict[str, Place], ours: Dict[str, Place], opt_vissl: dict, opt_ours: dict) -> List[str]:
    ours_src, vissl_src = _sources(ours, opt_ours, "vissl_lite"), _sources(vissl, opt_vissl, "vissl")
    return [n for n in vissl_src if not _same(vissl_src[n], ours_src[n])]


def groups_for(opt: dict, model, non_trainable, validated) -> Dict[str, Place]:
    """vissl_lite's Places for an OPTIMIZER section (a plain dict of the keys the file sets):
    its keys over `validated`, the converted file's typed OPTIMIZER (the schedules, which the
    groups do not read, are left out of the merge)."""
    cfg = OmegaConf.merge(validated, {k: v for k, v in opt.items() if k != "param_schedulers"})
    return vissl_lite_places(build_param_groups(cfg, model, non_trainable))


def vissl_numbers_groups(opt: dict, opt_vissl: dict, vissl: Dict[str, Place], model, non_trainable, validated
                         ) -> Tuple[dict, List[str]]:
    """An OPTIMIZER section regrouped so vissl_lite gives every parameter its Place in `vissl`
    (VISSL's), and the notes on what changed. Parameters no regrouping can reach stay as they
    are (their Difference says so)."""
    opt = copy.deepcopy(opt)
    notes = []
    wrong = differing(vissl, groups_for(opt, model, non_trainable, validated), opt_vissl, opt)
    # 1. A constant head weight decay beside a scheduled trunk one: the head gets its own value.
    kind, head_wd = _wd_source("head", opt_vissl, "vissl")
    if any(vissl[n].wd == "head" for n in wrong) and kind == "const" \
            and not (opt.get("head_optimizer_params") or {}).get("use_different_wd"):
        opt.setdefault("head_optimizer_params", {}).update(use_different_wd=True, weight_decay=head_wd)
        notes.append(f"OPTIMIZER.head_optimizer_params: use_different_wd true, weight_decay {head_wd:.6g} "
                     "(VISSL's constant head weight decay)")
    # 2. What VISSL decays and vissl_lite's flags pin at 0: the flags that pin it come off.
    owners = {f"{m}.{local}" if m else local: mod for m, mod in model.named_modules()
              for local, _ in mod.named_parameters(recurse=False)}
    ours = groups_for(opt, model, non_trainable, validated)
    pinned = [n for n in vissl if vissl[n].wd != "none" and ours[n].wd == "none"]
    if pinned:
        if opt.get("param_group_constructor") == "dino":
            opt["param_group_constructor"] = "default"
            opt.setdefault("regularize_bn", False)
            opt.setdefault("regularize_bias", False)
            notes.append("OPTIMIZER.param_group_constructor: default (VISSL's dino groups decay by name)")
        if any(isinstance(owners[n], NORM_LAYERS) for n in pinned) and not opt.get("regularize_bn"):
            opt["regularize_bn"] = True
            notes.append("OPTIMIZER.regularize_bn: true (VISSL decays these norm layers)")
        if any(n.endswith(".bias") for n in pinned) and not opt.get("regularize_bias", True):
            opt["regularize_bias"] = True
            notes.append("OPTIMIZER.regularize_bias: true (VISSL decays these biases)")
        substrings = opt.get("non_regularized_parameters") or []
        if any(s in n for n in pinned for s in substrings):
            opt["non_regularized_parameters"] = []
    # 3. What VISSL leaves undecayed and vissl_lite would decay: named in non_regularized_parameters.
    ours = groups_for(opt, model, non_trainable, validated)
    undecayed = [n for n in vissl if vissl[n].wd == "none" and ours[n].wd != "none"]
    if undecayed:
        added = covering_substrings(undecayed, [n for n in vissl if vissl[n].wd != "none"])
        opt["non_regularized_parameters"] = list(opt.get("non_regularized_parameters") or []) + added
        notes.append(f"OPTIMIZER.non_regularized_parameters: + {added} (VISSL does not decay them)")
    return opt, notes


def covering_substrings(targets: List[str], others: List[str]) -> List[str]:
    """Few name substrings that match every name in `targets` and none in `others`: '.bias' and
    'norm' first (VISSL's own name rules), then module prefixes, then whole names."""
    left, chosen = list(targets), []
    candidates = [".bias", "norm"] + sorted({n.rsplit(".", 1)[0] + "." for n in targets}) + list(targets)
    for candidate in candidates:
        hits = [n for n in left if candidate in n]
        if hits and not any(candidate in n for n in others):
            chosen.append(candidate)
            left = [n for n in left if n not in hits]
        if not left:
            break
    return chosen

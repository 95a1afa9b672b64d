"""A schedule in a few words, for the report: `linear 0.6 -> 4.8 (0.1), cosine 4.8 -> 0 (0.9)`."""


def _n(value) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def describe(schedule: dict, scaling: bool = True) -> str:
    """`scaling` adds how auto scaling rewrites it (for a schedule as written)."""
    name = schedule.get("name")
    if name == "composite":
        lengths = schedule.get("lengths") or []
        parts = [describe(child, False) + (f" ({_n(lengths[i])})" if i < len(lengths) else "")
                 for i, child in enumerate(schedule.get("schedulers") or [])]
        text = ", ".join(parts)
    elif name in ("linear", "cosine", "cosine_warm_restart"):
        text = f"{name} {_n(schedule.get('start_value'))} -> {_n(schedule.get('end_value'))}"
    elif name == "constant":
        text = f"constant {_n(schedule.get('value'))}"
    elif name in ("multistep", "step"):
        text = f"{name} [{', '.join(map(_n, schedule.get('values') or []))}]"
        if schedule.get("milestones"):
            text += f" at epochs {schedule['milestones']}"
    elif name in ("polynomial", "step_with_fixed_gamma"):
        text = f"{name} from {_n(schedule.get('base_value'))}"
    elif name == "inverse_sqrt":
        text = f"inverse_sqrt from {_n(schedule.get('start_value'))}"
    else:
        text = str(name)
    auto = schedule.get("auto_lr_scaling") or {}
    if scaling and auto.get("auto_scale"):
        text += (f"; auto scaled: peak {_n(auto.get('base_value', 0.1))} per "
                 f"{auto.get('base_lr_batch_size', 256)} images ({auto.get('scaling_type', 'linear')})")
    return text

"""Translators for VISSL's MODEL keys that need more than a rename: trunk and head names, the
linear-evaluation head map, feature-eval switches, mixed precision, SyncBatchNorm groups and
parameter names."""

import inspect

from ..models import HEADS, TRUNKS
from ..models.layouts import vissl_param_name  # the VISSL row of the checkpoint layout table
from .report import Difference
from .rules import Conversion

# VISSL arguments of a head that vissl_lite's head of the same name does not take, with VISSL's
# default: a file that leaves them at it loses nothing.
VISSL_HEAD_DEFAULTS = {
    "mlp": {"use_dropout": False},
    "swav_head": {"return_embeddings": True, "activation_name": "ReLU", "use_weight_norm_prototypes": False,
                  "normalize_last_layer": False},
    "dino_head": {},
}
# LINEAR_EVAL_FEAT_POOL_OPS_MAP entries that read the trunk's final features, which is what
# vissl_lite's heads read (ResNet: the average-pooled res5; ViT: the class token after the norm).
FINAL_FEATURES = (("res5avg", "Identity", []), ("res5", "AdaptiveAvgPool2d", [[1, 1]]), ("lastCLS", "Identity", []))


def trunk_name(conv: Conversion, key: str, value) -> None:
    if value in TRUNKS:
        conv.keep(key, value)
    else:
        conv.refuse(key, value, f"vissl_lite has no such trunk (it has {', '.join(sorted(TRUNKS))})")


def heads(conv: Conversion, key: str, value) -> None:
    params = [list(entry) for entry in value or []]
    params = _final_feature_heads(conv, key, params)
    if params is None:
        return
    out = []
    for i, entry in enumerate(params):
        head = _head(conv, f"{key}[{i}]", entry)
        if head is None:
            return
        out.append(head)
    if out == [list(e) for e in value or []]:
        conv.keep(key, out)
    else:
        conv.translate(key, value, key, out)


def _final_feature_heads(conv: Conversion, key: str, params):
    """With VISSL's LINEAR_EVAL_FEAT_POOL_OPS_MAP each head reads one trunk layer; vissl_lite's
    heads read the final features, so the head on them is kept and the others dropped (they
    are trained independently of it on a frozen trunk, so dropping them leaves it unchanged)."""
    feature_map = conv.get("MODEL.FEATURE_EVAL_SETTINGS.LINEAR_EVAL_FEAT_POOL_OPS_MAP") or []
    if not feature_map:
        return params
    if len(feature_map) != len(params):
        conv.refuse(key, params, f"{len(params)} heads for {len(feature_map)} LINEAR_EVAL_FEAT_POOL_OPS_MAP entries")
        return None
    final = [i for i, (layer, (op, args)) in enumerate(feature_map) if (layer, op, list(args)) in FINAL_FEATURES]
    if not final:
        conv.refuse(key, [f[0] for f in feature_map],
                    "every head reads an intermediate trunk layer; vissl_lite's heads read the trunk's final "
                    "features (res5avg, lastCLS)")
        return None
    kept = final[-1]
    for i, (layer, _) in enumerate(feature_map):
        if i != kept:
            conv.drop(f"{key}[{i}]", params[i][0], f"the head on {layer}: vissl_lite's heads read the trunk's "
                                                    f"final features only (the head on {feature_map[kept][0]} is kept)")
    return [params[kept]]


def _head(conv: Conversion, key: str, entry):
    if not (len(entry) == 2 and isinstance(entry[1], dict)):
        conv.refuse(key, entry, "[name, {arguments}]")
        return None
    name, kwargs = entry[0], dict(entry[1])
    if name == "eval_mlp":
        return _eval_mlp(conv, key, kwargs)
    if name not in HEADS:
        conv.refuse(key, name, f"vissl_lite has no such head (it has {', '.join(sorted(HEADS))})")
        return None
    accepted = set(inspect.signature(HEADS[name]).parameters)
    for arg in [a for a in kwargs if a not in accepted]:
        default = VISSL_HEAD_DEFAULTS.get(name, {})
        if arg in default and kwargs[arg] == default[arg]:
            conv.drop(f"{key}[1].{arg}", kwargs.pop(arg), f"VISSL's default; vissl_lite's {name} has no such argument")
        else:
            conv.refuse(f"{key}[1].{arg}", kwargs[arg], f"vissl_lite's {name} head has no such argument")
            return None
    return [name, kwargs]


def _eval_mlp(conv: Conversion, key: str, kwargs: dict):
    """VISSL's eval_mlp is BatchNorm on the features, then an mlp; vissl_lite's mlp alone."""
    if kwargs.get("use_residual"):
        conv.refuse(key, "eval_mlp", "a residual MLP head: vissl_lite has none")
        return None
    mlp = {k: kwargs[k] for k in ("dims", "use_bn", "use_relu") if k in kwargs}
    conv.report.differences.append(Difference(
        key, f"eval_mlp: BatchNorm over the {kwargs.get('in_channels')} feature channels, then {mlp['dims']}",
        f"mlp {mlp['dims']} without that BatchNorm", "vissl_lite has no eval_mlp head", reproducible=False))
    return ["mlp", mlp]


def feature_eval_settings(conv: Conversion, key: str, value) -> None:
    value = dict(value or {})
    eval_mode = value.pop("EVAL_MODE_ON", False)
    freeze_trunk = value.pop("FREEZE_TRUNK_ONLY", False)
    for switch, why in (("FREEZE_TRUNK_AND_HEAD", "nothing would train (VISSL's feature extraction)"),
                        ("EXTRACT_TRUNK_FEATURES_ONLY", "vissl_lite has no feature-extraction engine")):
        if value.pop(switch, False) and eval_mode:
            conv.refuse(f"{key}.{switch}", True, why)
    frozen = bool(eval_mode and freeze_trunk)
    conv.translate(f"{key}.EVAL_MODE_ON, FREEZE_TRUNK_ONLY", [eval_mode, freeze_trunk],
                   f"{key}.FREEZE_TRUNK", frozen, "no gradients and eval-mode BatchNorm in the trunk")
    if "LINEAR_EVAL_FEAT_POOL_OPS_MAP" in value:
        feature_map = value.pop("LINEAR_EVAL_FEAT_POOL_OPS_MAP")
        if feature_map:
            conv.translate(f"{key}.LINEAR_EVAL_FEAT_POOL_OPS_MAP", [f[0] for f in feature_map], None,
                           note="the head on the final features is kept, see MODEL.HEAD.PARAMS")
    for name, leaf in value.items():
        conv.drop(f"{key}.{name}", leaf, "vissl_lite's heads take the trunk's flat final features")


def amp_params(conv: Conversion, key: str, value) -> None:
    value = dict(value or {})
    use = value.pop("USE_AMP", False)
    amp_type = value.pop("AMP_TYPE", "apex")
    args = dict(value.pop("AMP_ARGS", {"opt_level": "O1"}) or {})
    conv.keep(f"{key}.USE_AMP", use)
    if not use:
        conv.drop(f"{key}.AMP_TYPE", amp_type, "mixed precision is off")
        conv.drop(f"{key}.AMP_ARGS", args, "mixed precision is off")
    else:
        level = args.pop("opt_level", "O1")
        if amp_type == "apex":
            note = ("apex O1 = float16 autocast with dynamic loss scaling" if level == "O1" else
                    f"apex {level} keeps float16 weights; vissl_lite autocasts over float32 weights")
        else:
            note = "torch autocast float16 with a GradScaler"
        conv.translate(f"{key}.AMP_TYPE, AMP_ARGS.opt_level", [amp_type, level], f"{key}.AMP_DTYPE", "float16", note)
        if "loss_scale" in args:
            scale = args.pop("loss_scale")
            static = None if scale == "dynamic" else float(scale)
            conv.translate(f"{key}.AMP_ARGS.loss_scale", scale, f"{key}.LOSS_SCALE", static)
        for name, leaf in args.items():
            conv.drop(f"{key}.AMP_ARGS.{name}", leaf, "an apex option vissl_lite's autocast has no counterpart for")
    for name, leaf in value.items():
        conv.drop(f"{key}.{name}", leaf, "no such key in vissl_lite")


def sync_bn_config(conv: Conversion, key: str, value) -> None:
    value = dict(value or {})
    convert = value.pop("CONVERT_BN_TO_SYNC_BN", False)
    conv.keep(f"{key}.CONVERT_BN_TO_SYNC_BN", convert)
    if "SYNC_BN_TYPE" in value:
        conv.drop(f"{key}.SYNC_BN_TYPE", value.pop("SYNC_BN_TYPE"), "vissl_lite uses torch's SyncBatchNorm")
    if "GROUP_SIZE" not in value:
        value["GROUP_SIZE"] = -1  # VISSL's default: one group per node
    size = value.pop("GROUP_SIZE")
    nodes, per_node = conv.get("DISTRIBUTED.NUM_NODES", 1), conv.get("DISTRIBUTED.NUM_PROC_PER_NODE", 8)
    world = nodes * per_node
    group = per_node if size == -1 else world if size == 0 else min(world, size)
    if convert and group < world:
        batch = conv.get("DATA.TRAIN.BATCHSIZE_PER_REPLICA", 256)
        conv.drop(f"{key}.GROUP_SIZE", size, "vissl_lite's SyncBatchNorm spans all processes")
        conv.report.differences.append(Difference(
            f"{key}.GROUP_SIZE", f"BatchNorm statistics over groups of {group} processes ({group * batch} images)",
            f"over all {world} processes ({world * batch} images)", "vissl_lite's SyncBatchNorm has no process groups",
            reproducible=False))
    else:
        conv.drop(f"{key}.GROUP_SIZE", size, "no groups smaller than the world here: the same as vissl_lite")
    for name, leaf in value.items():
        conv.drop(f"{key}.{name}", leaf, "no such key in vissl_lite")


def param_names(conv: Conversion, key: str, value) -> None:
    """NON_TRAINABLE_PARAMS, non_regularized_parameters: names or substrings of names."""
    renamed = [vissl_param_name(n) for n in value or []]
    if renamed == list(value or []):
        conv.keep(key, renamed)
    else:
        conv.translate(key, value, key, renamed, "vissl_lite's parameter names")


def temp_frozen_params(conv: Conversion, key: str, value) -> None:
    renamed = [[vissl_param_name(name), steps] for name, steps in value or []]
    if renamed == [list(e) for e in value or []]:
        conv.keep(key, renamed)
    else:
        conv.translate(key, value, key, renamed, "vissl_lite's parameter names; N counts optimizer steps in both")

"""The table of checkpoint layouts: for each, how to recognise a file's content, where its trunk
lives, and how its names map to ours. Import (engine/restore.py via models/weights.py), export
(vissl_lite/export.py) and the VISSL converter (vissl_param_name) read this one table.

Our trunks already use torchvision's (ResNet) and timm's (ViT) parameter names, so most layouts
are a prefix to strip and a classifier to drop:

    layout       recognised by                              trunk                        dropped
    vissl_lite   {"model": {trunk.*, heads.*}, "step", ...}  model (or method's teacher)  heads.*
    vissl        classy_state_dict.base_model.model         trunk[._feature_blocks].*    heads.*
                                                            (ViT: class_token, pos_embedding renamed)
    dino         {"teacher": ..., "student": ...}           [module.]backbone.*          head.*
    moco         state_dict: module.encoder_q.* (v2)        encoder_q / base_encoder     fc.* head.*
                 or module.base_encoder.* (v3)              (teacher: encoder_k / momentum_encoder)
    swav         [state_dict:] module.* + prototypes        module.*                     projection_head.* prototypes.*
    dinov2       mask_token / register_tokens               everything                   mask_token
    timm         cls_token + blocks.* or conv1 + layer1.*   everything                   head.* fc.* fc_norm.*
    torchvision  conv1 + layer1.* or conv_proj + encoder.*  everything (ViT renamed)     fc.* heads.*

A ViT's names differ in a few places only: DINOv2's `register_tokens` is timm's `reg_token`;
timm's register models keep no class-token row in pos_embed and fold it into cls_token
(no_embed_class), ours keep DINOv2's row; VISSL says class_token / pos_embedding; torchvision's
ViT has its own names (TORCHVISION_VIT).
Functions here take and return plain dicts of tensors and raise ValueError; the config layer
names keys.
"""

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .vit import grid_side

State = Dict[str, torch.Tensor]

PARTS = ("auto", "teacher", "student")


@dataclass(frozen=True)
class Layout:
    """One row of the table.

    recognise(content) -> bool: whether a file's content has this layout;
    trunk(content, part) -> (trunk tensors in our names, names dropped as not trunk);
    write(trunk in our names) -> the trunk in this layout's names, or None where the layout is
    not written by export.
    """

    name: str
    description: str
    recognise: Callable[[object], bool]
    trunk: Callable[[object, str], Tuple[State, List[str]]]
    write: Optional[Callable[[State], State]] = None


# ----------------------------------------------------------------------------- small helpers


def is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip(state: State, prefix: str) -> State:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _split(state: State, dropped: Tuple[str, ...]) -> Tuple[State, List[str]]:
    """(tensors whose name starts with none of `dropped`, the names that do)."""
    kept = {k: v for k, v in state.items() if not k.startswith(dropped)}
    return kept, sorted(k for k in state if k.startswith(dropped))


def _unwrap(obj) -> State:
    """A state dict saved alone, or under 'state_dict' (MoCo, SwAV, Lightning) or 'model'."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and is_state_dict(obj.get(key)):
            return obj[key]
    if is_state_dict(obj):
        return obj
    raise ValueError("the file holds no state dict (a name -> tensor map, alone or under 'state_dict')")


def _part(part: str, allowed: Tuple[str, ...], layout: str) -> str:
    if part not in allowed:
        raise ValueError(f"a {layout} checkpoint has no part {part!r} (it has {', '.join(allowed)})")
    return part


# ----------------------------------------------------------------------------- ViT name variants

# Our (timm's) ViT names -> torchvision's VisionTransformer names; {i} is a block index.
TORCHVISION_VIT = [
    ("patch_embed.proj.{p}", "conv_proj.{p}"),
    ("cls_token", "class_token"),
    ("pos_embed", "encoder.pos_embedding"),
    ("blocks.{i}.norm1.{p}", "encoder.layers.encoder_layer_{i}.ln_1.{p}"),
    ("blocks.{i}.attn.qkv.weight", "encoder.layers.encoder_layer_{i}.self_attention.in_proj_weight"),
    ("blocks.{i}.attn.qkv.bias", "encoder.layers.encoder_layer_{i}.self_attention.in_proj_bias"),
    ("blocks.{i}.attn.proj.{p}", "encoder.layers.encoder_layer_{i}.self_attention.out_proj.{p}"),
    ("blocks.{i}.norm2.{p}", "encoder.layers.encoder_layer_{i}.ln_2.{p}"),
    ("blocks.{i}.mlp.fc1.{p}", "encoder.layers.encoder_layer_{i}.mlp.0.{p}"),
    ("blocks.{i}.mlp.fc2.{p}", "encoder.layers.encoder_layer_{i}.mlp.3.{p}"),
    ("norm.{p}", "encoder.ln.{p}"),
]


def _pattern(template: str) -> "re.Pattern":
    escaped = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(f"^{escaped}$")


def _rename(state: State, pairs, forward: bool) -> State:
    """Rename by the (ours, theirs) template pairs, ours -> theirs when forward; a name no pair
    matches is an error (it would be lost silently otherwise)."""
    rules = [(_pattern(a if forward else b), b if forward else a) for a, b in pairs]
    out = {}
    for name, tensor in state.items():
        for pattern, target in rules:
            match = pattern.match(name)
            if match:
                out[target.format(**match.groupdict())] = tensor
                break
        else:
            raise ValueError(f"{name} has no counterpart in torchvision's VisionTransformer")
    return out


def _is_vit(state: State) -> bool:
    return "cls_token" in state and "pos_embed" in state


def _from_no_embed_class(state: State) -> State:
    """timm's register models (no_embed_class): pos_embed [1, h*w, D] with the class row folded
    into cls_token -> ours: a zero class row before the grid, cls_token as it is. The sum the
    class token sees, cls + pos[0], is unchanged."""
    pos = state["pos_embed"]
    if state.get("reg_token") is None or grid_side(pos.shape[1]) is None:
        return state
    return {**state, "pos_embed": torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)}


def _to_timm(trunk: State) -> State:
    """Ours -> timm's names; with registers timm keeps no class row in pos_embed (its DINOv2
    `_reg` models), so the row is folded into cls_token as timm's own DINOv2 conversion does."""
    if "reg_token" not in trunk:
        return dict(trunk)
    pos = trunk["pos_embed"]
    return {**trunk, "cls_token": trunk["cls_token"] + pos[:, :1], "pos_embed": pos[:, 1:]}


def _to_torchvision(trunk: State) -> State:
    if _is_vit(trunk):
        if "reg_token" in trunk or any(".ls1." in k for k in trunk):
            raise ValueError("torchvision's VisionTransformer has no register tokens or layer scale: "
                             "export this trunk with --format timm")
        return _rename(trunk, TORCHVISION_VIT, forward=True)
    return dict(trunk)


# ----------------------------------------------------------------------------- plain state dicts

CLASSIFIERS = ("fc.", "head.", "heads.", "fc_norm.", "head_drop.")


def _plain_trunk(content, part: str) -> Tuple[State, List[str]]:
    _part(part, ("auto", "student"), "plain state dict")
    state = _unwrap(content)
    if "conv_proj.weight" in state and "encoder.pos_embedding" in state:  # torchvision's ViT
        kept, dropped = _split(state, ("heads.",))
        return _rename(kept, TORCHVISION_VIT, forward=False), dropped
    kept, dropped = _split(state, CLASSIFIERS)
    return (_from_no_embed_class(kept) if _is_vit(kept) else kept), dropped


def _looks_resnet(state: State) -> bool:
    return "conv1.weight" in state and any(k.startswith("layer1.") for k in state)


def _recognise_timm(content) -> bool:
    return is_state_dict(content) and (_is_vit(content) and "patch_embed.proj.weight" in content
                                   and "mask_token" not in content)


def _recognise_torchvision(content) -> bool:
    return is_state_dict(content) and (_looks_resnet(content) or "conv_proj.weight" in content)


# ----------------------------------------------------------------------------- DINOv2


def _recognise_dinov2(content) -> bool:
    return is_state_dict(content) and ("mask_token" in content or "register_tokens" in content)


def _dinov2_trunk(content, part: str) -> Tuple[State, List[str]]:
    """DINOv2's hub layout: timm's names, `register_tokens` for timm's `reg_token`, the unused
    `mask_token` (iBOT's masking) dropped; training checkpoints' chunked blocks
    (blocks.<chunk>.<i>.*) flattened to blocks.<i>.*."""
    _part(part, ("auto", "student"), "DINOv2 backbone")
    state = _unwrap(content)
    out = {}
    for name, tensor in state.items():
        name = re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", name)
        out["reg_token" if name == "register_tokens" else name] = tensor
    return _split(out, ("mask_token",) + CLASSIFIERS)


# ----------------------------------------------------------------------------- DINO


def _recognise_dino(content) -> bool:
    return isinstance(content, dict) and is_state_dict(content.get("teacher")) and is_state_dict(content.get("student"))


def _dino_trunk(content, part: str) -> Tuple[State, List[str]]:
    """DINO's main_dino.py checkpoint: student and teacher are MultiCropWrapper(backbone, head);
    the student is DDP-wrapped (module.), the teacher only when it has BatchNorm (ResNets)."""
    part = _part(part, PARTS, "DINO")
    state = content["student" if part == "student" else "teacher"]
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    trunk = _strip(state, "backbone.")
    if not trunk:
        raise ValueError("the DINO checkpoint's networks have no backbone.* tensors")
    kept, dropped = _split(trunk, CLASSIFIERS)
    return kept, dropped + sorted(k for k in state if not k.startswith("backbone."))


# ----------------------------------------------------------------------------- MoCo

# (query encoder, key encoder) prefixes: MoCo v2's main_moco.py, MoCo v3's builder.
_MOCO_ENCODERS = (("encoder_q.", "encoder_k."), ("base_encoder.", "momentum_encoder."))


def _moco_state(content) -> Optional[State]:
    state = content.get("state_dict") if isinstance(content, dict) else None
    if not is_state_dict(state):
        return None
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _recognise_moco(content) -> bool:
    state = _moco_state(content)
    return state is not None and any(k.startswith((q, m)) for k in state for q, m in _MOCO_ENCODERS)


def _moco_trunk(content, part: str) -> Tuple[State, List[str]]:
    """The query encoder (MoCo's linear evaluation) by default, the key encoder for `teacher`;
    its projection head (fc.* on ResNets, head.* on v3's ViTs) dropped."""
    part = _part(part, PARTS, "MoCo")
    state = _moco_state(content)
    for query, key in _MOCO_ENCODERS:
        trunk = _strip(state, key if part == "teacher" else query)
        if trunk:
            kept, dropped = _split(trunk, CLASSIFIERS)
            return kept, dropped
    raise ValueError(f"the MoCo checkpoint has no {'key' if part == 'teacher' else 'query'} encoder")


# ----------------------------------------------------------------------------- SwAV

_SWAV_HEADS = ("projection_head.", "prototypes.")


def _swav_state(content) -> Optional[State]:
    try:
        state = _unwrap(content)
    except ValueError:
        return None
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _recognise_swav(content) -> bool:
    state = _swav_state(content)
    return state is not None and any(k.startswith(_SWAV_HEADS) for k in state) and "conv1.weight" in state


def _swav_trunk(content, part: str) -> Tuple[State, List[str]]:
    """SwAV's main_swav.py: the DDP-wrapped ResNet (module.) with its projection head and
    prototypes as submodules; everything else is the trunk, in torchvision's names."""
    _part(part, ("auto", "student"), "SwAV")
    return _split(_swav_state(content), _SWAV_HEADS)


# ----------------------------------------------------------------------------- VISSL and vissl_lite

# VISSL's trunks sit under trunk._feature_blocks. (trunk.base_model._feature_blocks. when saved
# by a feature extractor); vissl_lite's directly under trunk.
_TRUNK_PREFIXES = ("trunk.base_model._feature_blocks.", "trunk._feature_blocks.", "trunk.base_model.", "trunk.")


def vissl_param_name(name: str) -> str:
    """A VISSL model name (or a substring of one) as ours: no DDP 'module.' prefix and no
    '_feature_blocks.' / 'base_model.' level in the trunk (the converter renames VISSL's
    NON_TRAINABLE_PARAMS and TEMP_FROZEN_PARAMS_ITER_MAP with it)."""
    name = name[len("module."):] if name.startswith("module.") else name
    return name.replace("base_model._feature_blocks.", "").replace("_feature_blocks.", "")


def model_trunk(state: State) -> Tuple[State, List[str]]:
    """A whole model's tensors (trunk.* + heads.*) -> (trunk in our names, the other names)."""
    trunk, others = {}, []
    for name, tensor in state.items():
        prefix = next((p for p in _TRUNK_PREFIXES if name.startswith(p)), None)
        if prefix is None:
            others.append(name)
        else:
            trunk[name[len(prefix):]] = tensor
    return trunk, sorted(others)


def model_heads(state: State) -> State:
    """heads.* of a whole model's tensors, the prefix kept (our model's names)."""
    return {k: v for k, v in state.items() if k.startswith("heads.")}


def vissl_model(content) -> State:
    """classy_state_dict.base_model.model.{trunk, heads} as one trunk.* / heads.* map (VISSL's
    get_checkpoint_model_state_dict), or a map already in that namespace."""
    if isinstance(content, dict) and "classy_state_dict" in content:
        content = content["classy_state_dict"]
    if isinstance(content, dict) and "base_model" in content:
        model = content["base_model"]["model"]
        return {**{f"trunk.{k}": v for k, v in model["trunk"].items()},
                **{f"heads.{k}": v for k, v in model.get("heads", {}).items()}}
    return content


def _recognise_vissl(content) -> bool:
    if isinstance(content, dict) and "classy_state_dict" in content:
        return True
    return is_state_dict(content) and any(k.startswith(("trunk._feature_blocks.", "trunk.base_model.")) for k in content)


# VISSL's vision_transformer trunk: timm's names except these two.
_VISSL_VIT_NAMES = {"class_token": "cls_token", "pos_embedding": "pos_embed"}


def _vissl_trunk(content, part: str) -> Tuple[State, List[str]]:
    _part(part, ("auto", "student"), "VISSL")
    trunk, others = model_trunk(vissl_model(content))
    trunk = {_VISSL_VIT_NAMES.get(k, k): v for k, v in trunk.items()}
    kept, dropped = _split(trunk, CLASSIFIERS)  # a renamed torchvision / MoCo file brings its fc along
    return kept, others + dropped


def vissl_lite_model(content, part: str) -> State:
    """The whole model's tensors of a vissl_lite checkpoint: the trained model, or with
    `teacher` the method's EMA copy (DINO's teacher, MoCo's key encoder)."""
    if is_state_dict(content):  # a flat model map, e.g. an export with --format vissl_lite
        _part(part, ("auto", "student"), "vissl_lite model file")
        return content
    if part == "teacher":
        method = content.get("method") or {}
        for key in ("teacher", "key_encoder"):
            if is_state_dict(method.get(key)):
                return method[key]
        raise ValueError("this vissl_lite checkpoint has no teacher (only DINO and MoCo runs keep one)")
    return content["model"]


def _recognise_vissl_lite(content) -> bool:
    if isinstance(content, dict) and is_state_dict(content.get("model")) and "step" in content:
        return any(k.startswith("trunk.") for k in content["model"])
    return is_state_dict(content) and all(k.startswith(("trunk.", "heads.")) for k in content) \
        and not _recognise_vissl(content)


def _vissl_lite_trunk(content, part: str) -> Tuple[State, List[str]]:
    return model_trunk(vissl_lite_model(content, part))


def _to_vissl_lite(trunk: State) -> State:
    return {f"trunk.{k}": v for k, v in trunk.items()}


# ----------------------------------------------------------------------------- the table

# In recognition order: wrappers before plain state dicts, DINOv2 before timm (its names are
# timm's plus mask_token / register_tokens).
LAYOUTS: Dict[str, Layout] = {layout.name: layout for layout in (
    Layout("vissl_lite", "vissl_lite checkpoint (model, or the method's teacher)", _recognise_vissl_lite,
           _vissl_lite_trunk, _to_vissl_lite),
    Layout("vissl", "VISSL checkpoint (classy_state_dict.base_model.model.trunk)", _recognise_vissl, _vissl_trunk),
    Layout("dino", "DINO full checkpoint (teacher / student: backbone + head)", _recognise_dino, _dino_trunk),
    Layout("moco", "MoCo v2/v3 checkpoint (state_dict: module.encoder_q / base_encoder)", _recognise_moco,
           _moco_trunk),
    Layout("swav", "SwAV checkpoint (module.* with projection_head and prototypes)", _recognise_swav, _swav_trunk),
    Layout("dinov2", "DINOv2 hub backbone (timm names + mask_token, register_tokens)", _recognise_dinov2,
           _dinov2_trunk),
    Layout("timm", "timm state dict", _recognise_timm, _plain_trunk, _to_timm),
    Layout("torchvision", "torchvision state dict", _recognise_torchvision, _plain_trunk, _to_torchvision),
)}

EXPORT_FORMATS = tuple(name for name, layout in LAYOUTS.items() if layout.write is not None)


def recognise(content) -> Layout:
    """The first layout of the table that recognises `content`; ValueError naming what was seen."""
    for layout in LAYOUTS.values():
        if layout.recognise(content):
            return layout
    if isinstance(content, dict):
        keys = list(content)[:6]
        raise ValueError(f"no known checkpoint layout: top-level keys {keys}{' ...' if len(content) > 6 else ''} "
                         f"(known: {', '.join(LAYOUTS)})")
    raise ValueError(f"no known checkpoint layout: the file holds a {type(content).__name__}, not a dict")


def read_trunk(content, layout: str = "auto", part: str = "auto") -> Tuple[Layout, State, List[str]]:
    """(the layout, the trunk's tensors in our names, the names left out as not trunk)."""
    found = recognise(content) if layout == "auto" else LAYOUTS[layout]
    trunk, dropped = found.trunk(content, part)
    if not trunk:
        raise ValueError(f"the {found.name} layout found no trunk tensors in this file")
    return found, trunk, dropped

"""VISSL's TRANSFORMS lists -> vissl_lite's augmentation keys (DATA.<split>.TRANSFORMS).

vissl_lite's training pipeline is fixed: random resized crop with flip, colour jitter,
grayscale, blur, solarize and normalisation, each with its own key, on two views or on the
method's multi-crop. A VISSL list is read entry by entry into those keys. What VISSL's list
leaves out is switched off (probability 0, no normalisation), because vissl_lite's defaults
would otherwise add it; an entry the pipeline cannot do is refused, naming it.

The TEST list only shapes the evaluation view (resize, center crop, normalise): its CROP_SIZE
and MEAN / STD are kept, anything else is dropped with a line.
"""

from typing import Callable, Dict, List, Tuple

from .report import show

_UNSET = object()

# Methods that ask for multi-crop (2 global crops + local ones); every other method takes two
# views (one for cross_entropy).
MULTI_CROP_LOSSES = ("dino_loss", "swav_loss")

# vissl_lite's knobs with nothing applied: what a VISSL list that names no augmentation means.
NOTHING_APPLIED = {"HFLIP_P": 0.0, "COLOR_JITTER_P": 0.0, "GRAYSCALE_P": 0.0, "BLUR_P": 0.0, "SOLARIZE_P": 0.0,
                   "MEAN": [0.0], "STD": [1.0]}

# VISSL's defaults for arguments a list entry may leave out (torchvision's and VISSL's own).
DEFAULT_SCALE = [0.08, 1.0]
DEFAULT_RATIO = [3 / 4, 4 / 3]


class Unsupported(ValueError):
    """A transform (or argument) the pipeline cannot do; the message says why."""


class TrainPipeline:
    """The keys read so far from one TRAIN list, for the method `loss_name` trains."""

    def __init__(self, loss_name: str):
        self.loss_name = loss_name
        self.keys: Dict[str, object] = dict(NOTHING_APPLIED)
        self.cropped = False
        # Per-crop probabilities VISSL gives with ImgPilMultiCropRandomApply: {our key: [p per crop]}.
        self.per_crop: Dict[str, List[float]] = {}


def _size(value, name: str) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    raise Unsupported(f"{name} {value!r}: vissl_lite crops squares (one int)")


def _replicate(p: TrainPipeline, entry: dict) -> str:
    if p.loss_name in MULTI_CROP_LOSSES:
        raise Unsupported(f"{p.loss_name} takes multi-crop: VISSL's ImgPilToMultiCrop")
    times, views = entry.get("num_times", 2), 1 if p.loss_name == "cross_entropy" else 2
    if times != views:
        raise Unsupported(f"num_times {times}: {p.loss_name} takes {views} view(s) of every image")
    return f"{views} view{'s' if views > 1 else ''} of every image: the method makes them"


def _multi_crop(p: TrainPipeline, entry: dict) -> str:
    if p.loss_name not in MULTI_CROP_LOSSES:
        raise Unsupported(f"multi-crop for {p.loss_name}: vissl_lite's multi-crop methods are {', '.join(MULTI_CROP_LOSSES)}")
    sizes, counts, scales = entry.get("size_crops", []), entry.get("num_crops", []), entry.get("crop_scales", [])
    if not (len(sizes) == len(counts) == len(scales) and len(counts) in (1, 2) and counts[0] == 2):
        raise Unsupported("num_crops must be [2] or [2, local count] with one size and scale each "
                          "(2 global crops, then local ones)")
    p.keys.update(CROP_SIZE=_size(sizes[0], "size_crops[0]"), CROP_SCALE=list(scales[0]))
    if len(counts) == 2:
        p.keys.update(LOCAL_CROPS_NUMBER=counts[1], LOCAL_CROP_SIZE=_size(sizes[1], "size_crops[1]"),
                      LOCAL_CROP_SCALE=list(scales[1]))
    p.cropped = True
    return "2 global crops, then the local ones"


def _random_resized_crop(p: TrainPipeline, entry: dict) -> str:
    ratio = entry.get("ratio", DEFAULT_RATIO)
    if [round(r, 4) for r in ratio] != [round(r, 4) for r in DEFAULT_RATIO]:
        raise Unsupported(f"ratio {ratio!r}: vissl_lite draws aspect ratios in [3/4, 4/3]")
    if p.loss_name in MULTI_CROP_LOSSES:
        raise Unsupported(f"{p.loss_name} takes multi-crop: VISSL's ImgPilToMultiCrop")
    p.keys.update(CROP_SIZE=_size(entry.get("size", 224), "size"), CROP_SCALE=list(entry.get("scale", DEFAULT_SCALE)))
    p.cropped = True
    return ""


def _flip(p: TrainPipeline, entry: dict) -> str:
    p.keys["HFLIP_P"] = entry.get("p", 0.5)
    return ""


def _colour_distortion(p: TrainPipeline, entry: dict) -> str:
    # SimCLR's colour distortion: jitter (0.8s, 0.8s, 0.8s, 0.2s) with p 0.8, then grayscale p 0.2.
    p.keys.update(COLOR_DISTORTION_STRENGTH=entry.get("strength", 1.0), COLOR_JITTER_P=0.8, GRAYSCALE_P=0.2)
    return "SimCLR's: jitter (0.8s, 0.8s, 0.8s, 0.2s) with p 0.8, grayscale with p 0.2"


def _colour_jitter(p: TrainPipeline, entry: dict) -> str:
    b, c, s, h = (entry.get(k, 0.0) for k in ("brightness", "contrast", "saturation", "hue"))
    if not (b == c == s and abs(h - b / 4) < 1e-9 and b > 0):
        raise Unsupported("vissl_lite's jitter is SimCLR's (0.8s, 0.8s, 0.8s, 0.2s): brightness = contrast = "
                          f"saturation = 4 x hue; got {b}, {c}, {s}, {h}")
    p.keys.update(COLOR_DISTORTION_STRENGTH=b / 0.8, COLOR_JITTER_P=1.0)
    return "strength = brightness / 0.8"


def _grayscale(p: TrainPipeline, entry: dict) -> str:
    p.keys["GRAYSCALE_P"] = entry.get("p", 0.1)
    return ""


def _blur(p: TrainPipeline, entry: dict) -> str:
    p.keys.update(BLUR_P=entry.get("p", 0.5),
                  BLUR_SIGMA=[entry.get("radius_min", 0.1), entry.get("radius_max", 2.0)])
    return "PIL's blur radius is the sigma"


def _solarize(p: TrainPipeline, entry: dict) -> str:
    p.keys["SOLARIZE_P"] = entry.get("p", 0.2)
    return ""


def _per_crop_apply(p: TrainPipeline, entry: dict) -> str:
    """ImgPilMultiCropRandomApply: one inner blur or solarize, applied to crop i with prob[i]."""
    inner = entry.get("transforms", [])
    probs = list(entry.get("prob", []))
    if len(inner) != 1 or inner[0].get("name") not in ("ImgPilGaussianBlur", "ImgPilRandomSolarize"):
        raise Unsupported("vissl_lite applies blur or solarize per crop, one transform per entry")
    t = inner[0]
    if t["name"] == "ImgPilGaussianBlur":
        key = "CROP_BLUR_P"
        p.keys["BLUR_SIGMA"] = [t.get("radius_min", 0.1), t.get("radius_max", 2.0)]
    else:
        key = "CROP_SOLARIZE_P"
    p.per_crop[key] = [q * t.get("p", 1.0) for q in probs]
    if p.loss_name in MULTI_CROP_LOSSES:
        return f"{key}: {show(p.per_crop[key])} (prob x the inner p, per crop)"
    return f"{show(p.per_crop[key])} per view: {p.loss_name} draws its views alike, see the differences"


def _to_tensor(p: TrainPipeline, entry: dict) -> str:
    return "implied: images become tensors in [0, 1]"


def _normalize(p: TrainPipeline, entry: dict) -> str:
    p.keys.update(MEAN=list(entry["mean"]), STD=list(entry["std"]))
    return ""


TRAIN_TRANSFORMS: Dict[str, Callable[[TrainPipeline, dict], str]] = {
    "ImgReplicatePil": _replicate,
    "ImgPilToMultiCrop": _multi_crop,
    "RandomResizedCrop": _random_resized_crop,
    "RandomHorizontalFlip": _flip,
    "ImgPilColorDistortion": _colour_distortion,
    "ColorJitter": _colour_jitter,
    "RandomGrayscale": _grayscale,
    "ImgPilGaussianBlur": _blur,
    "ImgPilRandomSolarize": _solarize,
    "ImgPilMultiCropRandomApply": _per_crop_apply,
    "ToTensor": _to_tensor,
    "Normalize": _normalize,
}


def train_transforms(entries: list, loss_name: str) -> Tuple[dict, List[Tuple[str, str]], List[Tuple[str, str, str]]]:
    """(DATA.TRAIN.TRANSFORMS keys, [(entry, what it became)], [(key, VISSL, vissl_lite)] for the
    per-view probabilities a two-view method cannot keep). Raises Unsupported."""
    p = TrainPipeline(loss_name)
    done = []
    for i, entry in enumerate(entries or []):
        if not isinstance(entry, dict) or entry.get("name") not in TRAIN_TRANSFORMS:
            name = entry.get("name") if isinstance(entry, dict) else entry
            raise Unsupported(f"[{i}] {name!r}: no vissl_lite augmentation corresponds "
                              f"(known: {', '.join(TRAIN_TRANSFORMS)})")
        before = dict(p.keys)
        try:
            note = TRAIN_TRANSFORMS[entry["name"]](p, entry)
        except Unsupported as err:
            raise Unsupported(f"[{i}] {entry['name']}: {err}") from None
        changed = ", ".join(f"{k}: {show(v)}" for k, v in p.keys.items() if before.get(k, _UNSET) != v)
        done.append((f"[{i}] {entry['name']}", "; ".join(x for x in (changed, note) if x)))
    if not p.cropped:
        raise Unsupported("no RandomResizedCrop or ImgPilToMultiCrop: vissl_lite's training views are random "
                          "resized crops")
    approximated = []
    for key, probs in p.per_crop.items():
        if loss_name in MULTI_CROP_LOSSES:
            p.keys[key] = probs
        else:
            # Two-view methods draw every view alike (one BLUR_P / SOLARIZE_P): the mean over the
            # views keeps the expected number of blurred (solarized) views per image.
            views = probs[:2] if len(probs) >= 2 else probs * 2
            single = key.replace("CROP_", "")
            p.keys[single] = sum(views) / len(views)
            approximated.append((f"DATA.TRAIN.TRANSFORMS.{single}", f"{show(views)} per view",
                                 f"{p.keys[single]:.6g} on every view"))
    return p.keys, done, approximated


def eval_transforms(entries: list) -> Tuple[dict, List[Tuple[str, str]], List[Tuple[str, dict, str]]]:
    """(DATA.TEST.TRANSFORMS keys, [(entry, what it became)], [(entry, it, why dropped)]): the
    evaluation view is a resize of the shorter side to CROP_SIZE x 256/224, a center crop to
    CROP_SIZE, normalised."""
    keys, done, dropped = {"MEAN": [0.0], "STD": [1.0]}, [], []
    entries = [e if isinstance(e, dict) else {"name": e} for e in entries or []]
    crop = next((e.get("size") for e in entries if e.get("name") == "CenterCrop"), None)
    for i, entry in enumerate(entries):
        name, where = entry.get("name"), f"[{i}] {entry.get('name')}"
        if name == "CenterCrop":
            keys["CROP_SIZE"] = _size(crop, "size")
            done.append((where, f"CROP_SIZE: {keys['CROP_SIZE']}"))
        elif name == "Resize":
            shorter = round(crop * 256 / 224) if isinstance(crop, int) else None
            note = "" if shorter in (None, entry.get("size")) else f"; here {shorter}, VISSL's {show(entry.get('size'))}"
            done.append((where, f"implied: vissl_lite resizes the shorter side to CROP_SIZE x 256/224{note}"))
        elif name == "Normalize":
            keys.update(MEAN=list(entry["mean"]), STD=list(entry["std"]))
            done.append((where, f"MEAN: {show(keys['MEAN'])}, STD: {show(keys['STD'])}"))
        elif name == "ToTensor":
            done.append((where, "implied: images become tensors in [0, 1]"))
        else:
            dropped.append((where, entry, "vissl_lite's evaluation view is resize + center crop + normalise"))
    return keys, done, dropped

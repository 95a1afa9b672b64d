"""engine_name=augmentations: see what the method trains on, without training.

For the first PREVIEW.NUM_IMAGES images of DATA.TRAIN, each drawn PREVIEW.REPEATS times (as in
epochs 0, 1, ...: image files are cut exactly as training cuts them), the method's views with the
photometric augmentation applied, before normalisation, are written to the run directory:

  augmentations.npz  view_0, view_1, ...: float32 [N, C, S, S] in [0, 1], N = NUM_IMAGES x REPEATS,
                     row i x REPEATS + r = image i, draw r; also image_index, repeat, label [N]
  augmentations.png  one row per (image, draw): the image itself, then its views, headed
                     "global 1", "global 2", "local 1", ...
"""

import logging
from pathlib import Path
from typing import List

import numpy as np
import torch

from ..data import SSLAugment, ViewBatch, build_split, crop_plan
from ..data.folder import TrainViews, read_full_image
from ..models.trunks import input_channels
from .method import METHODS, TwoViewMethod

log = logging.getLogger("vissl_lite")
CELL_MIN = 64  # small views are enlarged (nearest) to at least this many pixels in the grid


def augmentations(cfg, run_dir: str, on_lock=None) -> dict:
    if on_lock is not None:
        on_lock()
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    channels = input_channels(cfg.MODEL.TRUNK)
    t = cfg.DATA.TRAIN.TRANSFORMS
    augment = SSLAugment(t, channels)
    method = METHODS.get(cfg.LOSS.name, TwoViewMethod)  # its class says its views; no model is built
    plan = crop_plan(method, t)
    split = build_split(cfg.DATA.TRAIN, "TRAIN", channels)
    n, repeats = min(cfg.PREVIEW.NUM_IMAGES, split.num_samples), cfg.PREVIEW.REPEATS
    generator = torch.Generator().manual_seed(cfg.SEED_VALUE)
    num_global = getattr(method, "num_global_crops", 0)  # 0: not multi-crop, every view global
    rows: List[List[torch.Tensor]] = []  # per (image, draw): its views [C, S, S]
    if split.files is not None:
        cutter = TrainViews(split.files, channels, plan, t.HFLIP_P, cfg.SEED_VALUE, 0, t.INTERPOLATION)
        originals = [_thumbnail(read_full_image(str(p), channels)) for p in split.files.paths[:n]]
        labels = [int(label) for label in split.files.labels[:n]]
        for i in range(n):
            for r in range(repeats):
                item = cutter[(r, i)]
                if item.views is None or any(j == i for j, _, _ in item.unreadable):
                    raise ValueError(f"{split.files.paths[i]}: unreadable ({item.unreadable[0][2]})")
                batch = ViewBatch([v[None] for v in item.views])
                rows.append([augment.photometric(batch.next_view(), generator, *_probabilities(augment, k, num_global),
                                                 normalise=False)[0] for k in range(len(plan))])
    else:
        images = split.images[:n].repeat_interleave(repeats, 0)
        originals = [_thumbnail((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for img in split.images[:n]]
        labels = split.labels[:n].tolist()
        views = [augment.view(images, generator, spec.size, spec.scale, *_probabilities(augment, k, num_global),
                              normalise=False) for k, spec in enumerate(plan)]
        rows = [[v[j] for v in views] for j in range(len(images))]
    arrays = {f"view_{k}": torch.stack([row[k] for row in rows]).clamp(0, 1).numpy().astype(np.float32)
              for k in range(len(plan))}
    arrays.update(image_index=np.repeat(np.arange(n), repeats), repeat=np.tile(np.arange(repeats), n),
                  label=np.repeat(np.array(labels, dtype=np.int64), repeats))
    np.savez(out / "augmentations.npz", **arrays)
    names = [f"global {k + 1}" if k < (num_global or len(plan)) else f"local {k - num_global + 1}" for k in range(len(plan))]
    _grid([originals[j // repeats] for j in range(len(rows))], rows, names).save(out / "augmentations.png")
    log.info("augmentations: %d images x %d draws x %d views -> %s, %s", n, repeats, len(plan),
             out / "augmentations.png", out / "augmentations.npz")
    print(f"wrote {out / 'augmentations.png'} and {out / 'augmentations.npz'}")
    return {"run_dir": str(out), "views": len(plan), "images": n, "repeats": repeats}


def _probabilities(augment: SSLAugment, k: int, num_global: int):
    """(blur, solarize) probability of view k, as the method's augmentation applies them."""
    from ..data.augment import per_crop

    if num_global == 0:  # a two-view method's augmentation uses BLUR_P / SOLARIZE_P for every view
        return augment.blur_p, augment.solarize_p
    return per_crop(augment.crop_blur_p, k, augment.blur_p), per_crop(augment.crop_solarize_p, k, augment.solarize_p)


def _thumbnail(array: np.ndarray, side: int = 96) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    scale = side / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
    out = np.asarray(img.convert("RGB"))
    return out


def _grid(originals: List[np.ndarray], rows: List[List[torch.Tensor]], names: List[str]):
    from PIL import Image, ImageDraw

    sizes = [v.shape[-1] for v in rows[0]]
    zoom = max(1, -(-CELL_MIN // max(sizes)))
    cell = max(max(sizes) * zoom, 96)
    pad, header = 4, 14
    columns = ["image"] + names
    canvas = Image.new("RGB", (len(columns) * (cell + pad) + pad, header + len(rows) * (cell + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for c, name in enumerate(columns):
        draw.text((pad + c * (cell + pad), 1), name, fill="black")
    for r, (original, views) in enumerate(zip(originals, rows)):
        top = header + pad + r * (cell + pad)
        canvas.paste(Image.fromarray(original), (pad + (cell - original.shape[1]) // 2, top + (cell - original.shape[0]) // 2))
        for c, view in enumerate(views, start=1):
            pixels = (view.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            img = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).convert("RGB")
            img = img.resize((img.width * zoom, img.height * zoom), Image.NEAREST)
            canvas.paste(img, (pad + c * (cell + pad) + (cell - img.width) // 2, top + (cell - img.height) // 2))
    return canvas

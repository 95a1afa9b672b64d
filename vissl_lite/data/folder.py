"""Per-index datasets over a split's image files: the training views and the evaluation view.

Training (`TrainViews`, item (epoch, index)): every view of image `index` cut from the full
image at decode time (crops.py), its random stream a function of (seed, epoch, rank, index).
A file that cannot be read is skipped: the next index (wrapping around) takes its place, with
the same random stream, so every batch keeps its size (BatchNorm, processes in step) and the
run stays a pure function of its seed. The unreadable files met are reported with the item.

Evaluation (`EvalViews`, item index): resize the shorter side to RESIZE_SIZE, centre crop
CROP_SIZE (torchvision's Resize + CenterCrop), for kNN and linear evaluation. An unreadable
file gives an item without a view (the batch is one smaller) and is reported likewise.
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .crops import ViewSpec, draw_views, image_stream, resize_shorter_centre_crop
from .decode import UNREADABLE, decode, open_image, oriented_size, to_channels
from .files import ImageFiles

Unreadable = Tuple[int, str, str]  # (index, path, why)


@dataclass
class ViewsItem:
    views: Optional[List[torch.Tensor]]  # uint8 [C, S, S] per view; None when no file was readable
    label: int
    unreadable: List[Unreadable]


@dataclass
class EvalItem:
    view: Optional[torch.Tensor]  # uint8 [C, S, S]; None for an unreadable file
    label: int
    unreadable: List[Unreadable]


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".splitlines()[0][:200]


class TrainViews(Dataset):
    def __init__(self, files: ImageFiles, channels: int, views: Sequence[ViewSpec], hflip_p: float, seed: int,
                 rank: int, interpolation: str = "bilinear"):
        self.files, self.channels, self.views, self.hflip_p = files, channels, list(views), hflip_p
        self.seed, self.rank, self.interpolation = seed, rank, interpolation
        self.sizes = [v.size for v in self.views]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, request: Tuple[int, int]) -> ViewsItem:
        """The views of image `index` in `epoch` (request = (epoch, index))."""
        epoch, index = request
        n, unreadable = len(self.files), []
        for k in range(n):
            j = (index + k) % n
            rng = image_stream(self.seed, epoch, self.rank, index)
            try:
                views = decode(str(self.files.paths[j]), self.channels,
                               lambda w, h: (draw_views(w, h, self.views, self.hflip_p, rng), self.sizes),
                               self.interpolation)
            except UNREADABLE as err:
                unreadable.append((j, str(self.files.paths[j]), _why(err)))
                continue
            return ViewsItem(views, int(self.files.labels[j]), unreadable)
        return ViewsItem(None, -1, unreadable[:5])


class EvalViews(Dataset):
    """len() and per-index items (uint8 [C, S, S] or None for an unreadable file, label), so a
    process can evaluate its shard of the split (engine/features.py); `read` also says why."""

    def __init__(self, files: ImageFiles, channels: int, crop_size: int, resize_size: int,
                 interpolation: str = "bilinear"):
        self.files, self.channels, self.crop, self.resize = files, channels, crop_size, resize_size
        self.interpolation = interpolation

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tuple[Optional[torch.Tensor], int]:
        item = self.read(index)
        return item.view, item.label

    def read(self, index: int) -> EvalItem:
        path, label = str(self.files.paths[index]), int(self.files.labels[index])
        try:
            view = decode(path, self.channels, self._plan, self.interpolation)[0]
        except UNREADABLE as err:
            return EvalItem(None, label, [(index, path, _why(err))])
        return EvalItem(view, label, [])

    def _plan(self, width: int, height: int):
        return [resize_shorter_centre_crop(width, height, self.resize, self.crop)], [self.crop]


def read_full_image(path: str, channels: int) -> np.ndarray:
    """The whole image, oriented and converted, uint8 [H, W, C] (the augmentation preview)."""
    from PIL import ImageOps

    with open_image(path) as img:
        orientation = oriented_size(img)[2]
        img.load()
        array = np.asarray(to_channels(ImageOps.exif_transpose(img) if orientation != 1 else img, channels))
    return array[:, :, None] if array.ndim == 2 else array

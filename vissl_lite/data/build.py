"""DATA.<split> -> a dataset and its batches, with DistributedSampler's order.

The order of an epoch is a pure function of (SEED_VALUE, epoch, rank, world size), and an image
file's views a pure function of (SEED_VALUE, epoch, rank, index), so a run resumed at batch i of
epoch e sees exactly the batches it had not seen yet, whatever the number of workers.

In-memory sources (digits, synthetic) yield float images in [0, 1] that the method crops and
augments on the device. Image files (disk_folder, disk_filelist, manifest) yield the views cut
in the DataLoader workers (a ViewBatch) for training, and the evaluation view (resize the
shorter side to RESIZE_SIZE, centre crop CROP_SIZE) for evaluation.
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Set, Tuple

import torch

from ..errors import ConfigError
from .crops import ViewSpec
from .files import ImageFiles, file_list, image_folder, manifest
from .folder import EvalViews, TrainViews, Unreadable
from .loader import FolderLoader
from .sources import DIGITS_TEST, DIGITS_TOTAL, load_digits, make_synthetic

log = logging.getLogger(__name__)

FILE_SOURCES = ("disk_folder", "disk_filelist", "manifest")
NAMED_UNREADABLE = 5  # unreadable files named in the log; the rest are counted


def resize_size(transforms) -> int:
    """RESIZE_SIZE, or round(CROP_SIZE x 256 / 224) (224 -> 256, the ImageNet convention)."""
    return transforms.RESIZE_SIZE if transforms.RESIZE_SIZE is not None else round(transforms.CROP_SIZE * 256 / 224)


@dataclass
class SplitData:
    name: str  # TRAIN or TEST
    num_samples: int
    images: Optional[torch.Tensor] = None  # in memory: float [N, C, H, W] in [0, 1]
    labels: Optional[torch.Tensor] = None
    files: Optional[ImageFiles] = None
    eval_views: Optional[EvalViews] = None  # per-index evaluation views (engine/features.py shards them)
    num_workers: int = 0
    loader: Optional[FolderLoader] = None
    unreadable: Set[int] = field(default_factory=set)  # indices of unreadable files met this epoch
    named: int = 0  # unreadable files named in the log so far

    @property
    def folder(self) -> Optional[EvalViews]:
        """The evaluation views of image files as a dataset (None in memory)."""
        return self.eval_views

    @property
    def key(self) -> str:
        return f"DATA.{self.name}.DATA_PATHS"

    def use_views(self, views: List[ViewSpec], hflip_p: float, seed: int, rank: int, interpolation: str) -> None:
        """What `train_batches` cuts from every image file (before the first batch)."""
        if self.files is not None:
            train = TrainViews(self.files, self.eval_views.channels, views, hflip_p, seed, rank, interpolation)
            self.loader = FolderLoader(train, self.num_workers, torch.cuda.is_available())

    def train_batches(self, index_batches: List[torch.Tensor], epoch: int, device) -> Iterator[Tuple[object, torch.Tensor]]:
        """(images, labels) per batch: float images in [0, 1] in memory, else a ViewBatch."""
        if self.files is None:
            yield from self.batches(index_batches, device)
            return
        if self.loader is None:
            raise RuntimeError("SplitData.use_views must be called before train_batches")
        for views, labels, unreadable, exhausted in self.loader.run([[(epoch, int(i)) for i in b] for b in index_batches]):
            self._note(unreadable)
            if exhausted:
                raise self._all_unreadable(unreadable)
            yield views.to(device), labels.to(device, non_blocking=True)

    def batches(self, index_batches: List[torch.Tensor], device) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """In memory: (float images in [0, 1] on `device`, labels) per batch of indices. (Image
        files are evaluated through `folder`.)"""
        if self.files is not None:
            raise TypeError("a split of image files is read through SplitData.folder or train_batches")
        for index in index_batches:
            yield self.images[index].to(device, non_blocking=True), self.labels[index].to(device)

    def require_labels(self) -> None:
        """Image files without labels (a flat folder, a list without them) cannot be evaluated."""
        if self.files is not None and not self.files.labelled:
            raise ConfigError(self.key, [str(p) for p in self.files.paths[:1]] + ["..."],
                              "labelled images: class folders, LABEL_PATHS or a manifest's labels",
                              "the kNN monitor, the online probe and supervised training need labels; "
                              "HOOKS.KNN_MONITOR.ENABLED=false HOOKS.ONLINE_LINEAR_PROBE.ENABLED=false trains without")

    def end_epoch(self) -> int:
        """The number of distinct unreadable files met this epoch (then counting starts afresh)."""
        count = len(self.unreadable)
        self.unreadable = set()
        return count

    def close(self) -> None:
        if self.loader is not None:
            self.loader.close()

    def _note(self, unreadable: List[Unreadable]) -> None:
        for index, path, why in unreadable:
            if index in self.unreadable:
                continue
            self.unreadable.add(index)
            if self.named < NAMED_UNREADABLE:
                self.named += 1
                log.warning("%s: skipping unreadable image %s (%s)%s", self.name, path, why,
                            "; further ones are counted at the end of each epoch, not named"
                            if self.named == NAMED_UNREADABLE else "")

    def _all_unreadable(self, unreadable: List[Unreadable]) -> ConfigError:
        example = f": {unreadable[0][1]}: {unreadable[0][2]}" if unreadable else ""
        return ConfigError(self.key, [str(p) for p in self.files.paths[:1]] + (["..."] if len(self.files) > 1 else []),
                           "a source with readable images", f"every image failed to decode{example}")


def _source(split_cfg, split: str) -> Tuple[str, str]:
    key = f"DATA.{split}.DATA_SOURCES"
    if len(split_cfg.DATA_SOURCES) != 1:
        raise ConfigError(key, list(split_cfg.DATA_SOURCES), "exactly one source per split")
    source = split_cfg.DATA_SOURCES[0]
    path = split_cfg.DATA_PATHS[0] if split_cfg.DATA_PATHS else ""
    if source in FILE_SOURCES and not path:
        raise ConfigError(f"DATA.{split}.DATA_PATHS", list(split_cfg.DATA_PATHS), f"[a path] for {source}")
    return source, path


def _limit(n: int, split_cfg) -> int:
    return n if split_cfg.DATA_LIMIT < 0 else min(n, split_cfg.DATA_LIMIT)


WHAT = {"disk_folder": "an existing folder laid out root/class/**/image or root/image",
        "disk_filelist": "a .npy array of image paths (labels: LABEL_PATHS, a .npy of integers)",
        "manifest": "a .txt or .csv file of `path[,label]` lines"}


def list_files(split_cfg, split: str) -> ImageFiles:
    """The split's image files (nothing decoded), DATA_LIMIT applied."""
    source, path = _source(split_cfg, split)
    try:
        if source == "disk_folder":
            files = image_folder(path)
        elif source == "disk_filelist":
            files = file_list(path, split_cfg.LABEL_PATHS[0] if split_cfg.LABEL_PATHS else "")
        else:
            files = manifest(path)
    except (OSError, ValueError) as err:
        note = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
        raise ConfigError(f"DATA.{split}.DATA_PATHS[0]", path, WHAT[source],
                          note.replace("no image files", "found none: no image files")) from err
    return files if split_cfg.DATA_LIMIT < 0 else files.first(split_cfg.DATA_LIMIT)


def count_samples(split_cfg, split: str) -> int:
    """The split's size without decoding anything (engine_name=explain)."""
    source, _ = _source(split_cfg, split)
    if source == "digits":
        return _limit(DIGITS_TEST if split == "TEST" else DIGITS_TOTAL - DIGITS_TEST, split_cfg)
    if source == "synthetic":
        return _limit(split_cfg.NUM_SAMPLES_SYNTHETIC, split_cfg)
    return len(list_files(split_cfg, split))


def build_split(split_cfg, split: str, channels: int, eval_transforms=None) -> SplitData:
    """`eval_transforms` (default: the split's own) sets the evaluation view of image files: the
    engine passes DATA.TEST.TRANSFORMS for TRAIN too, the kNN bank being seen as the queries are."""
    source, _ = _source(split_cfg, split)
    if source in FILE_SOURCES:
        files = list_files(split_cfg, split)
        t = eval_transforms if eval_transforms is not None else split_cfg.TRANSFORMS
        views = EvalViews(files, channels, t.CROP_SIZE, resize_size(t), t.INTERPOLATION)
        return SplitData(split, len(files), files=files, eval_views=views, num_workers=split_cfg.NUM_DATALOADER_WORKERS)
    if source == "digits":
        images, labels = load_digits(split)
    else:
        images, labels = make_synthetic(split_cfg.NUM_SAMPLES_SYNTHETIC, channels, split_cfg.TRANSFORMS.CROP_SIZE, split)
    if images.shape[1] != channels:
        raise ConfigError("MODEL.TRUNK.RESNETS.INPUT_CHANNELS", channels, f"{images.shape[1]} for {source} images")
    n = _limit(len(images), split_cfg)
    return SplitData(split, n, images=images[:n], labels=labels[:n])


def crop_plan(method, transforms) -> List[ViewSpec]:
    """The views a method (or its class) takes of every image, in its order: a multi-crop
    method's global crops (CROP_SIZE, CROP_SCALE) then LOCAL_CROPS_NUMBER local ones; otherwise
    its num_views (2 when it does not say: MoCo's query and key) global crops."""
    global_view = ViewSpec(transforms.CROP_SIZE, tuple(transforms.CROP_SCALE))
    if hasattr(method, "num_global_crops"):
        local = ViewSpec(transforms.LOCAL_CROP_SIZE, tuple(transforms.LOCAL_CROP_SCALE))
        return [global_view] * method.num_global_crops + [local] * transforms.LOCAL_CROPS_NUMBER
    return [global_view] * getattr(method, "num_views", 2)


def per_replica_samples(num_samples: int, world_size: int, drop_last: bool) -> int:
    """DistributedSampler's count: drop the tail, or pad by wrapping around."""
    return num_samples // world_size if drop_last else math.ceil(num_samples / world_size)


def micro_batches_per_epoch(num_samples: int, world_size: int, batch_size: int, drop_last: bool, key: str) -> int:
    per_replica = per_replica_samples(num_samples, world_size, drop_last)
    if drop_last and per_replica < batch_size:
        raise ConfigError(key, batch_size, f"at most {per_replica} images per process with DROP_LAST "
                                           f"({num_samples} images over {world_size} process(es))")
    return per_replica // batch_size if drop_last else math.ceil(per_replica / batch_size)


def index_batches(num_samples: int, batch_size: int, epoch: int, seed: int, rank: int, world_size: int,
                  shuffle: bool, drop_last: bool) -> List[torch.Tensor]:
    """This rank's batches of dataset indices for one epoch, in DistributedSampler's order."""
    if shuffle:
        order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed + epoch))
    else:
        order = torch.arange(num_samples)
    per_replica = per_replica_samples(num_samples, world_size, drop_last)
    total = per_replica * world_size
    if total > num_samples:  # pad like DistributedSampler
        order = torch.cat([order, order[: total - num_samples]])
    mine = order[:total][rank::world_size]
    batches = list(mine.split(batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches

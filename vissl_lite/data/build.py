"""DATA.<split> -> a dataset and its batches, with DistributedSampler's order.

The order of an epoch is a pure function of (SEED_VALUE, epoch, rank, world size), so a run
resumed at batch i of epoch e sees exactly the batches it had not seen yet.
"""

import math
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import torch
from torch.utils.data import DataLoader

from ..errors import ConfigError
from .sources import DIGITS_TEST, DIGITS_TOTAL, ImageFolder, count_images, load_digits, make_synthetic


@dataclass
class SplitData:
    name: str  # TRAIN or TEST
    num_samples: int
    images: Optional[torch.Tensor] = None  # in memory: float [N, C, H, W] in [0, 1]
    labels: Optional[torch.Tensor] = None
    folder: Optional[ImageFolder] = None
    num_workers: int = 0
    skipped: int = 0  # unreadable images met so far

    def batches(self, index_batches: List[torch.Tensor], device) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """Yield (float images in [0, 1] on `device`, labels) for each batch of indices."""
        if self.folder is None:
            for index in index_batches:
                yield self.images[index].to(device, non_blocking=True), self.labels[index].to(device)
            return
        loader = DataLoader(self.folder, batch_sampler=[b.tolist() for b in index_batches],
                            num_workers=self.num_workers, collate_fn=_collate_readable,
                            pin_memory=torch.device(device).type == "cuda")
        for images, labels, skipped in loader:
            self.skipped += skipped
            if images is None:
                continue
            yield images.to(device, non_blocking=True).float().div_(255), labels.to(device)


def _collate_readable(items):
    readable = [(img, label) for img, label in items if img is not None]
    if not readable:
        return None, None, len(items)
    images = torch.stack([img for img, _ in readable])
    return images, torch.tensor([label for _, label in readable]), len(items) - len(readable)


def _source(split_cfg, split: str) -> Tuple[str, str]:
    key = f"DATA.{split}.DATA_SOURCES"
    if len(split_cfg.DATA_SOURCES) != 1:
        raise ConfigError(key, list(split_cfg.DATA_SOURCES), "exactly one source per split")
    source = split_cfg.DATA_SOURCES[0]
    path = split_cfg.DATA_PATHS[0] if split_cfg.DATA_PATHS else ""
    if source == "disk_folder" and not path:
        raise ConfigError(f"DATA.{split}.DATA_PATHS", list(split_cfg.DATA_PATHS), "[a folder] for disk_folder")
    return source, path


def _limit(n: int, split_cfg) -> int:
    return n if split_cfg.DATA_LIMIT < 0 else min(n, split_cfg.DATA_LIMIT)


def count_samples(split_cfg, split: str) -> int:
    """The split's size without loading it (engine_name=explain)."""
    source, path = _source(split_cfg, split)
    if source == "digits":
        n = DIGITS_TEST if split == "TEST" else DIGITS_TOTAL - DIGITS_TEST
    elif source == "synthetic":
        n = split_cfg.NUM_SAMPLES_SYNTHETIC
    else:
        n = count_images(path)
        if not n:
            raise ConfigError(f"DATA.{split}.DATA_PATHS[0]", path, "an existing folder with images")
    return _limit(n, split_cfg)


def build_split(split_cfg, split: str, channels: int) -> SplitData:
    source, path = _source(split_cfg, split)
    size = split_cfg.TRANSFORMS.CROP_SIZE
    if source == "disk_folder":
        folder = ImageFolder(path, f"DATA.{split}.DATA_PATHS[0]", load_size=round(size * 256 / 224), channels=channels)
        if split_cfg.DATA_LIMIT >= 0:
            folder.files = folder.files[: split_cfg.DATA_LIMIT]
        return SplitData(split, len(folder), folder=folder, num_workers=split_cfg.NUM_DATALOADER_WORKERS)
    if source == "digits":
        images, labels = load_digits(split)
    else:
        images, labels = make_synthetic(split_cfg.NUM_SAMPLES_SYNTHETIC, channels, size, split)
    if images.shape[1] != channels:
        raise ConfigError("MODEL.TRUNK.RESNETS.INPUT_CHANNELS", channels, f"{images.shape[1]} for {source} images")
    n = _limit(len(images), split_cfg)
    return SplitData(split, n, images=images[:n], labels=labels[:n])


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

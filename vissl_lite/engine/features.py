"""Features of a split's evaluation view, extracted by every rank on its shard and gathered in
dataset order, every image once (the kNN monitor, the online probe's evaluation and the
extract_features engine all read features through here).

Rank r of W takes the dataset indices r, r + W, r + 2W, ... (DistributedSampler's order without
shuffling), padded by wrapping around to P = ceil(N / W) per rank, so every rank runs the same
number of batches of the same sizes: the collectives inside a sharded model's forward and the
per-batch gather stay matched. Batch k of every rank holds the shard positions p = kB .. kB + b - 1,
i.e. the dataset indices pW + r; gathered ([W, b]) and interleaved ([b, W]) they are the contiguous
dataset slice kBW .. (kB + b)W - 1, of which the part below N is kept (the padding repeats the first
images and is dropped). Each batch's rows are therefore final as soon as they are gathered: they go
straight into a preallocated bank or a memory-mapped file, and nothing larger than a batch is
gathered at once.
"""

import contextlib
import logging
import math
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader

from .. import distributed
from ..data.augment import center_view

log = logging.getLogger("vissl_lite")

# images (a batch of the evaluation view) -> a tuple of per-image outputs, each [b, ...]
Forward = Callable[[torch.Tensor], Tuple[torch.Tensor, ...]]


def shard_batches(num_samples: int, batch_size: int, rank: int, world_size: int) -> List[torch.Tensor]:
    """This rank's batches of dataset indices: r, r + W, ... padded to ceil(N / W) by wrapping around."""
    per_rank = math.ceil(num_samples / world_size)
    positions = torch.arange(per_rank) * world_size + rank
    return list((positions % num_samples).split(batch_size))


def trunk_forward(trunk: torch.nn.Module, patch_tokens: bool = False) -> Forward:
    """The one way evaluation asks a trunk for features: images -> (features float32 [b, D],), and
    with `patch_tokens` also the final-norm patch tokens float16 [b, T, D] of a ViT (the tokens
    after the class token and any register tokens). A distribution strategy that wraps the trunk
    (DDP's module, FSDP's sharded trunk) passes the module whose forward all ranks call together."""
    if not patch_tokens:
        return lambda x: (trunk(x).float(),)
    if not isinstance(getattr(trunk, "norm", None), torch.nn.LayerNorm) or not hasattr(trunk, "blocks"):
        raise ValueError(f"patch tokens come from a vision transformer trunk, not {type(trunk).__name__}")
    registers = getattr(trunk, "reg_token", None)  # DINOv2's register tokens [1, R, D] follow the class token
    skip = 1 + (registers.shape[1] if registers is not None else 0)

    def forward(x):
        captured = []
        handle = trunk.norm.register_forward_hook(lambda module, args, out: captured.append(out))
        try:
            features = trunk(x)
        finally:
            handle.remove()
        return features.float(), captured[-1][:, skip:].half()

    return forward


def evaluation_view(transforms_cfg, mean, std) -> Callable[[torch.Tensor], torch.Tensor]:
    """Images in [0, 1] -> the evaluation view (center crop, normalised), channels_last as the model."""
    def view(images):
        return center_view(images, transforms_cfg.CROP_SIZE, mean, std).contiguous(memory_format=torch.channels_last)

    return view


class _BlackForUnreadable:
    """A DataLoader collate for image files: an image that failed to decode stands in as a black
    image (so that rows and dataset indices stay aligned); each batch carries which did, since a
    collate in a worker process cannot count into the main process."""

    def __init__(self, shape: Optional[Tuple[int, int, int]] = None):
        self.shape = shape

    def __call__(self, items):
        readable = [img for img, _ in items if img is not None]
        if readable:
            self.shape = tuple(readable[0].shape)
        if self.shape is None:
            raise ValueError("no image of the batch could be read, so its size is unknown")
        images = torch.stack([img if img is not None else torch.zeros(self.shape, dtype=torch.uint8)
                              for img, _ in items])
        return (images, torch.tensor([label for _, label in items]),
                torch.tensor([img is not None for img, _ in items], dtype=torch.uint8))


def iter_images(split, index_batches: Sequence[torch.Tensor], device
                ) -> Iterator[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(images float in [0, 1] on `device`, labels, 1 for a readable image / 0) for every batch of
    indices, none skipped.

    `split` is an in-memory split (`images`, `labels` tensors), an image-file split (`folder`, a
    dataset), or any dataset with len() whose items are (uint8 image [C, H, W] or None, label)."""
    images = getattr(split, "images", None)
    if images is not None:
        for index in index_batches:
            index = index.to(images.device)
            labels = split.labels[index].to(device)
            yield images[index].to(device, non_blocking=True), labels, torch.ones_like(labels, dtype=torch.uint8)
        return
    dataset = split.folder if getattr(split, "folder", None) is not None else split
    # the evaluation view's size where the dataset states it (vissl_lite's EvalViews), else learned
    known = (dataset.channels, dataset.crop, dataset.crop) if hasattr(dataset, "crop") else None
    loader = DataLoader(dataset, batch_sampler=[b.tolist() for b in index_batches],
                        num_workers=getattr(split, "num_workers", 0), collate_fn=_BlackForUnreadable(known),
                        pin_memory=torch.device(device).type == "cuda")
    for batch, labels, readable in loader:
        yield batch.to(device, non_blocking=True).float().div_(255), labels.to(device), readable.to(device)


def num_samples_of(split) -> int:
    return split.num_samples if hasattr(split, "num_samples") else len(split)


@torch.no_grad()
def extract_in_order(forward: Forward, split, view, batch_size: int, env, device,
                     on_rows: Callable[[int, Tuple[torch.Tensor, ...], torch.Tensor], None],
                     progress: bool = False, desc: str = "features") -> int:
    """Run `forward(view(images))` over this rank's shard; after every batch the ranks' outputs are
    gathered and `on_rows(start, outputs, labels)` receives the dataset rows start .. start + m - 1
    (on every rank). Returns the number of images that could not be read (image files), each
    counted once."""
    from tqdm import tqdm

    n = num_samples_of(split)
    batches = shard_batches(n, batch_size, env.rank, env.world_size)
    unreadable, start = 0, 0
    bar = tqdm(total=n, desc=desc, unit="img", disable=not (progress and env.is_main), dynamic_ncols=True)
    # Evaluation runs eager even when training is compiled: one eval-mode graph per batch size
    # would cost more compile time than the forwards it speeds up.
    with torch.compiler.set_stance("force_eager"):
        for images, labels, readable in iter_images(split, batches, device):
            outputs = forward(view(images)) + (labels, readable)
            rows = [_interleave(distributed.all_gather_stacked(env, out)) for out in outputs]
            m = min(len(rows[0]), n - start)  # the padding, after the last image, is dropped
            on_rows(start, tuple(r[:m] for r in rows[:-2]), rows[-2][:m])
            unreadable += int((rows[-1][:m] == 0).sum())
            start += m
            bar.update(m)
    bar.close()
    if start != n:
        raise RuntimeError(f"gathered {start} rows for {n} images")
    return unreadable


def _interleave(stacked: torch.Tensor) -> torch.Tensor:
    """[W, b, ...] (rank r's row j is shard position j of rank r) -> [b * W, ...] in dataset order."""
    return stacked.transpose(0, 1).reshape(-1, *stacked.shape[2:])


def gather_features(forward: Forward, split, view, batch_size: int, env, device,
                    dtype: torch.dtype = torch.float32, normalize: bool = False, progress: bool = False
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(features [N, D] in `dtype` on `device`, labels [N]) of the whole split in dataset order, on
    every rank; `normalize` L2-normalises each row in float32 before the cast (a kNN bank)."""
    store = {}

    def keep(start, outputs, labels):
        rows = outputs[0].float()
        if normalize:
            rows = torch.nn.functional.normalize(rows, dim=1)
        if not store:
            n = num_samples_of(split)
            store["features"] = torch.empty(n, rows.shape[1], dtype=dtype, device=device)
            store["labels"] = torch.empty(n, dtype=labels.dtype, device=device)
        store["features"][start: start + len(rows)] = rows
        store["labels"][start: start + len(rows)] = labels

    skipped = extract_in_order(forward, split, view, batch_size, env, device, keep, progress)
    if skipped and env.is_main:  # the count is of the gathered rows: every rank has the same
        log.warning("%d unreadable images entered the features as black images", skipped)
    return store["features"], store["labels"]


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module):
    """`module` in eval mode for the body, its train/eval state restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)

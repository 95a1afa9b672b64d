"""The training DataLoader of a split of image files, its workers kept for the whole run.

Its items are requests (epoch, index) for an image's training views (folder.TrainViews): the
epoch travels inside the request, because persistent workers hold their own copy of the dataset
and would never see an attribute set on it after they started. (Evaluation views are read by
engine/features.py from SplitData.folder, a per-index dataset, shard by shard.)

Workers are persistent (started once, reused by every epoch); torch's worker
loop already limits each to one torch thread. The main process then keeps at most the cores the
workers leave free as its own intra-op threads (at least one): an OpenMP team larger than the
free cores spins at every barrier while a worker holds one of its cores, which on a 2-core
machine with 2 workers made each SimCLR step on 8-pixel views 3.5 s instead of 0.2 s. (The
setting is process-wide and stays after the loader closes.) On CUDA batches are pinned by the
loader's pin thread and copied with non_blocking, so the copy of batch i + 1 overlaps the step
on batch i (`prefetch_factor` batches per worker are decoded ahead).
"""

import os
from typing import Iterator, List, Optional, Tuple

import torch
from torch.utils.data import DataLoader, default_collate

from .folder import TrainViews, Unreadable
from .view_batch import ViewBatch

Request = Tuple[int, int]  # (epoch, dataset index)


class _Batches:
    """The batch sampler: the current pass's batches of requests (set before each pass)."""

    def __init__(self):
        self.current: List[List[Request]] = []

    def __iter__(self):
        return iter(self.current)

    def __len__(self) -> int:
        return len(self.current)


def collate(items) -> Tuple[Optional[ViewBatch], torch.Tensor, List[Unreadable], bool]:
    """(the views, labels, the unreadable files met, exhausted): `exhausted` says an item found no
    readable file in the whole split (then there is no batch)."""
    unreadable = [u for item in items for u in item.unreadable]
    if any(item.views is None for item in items):
        return None, torch.zeros(0, dtype=torch.int64), unreadable, True
    views = [default_collate([item.views[v] for item in items]) for v in range(len(items[0].views))]
    return ViewBatch(views), torch.tensor([item.label for item in items]), unreadable, False


def main_process_threads(current: int, cores: int, num_workers: int) -> int:
    """The main process's intra-op threads beside `num_workers` busy workers: min(current,
    cores - num_workers), at least 1 (no workers: unchanged)."""
    return current if num_workers == 0 else max(1, min(current, cores - num_workers))


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, as taskset / cgroups set it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class FolderLoader:
    def __init__(self, dataset: TrainViews, num_workers: int, pin_memory: bool):
        self.dataset = dataset
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.sampler = _Batches()
        self.loader: Optional[DataLoader] = None

    def run(self, requests: List[List[Request]]) -> Iterator:
        """Collated batches for `requests`, in order (a pass; the previous one must be over)."""
        self.sampler.current = requests
        if self.loader is None:
            torch.set_num_threads(main_process_threads(torch.get_num_threads(), usable_cores(), self.num_workers))
            self.loader = DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=self.num_workers,
                                     collate_fn=collate, pin_memory=self.pin_memory,
                                     persistent_workers=self.num_workers > 0)
        return iter(self.loader)

    def close(self) -> None:
        """Stop the workers now (they also stop when the loader is garbage collected)."""
        iterator = getattr(self.loader, "_iterator", None) if self.loader is not None else None
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()
        self.loader = None

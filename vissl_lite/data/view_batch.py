"""A micro-batch of views cut in the DataLoader workers, on its way to the method.

The views stay uint8 [B, C, S, S] (a quarter of float32's bytes) until they are on the training
device; `next_raw()` then hands them to the batched photometric augmentation one at a time, in
the order they were cut (`next_view()`: as float [B, C, S, S] in [0, 1]).
"""

from dataclasses import dataclass
from typing import List

import torch


@dataclass
class ViewBatch:
    views: List[torch.Tensor]  # one uint8 [B, C, S, S] per view, in the crop plan's order
    cursor: int = 0

    def __len__(self) -> int:
        return len(self.views[0])

    def pin_memory(self) -> "ViewBatch":
        """Page-locked copies, so the copy to a GPU runs asynchronously (DataLoader calls this)."""
        return ViewBatch([v.pin_memory() for v in self.views])

    def to(self, device) -> "ViewBatch":
        return ViewBatch([v.to(device, non_blocking=True) for v in self.views])

    def next_view(self) -> torch.Tensor:
        """The next view as float [B, C, S, S] in [0, 1], a fresh tensor (the photometric ops change it in place)."""
        return self.next_raw().float().div_(255)

    def next_raw(self) -> torch.Tensor:
        """The next view as it came, uint8 [B, C, S, S] (the photometric ops read it chunk by chunk)."""
        if self.cursor >= len(self.views):
            raise ValueError(f"the method asked for view {self.cursor + 1}, but the data pipeline cut "
                             f"{len(self.views)} per image (data/build.py crop_plan)")
        self.cursor += 1
        return self.views[self.cursor - 1]

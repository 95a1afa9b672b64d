"""Datasets (embedded digits, synthetic, image files) and batched SSL augmentation."""

from .augment import SSLAugment, center_view
from .build import (SplitData, build_split, count_samples, crop_plan, index_batches, micro_batches_per_epoch,
                    resize_size)
from .view_batch import ViewBatch

__all__ = ["SSLAugment", "SplitData", "ViewBatch", "build_split", "center_view", "count_samples", "crop_plan",
           "index_batches", "micro_batches_per_epoch", "resize_size"]

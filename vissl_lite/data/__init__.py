"""Datasets (embedded digits, synthetic, image folder) and batched SSL augmentation."""

from .augment import SSLAugment, center_view
from .build import SplitData, build_split, count_samples, index_batches, micro_batches_per_epoch

__all__ = ["SSLAugment", "SplitData", "build_split", "center_view", "count_samples", "index_batches",
           "micro_batches_per_epoch"]

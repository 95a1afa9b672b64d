"""What the engine measures on the TEST split: kNN top-1 on trunk features, the online linear
probe's top-1, and a supervised model's top-1.

Every rank takes part (features.py shards the images and gathers the rows in dataset order), and
every rank gets the same numbers. The ranks first take rank 0's buffers (BatchNorm statistics), as
DDP would at the next forward, so the result equals one process's on rank 0's weights.
"""

import torch

from .. import distributed
from ..data.augment import per_channel
from ..models.trunks import input_channels
from .features import evaluation_view, eval_mode, gather_features, trunk_forward
from .knn import bank_dtype, knn_top1


def eval_normalisation(cfg):
    t, channels = cfg.DATA.TEST.TRANSFORMS, input_channels(cfg.MODEL.TRUNK)
    return (t, per_channel(t.MEAN, channels, "DATA.TEST.TRANSFORMS.MEAN"),
            per_channel(t.STD, channels, "DATA.TEST.TRANSFORMS.STD"))


def eval_view(cfg):
    """The evaluation view of both splits: DATA.TEST.TRANSFORMS' crop and normalisation."""
    return evaluation_view(*eval_normalisation(cfg))


def split_features(model, split, cfg, device, env, dtype=torch.float32, normalize=False, progress=False):
    """(features [N, D], labels [N]) of the trunk on the split's evaluation view, on every rank."""
    distributed.broadcast_buffers(env, model.trunk)
    with eval_mode(model.trunk):
        return gather_features(trunk_forward(model.trunk), split, eval_view(cfg), cfg.DATA.TEST.BATCHSIZE_PER_REPLICA,
                               env, device, dtype=dtype, normalize=normalize, progress=progress)


def evaluate_knn(model, train_split, test_split, cfg, device, env, queries=None) -> float:
    """kNN top-1 with TRAIN as the bank (normalised, float16 on CUDA); `queries` reuses TEST features
    already extracted."""
    knn = cfg.HOOKS.KNN_MONITOR
    bank, bank_labels = split_features(model, train_split, cfg, device, env, bank_dtype(device), normalize=True)
    query_feats, query_labels = queries if queries is not None else split_features(model, test_split, cfg, device, env)
    return knn_top1(bank, bank_labels, query_feats, query_labels, knn.K, knn.TEMPERATURE, env)


def top1_over_ranks(predict, inputs: torch.Tensor, labels: torch.Tensor, env) -> float:
    """The fraction of rows with predict(rows) == label; rank r scores rows r, r + W, ... and the
    correct counts are summed over ranks."""
    mine = slice(env.rank, None, env.world_size)
    with torch.no_grad():
        correct = (predict(inputs[mine]) == labels[mine]).sum().item()
    return distributed.sum_over_ranks(env, correct) / len(inputs)


def evaluate_top1(model, test_split, cfg, device, env) -> float:
    """Top-1 of the model's logits on the TEST split's evaluation view (supervised runs)."""
    distributed.broadcast_buffers(env, model)
    with eval_mode(model):
        logits, labels = gather_features(lambda x: (model(x).float(),), test_split, eval_view(cfg),
                                         cfg.DATA.TEST.BATCHSIZE_PER_REPLICA, env, device)
    return top1_over_ranks(lambda rows: rows.argmax(1), logits, labels, env)

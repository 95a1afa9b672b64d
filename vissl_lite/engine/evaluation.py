"""What the engine measures on the TEST split: kNN top-1 on trunk features, the online linear
probe's top-1, and a supervised model's top-1."""

import torch

from ..data import center_view
from ..data.augment import per_channel
from ..models.trunks import input_channels
from .knn import extract_features, knn_top1


def eval_normalisation(cfg):
    t, channels = cfg.DATA.TEST.TRANSFORMS, input_channels(cfg.MODEL.TRUNK)
    return (t, per_channel(t.MEAN, channels, "DATA.TEST.TRANSFORMS.MEAN"),
            per_channel(t.STD, channels, "DATA.TEST.TRANSFORMS.STD"))


def split_features(model, split, cfg, device):
    """(features, labels) of the trunk on the split's evaluation view."""
    t, mean, std = eval_normalisation(cfg)
    return extract_features(model.trunk, split, t, mean, std, device, cfg.DATA.TEST.BATCHSIZE_PER_REPLICA)


def evaluate_knn(model, train_split, test_split, cfg, device, queries=None) -> float:
    """kNN top-1 with TRAIN as the bank; `queries` reuses TEST features already extracted."""
    knn = cfg.HOOKS.KNN_MONITOR
    bank, bank_labels = split_features(model, train_split, cfg, device)
    query_feats, query_labels = queries if queries is not None else split_features(model, test_split, cfg, device)
    return knn_top1(bank, bank_labels, query_feats, query_labels, knn.K, knn.TEMPERATURE)


@torch.no_grad()
def evaluate_top1(model, test_split, cfg, device) -> float:
    """Top-1 of the model's logits on the TEST split's evaluation view (supervised runs)."""
    t, mean, std = eval_normalisation(cfg)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    batches = list(torch.arange(test_split.num_samples).split(cfg.DATA.TEST.BATCHSIZE_PER_REPLICA))
    for images, labels in test_split.batches(batches, device):
        correct += (model(center_view(images, t.CROP_SIZE, mean, std)).argmax(1) == labels).sum()
    model.train(was_training)
    return correct.item() / test_split.num_samples

"""kNN monitor: top-1 of a weighted k-nearest-neighbour vote on normalised trunk features
(cosine similarity), TRAIN split as the bank and TEST split as the queries."""

import torch
import torch.nn.functional as F

from ..data.augment import center_view


@torch.no_grad()
def extract_features(trunk, split, transforms_cfg, mean, std, device, batch_size: int):
    """Trunk features (float32, not normalised) of the split's evaluation view, and labels."""
    was_training = trunk.training
    trunk.eval()
    feats, labels = [], []
    batches = list(torch.arange(split.num_samples).split(batch_size))
    for images, y in split.batches(batches, device):
        x = center_view(images, transforms_cfg.CROP_SIZE, mean, std)
        if x.is_cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        feats.append(trunk(x).float())
        labels.append(y)
    trunk.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def knn_top1(bank, bank_labels, queries, query_labels, k: int = 20, temperature: float = 0.07,
             chunk: int = 1024) -> float:
    """Each query's class = argmax_c sum over its k most similar bank items of class c of
    exp(cosine / temperature) (the InstDisc / DINO vote)."""
    bank, queries = F.normalize(bank, dim=1), F.normalize(queries, dim=1)
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    k = min(k, len(bank))
    correct = 0
    for start in range(0, len(queries), chunk):
        sim = queries[start: start + chunk] @ bank.t()
        top_sim, top_idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(top_sim), num_classes, device=sim.device)
        votes.scatter_add_(1, bank_labels[top_idx], torch.exp(top_sim / temperature))
        correct += (votes.argmax(1) == query_labels[start: start + chunk]).sum().item()
    return correct / len(queries)

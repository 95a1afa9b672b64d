"""kNN monitor: a weighted k-nearest-neighbour vote on L2-normalised trunk features (cosine
similarity), TRAIN split as the bank and TEST split as the queries (the InstDisc / DINO vote):

    class(q) = argmax_c  sum over the k bank rows i most similar to q with label c of exp(cos(q, b_i) / T)

The bank is held normalised on the device, in float16 on CUDA (1.28M x 384 is 0.98 GB), and
searched in chunks: for a chunk of queries, the top k of each bank chunk are merged with the
running top k, so no more than query_chunk x bank_chunk similarities exist at once. Under torchrun
every rank holds the whole bank and votes for the queries r, r + W, ...; the correct votes are
summed over ranks.
"""

import torch
import torch.nn.functional as F

from .. import distributed


def bank_dtype(device) -> torch.dtype:
    """float16 on CUDA (half the memory, tensor-core matmuls); float32 on CPU, where half
    matmuls are slow and memory is not the limit."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


@torch.no_grad()
def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int, temperature: float,
                num_classes: int, query_chunk: int = 1024, bank_chunk: int = 262144) -> torch.Tensor:
    """The voted class of every query. `bank` rows are L2-normalised (in the dtype the search
    runs in); `queries` are raw features, normalised here chunk by chunk."""
    k = min(k, len(bank))
    bank_chunk = max(bank_chunk, k)  # every chunk but the last yields k candidates
    predictions = []
    for q_start in range(0, len(queries), query_chunk):
        q = F.normalize(queries[q_start: q_start + query_chunk].float(), dim=1).to(bank.dtype)
        top_sim = top_idx = None
        for b_start in range(0, len(bank), bank_chunk):
            sim = q @ bank[b_start: b_start + bank_chunk].t()
            chunk_sim, chunk_idx = sim.topk(min(k, sim.shape[1]), dim=1)
            chunk_idx += b_start
            if top_sim is not None:  # merge with the best k so far
                chunk_sim, chunk_idx = torch.cat([top_sim, chunk_sim], 1), torch.cat([top_idx, chunk_idx], 1)
                chunk_sim, best = chunk_sim.topk(k, dim=1)
                chunk_idx = chunk_idx.gather(1, best)
            top_sim, top_idx = chunk_sim, chunk_idx
        votes = torch.zeros(len(q), num_classes, dtype=torch.float32, device=q.device)
        votes.scatter_add_(1, bank_labels[top_idx], torch.exp(top_sim.float() / temperature))
        predictions.append(votes.argmax(1))
    return torch.cat(predictions) if predictions else bank_labels.new_zeros(0)


def knn_top1(bank, bank_labels, queries, query_labels, k: int = 20, temperature: float = 0.07, env=None,
             query_chunk: int = 1024, bank_chunk: int = 262144) -> float:
    """Top-1 of the vote over all queries; with `env` (torchrun) rank r votes for queries r, r + W, ...
    and the correct counts are summed, so each query is voted once."""
    rank, world = (env.rank, env.world_size) if env is not None else (0, 1)
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    mine = slice(rank, None, world)
    predicted = knn_predict(bank, bank_labels, queries[mine], k, temperature, num_classes, query_chunk, bank_chunk)
    correct = (predicted == query_labels[mine]).sum().item()
    if env is not None:
        correct = distributed.sum_over_ranks(env, correct)
    return correct / len(queries)

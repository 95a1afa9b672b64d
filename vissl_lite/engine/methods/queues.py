"""The two queues of the queue methods: SwAV's embedding FIFO and MoCo's ring of negative keys.
Both are plain tensors plus a counter, so a checkpoint holds them exactly."""

import torch


class EmbeddingFIFO:
    """SwAV's queue: per target crop, the `length` most recent embeddings, newest first.

        push(e [A, B, D]):  queue[a] <- [e[a]; queue[a]][:length]

    It is `full` once `length` embeddings have gone in (SwAV uses it from then on; until then
    its zero rows would distort the equal partition). E.g. length 3, pushes of [1, 2] then [3, 4]
    hold [1, 2, 0] (not full), then [3, 4, 1] (full).
    """

    def __init__(self, num_crops: int, length: int, dim: int, device=None):
        if length <= 0:
            raise ValueError(f"queue length must be > 0, got {length}")
        self.embeddings = torch.zeros(num_crops, length, dim, device=device)
        self.filled = 0

    @property
    def length(self) -> int:
        return self.embeddings.shape[1]

    @property
    def full(self) -> bool:
        return self.filled >= self.length

    @torch.no_grad()
    def push(self, embeddings: torch.Tensor) -> None:
        if embeddings.shape[0] != self.embeddings.shape[0] or embeddings.shape[2] != self.embeddings.shape[2]:
            raise ValueError(f"queue holds [{self.embeddings.shape[0]}, L, {self.embeddings.shape[2]}], "
                             f"got embeddings of shape {tuple(embeddings.shape)}")
        merged = torch.cat([embeddings.detach().to(self.embeddings.dtype), self.embeddings], dim=1)
        self.embeddings = merged[:, : self.length].contiguous()
        self.filled = min(self.filled + embeddings.shape[1], self.length)

    def state_dict(self) -> dict:
        return {"embeddings": self.embeddings, "filled": self.filled}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["embeddings"].shape) != tuple(self.embeddings.shape):
            raise ValueError(f"the saved queue has shape {tuple(state['embeddings'].shape)}, this run's "
                             f"{tuple(self.embeddings.shape)}")
        self.embeddings = state["embeddings"].to(self.embeddings.device).clone()
        self.filled = int(state["filled"])


class RingQueue:
    """MoCo's queue: `size` keys in a ring; each enqueue overwrites the oldest.

        enqueue(k [n, D]):  queue[(ptr + i) % size] <- k[i] for i < n;  ptr <- (ptr + n) % size

    E.g. size 4 at ptr 3, enqueue [a, b]: queue[3] = a, queue[0] = b, ptr 1. An enqueue of more
    than `size` keys keeps its last `size`, as the loop above would.
    """

    def __init__(self, keys: torch.Tensor):
        self.keys = keys  # [size, D], the starting contents (MoCo: random unit vectors)
        self.ptr = 0

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        n = keys.shape[0]
        first = max(0, n - self.size)  # earlier keys would be overwritten within this call
        positions = (self.ptr + torch.arange(first, n, device=self.keys.device)) % self.size
        # A new tensor, not an in-place write: this step's loss saved the old one for its backward.
        self.keys = self.keys.index_put((positions,), keys[first:].detach().to(self.keys.dtype))
        self.ptr = (self.ptr + n) % self.size

    def state_dict(self) -> dict:
        return {"keys": self.keys, "ptr": self.ptr}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["keys"].shape) != tuple(self.keys.shape):
            raise ValueError(f"the saved queue has shape {tuple(state['keys'].shape)}, this run's "
                             f"{tuple(self.keys.shape)}")
        self.keys = state["keys"].to(self.keys.device).clone()
        self.ptr = int(state["ptr"])

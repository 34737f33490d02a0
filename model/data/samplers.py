"""Batch samplers: shuffled, rank-split, drop-last training batches with a per-batch size; eval batches.

Training (``TrainBatchSampler``): every epoch a permutation drawn from ``(seed, epoch)`` (the same
on every rank) is cut to a whole number of global batches (``batch_size x world_size``); rank ``r``
takes every ``world_size``-th index from position ``r``, so ranks see disjoint images and run the
same number of steps. The batch's output size is drawn from ``(seed, epoch)`` too, so all ranks
resize step ``k`` to the same size. A batch is a list of ``(index, (h, w))`` (or plain indices when
there are no sizes to choose from). Call ``set_epoch(e)`` before each epoch (as with torch's
``DistributedSampler``); without it each new iteration moves on to the next epoch by itself.

Evaluation (``EvalBatchSampler``): rank ``r`` takes indices ``r, r + world_size, ...`` in order;
the last batch may be short and nothing is dropped or repeated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

__all__ = ["EvalBatchSampler", "TrainBatchSampler"]

Batch = list[tuple[int, tuple[int, int]]] | list[int]


class TrainBatchSampler(Sampler[Batch]):
    """Shuffled per-rank training batches, the last partial global batch dropped."""

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        sizes: Sequence[tuple[int, int]] = (),
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in 0..{world_size - 1}")
        self.size = size
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.sizes = [tuple(int(v) for v in s) for s in sizes]
        self.epoch = 0
        self._epoch_set = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._epoch_set = True

    def __len__(self) -> int:
        return self.size // (self.batch_size * self.world_size)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        if not self._epoch_set:
            self.epoch += 1  # next iteration shuffles anew
        self._epoch_set = False
        steps = len(self)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        mine = order[: steps * self.batch_size * self.world_size][self.rank :: self.world_size]
        size_rng = np.random.default_rng([self.seed, epoch, 1])
        for step in range(steps):
            batch = [int(i) for i in mine[step * self.batch_size : (step + 1) * self.batch_size]]
            if self.sizes:
                chosen = self.sizes[int(size_rng.integers(len(self.sizes)))]
                yield [(i, chosen) for i in batch]
            else:
                yield batch


class EvalBatchSampler(Sampler[list[int]]):
    """In-order batches of this rank's share; nothing dropped."""

    def __init__(self, size: int, batch_size: int, *, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in 0..{world_size - 1}")
        self.indices = list(range(rank, size, world_size))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self.indices), self.batch_size):
            yield self.indices[start : start + self.batch_size]

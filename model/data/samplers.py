"""Batch samplers: shuffled, rank-split, drop-last training batches with a per-batch size; eval batches.

Training (``TrainBatchSampler``): every epoch a permutation drawn from ``(seed, epoch)`` (the same
on every rank) is cut to a whole number of global batches (``batch_size x world_size``); rank ``r``
takes every ``world_size``-th index from position ``r``, so ranks see disjoint images and run the
same number of steps. The batch's output size is drawn from ``(seed, epoch)`` too, so all ranks
resize step ``k`` to the same size. A batch is a list of ``(index, (h, w))`` (or plain indices when
there are no sizes to choose from). Call ``set_epoch(e)`` before each epoch (as with torch's
``DistributedSampler``); without it each new iteration moves on to the next epoch by itself.

Mosaic and mixup (``mix_augment.py``) are on by default and switched per epoch with
``set_mixing(on)``. DataLoader workers are persistent processes that only see what the sampler
yields, so the flag travels inside each item: while mixing is on an item is a ``SampledItem``
``(index, size or None, mixing=True)``; while it is off the items are exactly the plain ones above.

Evaluation (``EvalBatchSampler``): rank ``r`` takes indices ``r, r + world_size, ...`` in order;
the last batch may be short and nothing is dropped or repeated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from torch.utils.data import Sampler

__all__ = ["EvalBatchSampler", "SampledItem", "TrainBatchSampler"]


class SampledItem(NamedTuple):
    """A training item while mosaic / mixup are allowed: the dataset index, the batch's ``(h, w)``
    (None: ``train_spatial_size``) and the mixing flag."""

    index: int
    size: tuple[int, int] | None
    mixing: bool


Batch = list[SampledItem] | list[tuple[int, tuple[int, int]]] | list[int]


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
        self.mixing = True

    def set_mixing(self, on: bool) -> None:
        """Allow mosaic / mixup in the batches of the next iterations (the trainer's ``mix_stop_fraction``)."""
        self.mixing = bool(on)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self._epoch_set = True

    def __len__(self) -> int:
        return self.size // (self.batch_size * self.world_size)

    def __iter__(self) -> Iterator[Batch]:
        epoch, mixing = self.epoch, self.mixing  # one epoch is mixed or plain throughout
        if not self._epoch_set:
            self.epoch += 1  # next iteration shuffles anew
        self._epoch_set = False
        steps = len(self)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.size)
        mine = order[: steps * self.batch_size * self.world_size][self.rank :: self.world_size]
        size_rng = np.random.default_rng([self.seed, epoch, 1])
        for step in range(steps):
            batch = [int(i) for i in mine[step * self.batch_size : (step + 1) * self.batch_size]]
            chosen = self.sizes[int(size_rng.integers(len(self.sizes)))] if self.sizes else None
            if mixing:
                yield [SampledItem(i, chosen, True) for i in batch]
            elif chosen is not None:
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

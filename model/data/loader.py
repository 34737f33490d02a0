"""DataLoaders for ``train``, ``val``, ``test`` and inference, built from a resolved spec.

``dataset.batch_size`` is per process. Training shuffles, splits by rank and drops the last
partial global batch (``samplers.py``); each batch is resized to one size drawn from
``dataset.augmentation.multi_scales`` (the same on every rank at a given step). A training set
smaller than one global batch would give epochs of zero steps, so it is a ``DataError``.
A batch is ``(images (B, 3, H, W) float32, targets: list[dict])`` (targets: ``transforms.py``).

Randomness: shuffling and the batch sizes follow ``seed`` and the epoch; augmentation follows a
torch generator seeded with ``seed + rank`` (each worker gets its own stream from it).
"""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from model.data.dataset import CocoDetectionDataset, build_dataset
from model.data.infer_source import build_infer_dataset, collate_infer
from model.data.samplers import EvalBatchSampler, TrainBatchSampler
from model.data.settings import DataSettings, data_settings
from model.errors import DataError

__all__ = ["build_dataloader", "build_infer_dataloader", "collate_detection", "multi_scale_sizes"]

STRIDE = 32  # the network's largest stride: rectangular multi-scale widths are rounded to it


def collate_detection(
    batch: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor]]],
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Stack images of equal size; keep targets as a list."""
    return torch.stack([image for image, _ in batch]), [target for _, target in batch]


def multi_scale_sizes(scales: Sequence[int], train_spatial_size: Sequence[int]) -> list[tuple[int, int]]:
    """``(h, w)`` per scale: square for a square ``train_spatial_size``, else its aspect ratio kept."""
    height, width = int(train_spatial_size[0]), int(train_spatial_size[1])
    if height == width:
        return [(int(s), int(s)) for s in scales]
    return [(int(s), max(STRIDE, round(s * width / height / STRIDE) * STRIDE)) for s in scales]


def _ignore_sigterm(worker_id: int) -> None:
    """Data-loader workers leave SIGTERM to the training process, which saves a checkpoint and then
    shuts them down; a group-wide SIGTERM (torchrun, a search stopping a trial) must not kill them first."""
    del worker_id
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _loader_options(settings: DataSettings, rank: int, seed: int) -> dict[str, Any]:
    workers = settings.workers
    return {
        "num_workers": workers,
        "worker_init_fn": _ignore_sigterm if workers > 0 else None,
        "pin_memory": settings.pin_memory and torch.cuda.is_available(),
        "persistent_workers": workers > 0,
        "generator": torch.Generator().manual_seed(seed + rank),
    }


def _check_world(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataError(
            f"rank {rank} and world size {world_size}: need world_size >= 1 and 0 <= rank < world_size"
        )


def build_dataloader(
    spec: Mapping[str, Any] | DataSettings,
    split: str,
    *,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    batch_size: int | None = None,
    multi_scale: bool = True,
    dataset: CocoDetectionDataset | None = None,
) -> DataLoader:
    """The DataLoader of ``split`` (``train``, ``val`` or ``test``) for this process.

    Args:
        spec: a resolved spec (nested dict) or its ``DataSettings``.
        split: ``train`` (augmented, shuffled, drop-last) or ``val`` / ``test`` (in order).
        rank, world_size: this process's place in a distributed run.
        seed: shuffling / multi-scale / augmentation seed (same on every rank).
        batch_size: per-process batch size (default ``dataset.batch_size``), e.g. ``evaluate.batch_size``.
        multi_scale: draw each training batch's size from ``multi_scales`` (else ``train_spatial_size``).
        dataset: reuse an already built dataset of this split.

    The training loader's ``batch_sampler.set_epoch(epoch)`` should be called before each epoch.

    Raises:
        DataError: bad sources or values, or a training set smaller than one global batch.
    """
    _check_world(rank, world_size)
    settings = spec if isinstance(spec, DataSettings) else data_settings(spec)
    data = dataset if dataset is not None else build_dataset(settings, split)
    per_process = int(batch_size) if batch_size is not None else settings.batch_size
    if per_process < 1:
        raise DataError(f"batch size {per_process} must be >= 1")
    if split == "train":
        global_batch = per_process * world_size
        if len(data) < global_batch:
            raise DataError(
                f"dataset.train_data_sources: {len(data)} usable training images are fewer than one global "
                f"batch (dataset.batch_size {per_process} x {world_size} processes = {global_batch}); the last "
                "partial batch is dropped, so every epoch would run zero steps and nothing would be learned. "
                f"Set dataset.batch_size to at most {max(1, len(data) // world_size)}, use fewer processes, or "
                "add training images"
            )
        sizes = (
            multi_scale_sizes(settings.augmentation.multi_scales, settings.augmentation.train_spatial_size)
            if multi_scale
            else []
        )
        sampler: Any = TrainBatchSampler(
            len(data), per_process, rank=rank, world_size=world_size, seed=seed, sizes=sizes
        )
    else:
        sampler = EvalBatchSampler(len(data), per_process, rank=rank, world_size=world_size)
    return DataLoader(
        data, batch_sampler=sampler, collate_fn=collate_detection, **_loader_options(settings, rank, seed)
    )


def build_infer_dataloader(
    spec: Mapping[str, Any] | DataSettings,
    *,
    batch_size: int | None = None,
    size: Sequence[int] | None = None,
) -> DataLoader:
    """In-order batches ``(images, infos)`` over ``dataset.infer_data_sources`` (see ``infer_source.py``).

    ``size`` is the ``(h, w)`` input size (default ``eval_spatial_size``; the inference action passes
    ``inference.input_height/input_width``).
    """
    settings = spec if isinstance(spec, DataSettings) else data_settings(spec)
    data = build_infer_dataset(settings, size=size)
    per_process = int(batch_size) if batch_size is not None else settings.batch_size
    return DataLoader(
        data,
        batch_size=max(1, per_process),
        shuffle=False,
        collate_fn=collate_infer,
        **_loader_options(settings, 0, 0),
    )

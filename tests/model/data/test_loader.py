"""DataLoaders: batch format, drop-last, multi-scale sizes per batch, rank splits, workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.data import build_dataloader
from model.errors import DataError
from tests.conftest import data_sources


def _spec(data: Path, **dataset: object) -> dict:
    augmentation = {"multi_scales": [64], "train_spatial_size": [64, 64], "eval_spatial_size": [64, 64]}
    augmentation.update(dataset.pop("augmentation", {}))  # type: ignore[arg-type]
    return {
        "dataset": {
            **data_sources(data),
            "batch_size": 4,
            "workers": 0,
            "augmentation": augmentation,
            **dataset,
        }
    }


def _ids(loader: torch.utils.data.DataLoader) -> list[int]:
    return [int(t["image_id"]) for _, targets in loader for t in targets]


def test_train_and_val_batches(synthetic_data: Path) -> None:
    train = build_dataloader(_spec(synthetic_data), "train")
    assert len(train) == 16 // 4
    for images, targets in train:
        assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float32
        assert len(targets) == 4
        for target in targets:
            boxes = target["boxes"]
            assert boxes.dtype == torch.float32 and boxes.shape[1:] == (4,)
            assert bool(((boxes >= 0) & (boxes <= 1)).all())
            assert target["labels"].dtype == torch.int64 and len(target["labels"]) == len(boxes)
    val = build_dataloader(_spec(synthetic_data, batch_size=3), "val")
    sizes = [images.shape[0] for images, _ in val]
    assert sizes == [3, 3, 2]  # nothing dropped in evaluation
    assert sorted(_ids(val)) == list(range(1, 9))


def test_train_drops_the_last_partial_batch(synthetic_data: Path) -> None:
    loader = build_dataloader(_spec(synthetic_data, batch_size=5), "train")
    sizes = [images.shape[0] for images, _ in loader]
    assert sizes == [5, 5, 5]


def test_train_set_smaller_than_one_global_batch_is_an_error(synthetic_data: Path) -> None:
    with pytest.raises(DataError) as caught:
        build_dataloader(_spec(synthetic_data, batch_size=10), "train", rank=0, world_size=2)
    message = str(caught.value)
    assert "16 usable training images" in message and "10 x 2 processes = 20" in message
    assert "zero steps" in message and "dataset.batch_size to at most 8" in message


def test_multi_scales_choose_one_size_per_batch_same_on_every_rank(synthetic_data: Path) -> None:
    spec = _spec(synthetic_data, batch_size=2, augmentation={"multi_scales": [32, 64, 96]})
    loaders = [build_dataloader(spec, "train", rank=r, world_size=2, seed=3) for r in range(2)]
    shapes = [[tuple(images.shape[-2:]) for images, _ in loader] for loader in loaders]
    assert shapes[0] == shapes[1]  # step k has one size on every rank
    assert set(shapes[0]) <= {(32, 32), (64, 64), (96, 96)} and len(set(shapes[0])) > 1


def test_rectangular_multi_scale_keeps_the_aspect_ratio(synthetic_data: Path) -> None:
    spec = _spec(synthetic_data, augmentation={"multi_scales": [64, 96], "train_spatial_size": [64, 128]})
    shapes = {tuple(images.shape[-2:]) for images, _ in build_dataloader(spec, "train")}
    assert shapes <= {(64, 128), (96, 192)}


def test_ranks_see_disjoint_samples(synthetic_data: Path) -> None:
    spec = _spec(synthetic_data, batch_size=4)
    train = [_ids(build_dataloader(spec, "train", rank=r, world_size=2, seed=1)) for r in range(2)]
    assert len(train[0]) == len(train[1]) == 8
    assert not set(train[0]) & set(train[1]) and len(set(train[0]) | set(train[1])) == 16
    val = [_ids(build_dataloader(spec, "val", rank=r, world_size=2)) for r in range(2)]
    assert not set(val[0]) & set(val[1]) and sorted(val[0] + val[1]) == list(range(1, 9))


def test_epochs_reshuffle_reproducibly(synthetic_data: Path) -> None:
    loader = build_dataloader(_spec(synthetic_data, augmentation={"iou_crop_prob": 0.0}), "train", seed=5)
    loader.batch_sampler.set_epoch(0)
    first = _ids(loader)
    loader.batch_sampler.set_epoch(1)
    second = _ids(loader)
    loader.batch_sampler.set_epoch(0)
    assert _ids(loader) == first and second != first and sorted(first) == sorted(second)


@pytest.mark.parametrize("dataset_type", ["serialized", "default"])
def test_workers_load_the_pickled_dataset(synthetic_data: Path, dataset_type: str) -> None:
    loader = build_dataloader(_spec(synthetic_data, workers=2, dataset_type=dataset_type), "train")
    batches = list(loader)
    assert len(batches) == 4 and all(images.shape == (4, 3, 64, 64) for images, _ in batches)
    assert len({int(t["image_id"]) for _, targets in batches for t in targets}) == 16


def test_an_empty_split_source_names_its_key(synthetic_data: Path) -> None:
    spec = _spec(synthetic_data, val_data_sources={"image_dir": "", "json_file": ""})
    with pytest.raises(DataError, match=r"dataset\.val_data_sources\.image_dir is empty"):
        build_dataloader(spec, "val")

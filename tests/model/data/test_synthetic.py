"""The synthetic shapes dataset: valid COCO, reproducible, varied, and strict about its options."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from model.data import synthetic
from model.data.synthetic import CLASS_NAMES, generate_dataset
from model.errors import DataError

SPLITS = ("train", "val", "test")


def _archive_images(path: Path) -> dict[str, Image.Image]:
    images = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar.getmembers():
            assert member.isfile()
            data = tar.extractfile(member).read()
            image = Image.open(io.BytesIO(data))
            image.load()
            images[member.name] = image
    return images


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("classes", [3, len(CLASS_NAMES)])
def test_every_split_is_valid_coco_that_matches_its_archive(tmp_path: Path, classes: int) -> None:
    counts = {"train": 12, "val": 5, "test": 4}
    summary = generate_dataset(tmp_path, **counts, size=64, classes=classes, seed=1)

    assert (tmp_path / "label_map.txt").read_text().splitlines() == list(CLASS_NAMES[:classes])
    assert summary["class_names"] == list(CLASS_NAMES[:classes])
    assert summary["num_classes"] == classes + 1
    for split in SPLITS:
        coco = COCO(str(tmp_path / split / "annotations.json"))
        assert len(coco.getImgIds()) == counts[split]
        assert len(coco.getAnnIds()) == summary["splits"][split]["boxes"]
        assert summary["splits"][split]["images"] == counts[split]
        assert [c["id"] for c in coco.loadCats(coco.getCatIds())] == list(range(1, classes + 1))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASS_NAMES[:classes])
        for ann in coco.loadAnns(coco.getAnnIds()):
            image = coco.imgs[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            assert w > 0 and h > 0 and ann["area"] > 0
            assert x >= 0 and y >= 0 and x + w <= image["width"] and y + h <= image["height"]
            assert 1 <= ann["category_id"] <= classes
            assert ann["iscrowd"] == 0

        archived = _archive_images(tmp_path / split / "images.tar.gz")
        by_name = {img["file_name"]: img for img in coco.dataset["images"]}
        assert set(archived) == set(by_name)
        for name, image in archived.items():
            assert "/" not in name
            assert image.size == (by_name[name]["width"], by_name[name]["height"]) == (64, 64)
            assert image.mode == "RGB"


def test_every_box_holds_a_bright_shape_of_at_least_12_pixels(tmp_path: Path) -> None:
    generate_dataset(tmp_path, train=10, val=1, test=1, seed=4)
    coco = COCO(str(tmp_path / "train" / "annotations.json"))
    archived = _archive_images(tmp_path / "train" / "images.tar.gz")
    for ann in coco.loadAnns(coco.getAnnIds()):
        x, y, w, h = ann["bbox"]
        inside = np.asarray(archived[coco.imgs[ann["image_id"]]["file_name"]])[y : y + h, x : x + w]
        assert w >= 12 and h >= 12
        assert inside.max(axis=2).max() > 180  # a bright shape on a dark background (max channel >= 0.8)


def test_same_arguments_give_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    args = {"train": 6, "val": 3, "test": 3, "size": 64, "classes": 4}
    generate_dataset(tmp_path / "a", **args, seed=7)
    generate_dataset(tmp_path / "b", **args, seed=7)
    generate_dataset(tmp_path / "c", **args, seed=8)

    first = _files(tmp_path / "a")
    assert sorted(first) == sorted(
        ["label_map.txt"] + [f"{s}/{f}" for s in SPLITS for f in ("annotations.json", "images.tar.gz")]
    )
    assert first == _files(tmp_path / "b")
    a_images = _archive_images(tmp_path / "a" / "train" / "images.tar.gz")
    c_images = _archive_images(tmp_path / "c" / "train" / "images.tar.gz")
    assert all(a_images[name].tobytes() != c_images[name].tobytes() for name in a_images)


def test_splits_hold_different_images(tmp_path: Path) -> None:
    generate_dataset(tmp_path, train=3, val=3, test=3, size=64, seed=0)
    pixels = [_archive_images(tmp_path / s / "images.tar.gz")["000000.jpg"].tobytes() for s in SPLITS]
    assert len(set(pixels)) == 3


def test_images_range_from_empty_to_several_objects(tmp_path: Path) -> None:
    summary = generate_dataset(tmp_path, train=60, val=1, test=1, size=64, seed=0)
    coco = COCO(str(tmp_path / "train" / "annotations.json"))
    per_image = [len(coco.getAnnIds(imgIds=[i])) for i in coco.getImgIds()]
    assert per_image.count(0) >= 1
    assert summary["splits"]["train"]["empty_images"] == per_image.count(0)
    assert sum(n >= 3 for n in per_image) >= 3
    assert sum(1 <= n <= 3 for n in per_image) > len(per_image) / 2
    assert {a["category_id"] for a in coco.dataset["annotations"]} == {1, 2, 3}


def test_dense_layout_holds_more_and_smaller_objects(tmp_path: Path) -> None:
    plain = generate_dataset(tmp_path / "plain", train=30, val=1, test=1, size=256, seed=2)
    dense = generate_dataset(tmp_path / "dense", train=30, val=1, test=1, size=256, seed=2, dense=True)
    assert dense["splits"]["train"]["boxes"] >= 2.5 * plain["splits"]["train"]["boxes"]
    assert dense["splits"]["train"]["empty_images"] == 0
    coco = COCO(str(tmp_path / "dense" / "train" / "annotations.json"))
    sides = [max(a["bbox"][2:]) for a in coco.dataset["annotations"]]
    assert max(sides) <= 0.2 * 256 + 1 and min(sides) >= 8 * 0.7  # a shape's box within its drawn side
    assert np.median(sides) < 0.15 * 256  # smaller than the plain layout's smallest objects
    archived = _archive_images(tmp_path / "dense" / "train" / "images.tar.gz")
    for ann in coco.loadAnns(coco.getAnnIds()):  # still visible: every box holds a bright shape
        x, y, w, h = ann["bbox"]
        inside = np.asarray(archived[coco.imgs[ann["image_id"]]["file_name"]])[y : y + h, x : x + w]
        assert inside.max(axis=2).max() > 180


def test_rerun_replaces_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    generate_dataset(tmp_path, train=4, val=2, test=2, size=64, seed=0)
    generate_dataset(tmp_path, train=2, val=1, test=1, size=64, seed=1)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert len(COCO(str(tmp_path / "train" / "annotations.json")).getImgIds()) == 2
    assert len(_archive_images(tmp_path / "train" / "images.tar.gz")) == 2


def test_interrupted_run_leaves_no_archive_that_looks_complete(tmp_path: Path, monkeypatch) -> None:
    encode = synthetic._encode_jpeg
    calls = []

    def failing(pixels):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return encode(pixels)

    monkeypatch.setattr(synthetic, "_encode_jpeg", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path, train=5, val=1, test=1, size=64)
    assert list(tmp_path.rglob("*.tar.gz")) == []
    assert list(tmp_path.rglob("*.json")) == []
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("train", 0),
        ("val", -1),
        ("test", 2.5),
        ("size", 100),
        ("size", 0),
        ("classes", 0),
        ("classes", len(CLASS_NAMES) + 1),
        ("seed", -3),
    ],
)
def test_bad_options_raise_data_error_naming_them(tmp_path: Path, option: str, value: object) -> None:
    with pytest.raises(DataError, match=rf"--{option}={value!r}"):
        generate_dataset(tmp_path, **{option: value})
    assert not (tmp_path / "train").exists()


def test_output_path_that_is_a_file_is_a_data_error(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="--out"):
        generate_dataset(blocker, train=1, val=1, test=1, size=32)

"""COCO sources: labels, COCO's 91-id remap, the num_classes check, bad records, storage types."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from model.data import BadRecordsWarning, build_dataset, label_to_category_id, load_coco_source
from model.errors import DataError
from tests.conftest import data_sources


def _image(path: Path, size: tuple[int, int] = (40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 20, 30)).save(path)


def _write_json(path: Path, images: list[dict], annotations: list[dict], categories: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    for i, ann in enumerate(annotations):
        ann.setdefault("id", i + 1)
        ann.setdefault("iscrowd", 0)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def _img(image_id: int, name: str, width: int = 40, height: int = 30) -> dict:
    return {"id": image_id, "file_name": name, "width": width, "height": height}


def test_records_keep_every_image_and_use_category_ids_as_labels(synthetic_data: Path) -> None:
    json_file = synthetic_data / "train" / "annotations.json"
    source = load_coco_source(synthetic_data / "train" / "images.tar.gz", json_file, num_classes=4)
    coco = json.loads(json_file.read_text())
    assert len(source.records) == len(coco["images"]) == 16
    assert source.num_boxes == len(coco["annotations"])
    for record in source.records:
        anns = [a for a in coco["annotations"] if a["image_id"] == record.image_id]
        assert sorted(record.labels.tolist()) == sorted(a["category_id"] for a in anns)
        x, y, w, h = anns[0]["bbox"] if anns else (0, 0, 0, 0)
        if anns:
            assert [x, y, x + w, y + h] in record.boxes.tolist()  # xyxy pixels


def test_remap_mscoco_category_maps_91_ids_to_80_labels(tmp_path: Path) -> None:
    for name in ("a.jpg", "b.jpg"):
        _image(tmp_path / "imgs" / name)
    categories = [
        {"id": 1, "name": "person"},
        {"id": 13, "name": "stop sign"},
        {"id": 90, "name": "toothbrush"},
    ]
    json_file = _write_json(
        tmp_path / "instances_tiny.json",
        [_img(1, "a.jpg"), _img(2, "b.jpg")],
        [
            {"image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]},
            {"image_id": 1, "category_id": 13, "bbox": [5, 5, 10, 10]},
            {"image_id": 2, "category_id": 90, "bbox": [2, 2, 20, 20]},
            {"image_id": 2, "category_id": 12, "bbox": [2, 2, 20, 20]},  # 12 is not one of COCO's 80
        ],
        [*categories, {"id": 12, "name": "street sign"}],
    )
    with pytest.warns(BadRecordsWarning, match="unknown category: 1"):
        source = load_coco_source(tmp_path / "imgs", json_file, num_classes=80, remap_mscoco_category=True)
    labels = {r.image_id: sorted(r.labels.tolist()) for r in source.records}
    assert labels == {1: [0, 11], 2: [79]}
    assert label_to_category_id([0, 11, 79], remap=True).tolist() == [1, 13, 90]
    assert label_to_category_id([3, 5], remap=False).tolist() == [3, 5]

    with pytest.raises(DataError) as caught:  # the same json without the remap: ids reach 90
        load_coco_source(tmp_path / "imgs", json_file, num_classes=80)
    message = str(caught.value)
    assert str(json_file) in message and "largest category id is 90" in message
    assert "dataset.num_classes: 91" in message and "remap_mscoco_category: true" in message


def test_category_id_not_below_num_classes_is_an_error_naming_the_fix(synthetic_data: Path) -> None:
    json_file = synthetic_data / "val" / "annotations.json"
    with pytest.raises(DataError) as caught:
        load_coco_source(synthetic_data / "val" / "images.tar.gz", json_file, num_classes=3)
    message = str(caught.value)
    assert str(json_file) in message
    assert "largest category id is 3" in message and "dataset.num_classes: 4" in message
    assert "remap_mscoco_category" not in message  # ids 1..3 are not COCO's 91-id scheme


def test_bad_records_are_skipped_and_counted_in_one_warning(tmp_path: Path) -> None:
    for name in ("good.jpg", "outside.jpg", "zero.jpg", "crowd.jpg"):
        _image(tmp_path / "imgs" / name)
    (tmp_path / "imgs" / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    images = [
        _img(1, "good.jpg"),
        _img(2, "missing.jpg"),
        _img(3, "corrupt.jpg"),
        _img(4, "outside.jpg"),
        _img(5, "zero.jpg"),
        _img(6, "crowd.jpg"),
    ]
    annotations = [
        {"image_id": 1, "category_id": 1, "bbox": [30, 20, 20, 20]},  # partly outside: clamped, kept
        {"image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]},
        {"image_id": 3, "category_id": 1, "bbox": [1, 1, 5, 5]},
        {"image_id": 4, "category_id": 2, "bbox": [100, 100, 5, 5]},
        {"image_id": 5, "category_id": 2, "bbox": [3, 3, 0, 7]},
        {"image_id": 6, "category_id": 2, "bbox": [3, 3, 7, 7], "iscrowd": 1},
        {"image_id": 6, "category_id": 2, "bbox": [3, 3, 7, 7]},
    ]
    json_file = _write_json(tmp_path / "ann.json", images, annotations, [{"id": 1}, {"id": 2}])
    with pytest.warns(BadRecordsWarning) as caught:
        source = load_coco_source(tmp_path / "imgs", json_file, num_classes=3, key="dataset.val_data_sources")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "dataset.val_data_sources" in message and str(json_file) in message
    for expected in (
        "2 of 6 images",
        "missing image file: 1",
        "unreadable image: 1",
        "3 of 5 boxes",
        "box outside the image: 1",
        "zero-size box: 1",
        "crowd box: 1",
        "clipped 1 of 2 boxes partly outside their image",
        "good.jpg bbox [30, 20, 20, 20] in a 40x30 image",
    ):
        assert expected in message
    kept = {r.image_id: r.boxes.tolist() for r in source.records}
    assert set(kept) == {1, 4, 5, 6}  # images whose boxes were all dropped stay, as negatives
    assert kept[1] == [[30.0, 20.0, 40.0, 30.0]] and kept[4] == [] and len(kept[6]) == 1


def test_boxes_partly_outside_are_clipped_kept_and_counted_with_an_example(tmp_path: Path) -> None:
    """A box partly outside its image is clipped to the borders and kept, and the warning says so."""
    for name in ("inside.jpg", "left.jpg", "corner.jpg"):
        _image(tmp_path / "imgs" / name)  # 40 x 30
    images = [_img(1, "inside.jpg"), _img(2, "left.jpg"), _img(3, "corner.jpg")]
    annotations = [
        {"image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10]},  # inside: untouched
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 30]},  # exactly the image: not clipped
        {"image_id": 2, "category_id": 1, "bbox": [-5, 4, 15, 10]},  # past the left edge
        {"image_id": 3, "category_id": 2, "bbox": [30.5, 20, 20, 20]},  # past the right and bottom
    ]
    json_file = _write_json(tmp_path / "ann.json", images, annotations, [{"id": 1}, {"id": 2}])
    with pytest.warns(BadRecordsWarning) as caught:
        source = load_coco_source(
            tmp_path / "imgs", json_file, num_classes=3, key="dataset.train_data_sources[0]"
        )
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "dataset.train_data_sources[0]" in message and str(json_file) in message
    assert "clipped 2 of 4 boxes partly outside their image" in message
    assert "left.jpg bbox [-5, 4, 15, 10] in a 40x30 image" in message  # the first one, as in the json
    assert "skipped" not in message  # nothing was dropped
    assert "kept 3 images, 4 boxes" in message
    assert source.clipped_boxes == 2 and not source.skipped_boxes
    kept = {r.image_id: r.boxes.tolist() for r in source.records}
    assert kept == {
        1: [[2.0, 2.0, 12.0, 12.0], [0.0, 0.0, 40.0, 30.0]],
        2: [[0.0, 4.0, 10.0, 14.0]],
        3: [[30.5, 20.0, 40.0, 30.0]],
    }


def test_a_clean_source_warns_nothing(synthetic_data: Path) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", BadRecordsWarning)
        source = load_coco_source(
            synthetic_data / "val" / "images.tar.gz",
            synthetic_data / "val" / "annotations.json",
            num_classes=4,
        )
    assert source.clipped_boxes == 0


def test_a_source_with_nothing_usable_is_an_error(tmp_path: Path) -> None:
    json_file = _write_json(
        tmp_path / "ann.json",
        [_img(1, "missing.jpg")],
        [{"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        [{"id": 1}],
    )
    (tmp_path / "imgs").mkdir()
    with pytest.raises(DataError, match=r"no usable image.*missing image file: 1"):
        load_coco_source(tmp_path / "imgs", json_file, num_classes=2)


def test_coco_raw_layout_finds_images_under_the_split_folder(tmp_path: Path) -> None:
    _image(tmp_path / "coco" / "val2017" / "000000000139.jpg")
    json_file = _write_json(
        tmp_path / "coco" / "annotations" / "instances_val2017.json",
        [_img(139, "000000000139.jpg")],
        [{"image_id": 139, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        [{"id": 1, "name": "person"}],
    )
    source = load_coco_source(tmp_path / "coco", json_file, num_classes=80, remap_mscoco_category=True)
    assert source.records[0].path == str(tmp_path / "coco" / "val2017" / "000000000139.jpg")


def test_two_train_sources_concatenate(synthetic_data: Path) -> None:
    sources = data_sources(synthetic_data)
    sources["train_data_sources"].append(dict(sources["val_data_sources"]))
    dataset = build_dataset({"dataset": {**sources, "workers": 0}}, "train")
    assert len(dataset) == 16 + 8
    assert len(dataset.json_files) == 2


def test_serialized_and_default_give_identical_samples(synthetic_data: Path) -> None:
    spec = {
        "dataset": {
            **data_sources(synthetic_data),
            "augmentation": {"train_spatial_size": [64, 64], "eval_spatial_size": [64, 64]},
        }
    }
    packed = build_dataset({"dataset": {**spec["dataset"], "dataset_type": "serialized"}}, "val")
    plain = build_dataset({"dataset": {**spec["dataset"], "dataset_type": "default"}}, "val")
    assert type(packed.table).__name__ == "PackedRecords" and type(plain.table).__name__ == "ListRecords"
    assert not any(isinstance(v, (list, dict)) for v in vars(packed.table).values())  # arrays only
    assert len(packed) == len(plain) == 8 and packed.num_boxes == plain.num_boxes
    for index in range(len(packed)):
        a, b = packed.table[index], plain.table[index]
        assert (a.path, a.image_id, a.width, a.height) == (b.path, b.image_id, b.width, b.height)
        assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.labels, b.labels)
        (image_a, target_a), (image_b, target_b) = packed[index], plain[index]
        assert torch.equal(image_a, image_b)
        assert all(torch.equal(target_a[k], target_b[k]) for k in target_a)


def test_ground_truth_for_evaluation_is_valid_coco(synthetic_data: Path) -> None:
    dataset = build_dataset({"dataset": data_sources(synthetic_data)}, "test")
    coco = COCO()
    coco.dataset = dataset.coco_ground_truth()
    coco.createIndex()
    original = json.loads((synthetic_data / "test" / "annotations.json").read_text())
    assert len(coco.getImgIds()) == len(original["images"])
    assert len(coco.getAnnIds()) == len(original["annotations"])
    assert sorted(coco.getCatIds()) == [1, 2, 3]

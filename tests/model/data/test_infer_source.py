"""Inference images from folders and archives, and the class map that names the labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from model.data import build_infer_dataloader, build_infer_dataset, read_classmap
from model.errors import DataError
from tests.conftest import data_sources


def _spec(image_dirs: list[str], **augmentation: object) -> dict:
    return {
        "dataset": {
            "infer_data_sources": {"image_dir": image_dirs, "classmap": ""},
            "batch_size": 2,
            "workers": 0,
            "augmentation": {"eval_spatial_size": [64, 64], **augmentation},
        }
    }


def test_infer_dataset_over_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    (folder / "nested").mkdir(parents=True)
    Image.new("RGB", (80, 40), (200, 0, 0)).save(folder / "b.png")
    Image.new("RGB", (30, 50), (0, 200, 0)).save(folder / "a.jpg")
    Image.new("L", (20, 20), 128).save(folder / "nested" / "c.JPEG")  # greyscale becomes RGB
    (folder / "readme.txt").write_text("not an image")
    dataset = build_infer_dataset(_spec([str(folder)]))
    assert [name for _, name in dataset.files] == ["a.jpg", "b.png", "nested/c.JPEG"]
    image, info = dataset[1]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert info["file_name"] == "b.png" and info["orig_size"].tolist() == [80, 40]
    assert info["box_scale"].tolist() == [80.0, 40.0]
    assert float(image[0].mean()) == pytest.approx(200 / 255, abs=0.01)


def test_infer_dataset_over_an_archive_and_a_folder(synthetic_data: Path, tmp_path: Path) -> None:
    archive = data_sources(synthetic_data)["infer_data_sources"]["image_dir"][0]
    (tmp_path / "more").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "more" / "extra.png")
    loader = build_infer_dataloader(_spec([archive, str(tmp_path / "more")]))
    names = [info["file_name"] for _, infos in loader for info in infos]
    assert names == [f"{i:06d}.jpg" for i in range(8)] + ["extra.png"]
    images, infos = next(iter(loader))
    assert images.shape == (2, 3, 64, 64) and len(infos) == 2


def test_infer_preserve_aspect_ratio_reports_the_box_scale(tmp_path: Path) -> None:
    Image.new("RGB", (128, 64), (255, 255, 255)).save(tmp_path / "wide.png")
    dataset = build_infer_dataset(_spec([str(tmp_path)], preserve_aspect_ratio=True))
    image, info = dataset[0]
    assert float(image[:, 32:, :].max()) == 0.0 and float(image[:, :32, :].min()) > 0.9
    assert info["box_scale"].tolist() == [128.0, 128.0]  # normalised by the padded 64x64 canvas


def test_infer_sources_must_hold_images(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"infer_data_sources\.image_dir is empty"):
        build_infer_dataset(_spec([""]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"image_dir\[0\].*holds no image"):
        build_infer_dataset(_spec([str(tmp_path / "empty")]))


def test_read_classmap(synthetic_data: Path, tmp_path: Path) -> None:
    assert read_classmap(synthetic_data / "label_map.txt") == ["circle", "square", "triangle"]
    (tmp_path / "map.txt").write_text(" car \nperson\n\n")
    assert read_classmap(tmp_path / "map.txt") == ["car", "person"]
    (tmp_path / "blank.txt").write_text("\n\n")
    with pytest.raises(DataError, match="names no class"):
        read_classmap(tmp_path / "blank.txt")
    with pytest.raises(DataError, match="does not exist"):
        read_classmap(tmp_path / "missing.txt")

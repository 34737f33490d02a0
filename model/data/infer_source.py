"""Images to run inference on (``dataset.infer_data_sources``) and the class map that names labels.

``infer_data_sources.image_dir`` is a list; each entry is a folder, an archive or a URL of either
(see ``archive_cache.py``). Every image file under it (``.jpg .jpeg .png .bmp .webp .tif .tiff``,
searched recursively, in sorted order) is an item: ``(image (3, h, w) float [0, 1], info)`` with
``info = {file_name, path, orig_size (w, h), box_scale}``; ``file_name`` is relative to its entry,
and ``box_scale`` maps normalised boxes back to the image's pixels (``transforms.boxes_to_original``).

``classmap`` is TAO's text file: one class name per line, line ``i`` (from 0) naming label ``i``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from model.data.archive_cache import resolve_image_dir
from model.data.dataset import read_rgb
from model.data.fetch import fetch
from model.data.settings import DataSettings, data_settings
from model.data.transforms import resize_image
from model.errors import DataError

__all__ = ["IMAGE_SUFFIXES", "InferImageDataset", "build_infer_dataset", "collate_infer", "read_classmap"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_classmap(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a classmap / label_map text file (blank lines and surrounding spaces ignored).

    Raises:
        DataError: the file is missing, unreadable, or names no class.
    """
    text = os.fspath(path).strip() if path is not None else ""
    if not text:
        raise DataError("dataset.infer_data_sources.classmap is empty; set it to a text file of class names")
    local = fetch(text, key="dataset.infer_data_sources.classmap")
    try:
        lines = local.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"classmap {text!r} cannot be read: {error}") from error
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise DataError(f"classmap {text!r} names no class; write one class name per line")
    return names


class InferImageDataset(Dataset):
    """Unlabelled images resized to ``size`` ``(h, w)`` (see the module doc)."""

    def __init__(self, files: Sequence[tuple[str, str]], size: Sequence[int], preserve_aspect_ratio: bool):
        self.files = [(str(path), str(name)) for path, name in files]
        self.size = (int(size[0]), int(size[1]))
        self.preserve_aspect_ratio = preserve_aspect_ratio

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        path, name = self.files[index]
        image = read_rgb(path)
        orig_h, orig_w = (int(v) for v in image.shape[-2:])
        pixels, (content_w, content_h) = resize_image(image, self.size, self.preserve_aspect_ratio)
        scale = [orig_w * self.size[1] / content_w, orig_h * self.size[0] / content_h]
        return pixels, {
            "file_name": name,
            "path": path,
            "orig_size": torch.tensor([orig_w, orig_h], dtype=torch.int64),
            "box_scale": torch.tensor(scale, dtype=torch.float32),
        }


def _image_files(root: Path) -> list[tuple[str, str]]:
    found = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    found = [p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return [(str(p), p.relative_to(root).as_posix()) for p in sorted(found)]


def build_infer_dataset(
    spec: Mapping[str, Any] | DataSettings, *, size: Sequence[int] | None = None
) -> InferImageDataset:
    """All images of ``dataset.infer_data_sources.image_dir``, resized to ``size`` (h, w).

    ``size`` defaults to ``dataset.augmentation.eval_spatial_size``.

    Raises:
        DataError: no entry given, an entry unreadable, or an entry holding no image.
    """
    settings = spec if isinstance(spec, DataSettings) else data_settings(spec)
    if not settings.infer_image_dirs:
        raise DataError(
            "dataset.infer_data_sources.image_dir is empty; list the folders or archives of images to run on"
        )
    files: list[tuple[str, str]] = []
    for index, entry in enumerate(settings.infer_image_dirs):
        key = f"dataset.infer_data_sources.image_dir[{index}]"
        root = resolve_image_dir(entry, key=key)
        found = _image_files(root)
        if not found:
            raise DataError(
                f"{key}: {entry!r} holds no image file ({', '.join(IMAGE_SUFFIXES)}); point it at the images"
            )
        files += found
    chosen = size or settings.augmentation.eval_spatial_size
    return InferImageDataset(files, chosen, settings.augmentation.preserve_aspect_ratio)


def collate_infer(
    batch: Sequence[tuple[torch.Tensor, dict[str, Any]]],
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Stack an inference batch: ``(images (B, 3, h, w), infos)``."""
    return torch.stack([image for image, _ in batch]), [info for _, info in batch]

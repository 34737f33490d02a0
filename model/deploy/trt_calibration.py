"""INT8 entropy calibration for ``gen_trt_engine``: the images, their batches and the cache file.

``gen_trt_engine.tensorrt.calibration.cal_image_dir`` is a list; each entry is a folder, an
archive (``images.tar.gz`` and the other suffixes of ``model.data.archive_cache``) or a URL of
either. Every image under an entry (searched recursively, sorted, hidden folders skipped) counts.
The first ``cal_batch_size x cal_batches`` images are used, pre-processed exactly as evaluation
does (``model.data.infer_source``: RGB, resized to the engine's input size, or with
``dataset.augmentation.preserve_aspect_ratio`` scaled and padded, float32 in [0, 1], no mean/std).

An existing ``cal_cache_file`` is reused as TAO does: TensorRT reads its scales and no image is
needed or read. Otherwise the image count is checked before TensorRT is even imported, and the
cache TensorRT writes after calibration is saved there for the next build.

The TensorRT calibrator class (``IInt8EntropyCalibrator2``) is defined only when
``entropy_calibrator`` is called with the imported ``tensorrt`` module, so this file imports
without TensorRT.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model.config.defaults import with_defaults
from model.data.archive_cache import resolve_image_dir
from model.data.infer_source import IMAGE_SUFFIXES, InferImageDataset
from model.errors import DataError, SpecError

__all__ = [
    "CalibrationBatches",
    "CalibrationPlan",
    "calibration_image_files",
    "entropy_calibrator",
    "plan_calibration",
    "read_cache",
    "write_cache",
]

KEY = "gen_trt_engine.tensorrt.calibration"


@dataclass(frozen=True)
class CalibrationPlan:
    """What INT8 calibration will use: the cache file, and the images when the cache must be made."""

    cache_file: Path
    batch_size: int
    batches: int
    files: tuple[str, ...] = ()

    @property
    def reuses_cache(self) -> bool:
        return not self.files


def _listed_images(root: Path) -> list[str]:
    found = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    found = [p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return [str(p) for p in sorted(found)]


def calibration_image_files(image_dirs: Sequence[str], *, cwd: Path | None = None) -> list[str]:
    """Every image of every ``cal_image_dir`` entry (relative entries are taken from ``cwd``).

    Raises:
        DataError: an entry is missing, not a folder or archive, or holds no image.
    """
    files: list[str] = []
    for index, entry in enumerate(image_dirs):
        key = f"{KEY}.cal_image_dir[{index}]"
        text = str(entry).strip()
        if text and "://" not in text and not os.path.isabs(text) and cwd is not None:
            text = str(cwd / text)
        root = resolve_image_dir(text, key=key)
        found = _listed_images(root)
        if not found:
            raise DataError(
                f"{key}: {entry!r} holds no image file ({', '.join(IMAGE_SUFFIXES)}); point it at the "
                "calibration images"
            )
        files += found
    return files


def plan_calibration(
    section: dict[str, Any], cache_file: Path, *, cwd: Path | None = None
) -> CalibrationPlan:
    """Check the calibration settings (``section`` = ``gen_trt_engine.tensorrt.calibration``).

    With an existing, non-empty ``cache_file`` no image is needed. Otherwise ``cal_image_dir`` must
    hold at least ``cal_batch_size x cal_batches`` images.

    Raises:
        SpecError: a batch setting below 1, no image folder given, or too few images.
        DataError: an image folder or archive cannot be used.
    """
    section = with_defaults(section, KEY)
    batch_size = section["cal_batch_size"]
    batches = section["cal_batches"]
    problems = [
        f"{KEY}.{name}: {value!r} must be an integer >= 1"
        for name, value in (("cal_batch_size", batch_size), ("cal_batches", batches))
        if not isinstance(value, int) or isinstance(value, bool) or value < 1
    ]
    if problems:
        raise SpecError(problems)
    if cache_file.is_file() and cache_file.stat().st_size > 0:
        return CalibrationPlan(cache_file, batch_size, batches)
    dirs = section["cal_image_dir"] or []
    if isinstance(dirs, str):
        dirs = [dirs]
    if not dirs:
        raise SpecError(
            f"{KEY}.cal_image_dir: empty, and the calibration cache {str(cache_file)!r} does not exist; "
            "INT8 needs calibration images (list folders or images.tar.gz archives), or an existing "
            f"{KEY}.cal_cache_file, or use tensorrt.data_type=FP16"
        )
    files = calibration_image_files(dirs, cwd=cwd)
    needed = batch_size * batches
    if len(files) < needed:
        raise SpecError(
            f"{KEY}: cal_image_dir holds {len(files)} images but cal_batch_size x cal_batches = "
            f"{batch_size} x {batches} = {needed} are needed; add images or lower cal_batches to "
            f"{max(1, len(files) // batch_size)} or less"
        )
    return CalibrationPlan(cache_file, batch_size, batches, tuple(files[:needed]))


class CalibrationBatches:
    """The calibration images as ``(cal_batch_size, 3, h, w)`` float32 batches, evaluation pre-processing."""

    def __init__(
        self, files: Sequence[str], batch_size: int, size: Sequence[int], preserve_aspect_ratio: bool
    ):
        self.dataset = InferImageDataset(
            [(path, Path(path).name) for path in files], size, preserve_aspect_ratio
        )
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            images = [self.dataset[i][0] for i in range(start, start + self.batch_size)]
            yield torch.stack(images).contiguous()


def read_cache(path: Path) -> bytes | None:
    """The bytes of an existing, non-empty calibration cache; None otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return data or None


def write_cache(path: Path, data: bytes) -> None:
    """Write the calibration cache atomically (a half-written cache would be reused next time)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


def entropy_calibrator(
    trt: Any, plan: CalibrationPlan, batches: CalibrationBatches | None, device: torch.device
):
    """A ``trt.IInt8EntropyCalibrator2`` feeding ``batches`` from CUDA memory on ``device``.

    With ``plan.reuses_cache`` TensorRT reads the cache and never asks for a batch. The class is
    defined here, with the imported module, so importing this file needs no TensorRT.
    """

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(batches) if batches is not None else iter(())
            self._current: torch.Tensor | None = None
            self.batches_used = 0

        def get_batch_size(self) -> int:
            return plan.batch_size

        def get_batch(self, names: Sequence[str]) -> list[int] | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            # Keep a reference: TensorRT reads the memory after this call returns.
            self._current = batch.to(device=device, dtype=torch.float32).contiguous()
            self.batches_used += 1
            return [int(self._current.data_ptr())] * max(1, len(names))

        def read_calibration_cache(self) -> bytes | None:
            return read_cache(plan.cache_file)

        def write_calibration_cache(self, cache: Any) -> None:
            write_cache(plan.cache_file, bytes(cache))

    return EntropyCalibrator()

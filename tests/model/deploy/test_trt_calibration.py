"""``model.deploy.trt_calibration``: INT8 calibration images (folders and archives, preprocessed as
evaluation does), batches and the cache, on real images; no TensorRT needed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.deploy.trt_calibration import CalibrationBatches, plan_calibration, read_cache, write_cache
from model.errors import DataError, SpecError


def test_calibration_uses_archives_and_preprocesses_like_evaluation(synthetic_data, tmp_path):
    from model.data.dataset import read_rgb
    from model.data.transforms import AugmentationSettings, DetectionTransform

    section = {
        "cal_image_dir": [str(synthetic_data / "val" / "images.tar.gz")],
        "cal_batch_size": 2,
        "cal_batches": 3,
    }
    plan = plan_calibration(section, tmp_path / "cal.cache")
    assert len(plan.files) == 6 and not plan.reuses_cache
    batches = list(CalibrationBatches(plan.files, 2, (48, 80), preserve_aspect_ratio=False))
    assert [tuple(b.shape) for b in batches] == [(2, 3, 48, 80)] * 3
    assert all(b.dtype == torch.float32 and 0.0 <= float(b.min()) and float(b.max()) <= 1.0 for b in batches)
    evaluation = DetectionTransform(AugmentationSettings(eval_spatial_size=(48, 80)), train=False)
    expected, _ = evaluation(read_rgb(plan.files[3]), np.zeros((0, 4)), np.zeros((0,)), 0)
    torch.testing.assert_close(batches[1][1], expected)


def test_an_existing_cache_is_reused_without_images(tmp_path):
    cache = tmp_path / "cal.cache"
    write_cache(cache, b"TRT-1000-EntropyCalibration2\nimages: 3c010a14\n")
    plan = plan_calibration({"cal_image_dir": [], "cal_batch_size": 8, "cal_batches": 100}, cache)
    assert plan.reuses_cache and plan.files == ()
    assert read_cache(cache).startswith(b"TRT-1000")
    cache.write_bytes(b"")
    assert read_cache(cache) is None
    with pytest.raises(SpecError, match="cal_image_dir: empty"):
        plan_calibration({"cal_image_dir": []}, cache)


def test_calibration_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"cal_image_dir\[0\].*holds no image"):
        plan_calibration({"cal_image_dir": [str(tmp_path / "empty")]}, tmp_path / "cal.cache")

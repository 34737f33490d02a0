"""``model.deploy.trt_engine_runner``: outputs by role, batch chunks, and a clear error without TensorRT."""

from __future__ import annotations

import pytest

from model.deploy.trt_engine_runner import TrtEngineRunner, assign_outputs, batch_chunks
from model.errors import ConfigError
from tests.model.deploy.onnx_stand_in import MISSING


def test_runner_outputs_by_role_and_batch_chunks():
    assert assign_outputs({"pred_logits": (-1, 300, 80), "pred_boxes": (-1, 300, 4)}) == {
        "pred_logits": "pred_logits",
        "pred_boxes": "pred_boxes",
    }
    assert assign_outputs({"out_b": (-1, 300, 4), "out_a": (-1, 300, 80)}) == {
        "pred_logits": "out_a",
        "pred_boxes": "out_b",
    }
    with pytest.raises(ConfigError, match="not RT-DETR's pred_logits"):
        assign_outputs({"a": (1, 2), "b": (1, 3), "c": (1, 4)})
    assert batch_chunks(10, 1, 4) == [(0, 4, 4), (4, 8, 4), (8, 10, 2)]
    assert batch_chunks(3, 4, 8) == [(0, 3, 4)]  # padded up to the profile's minimum


@pytest.mark.skipif(MISSING is None, reason="TensorRT and CUDA are available here")
def test_runner_without_tensorrt_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match=MISSING.split(" (")[0]):
        TrtEngineRunner(tmp_path / "model.engine")

"""``rtdetr export``: a checked ONNX file whose ONNX Runtime outputs match PyTorch, at any size that
is a multiple of 32 (non-square included), dynamic or fixed batch; clear errors for bad settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from model.actions.export import run
from model.deploy.onnx_export import spec_for_size
from model.engine.status import read_status
from model.errors import ConfigError
from model.spec import resolve_spec
from tests.conftest import tiny_spec, write_spec


def _spec_file(tmp_path: Path, data: Path, checkpoint: Path, **export: object) -> Path:
    spec = tiny_spec(data, tmp_path / "results")
    spec["export"] = {"checkpoint": str(checkpoint), **export}
    return write_spec(tmp_path / "spec.yaml", spec)


def _shape(value_info: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def _pytorch_model(spec: dict, checkpoint: Path, height: int, width: int) -> torch.nn.Module:
    from model.checkpoints import load_weights
    from model.network.rtdetr import build_model

    model = build_model(spec_for_size(spec, height, width))
    load_weights(model, str(checkpoint))
    return model.eval()


def _max_difference(model: torch.nn.Module, onnx_file: Path, images: torch.Tensor) -> float:
    with torch.no_grad():
        expected = model(images)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    logits, boxes = session.run(["pred_logits", "pred_boxes"], {"images": images.numpy()})
    return max(
        float(np.abs(expected["pred_logits"].numpy() - logits).max()),
        float(np.abs(expected["pred_boxes"].numpy() - boxes).max()),
    )


def test_export_writes_a_checked_onnx_file_matching_pytorch(
    tmp_path, synthetic_data, tiny_checkpoint, run_rtdetr, one_thread
):
    spec_file = _spec_file(tmp_path, synthetic_data, tiny_checkpoint, input_width=64, input_height=64)
    proc = run_rtdetr("export", "-e", str(spec_file))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "export"
    onnx_file = out / "model.onnx"  # the default: <results_dir>/export/<model_name or 'model'>.onnx
    assert onnx_file.is_file()
    lines = read_status(out / "status.json")
    assert [line["status"] for line in lines] == ["STARTED", "SUCCESS"]
    assert str(onnx_file) in lines[-1]["message"] and "max abs difference" in lines[-1]["message"]
    assert lines[-1]["onnx_file"] == str(onnx_file)
    assert float(lines[-1]["kpi"]["onnx_max_abs_diff"]) <= 1e-4
    report = json.loads((out / "export_report.json").read_text())
    assert report["onnxruntime_max_abs_diff"]["max"] <= 1e-4
    assert "max abs difference" in proc.stdout

    onnx.checker.check_model(str(onnx_file), full_check=True)
    graph = onnx.load(str(onnx_file))
    assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert [i.name for i in graph.graph.input] == ["images"]
    assert _shape(graph.graph.input[0]) == ["batch", 3, 64, 64]  # dynamic batch (export.batch_size -1)
    assert [o.name for o in graph.graph.output] == ["pred_logits", "pred_boxes"]
    assert _shape(graph.graph.output[0])[-1] == 4  # dataset.num_classes
    names = [node.name for node in graph.graph.node]
    assert any("bottlenecks.0/conv/Conv" in n for n in names)  # RepVGG fused: one conv per block
    assert not any("bottlenecks.0/conv1" in n or "bottlenecks.0/conv2" in n for n in names)

    # An independent check on a batch of 3 (the file was traced with 1 or 2): unfused PyTorch vs ORT.
    model = _pytorch_model(tiny_spec(synthetic_data, tmp_path), tiny_checkpoint, 64, 64)
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    assert _max_difference(model, onnx_file, images) <= 1e-4


@pytest.mark.parametrize(
    ("height", "width", "batch", "opset"),
    [(96, 160, 2, 18), pytest.param(544, 960, 1, 17, marks=pytest.mark.slow)],
)
def test_non_square_fixed_batch_export(
    tmp_path, synthetic_data, tiny_checkpoint, one_thread, height, width, batch, opset
):
    onnx_file = tmp_path / "deep" / "folder" / "nonsquare.onnx"
    spec_file = _spec_file(
        tmp_path,
        synthetic_data,
        tiny_checkpoint,
        input_width=width,
        input_height=height,
        batch_size=batch,
        opset_version=opset,
        onnx_file=str(onnx_file),
        on_cpu=True,
    )
    spec = resolve_spec("export", spec_file)
    assert run(spec, ["export"]) == 0
    graph = onnx.load(str(onnx_file))
    assert _shape(graph.graph.input[0]) == [batch, 3, height, width]
    assert [o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    model = _pytorch_model(spec, tiny_checkpoint, height, width)
    images = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(2))
    assert _max_difference(model, onnx_file, images) <= 1e-4


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("export.input_width=100", r"export\.input_width: 100 is not a multiple of 32.*Use 96 or 128"),
        ("export.input_height=330", r"export\.input_height: 330 is not a multiple of 32.*Use 320 or 352"),
        ("export.opset_version=11", r"export\.opset_version: 11 is not supported.*GridSample.*Use 17"),
        ("export.input_channel=1", r"export\.input_channel: 1; RT-DETR takes RGB images"),
    ],
)
def test_bad_settings_fail_before_any_compute(tmp_path, synthetic_data, tiny_checkpoint, override, pattern):
    spec = resolve_spec("export", _spec_file(tmp_path, synthetic_data, tiny_checkpoint), [override])
    with pytest.raises(ConfigError, match=pattern):
        run(spec, ["export"])
    out = tmp_path / "results" / "export"
    lines = read_status(out / "status.json")
    assert [line["status"] for line in lines] == ["STARTED", "FAILURE"]
    assert not (out / "model.onnx").exists()

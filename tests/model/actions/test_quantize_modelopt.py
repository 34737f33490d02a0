"""``rtdetr quantize`` with ModelOpt beyond ``max``: modelopt.pytorch AWQ (awq_lite / awq_full) and the
modelopt.onnx backend (QDQ ONNX files run by ONNX Runtime, scored as ``rtdetr evaluate`` scores them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.actions.evaluate import evaluate_worker
from model.checkpoints.trained_model import load_trained_model
from model.engine.status import read_status
from model.errors import ConfigError, SpecError
from model.quantize.results import FLOAT_ONNX_FILE, ONNX_FILE, QUANTIZED_FILE
from model.spec import resolve_spec
from tests.conftest import ROOT, tiny_spec
from tests.model.actions.test_quantize import (
    KPI,
    ONE_THREAD,
    _outputs,
    _quantize,
    _quantize_spec,
    trained_tiny,  # noqa: F401  (module-scoped fixture, trained here too)
)

pytest.importorskip("modelopt.torch.quantization", reason="nvidia-modelopt is not installed")
MODELOPT_FILE = QUANTIZED_FILE.format(backend="modelopt.pytorch")


def _kpi(out: Path) -> dict[str, float]:
    lines = read_status(out / "status.json")
    assert [line["status"] for line in lines] == ["STARTED", "SUCCESS"], lines[-1]
    return {k: float(v) for k, v in lines[-1]["kpi"].items()}


def _evaluate(folder: Path, data: Path, **evaluate) -> dict[str, float]:
    """``rtdetr evaluate``'s worker on the test split the quantize run scored; its status kpi."""
    spec = resolve_spec("evaluate", user_spec={**tiny_spec(data, folder), "evaluate": evaluate})
    assert evaluate_worker(spec) == 0
    return {k: float(v) for k, v in read_status(folder / "evaluate" / "status.json")[-1]["kpi"].items()}


def _onnx_ops(path: Path) -> dict[str, int]:
    import onnx

    ops: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return ops


def test_awq_lite_scales_the_linear_layers_saves_and_loads_back(
    tmp_path, synthetic_data, tiny_checkpoint, one_thread
):
    out = _quantize(
        tmp_path,
        synthetic_data,
        tiny_checkpoint,
        "int8",
        backend="modelopt.pytorch",
        mode="static_ptq",
        algorithm="awq_lite",
        skip_names=["BatchNorm2d"],
    )
    kpi = _kpi(out)
    assert set(kpi) == KPI
    results = json.loads((out / "results.json").read_text())
    counts = results["enabled_quantizers"]
    assert counts["awq_scaled"] >= 20, counts  # the Linear layers got AWQ input scales, not just max
    assert counts["weight"] > 50 and counts["input"] > 50  # convolutions are quantized (max) too
    quantized = out / MODELOPT_FILE
    spec = resolve_spec(
        "evaluate",
        user_spec={
            **tiny_spec(synthetic_data, tmp_path / "eval"),
            "evaluate": {"checkpoint": str(quantized)},
        },
    )
    model, report = load_trained_model(spec, "evaluate")
    assert "modelopt.pytorch static PTQ (awq_lite calibration)" in report.source
    float_model, _ = load_trained_model(
        {**spec, "evaluate": {"checkpoint": str(tiny_checkpoint)}}, "evaluate"
    )
    quant_out = _outputs(model)["pred_logits"]
    assert not torch.equal(_outputs(float_model)["pred_logits"], quant_out)
    again, _ = load_trained_model(spec, "evaluate")
    assert torch.equal(_outputs(again)["pred_logits"], quant_out)
    # evaluate on the split quantize scored (val: the tiny spec has a test split) reproduces its figure
    evaluated = _evaluate(tmp_path / "eval", synthetic_data, checkpoint=str(quantized))
    assert evaluated["test_mAP50"] == pytest.approx(kpi["test_mAP50"], abs=1e-9)


@pytest.mark.slow
def test_awq_full_runs_on_the_cpu(tmp_path, synthetic_data, tiny_checkpoint, one_thread):
    out = _quantize(
        tmp_path,
        synthetic_data,
        tiny_checkpoint,
        "fp8_e4m3fn",
        backend="modelopt.pytorch",
        mode="static_ptq",
        algorithm="awq_full",
        skip_names=["BatchNorm2d"],
    )
    kpi = _kpi(out)
    assert set(kpi) == KPI
    assert json.loads((out / "results.json").read_text())["enabled_quantizers"]["awq_scaled"] >= 20


def test_onnx_int8_writes_a_qdq_file_that_evaluate_reproduces(
    tmp_path, synthetic_data, tiny_checkpoint, one_thread
):
    out = _quantize(
        tmp_path,
        synthetic_data,
        tiny_checkpoint,
        "int8",
        backend="modelopt.onnx",
        mode="static_ptq",
        algorithm="max",
    )
    kpi = _kpi(out)
    assert set(kpi) == KPI
    quantized = out / ONNX_FILE
    ops = _onnx_ops(quantized)
    assert ops.get("QuantizeLinear", 0) > 50 and ops.get("DequantizeLinear", 0) > 50, ops
    assert "QuantizeLinear" not in _onnx_ops(out / FLOAT_ONNX_FILE)
    results = json.loads((out / "results.json").read_text())
    assert results["quantize_mode"] == "int8" and results["calibration_method"] == "max"
    assert results["calibration_images"] == 16  # dataset.quant_calibration_data_sources (the train split)
    # ModelOpt's (and TAO's) default: float weights behind Q/DQ pairs, so the file is not smaller;
    # TensorRT folds them into int8 weights (backend_kwargs dq_only=true stores int8 weights instead)
    assert 0.95 < kpi["size_ratio"] < 1.1, kpi
    evaluated = _evaluate(tmp_path / "eval", synthetic_data, trt_engine=str(quantized))
    assert evaluated["test_mAP50"] == pytest.approx(kpi["test_mAP50"], abs=1e-9)
    before = _evaluate(tmp_path / "eval_float", synthetic_data, trt_engine=str(out / FLOAT_ONNX_FILE))
    assert before["test_mAP50"] == pytest.approx(kpi["test_mAP50_before"], abs=1e-9)

    # TAO's way: quantize.model_path names an ONNX file (here the float export), entropy calibration
    again = _quantize(
        tmp_path / "from_onnx",
        synthetic_data,
        out / FLOAT_ONNX_FILE,
        "int8",
        backend="modelopt.onnx",
        mode="static_ptq",
        algorithm="entropy",
    )
    assert _kpi(again)["test_mAP50_before"] == pytest.approx(kpi["test_mAP50_before"], abs=1e-9)
    results = json.loads((again / "results.json").read_text())
    assert results["calibration_method"] == "entropy" and results["source_checkpoint"].endswith(".onnx")
    assert _onnx_ops(again / ONNX_FILE).get("QuantizeLinear", 0) > 50


def test_onnx_layer_patterns_and_skip_names_pick_the_nodes(
    tmp_path, synthetic_data, tiny_checkpoint, one_thread
):
    out = _quantize(
        tmp_path,
        synthetic_data,
        tiny_checkpoint,
        "int8",
        backend="modelopt.onnx",
        mode="static_ptq",
        algorithm="max",
        layers=[{"module_name": "Conv2d", "weights": {"dtype": "int8"}}],
        skip_names=["backbone.conv1*"],
        backend_kwargs={"dq_only": True},
    )
    kpi = _kpi(out)
    results = json.loads((out / "results.json").read_text())
    assert results["backend_kwargs"] == {"dq_only": True}
    assert results["qdq_nodes"]["quantized_weight_types"].get("INT8", 0) > 40  # int8 weights stored
    assert kpi["size_ratio"] < 0.4, kpi  # so the file is about 4x smaller
    import onnx

    graph = onnx.load(str(out / ONNX_FILE)).graph
    constants = {tensor.name for tensor in graph.initializer}
    dequantized = {
        n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in constants
    }
    weights_read = {n.name: n.op_type for n in graph.node if len(n.input) > 1 and n.input[1] in dequantized}
    quantized = set(weights_read)
    assert quantized and set(weights_read.values()) == {"Conv"}, weights_read  # int8 weights: no MatMul/Gemm
    assert not any(name.startswith("/model/backbone/conv1/") for name in quantized)  # skip_names
    assert any(name.startswith("/model/backbone/res_layers") for name in quantized)


def test_onnx_int4_rtn_dq_writes_int4_weights_onnxruntime_runs(
    tmp_path, synthetic_data, tiny_checkpoint, one_thread
):
    out = _quantize(
        tmp_path,
        synthetic_data,
        tiny_checkpoint,
        "int8",
        backend="modelopt.onnx",
        mode="static_ptq",
        algorithm="rtn_dq",
    )
    kpi = _kpi(out)
    results = json.loads((out / "results.json").read_text())
    assert results["quantize_mode"] == "int4"
    assert results["qdq_nodes"]["quantized_weight_types"].get("INT4", 0) > 10, results["qdq_nodes"]
    assert results["qdq_nodes"]["QuantizeLinear"] == 0  # weight-only: DequantizeLinear of int4 weights
    assert "int4 weight-only" in results["notes"][0]
    # blocks of 32 input channels (the tiny model's hidden size); the 4-input query position layer and
    # the attention output projections (transposed Gemm weights) stay float
    assert results["block_size"] == 32
    assert any("query_pos_head" in name for name in results["int4_left_float"])
    assert 0 <= kpi["test_mAP50"] <= 1


def test_bad_modelopt_settings_are_refused_with_the_key(
    tmp_path, synthetic_data, tiny_checkpoint, one_thread
):
    layers = [
        {"module_name": "backbone", "weights": {"dtype": "int8"}},
        {"module_name": "decoder", "weights": {"dtype": "fp8_e4m3fn"}},
    ]
    path = _quantize_spec(
        tmp_path / "mixed",
        synthetic_data,
        tiny_checkpoint,
        backend="modelopt.onnx",
        mode="static_ptq",
        algorithm="max",
        layers=layers,
    )
    with pytest.raises(SpecError) as info:
        resolve_spec("quantize", path)
    assert any(
        p.startswith("quantize.layers[1].weights.dtype: modelopt.onnx quantizes the whole graph with one")
        for p in info.value.problems
    ), info.value.problems
    with pytest.raises(ConfigError, match=r"quantize.backend_kwargs.calibration_metod: .* did you mean"):
        _quantize(
            tmp_path / "kwargs",
            synthetic_data,
            tiny_checkpoint,
            backend="modelopt.onnx",
            mode="static_ptq",
            algorithm="max",
            backend_kwargs={"calibration_metod": "max"},
        )
    assert not (tmp_path / "kwargs" / "results" / "quantize" / FLOAT_ONNX_FILE).exists()  # refused first
    with pytest.raises(ConfigError, match=r"select no node of the exported ONNX graph"):
        _quantize(
            tmp_path / "none",
            synthetic_data,
            tiny_checkpoint,
            backend="modelopt.onnx",
            mode="static_ptq",
            algorithm="max",
            layers=[{"module_name": "no_such_module", "weights": {"dtype": "int8"}}],
        )
    # without modelopt.onnx's extra packages the error names them (run in a fresh interpreter)
    probe = (
        "import sys; sys.modules['onnx_graphsurgeon'] = None\n"
        "from model.quantize.modelopt_onnx_backend import modelopt_onnx_version\n"
        "try:\n    modelopt_onnx_version()\nexcept Exception as exc:\n    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert "quantize.backend=modelopt.onnx needs" in proc.stdout, proc.stdout + proc.stderr[-2000:]
    assert "pip install nvidia-modelopt onnx-graphsurgeon onnxslim polygraphy" in proc.stdout
    path = _quantize_spec(
        tmp_path / "awq_clip",
        synthetic_data,
        tiny_checkpoint,
        backend="modelopt.pytorch",
        mode="static_ptq",
        algorithm="awq_clip",
    )
    with pytest.raises(
        SpecError, match=r"quantize.algorithm: 'awq_clip' is not supported by quantize.backend"
    ):
        resolve_spec("quantize", path)


@pytest.mark.slow
@pytest.mark.parametrize(
    "quantize",
    [
        {"backend": "modelopt.pytorch", "algorithm": "awq_lite", "skip_names": ["BatchNorm2d"]},
        {"backend": "modelopt.onnx", "algorithm": "max"},
        {"backend": "modelopt.onnx", "algorithm": "awq_clip"},
    ],
    ids=["pytorch-awq_lite", "onnx-int8-max", "onnx-int4-awq_clip"],
)
def test_trained_model_keeps_its_map(tmp_path, trained_tiny, quantize, run_rtdetr):  # noqa: F811
    """Measured (tiny model trained 60 epochs, 8 test images, CPU, ModelOpt 0.47, ONNX Runtime 1.32): mAP50
    0.0725 -> modelopt.pytorch awq_lite int8 0.0743, modelopt.onnx int8 max 0.0717, modelopt.onnx int4
    awq_clip 0.0649 (block 32). Bound: mAP50 after >= 0.9 * before - 0.02."""
    data, checkpoint = trained_tiny
    spec = _quantize_spec(tmp_path, data, checkpoint, "int8", mode="static_ptq", **quantize)
    proc = run_rtdetr("quantize", "-e", str(spec), env=ONE_THREAD, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kpi = _kpi(tmp_path / "results" / "quantize")
    assert kpi["test_mAP50_before"] >= 0.05, kpi
    assert kpi["test_mAP50"] >= 0.9 * kpi["test_mAP50_before"] - 0.02, kpi
    onnx = quantize["backend"] == "modelopt.onnx"
    quantized = tmp_path / "results" / "quantize" / (ONNX_FILE if onnx else MODELOPT_FILE)
    key = "evaluate.trt_engine" if onnx else "evaluate.checkpoint"
    proc = run_rtdetr("evaluate", "-e", str(spec), f"{key}={quantized}", env=ONE_THREAD)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = read_status(tmp_path / "results" / "evaluate" / "status.json")[-1]["kpi"]
    assert float(evaluated["test_mAP50"]) == pytest.approx(kpi["test_mAP50"], abs=1e-9)

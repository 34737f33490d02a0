"""``model.deploy.trt_builder``: what the builder asks of TensorRT.

``configure`` and the calibrator are checked against a small recording stand-in for the
``tensorrt`` module, because TensorRT cannot be installed without an NVIDIA GPU (the stand-in
checks what this code asks of TensorRT, not TensorRT itself); the real build is tested by the
``gpu`` tests of ``tests/model/actions/test_gen_trt_engine.py``.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from model.deploy.trt_builder import configure, tensorrt_missing
from model.deploy.trt_calibration import entropy_calibrator, plan_calibration
from model.deploy.trt_engine_plan import plan_engine
from model.deploy.trt_engine_runner import TrtEngineRunner
from model.errors import ConfigError
from tests.model.deploy.onnx_stand_in import gen_trt_engine_spec, write_images


class _Recorder:
    def __init__(self, log: list, name: str):
        self._log, self._name = log, name

    def __getattr__(self, attr: str):
        return lambda *args: self._log.append((self._name, attr, args))


def _fake_trt() -> tuple[types.SimpleNamespace, list, types.SimpleNamespace]:
    log: list = []
    trt = types.SimpleNamespace(
        float32="float32",
        float16="float16",
        int8="int8",
        int32="int32",
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
        NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5),
        BuilderFlag=types.SimpleNamespace(
            FP16="FP16", INT8="INT8", TF32="TF32", OBEY_PRECISION_CONSTRAINTS="OBEY"
        ),
        IInt8EntropyCalibrator2=type("IInt8EntropyCalibrator2", (), {"__init__": lambda self: None}),
    )

    class Config(_Recorder):
        int8_calibrator = None

    builder = types.SimpleNamespace(
        create_builder_config=lambda: Config(log, "config"),
        create_optimization_profile=lambda: _Recorder(log, "profile"),
    )
    return trt, log, builder


def _network(names_and_types):
    layers = []
    for name, dtype in names_and_types:
        layer = types.SimpleNamespace(name=name, num_outputs=1, precision=None, set=[])
        layer.get_output = lambda o, dtype=dtype: types.SimpleNamespace(dtype=dtype)
        layer.set_output_type = lambda o, t, layer=layer: layer.set.append((o, t))
        layers.append(layer)
    return types.SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i]), layers


def test_fp32_build_turns_tf32_off(onnx_file, tmp_path):
    trt, log, builder = _fake_trt()
    configure(
        trt, builder, _network([])[0], plan_engine(gen_trt_engine_spec(onnx_file, tmp_path), tmp_path), "cpu"
    )
    assert ("config", "clear_flag", ("TF32",)) in log
    assert not [entry for entry in log if entry[1] == "set_flag"]


def test_configure_sets_workspace_flags_profile_and_layer_precisions(onnx_file, tmp_path):
    trt, log, builder = _fake_trt()
    spec = gen_trt_engine_spec(
        onnx_file, tmp_path, data_type="FP16", workspace_size=512, layers_precision=["/decoder/*:fp32"]
    )
    plan = plan_engine(spec, tmp_path)
    network, layers = _network(
        [("/decoder/Add", "float32"), ("/decoder/Shape", "int32"), ("/enc/Conv", "float32")]
    )
    _config, calibrator, done = configure(trt, builder, network, plan, torch.device("cpu"))
    assert calibrator is None
    assert ("config", "set_memory_pool_limit", ("WORKSPACE", 512 << 20)) in log
    flags = [entry[2][0] for entry in log if entry[1] == "set_flag"]
    assert flags == ["FP16", "OBEY"]
    assert ("profile", "set_shape", ("images", (1, 3, 64, 96), (1, 3, 64, 96), (4, 3, 64, 96))) in log
    assert done == {"/decoder/Add": "fp32"}  # the integer Shape layer keeps its type
    assert layers[0].precision == "float32" and layers[0].set == [(0, "float32")]
    assert layers[1].precision is None and layers[2].precision is None


def test_configure_int8_calibrates_with_a_fixed_calibration_profile(onnx_file, tmp_path):
    trt, log, builder = _fake_trt()
    images = write_images(tmp_path / "cal", 5)
    cal = {
        "cal_image_dir": [str(images)],
        "cal_batch_size": 2,
        "cal_batches": 2,
        "cal_cache_file": str(tmp_path / "c.cache"),
    }
    plan = plan_engine(gen_trt_engine_spec(onnx_file, tmp_path, data_type="INT8", calibration=cal), tmp_path)
    config, calibrator, _ = configure(trt, builder, _network([])[0], plan, torch.device("cpu"))
    assert [entry[2][0] for entry in log if entry[1] == "set_flag"] == ["FP16", "INT8"]
    assert config.int8_calibrator is calibrator
    assert ("profile", "set_shape", ("images", (2, 3, 64, 96), (2, 3, 64, 96), (2, 3, 64, 96))) in log
    assert calibrator.get_batch_size() == 2
    assert calibrator.read_calibration_cache() is None
    pointers = [calibrator.get_batch(["images"]) for _ in range(3)]
    assert pointers[0] and pointers[1] and pointers[2] is None
    assert calibrator.batches_used == 2
    calibrator.write_calibration_cache(memoryview(b"scales"))
    assert (tmp_path / "c.cache").read_bytes() == b"scales"
    reused = entropy_calibrator(trt, plan_calibration(cal, tmp_path / "c.cache"), None, torch.device("cpu"))
    assert reused.read_calibration_cache() == b"scales" and reused.get_batch(["images"]) is None


def _qdq_onnx(path: Path) -> Path:
    """A Q/DQ model such as ``rtdetr quantize`` + export writes: its scales are in the graph."""
    import onnx
    from onnx import TensorProto, helper

    scale = helper.make_tensor("scale", TensorProto.FLOAT, [], [0.02])
    zero = helper.make_tensor("zero", TensorProto.INT8, [], [0])
    nodes = [
        helper.make_node("QuantizeLinear", ["images", "scale", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["dq"]),
        helper.make_node("Identity", ["dq"], ["pred_logits"]),
        helper.make_node("Identity", ["dq"], ["pred_boxes"]),
    ]
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 32, 32])
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("pred_logits", "pred_boxes")
    ]
    graph = helper.make_graph(nodes, "qdq", [image], outputs, initializer=[scale, zero])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_qdq_model_needs_no_calibration_and_builds_strongly_typed(tmp_path):
    onnx = _qdq_onnx(tmp_path / "qdq.onnx")
    plan = plan_engine(gen_trt_engine_spec(onnx, tmp_path, data_type="INT8"), tmp_path)  # no images, no cache
    assert plan.image.quantized and plan.calibration is None
    trt, log, builder = _fake_trt()
    _config, calibrator, _ = configure(trt, builder, _network([])[0], plan, torch.device("cpu"))
    assert calibrator is None
    assert not [entry for entry in log if entry[1] == "set_flag"]  # types come from the Q/DQ nodes


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_tensorrt_without_a_gpu_is_reported_as_missing_gpu(monkeypatch):
    import sys

    from model.deploy.trt_builder import NO_GPU

    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    assert tensorrt_missing() == NO_GPU
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        TrtEngineRunner("model.engine")

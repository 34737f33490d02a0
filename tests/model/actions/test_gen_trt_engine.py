"""``rtdetr gen_trt_engine`` and the TensorRT engine runner.

Here (no TensorRT, no GPU) the CLI is run for real and must end SKIPPED with a message, or fail
on bad input before TensorRT is imported; the builder logic that needs no TensorRT (profiles,
calibration images and batches, caches, layer precisions) runs on real ONNX files and images.
``configure`` and the calibrator are checked against a small recording stand-in for the
``tensorrt`` module, because TensorRT cannot be installed without an NVIDIA GPU (the stand-in
checks what this code asks of TensorRT, not TensorRT itself). The end-to-end test is marked
``gpu`` and runs where ``tensorrt`` and CUDA are importable: it exports the tiny RT-DETR, builds
FP32 and FP16 engines and compares them with ONNX Runtime.
"""

from __future__ import annotations

import json
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.deploy.trt_builder import configure, tensorrt_missing
from model.deploy.trt_calibration import (
    CalibrationBatches,
    entropy_calibrator,
    plan_calibration,
    read_cache,
    write_cache,
)
from model.deploy.trt_engine_plan import (
    BatchProfile,
    batch_profile,
    match_layers,
    parse_layers_precision,
    plan_engine,
    read_onnx_input,
)
from model.deploy.trt_engine_runner import TrtEngineRunner, assign_outputs, batch_chunks
from model.errors import ConfigError, DataError, SpecError
from tests.conftest import tiny_spec, write_spec

MISSING = tensorrt_missing()


class _Heads(torch.nn.Module):
    """Stands in for RT-DETR's exported graph: one image input, pred_logits and pred_boxes."""

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = images.mean(dim=(2, 3))
        logits = pooled[:, None, :2].repeat(1, 5, 1)
        boxes = torch.sigmoid(pooled[:, None, :1].repeat(1, 5, 4))
        return logits, boxes


def _onnx(path: Path, *, batch: int = -1, size: tuple[int, int] = (64, 96)) -> Path:
    dynamic = {"images": {0: "batch"}, "pred_logits": {0: "batch"}, "pred_boxes": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as rtdetr export uses
        torch.onnx.export(
            _Heads(),
            (torch.rand(max(1, batch), 3, *size),),
            str(path),
            dynamo=False,
            input_names=["images"],
            output_names=["pred_logits", "pred_boxes"],
            dynamic_axes=dynamic if batch < 0 else None,
            opset_version=17,
        )
    return path


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _onnx(tmp_path_factory.mktemp("onnx") / "model.onnx")


def _images(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 255, size=(40 + i, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:02d}.png")
    return folder


def _spec(onnx: Path, results: Path, **trt: object) -> dict:
    calibration = trt.pop("calibration", {})
    section = {"onnx_file": str(onnx), "trt_engine": "", "batch_size": trt.pop("batch_size", -1)}
    section["tensorrt"] = {"data_type": "FP32", "calibration": calibration, **trt}
    return {"results_dir": str(results), "gen_trt_engine": section}


# -- the CLI on this machine ---------------------------------------------------------------------


@pytest.mark.skipif(
    MISSING is None, reason="TensorRT and CUDA are available here: the engine is built instead"
)
def test_cli_without_tensorrt_ends_skipped_with_the_reason(onnx_file, tmp_path, run_rtdetr):
    spec = write_spec(tmp_path / "spec.yaml", _spec(onnx_file, tmp_path / "results", data_type="FP16"))
    proc = run_rtdetr("gen_trt_engine", "-e", str(spec))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert MISSING.split(";")[0] in proc.stdout
    assert f"evaluate.trt_engine={onnx_file}" in proc.stdout
    folder = tmp_path / "results" / "gen_trt_engine"
    lines = [json.loads(line) for line in (folder / "status.json").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["STARTED", "SKIPPED"]
    assert "no engine was built" in lines[-1]["message"]
    assert (folder / "experiment.yaml").is_file()
    assert not onnx_file.with_suffix(".engine").exists()


def test_cli_rejects_a_file_that_is_not_onnx_before_tensorrt(tmp_path, run_rtdetr):
    fake = tmp_path / "model.onnx"
    fake.write_text("not a model")
    spec = write_spec(tmp_path / "spec.yaml", _spec(fake, tmp_path / "results"))
    proc = run_rtdetr("gen_trt_engine", "-e", str(spec))
    assert proc.returncode != 0
    assert "gen_trt_engine.onnx_file" in proc.stderr and "is not an ONNX model" in proc.stderr
    assert "Traceback" not in proc.stderr
    status = (tmp_path / "results" / "gen_trt_engine" / "status.json").read_text().splitlines()
    assert json.loads(status[-1])["status"] == "FAILURE"


def test_cli_int8_without_enough_calibration_images_fails_naming_the_count(onnx_file, tmp_path, run_rtdetr):
    images = _images(tmp_path / "cal", 3)
    cal = {"cal_image_dir": [str(images)], "cal_batch_size": 2, "cal_batches": 2}
    spec = write_spec(
        tmp_path / "spec.yaml", _spec(onnx_file, tmp_path / "results", data_type="INT8", calibration=cal)
    )
    proc = run_rtdetr("gen_trt_engine", "-e", str(spec))
    assert proc.returncode != 0
    assert "holds 3 images but cal_batch_size x cal_batches = 2 x 2 = 4" in proc.stderr


# -- the plan: ONNX input, profiles, paths -------------------------------------------------------


def test_plan_reads_the_input_from_onnx_and_puts_the_engine_beside_it(onnx_file, tmp_path):
    plan = plan_engine(_spec(onnx_file, tmp_path, data_type="FP16"), tmp_path)
    assert (plan.image.name, plan.image.batch, plan.image.channels) == ("images", -1, 3)
    assert (plan.image.height, plan.image.width) == (64, 96)
    assert plan.engine_file == onnx_file.with_suffix(".engine")
    assert plan.data_type == "fp16" and plan.workspace_bytes == 1024 << 20
    assert plan.profile == BatchProfile(1, 1, 4)
    assert plan.profile.shapes(plan.image) == ((1, 3, 64, 96), (1, 3, 64, 96), (4, 3, 64, 96))
    assert plan.calibration is None
    template = _spec(onnx_file, tmp_path)
    template["gen_trt_engine"]["trt_engine"] = "???"  # TAO's MISSING, as the generated template writes it
    assert plan_engine(template, tmp_path).engine_file == onnx_file.with_suffix(".engine")


def test_fp32_build_turns_tf32_off(onnx_file, tmp_path):
    trt, log, builder = _fake_trt()
    configure(trt, builder, _network([])[0], plan_engine(_spec(onnx_file, tmp_path), tmp_path), "cpu")
    assert ("config", "clear_flag", ("TF32",)) in log
    assert not [entry for entry in log if entry[1] == "set_flag"]


def test_plan_resolves_relative_outputs_from_the_working_folder(onnx_file, tmp_path):
    spec = _spec(onnx_file, tmp_path)
    spec["gen_trt_engine"]["trt_engine"] = "out/model_fp32.engine"
    spec["gen_trt_engine"]["timing_cache"] = "out/timing.cache"
    plan = plan_engine(spec, tmp_path, cwd=tmp_path)
    assert plan.engine_file == tmp_path / "out" / "model_fp32.engine"
    assert plan.timing_cache == tmp_path / "out" / "timing.cache"
    assert (tmp_path / "out").is_dir()


def test_plan_rejects_unknown_data_type_and_missing_onnx(onnx_file, tmp_path):
    with pytest.raises(SpecError, match=r"data_type: 'FP64' must be one of FP32, FP16, INT8"):
        plan_engine(_spec(onnx_file, tmp_path, data_type="FP64"), tmp_path)
    with pytest.raises(SpecError, match="does not exist"):
        plan_engine(_spec(tmp_path / "nowhere.onnx", tmp_path), tmp_path)


def test_onnx_with_dynamic_height_is_rejected(tmp_path):
    path = tmp_path / "dyn.onnx"
    dynamic = {"images": {0: "batch", 2: "height"}}
    torch.onnx.export(
        _Heads(), (torch.rand(1, 3, 32, 32),), str(path), dynamo=False, input_names=["images"],
        output_names=["pred_logits", "pred_boxes"], dynamic_axes=dynamic, opset_version=17,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="fixed channels, height and width"):
        read_onnx_input(path)


def test_batch_profiles():
    dynamic = {"batch_size": -1, "tensorrt": {"min_batch_size": 1, "opt_batch_size": 2, "max_batch_size": 8}}
    assert batch_profile(dynamic, onnx_batch=-1) == BatchProfile(1, 2, 8)
    assert batch_profile(dynamic, onnx_batch=-1).dynamic
    fixed = {**dynamic, "batch_size": 4}
    assert batch_profile(fixed, onnx_batch=-1) == BatchProfile(4, 4, 4)
    assert not batch_profile(fixed, onnx_batch=-1).dynamic
    # an ONNX model exported with a fixed batch decides
    assert batch_profile(dynamic, onnx_batch=2) == BatchProfile(2, 2, 2)
    with pytest.raises(SpecError, match="fixed batch 2; set batch_size to -1 or 2"):
        batch_profile(fixed, onnx_batch=2)
    bad = {"batch_size": -1, "tensorrt": {"min_batch_size": 4, "opt_batch_size": 2, "max_batch_size": 8}}
    with pytest.raises(SpecError, match="min <= opt <= max"):
        batch_profile(bad, onnx_batch=-1)
    with pytest.raises(SpecError, match="batch_size: 0 must be -1"):
        batch_profile({"batch_size": 0}, onnx_batch=-1)


def test_fixed_batch_onnx_needs_matching_calibration_batch(tmp_path):
    onnx = _onnx(tmp_path / "b2.onnx", batch=2)
    images = _images(tmp_path / "cal", 4)
    cal = {"cal_image_dir": [str(images)], "cal_batch_size": 1, "cal_batches": 4}
    with pytest.raises(SpecError, match="cal_batch_size=2"):
        plan_engine(_spec(onnx, tmp_path, data_type="INT8", calibration=cal), tmp_path)


def test_layers_precision_parsing_and_matching():
    rules = parse_layers_precision(["/decoder/*:fp32", "/backbone/conv1/Conv:FP16"], "fp16")
    assert rules == (("/decoder/*", "fp32"), ("/backbone/conv1/Conv", "fp16"))
    names = ["/backbone/conv1/Conv", "/decoder/MatMul", "/decoder/Add", "/encoder/Add"]
    assert match_layers(names, rules) == {1: "fp32", 2: "fp32", 0: "fp16"}
    with pytest.raises(ConfigError, match="did you mean '/backbone/conv1/Conv'"):
        match_layers(names, [("/backbone/conv1/Cnv", "fp32")])
    with pytest.raises(SpecError, match=r"asks for fp16 in a FP32 build"):
        parse_layers_precision(["/decoder/Add:fp16"], "fp32")
    with pytest.raises(SpecError, match="must be 'layer_name:precision'"):
        parse_layers_precision(["/decoder/Add"], "fp16")


# -- INT8 calibration ----------------------------------------------------------------------------


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


# -- what the builder asks of TensorRT (recording stand-in; the real one needs a GPU) -------------


class _Recorder:
    def __init__(self, log: list, name: str):
        self._log, self._name = log, name

    def __getattr__(self, attr: str):
        return lambda *args: self._log.append((self._name, attr, args))


def _fake_trt() -> tuple[types.SimpleNamespace, list, types.SimpleNamespace]:
    log: list = []
    trt = types.SimpleNamespace(
        float32="float32", float16="float16", int8="int8", int32="int32",
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"),
        NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5),
        BuilderFlag=types.SimpleNamespace(FP16="FP16", INT8="INT8", TF32="TF32", OBEY_PRECISION_CONSTRAINTS="OBEY"),
        IInt8EntropyCalibrator2=type("IInt8EntropyCalibrator2", (), {"__init__": lambda self: None}),
    )  # fmt: skip

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


def test_configure_sets_workspace_flags_profile_and_layer_precisions(onnx_file, tmp_path):
    trt, log, builder = _fake_trt()
    spec = _spec(
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
    images = _images(tmp_path / "cal", 5)
    cal = {
        "cal_image_dir": [str(images)],
        "cal_batch_size": 2,
        "cal_batches": 2,
        "cal_cache_file": str(tmp_path / "c.cache"),
    }
    plan = plan_engine(_spec(onnx_file, tmp_path, data_type="INT8", calibration=cal), tmp_path)
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


# -- the engine runner ---------------------------------------------------------------------------


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


# -- end to end on a GPU machine -----------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(MISSING is not None, reason=f"needs TensorRT and CUDA: {MISSING}")
def test_engines_match_onnxruntime_on_gpu(synthetic_data, tmp_path, run_rtdetr):
    from model.deploy.deployed_model import OnnxRuntimeRunner
    from model.deploy.onnx_export import export_onnx
    from model.rtdetr import build_model

    torch.manual_seed(0)
    spec = tiny_spec(synthetic_data, tmp_path / "results")
    onnx = export_onnx(build_model(spec), tmp_path / "tiny.onnx", height=64, width=64)
    images = torch.rand(3, 3, 64, 64)
    reference = OnnxRuntimeRunner(onnx)(images)
    for data_type, tolerance in (("FP32", 1e-3), ("FP16", 5e-2)):  # relative to the largest output
        engine = tmp_path / f"tiny_{data_type}.engine"
        section = _spec(onnx, tmp_path / data_type, data_type=data_type, max_batch_size=2)["gen_trt_engine"]
        section["trt_engine"] = str(engine)
        spec_path = write_spec(
            tmp_path / f"{data_type}.yaml",
            {**spec, "results_dir": str(tmp_path / data_type), "gen_trt_engine": section},
        )
        proc = run_rtdetr("gen_trt_engine", "-e", str(spec_path), timeout=600)
        assert proc.returncode == 0, proc.stderr
        status = (tmp_path / data_type / "gen_trt_engine" / "status.json").read_text().splitlines()
        assert json.loads(status[-1])["status"] == "SUCCESS"
        runner = TrtEngineRunner(engine)
        assert runner.input_shape == (-1, 3, 64, 64)
        got = runner(images)  # 3 images through a max-batch-2 profile: two runs
        for key in ("pred_logits", "pred_boxes"):
            assert got[key].shape == reference[key].shape
            diff = float((got[key].cpu() - reference[key]).abs().max())
            scale = max(1.0, float(reference[key].abs().max()))
            assert diff < tolerance * scale, f"{data_type} {key}: max |engine - onnxruntime| = {diff}"


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
    plan = plan_engine(_spec(onnx, tmp_path, data_type="INT8"), tmp_path)  # no images, no cache
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


@pytest.mark.gpu
@pytest.mark.skipif(MISSING is not None, reason=f"needs TensorRT and CUDA: {MISSING}")
def test_int8_engine_calibrates_from_an_archive_then_reuses_the_cache(synthetic_data, onnx_file, tmp_path):
    from model.actions.gen_trt_engine import run

    cache = tmp_path / "cal.cache"
    cal = {
        "cal_image_dir": [str(synthetic_data / "val" / "images.tar.gz")],
        "cal_batch_size": 2,
        "cal_batches": 2,
        "cal_cache_file": str(cache),
    }
    spec = _spec(onnx_file, tmp_path / "results", data_type="INT8", calibration=cal)
    spec["gen_trt_engine"]["trt_engine"] = str(tmp_path / "int8.engine")
    assert run(spec) == 0
    assert cache.is_file() and cache.stat().st_size > 0
    first = cache.read_bytes()
    spec["gen_trt_engine"]["tensorrt"]["calibration"]["cal_image_dir"] = []  # the cache is enough now
    assert run(spec) == 0
    assert cache.read_bytes() == first
    out = TrtEngineRunner(tmp_path / "int8.engine")(torch.rand(2, 3, 64, 96))
    assert out["pred_boxes"].shape == (2, 5, 4) and torch.isfinite(out["pred_logits"]).all()

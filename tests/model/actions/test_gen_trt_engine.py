"""``rtdetr gen_trt_engine``: the command, run for real as a process.

Here (no TensorRT, no GPU) it must end SKIPPED with the reason, or fail on bad input before TensorRT
is imported. The end-to-end tests are marked ``gpu`` and run where ``tensorrt`` and CUDA are
importable: they export the tiny RT-DETR, build FP32, FP16 and INT8 engines and compare them with
ONNX Runtime. The parts are tested in ``tests/model/deploy/``.
"""

from __future__ import annotations

import json

import pytest
import torch

from model.deploy.trt_engine_runner import TrtEngineRunner
from tests.conftest import tiny_spec, write_spec
from tests.model.deploy.onnx_stand_in import MISSING, gen_trt_engine_spec, write_images


@pytest.mark.skipif(
    MISSING is None, reason="TensorRT and CUDA are available here: the engine is built instead"
)
def test_cli_without_tensorrt_ends_skipped_with_the_reason(onnx_file, tmp_path, run_rtdetr):
    spec = write_spec(
        tmp_path / "spec.yaml", gen_trt_engine_spec(onnx_file, tmp_path / "results", data_type="FP16")
    )
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
    spec = write_spec(tmp_path / "spec.yaml", gen_trt_engine_spec(fake, tmp_path / "results"))
    proc = run_rtdetr("gen_trt_engine", "-e", str(spec))
    assert proc.returncode != 0
    assert "gen_trt_engine.onnx_file" in proc.stderr and "is not an ONNX model" in proc.stderr
    assert "Traceback" not in proc.stderr
    status = (tmp_path / "results" / "gen_trt_engine" / "status.json").read_text().splitlines()
    assert json.loads(status[-1])["status"] == "FAILURE"


def test_cli_int8_without_enough_calibration_images_fails_naming_the_count(onnx_file, tmp_path, run_rtdetr):
    images = write_images(tmp_path / "cal", 3)
    cal = {"cal_image_dir": [str(images)], "cal_batch_size": 2, "cal_batches": 2}
    spec = write_spec(
        tmp_path / "spec.yaml",
        gen_trt_engine_spec(onnx_file, tmp_path / "results", data_type="INT8", calibration=cal),
    )
    proc = run_rtdetr("gen_trt_engine", "-e", str(spec))
    assert proc.returncode != 0
    assert "holds 3 images but cal_batch_size x cal_batches = 2 x 2 = 4" in proc.stderr


@pytest.mark.gpu
@pytest.mark.skipif(MISSING is not None, reason=f"needs TensorRT and CUDA: {MISSING}")
def test_engines_match_onnxruntime_on_gpu(synthetic_data, tmp_path, run_rtdetr):
    from model.deploy.deployed_model import OnnxRuntimeRunner
    from model.deploy.onnx_export import export_onnx
    from model.network.rtdetr import build_model

    torch.manual_seed(0)
    spec = tiny_spec(synthetic_data, tmp_path / "results")
    onnx = export_onnx(build_model(spec), tmp_path / "tiny.onnx", height=64, width=64)
    images = torch.rand(3, 3, 64, 64)
    reference = OnnxRuntimeRunner(onnx)(images)
    for data_type, tolerance in (("FP32", 1e-3), ("FP16", 5e-2)):  # relative to the largest output
        engine = tmp_path / f"tiny_{data_type}.engine"
        section = gen_trt_engine_spec(onnx, tmp_path / data_type, data_type=data_type, max_batch_size=2)[
            "gen_trt_engine"
        ]
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
    spec = gen_trt_engine_spec(onnx_file, tmp_path / "results", data_type="INT8", calibration=cal)
    spec["gen_trt_engine"]["trt_engine"] = str(tmp_path / "int8.engine")
    assert run(spec) == 0
    assert cache.is_file() and cache.stat().st_size > 0
    first = cache.read_bytes()
    spec["gen_trt_engine"]["tensorrt"]["calibration"]["cal_image_dir"] = []  # the cache is enough now
    assert run(spec) == 0
    assert cache.read_bytes() == first
    out = TrtEngineRunner(tmp_path / "int8.engine")(torch.rand(2, 3, 64, 96))
    assert out["pred_boxes"].shape == (2, 5, 4) and torch.isfinite(out["pred_logits"]).all()


@pytest.mark.gpu
@pytest.mark.skipif(MISSING is not None, reason=f"needs TensorRT and CUDA: {MISSING}")
def test_rtdetr_latency_times_an_fp16_engine_on_the_gpu(synthetic_data, tmp_path, run_rtdetr):
    from model.deploy.onnx_export import export_onnx
    from model.network.rtdetr import build_model

    torch.manual_seed(0)
    spec = tiny_spec(synthetic_data, tmp_path / "results")
    onnx = export_onnx(build_model(spec), tmp_path / "tiny.onnx", height=64, width=64)
    engine = tmp_path / "tiny.engine"
    section = gen_trt_engine_spec(onnx, tmp_path / "fp16", data_type="FP16", max_batch_size=1)[
        "gen_trt_engine"
    ]
    section["trt_engine"] = str(engine)
    spec_path = write_spec(
        tmp_path / "fp16.yaml", {**spec, "results_dir": str(tmp_path / "fp16"), "gen_trt_engine": section}
    )
    assert run_rtdetr("gen_trt_engine", "-e", str(spec_path), timeout=600).returncode == 0
    proc = run_rtdetr("latency", "-e", str(spec_path), "--engine", str(engine), "--runs", "20", timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["runtime"] == "tensorrt" and result["model"] == str(engine) and result["device"]
    assert result["size"] == [64, 64] and 0 < result["min_ms"] <= result["latency_ms"] < 1000

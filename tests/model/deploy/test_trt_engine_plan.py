"""``model.deploy.trt_engine_plan``: every ``gen_trt_engine`` input checked without TensorRT (the ONNX
input, output paths, data type, batch profiles, layer precisions), on real ONNX files."""

from __future__ import annotations

import pytest
import torch

from model.deploy.trt_engine_plan import (
    BatchProfile,
    batch_profile,
    match_layers,
    parse_layers_precision,
    plan_engine,
    read_onnx_input,
)
from model.errors import ConfigError, SpecError
from tests.model.deploy.onnx_stand_in import Heads, gen_trt_engine_spec, write_images, write_onnx


def test_plan_reads_the_input_from_onnx_and_puts_the_engine_beside_it(onnx_file, tmp_path):
    plan = plan_engine(gen_trt_engine_spec(onnx_file, tmp_path, data_type="FP16"), tmp_path)
    assert (plan.image.name, plan.image.batch, plan.image.channels) == ("images", -1, 3)
    assert (plan.image.height, plan.image.width) == (64, 96)
    assert plan.engine_file == onnx_file.with_suffix(".engine")
    assert plan.data_type == "fp16" and plan.workspace_bytes == 1024 << 20
    assert plan.profile == BatchProfile(1, 1, 4)
    assert plan.profile.shapes(plan.image) == ((1, 3, 64, 96), (1, 3, 64, 96), (4, 3, 64, 96))
    assert plan.calibration is None
    template = gen_trt_engine_spec(onnx_file, tmp_path)
    template["gen_trt_engine"]["trt_engine"] = "???"  # TAO's MISSING, as the generated template writes it
    assert plan_engine(template, tmp_path).engine_file == onnx_file.with_suffix(".engine")


def test_plan_resolves_relative_outputs_from_the_working_folder(onnx_file, tmp_path):
    spec = gen_trt_engine_spec(onnx_file, tmp_path)
    spec["gen_trt_engine"]["trt_engine"] = "out/model_fp32.engine"
    spec["gen_trt_engine"]["timing_cache"] = "out/timing.cache"
    plan = plan_engine(spec, tmp_path, cwd=tmp_path)
    assert plan.engine_file == tmp_path / "out" / "model_fp32.engine"
    assert plan.timing_cache == tmp_path / "out" / "timing.cache"
    assert (tmp_path / "out").is_dir()


def test_plan_rejects_unknown_data_type_and_missing_onnx(onnx_file, tmp_path):
    with pytest.raises(SpecError, match=r"data_type: 'FP64' must be one of FP32, FP16, INT8"):
        plan_engine(gen_trt_engine_spec(onnx_file, tmp_path, data_type="FP64"), tmp_path)
    with pytest.raises(SpecError, match="does not exist"):
        plan_engine(gen_trt_engine_spec(tmp_path / "nowhere.onnx", tmp_path), tmp_path)


def test_onnx_with_dynamic_height_is_rejected(tmp_path):
    path = tmp_path / "dyn.onnx"
    dynamic = {"images": {0: "batch", 2: "height"}}
    torch.onnx.export(
        Heads(),
        (torch.rand(1, 3, 32, 32),),
        str(path),
        dynamo=False,
        input_names=["images"],
        output_names=["pred_logits", "pred_boxes"],
        dynamic_axes=dynamic,
        opset_version=17,
    )
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
    onnx = write_onnx(tmp_path / "b2.onnx", batch=2)
    images = write_images(tmp_path / "cal", 4)
    cal = {"cal_image_dir": [str(images)], "cal_batch_size": 1, "cal_batches": 4}
    with pytest.raises(SpecError, match="cal_batch_size=2"):
        plan_engine(gen_trt_engine_spec(onnx, tmp_path, data_type="INT8", calibration=cal), tmp_path)


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

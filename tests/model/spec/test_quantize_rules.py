"""``quantize.*`` combinations are checked when the spec is resolved, before anything runs."""

from __future__ import annotations

import pytest

from model.errors import SpecError
from model.quantize.combinations import (
    COMBINATIONS,
    normalize_dtype,
    search_weight_dtypes,
    searchable_combinations,
)
from model.spec import resolve_spec


def _resolve(**quantize: object) -> dict:
    section = {"model_path": "model.pth", "layers": [{"module_name": "*", "weights": {"dtype": "int8"}}]}
    section.update(quantize)
    return resolve_spec("quantize", user_spec={"quantize": section}, check_paths=False)


def _problems(**quantize: object) -> list[str]:
    with pytest.raises(SpecError) as info:
        _resolve(**quantize)
    return info.value.problems


def test_torchao_weight_only_int8_and_fp8_spellings_resolve():
    for dtype in ("int8", "fp8_e4m3fn", "fp8_e5m2", "float8_e4m3fn", "float8_e5m2"):
        spec = _resolve(layers=[{"module_name": "decoder.*", "weights": {"dtype": dtype}}])
        assert spec["quantize"]["backend"] == "torchao"
    # TAO's torchao backend ignores quantize.algorithm, so a TAO spec with another value still loads
    assert _resolve(algorithm="max")["quantize"]["algorithm"] == "max"


def test_torchao_static_ptq_is_refused_with_the_supported_mode():
    (problem,) = _problems(mode="static_ptq")
    assert problem.startswith("quantize.mode: 'static_ptq' is not supported by quantize.backend 'torchao'")
    assert "quantize.mode=weight_only_ptq" in problem


def test_modelopt_combinations_name_the_algorithms_and_what_to_use_here():
    (problem,) = _problems(backend="modelopt.pytorch", mode="static_ptq", algorithm="entropy")
    assert "quantize.algorithm: 'entropy'" in problem and "max, awq_lite, awq_full" in problem
    for algorithm in ("max", "awq_lite", "awq_full"):
        spec = _resolve(backend="modelopt.pytorch", mode="static_ptq", algorithm=algorithm)
        assert spec["quantize"]["algorithm"] == algorithm
    for algorithm in ("max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq"):
        spec = _resolve(backend="modelopt.onnx", mode="static_ptq", algorithm=algorithm)
        assert spec["quantize"]["algorithm"] == algorithm
    (problem,) = _problems(backend="modelopt.onnx", mode="static_ptq", algorithm="minmax")
    assert problem.startswith(
        "quantize.algorithm: 'minmax' is not supported by quantize.backend 'modelopt.onnx'"
    )
    (problem,) = _problems(
        backend="modelopt.onnx",
        mode="static_ptq",
        algorithm="max",
        layers=[
            {"module_name": "backbone", "weights": {"dtype": "int8"}},
            {"module_name": "decoder", "weights": {"dtype": "fp8_e4m3fn"}},
        ],
    )
    assert problem.startswith("quantize.layers[1].weights.dtype: modelopt.onnx quantizes the whole graph")
    (problem,) = _problems(backend="modelopt.onnx", mode="weight_only_ptq", algorithm="max")
    assert problem.startswith(
        "quantize.mode: 'weight_only_ptq' is not supported by quantize.backend 'modelopt.onnx'"
    )


def test_bad_dtype_module_name_and_trt_device_are_named():
    (problem,) = _problems(layers=[{"module_name": "*", "weights": {"dtype": "int4"}}])
    assert problem.startswith("quantize.layers[0].weights.dtype: 'int4' is not a quantization dtype")
    assert _resolve(layers=[])["quantize"]["layers"] == []  # TAO's template; refused when quantize runs
    (problem,) = _problems(device="trt")
    assert "quantize.device: 'trt' is only for quantize.backend modelopt.onnx" in problem
    (problem,) = _problems(layers=[{"module_name": "", "weights": {"dtype": "int8"}}])
    assert problem.startswith("quantize.layers[0].module_name: required")


def test_quantize_keys_are_not_checked_for_other_actions():
    spec = resolve_spec("train", user_spec={"quantize": {"mode": "static_ptq"}}, check_paths=False)
    assert spec["quantize"]["mode"] == "static_ptq"


def test_one_table_gives_the_searchable_combinations():
    assert {row.backend for row in COMBINATIONS} == {"torchao", "modelopt.pytorch", "modelopt.onnx"}
    # every TAO-searchable combination runs here: torchao weight-only + minmax, modelopt.pytorch static
    # + max/awq_lite/awq_full, modelopt.onnx static + max/entropy/awq_clip/awq_lite/awq_full/rtn_dq
    assert searchable_combinations() == [
        {"backend": "torchao", "mode": "weight_only_ptq", "algorithm": "minmax"},
        *(
            {"backend": "modelopt.pytorch", "mode": "static_ptq", "algorithm": a}
            for a in ("max", "awq_lite", "awq_full")
        ),
        *(
            {"backend": "modelopt.onnx", "mode": "static_ptq", "algorithm": a}
            for a in ("max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq")
        ),
    ]
    # the int4 methods of modelopt.onnx ignore the weight dtype, so a search pairs them with int8 only
    assert search_weight_dtypes("modelopt.onnx", "awq_clip") == ("int8",)
    assert search_weight_dtypes("modelopt.onnx", "max") == ("int8", "fp8_e4m3fn")
    assert normalize_dtype("Float8_E4M3FN") == "fp8_e4m3fn" and normalize_dtype(None) == "native"

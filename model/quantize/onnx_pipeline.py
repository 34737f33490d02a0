"""``rtdetr quantize`` with ``quantize.backend: modelopt.onnx``: export (or take) the float ONNX model,
quantize it with ModelOpt (``model/quantize/modelopt_onnx_backend.py``) and score the float and the
QDQ file with ONNX Runtime, exactly as ``rtdetr evaluate evaluate.trt_engine=<file>`` does. The other
backends are run by ``model/actions/quantize.py``; the file names and the status.json kpis are in
``model/quantize/results.py``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from model.config.defaults import spec_section
from model.errors import ConfigError
from model.quantize.float_model import evaluation_spec, load_float_model, score
from model.quantize.results import FLOAT_ONNX_FILE, ONNX_FILE, report_quantized

__all__ = ["float_onnx_file", "modelopt_onnx_quantize", "score_onnx"]


def float_onnx_file(
    spec: Mapping[str, Any], results_dir: Path
) -> tuple[Path, str, dict[str, str], tuple[int, int]]:
    """The float ONNX file modelopt.onnx quantizes: ``quantize.model_path`` exported as ``rtdetr export``
    does (dynamic batch, eval_spatial_size, opset 17), or that file itself (copied) when it is an .onnx
    file. Also the exported network's module classes (for quantize.layers patterns) and the input size."""
    import onnx

    from model.deploy.onnx_export import export_onnx
    from model.network.rtdetr import build_model

    source = str(spec_section(spec, "quantize")["model_path"] or "")
    target = results_dir / FLOAT_ONNX_FILE
    size = [int(v) for v in spec_section(spec, "dataset.augmentation")["eval_spatial_size"]]
    if source.lower().endswith(".onnx"):
        if Path(source).resolve() != target.resolve():
            shutil.copyfile(source, target)
        dims = onnx.load(str(target), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        if len(dims) == 4 and dims[2].dim_value > 0 and dims[3].dim_value > 0:
            size = [int(dims[2].dim_value), int(dims[3].dim_value)]
        model = build_model(spec).deploy()
        print(f"Quantizing {source} ({size[0]}x{size[1]})", flush=True)
    else:
        model, source = load_float_model(spec)
        export_onnx(model, target, height=size[0], width=size[1], batch_size=-1, opset_version=17)
        print(f"Exported {source} to {target} ({size[0]}x{size[1]}, dynamic batch, opset 17)", flush=True)
    classes = {name: type(module).__name__ for name, module in model.named_modules() if name}
    return target, source, classes, (size[0], size[1])


def score_onnx(spec: Mapping[str, Any], path: Path, device: torch.device) -> dict[str, Any]:
    """mAP of an ONNX file run by ONNX Runtime, exactly as ``rtdetr evaluate evaluate.trt_engine=<path>``."""
    from model.engine.model_to_run import model_to_run

    view = {
        **spec,
        "evaluate": {**spec_section(spec, "evaluate"), "trt_engine": str(path), "precision": "fp32"},
    }
    chosen = model_to_run(view, "evaluate", device)
    return score(chosen.spec, chosen.model, device)


def modelopt_onnx_quantize(
    spec: dict[str, Any], results_dir: Path, status: Any, device: torch.device
) -> None:
    """Export, calibrate and quantize with modelopt.onnx; score the float and the QDQ file in ONNX Runtime."""
    from model.quantize.modelopt_onnx_backend import (
        calibration_array,
        checked_backend_kwargs,
        count_qdq,
        modelopt_onnx_version,
        onnx_recipe,
        quantize_onnx,
    )

    section = spec_section(spec, "quantize")
    version = modelopt_onnx_version()
    onnx_recipe(section)  # bad layers or backend_kwargs are refused before the export
    checked_backend_kwargs(section)
    float_onnx, source, classes, (height, width) = float_onnx_file(spec, results_dir)
    eval_spec, eval_source = evaluation_spec(spec)
    print(f"Scoring the float ONNX model on {eval_source} with ONNX Runtime ...", flush=True)
    before = score_onnx(eval_spec, float_onnx, device)
    calibration = calibration_array(spec, height, width)
    output = results_dir / ONNX_FILE
    started = time.time()
    info = quantize_onnx(float_onnx, output, calibration, section, classes)
    seconds = time.time() - started
    qdq = count_qdq(output)
    for note in info["notes"]:
        print(f"note: {note}", flush=True)
    print(
        f"modelopt {version} ({info['quantize_mode']}, {info['calibration_method']}): {info['selected_nodes']} "
        f"nodes selected, {qdq['QuantizeLinear']} QuantizeLinear / {qdq['DequantizeLinear']} DequantizeLinear "
        f"nodes written in {seconds:.1f} s; scoring {output.name} with ONNX Runtime ...",
        flush=True,
    )
    failure = ""
    try:
        after = score_onnx(eval_spec, output, device)
    except Exception as exc:  # ONNX Runtime's own error types do not share a base class
        failure = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if failure:  # raised here, so the traceback (and the data loader's worker it holds) is already freed
        raise ConfigError(
            f"quantize: {output} was written ({info['quantize_mode']} QDQ), but ONNX Runtime here cannot run "
            f"it ({failure}); build a TensorRT engine from it (rtdetr gen_trt_engine) on a GPU, or use "
            "quantize.layers dtype int8 with algorithm max or entropy, which ONNX Runtime runs on the CPU"
        )
    sizes = (float_onnx.stat().st_size, output.stat().st_size)
    results = {
        "quantized_checkpoint": str(output),
        "float_onnx": str(float_onnx),
        "source_checkpoint": source,
        "backend": "modelopt.onnx",
        "mode": section["mode"],
        "algorithm": section["algorithm"],
        "modelopt_version": version,
        "evaluated_on": eval_source,
        "evaluated_with": "ONNX Runtime (as rtdetr evaluate evaluate.trt_engine=<file>)",
        "input_size": [height, width],
        "seconds": round(seconds, 2),
        "before": {**before, "model_size_bytes": sizes[0]},
        "after": {**after, "model_size_bytes": sizes[1]},
        "file_size_bytes": sizes[1],
        "qdq_nodes": qdq,
        **info,
    }
    report_quantized(results_dir, status, results, before, after, sizes, "ONNX file")

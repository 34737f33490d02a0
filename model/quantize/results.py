"""What ``rtdetr quantize`` writes, whatever the backend: the output file names, ``results.json``, the
summary line and the SUCCESS status line with the kpis a search reads."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FLOAT_ONNX_FILE", "ONNX_FILE", "QUANTIZED_FILE", "report_quantized"]

QUANTIZED_FILE = "quantized_model_{backend}.pth"
"""torchao's and modelopt.pytorch's output: the quantized checkpoint (``model.checkpoints.quantized_file``)."""
ONNX_FILE = "quantized_model_modelopt_onnx.onnx"
"""modelopt.onnx's output: a QDQ ONNX file (``evaluate.trt_engine`` / ``gen_trt_engine.onnx_file``)."""
FLOAT_ONNX_FILE = "float_model.onnx"
"""The float ONNX file modelopt.onnx quantized (exported from ``quantize.model_path``)."""
_MB = 1024 * 1024


def report_quantized(
    results_dir: Path,
    status: Any,
    results: dict[str, Any],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    sizes: tuple[int, int],
    what: str,
) -> None:
    """results.json, the summary line and the SUCCESS status line with the kpis every backend writes."""
    from model.engine.status import SUCCESS

    size_before, size_after = sizes
    (results_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(
        f"mAP50 {before['mAP50']:.4f} -> {after['mAP50']:.4f}, mAP {before['mAP']:.4f} -> "
        f"{after['mAP']:.4f} on {before['images']} images; {what} {size_before / _MB:.2f} MB -> "
        f"{size_after / _MB:.2f} MB. Quantized model: {results['quantized_checkpoint']}",
        flush=True,
    )
    kpi = {
        "test_mAP50_before": before["mAP50"],
        "test_mAP50": after["mAP50"],
        "test_mAP_before": before["mAP"],
        "test_mAP": after["mAP"],
        "model_size_before_mb": round(size_before / _MB, 4),
        "model_size_after_mb": round(size_after / _MB, 4),
        "size_ratio": round(size_after / size_before, 4),
    }
    status.write(SUCCESS, "Quantization finished successfully.", kpi=kpi)

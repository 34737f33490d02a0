"""Static PTQ of the exported ONNX model with NVIDIA ModelOpt (``quantize.backend: modelopt.onnx``).

``rtdetr quantize`` exports ``quantize.model_path`` (a training checkpoint; an ``.onnx`` file written by
``rtdetr export`` is taken as it is, as TAO does) with the exporter of ``rtdetr export`` (dynamic batch,
``eval_spatial_size``, opset 17), reads ``dataset.quant_calibration_data_sources`` through the evaluation
pipeline (the same resize and scaling ``rtdetr evaluate`` feeds the network) into one ``N x 3 x H x W``
array, and calls ``modelopt.onnx.quantization.quantize`` on it. The result is a QDQ ONNX file (ONNX
``QuantizeLinear`` / ``DequantizeLinear`` nodes around the quantized operators) that ONNX Runtime runs
and TensorRT builds into an int8 / fp8 engine (``rtdetr gen_trt_engine``).

What TAO's keys become (one ``quantize_mode`` for the whole graph, as in ModelOpt):

- ``algorithm`` max or entropy: ``quantize_mode`` from the layers' weight dtype: ``int8`` -> ``int8``,
  ``fp8_e4m3fn`` -> ``fp8``; ``calibration_method`` = the algorithm. Weights (per output channel) and the
  inputs of the selected operators (per tensor) are quantized: ModelOpt's ONNX quantization has no
  weight-only int8/fp8, so an activation dtype of ``native`` cannot be honoured and is reported. As in
  TAO (``dq_only: false``), weights stay float behind Q/DQ pairs, so the file is not smaller until
  TensorRT folds them; ``backend_kwargs: {dq_only: true}`` stores int8 weights (about 4x smaller).
- ``algorithm`` awq_clip, awq_lite, awq_full or rtn_dq: ModelOpt's int4 weight-only methods of the same
  names (``quantize_mode`` ``int4``): the weights of ``MatMul`` / ``Gemm`` nodes (RT-DETR's Linear
  layers) become int4 in blocks along the input channels (``DequantizeLinear`` only, opset 21; the
  block, 128, 64, 32 or 16, is the one that covers most weights; a Linear whose input size it does not
  divide, such as the 4-input query position layer, and the transposed-weight Gemm of
  ``nn.MultiheadAttention``'s output projection stay float: ``int4_block_size``); convolutions and activations stay float, and the layers' int8/fp8 dtype is not used (TAO has no int4
  dtype). The AWQ scales become ``Mul`` nodes before the MatMuls (``awqlite_fuse_nodes: false``: ModelOpt
  0.47 fuses them only with cupy). Linear layers are a small part of RT-DETR's weights, so the file
  shrinks little.
- ``layers`` / ``skip_names``: ONNX node names carry the PyTorch module path (``/model/decoder/.../MatMul``
  belongs to module ``decoder....``), so a node is selected when its module matches a pattern the way
  ``model/quantize/plan.py`` matches modules (module name with ``*``, a parent's name, or the layer type
  such as ``Conv2d``, ``Linear``); ``native`` and ``skip_names`` take nodes out again (a skip pattern may
  also be an ONNX node name). Unselected nodes go to ModelOpt's ``nodes_to_exclude``.
- ``device``: ``calibration_eps`` (cpu; cuda when ONNX Runtime has the CUDA provider; trt with TensorRT).
- ``backend_kwargs``: passed to ``modelopt.onnx.quantization.quantize`` (for example ``block_size``,
  ``high_precision_dtype``, ``awqlite_alpha_step``); unknown names are refused.

``high_precision_dtype`` is ``fp32`` here (ModelOpt's default ``fp16`` casts the float parts to half,
which TensorRT wants but ONNX Runtime's CPU provider runs badly or not at all); set
``quantize.backend_kwargs.high_precision_dtype=fp16`` for a TensorRT-only file.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np

from model.config.defaults import spec_section, with_defaults
from model.errors import ConfigError
from model.quantize.combinations import normalize_dtype

__all__ = [
    "EXTRA_PACKAGES",
    "INT4_ALGORITHMS",
    "OnnxRecipe",
    "calibration_array",
    "calibration_providers",
    "checked_backend_kwargs",
    "count_qdq",
    "excluded_nodes",
    "int4_block_size",
    "modelopt_onnx_version",
    "onnx_recipe",
    "quantize_onnx",
]

INT4_ALGORITHMS = ("awq_clip", "awq_lite", "awq_full", "rtn_dq")
EXTRA_PACKAGES = (
    "onnx-graphsurgeon",
    "onnxslim",
    "polygraphy",
    "onnxconverter-common",
    "onnxscript",
    "lief",
    "cppimport",
)
"""What ``modelopt.onnx.quantization`` imports beyond nvidia-modelopt (its ``[onnx]`` extra, minus
onnxruntime-gpu and cupy, which would replace the CPU onnxruntime)."""
_INT4_KWARGS = (
    "awqlite_alpha_step",
    "awqclip_alpha_step",
    "awqclip_alpha_min",
    "awqclip_bsz_col",
    "gather_quantize_axis",
    "gather_block_size",
    "enable_mixed_quant",
    "layers_8bit",
    "use_column_major",
    "awqlite_fuse_nodes",
    "awqlite_run_per_subgraph",
)
_SET_HERE = (
    "onnx_path",
    "calibration_data",
    "calibration_method",
    "calibration_eps",
    "quantize_mode",
    "output_path",
)


def _modelopt_onnx():
    try:
        import modelopt
        from modelopt.onnx.quantization import quantize
    except ImportError as exc:
        raise ConfigError(
            f"quantize.backend=modelopt.onnx needs NVIDIA ModelOpt's ONNX quantization, which failed to import "
            f"({exc}); install it with `pip install nvidia-modelopt {' '.join(EXTRA_PACKAGES)}` (not "
            "`nvidia-modelopt[onnx]`, which pulls onnxruntime-gpu and cupy in place of the CPU onnxruntime), or "
            "use quantize.backend=modelopt.pytorch or torchao"
        ) from None
    return modelopt, quantize


def modelopt_onnx_version() -> str:
    return str(_modelopt_onnx()[0].__version__)


@dataclass(frozen=True)
class OnnxRecipe:
    """The ModelOpt call a ``quantize`` section asks for."""

    quantize_mode: str  # int8, fp8, int4
    calibration_method: str
    notes: tuple[str, ...] = field(default_factory=tuple)


def onnx_recipe(section: Mapping[str, Any]) -> OnnxRecipe:
    """``quantize_mode`` and ``calibration_method`` from ``quantize.algorithm`` and the layers' dtypes."""
    algorithm = str(section.get("algorithm") or "max")
    weights, activations = [], []
    for layer in section.get("layers") or []:
        for part, found in (("weights", weights), ("activations", activations)):
            dtype = normalize_dtype((layer.get(part) or {}).get("dtype"))
            if dtype != "native":
                found.append(dtype)
    if not weights:
        raise ConfigError(
            "quantize.layers: no entry quantizes weights (every weights.dtype is native), so nothing would be "
            "quantized; give e.g. quantize.layers=[{module_name: '*', weights: {dtype: int8}}]"
        )
    dtype = weights[0]
    if algorithm in INT4_ALGORITHMS:
        note = (
            f"quantize.algorithm={algorithm} is ModelOpt's int4 weight-only method: the MatMul/Gemm weights "
            f"(Linear layers) become int4 in blocks, convolutions and activations stay float; the layers' "
            f"weight dtype {dtype} is not used"
        )
        return OnnxRecipe("int4", algorithm, (note,))
    notes = []
    if len(activations) < len(section.get("layers") or []):
        notes.append(
            "modelopt.onnx quantizes the inputs of every selected operator with the weights' dtype (it has no "
            "weight-only int8/fp8); activation dtypes of native are not honoured"
        )
    return OnnxRecipe("int8" if dtype == "int8" else "fp8", algorithm, tuple(notes))


def _module_path(node_name: str) -> str | None:
    """``/model/decoder/dec_bbox_head.0/layers.0/Gemm`` -> ``decoder.dec_bbox_head.0.layers.0``."""
    parts = node_name.strip("/").split("/")
    if len(parts) < 2 or parts[0] != "model":
        return None
    return ".".join(parts[1:-1])


def _prefixes(qualname: str) -> list[str]:
    parts = qualname.split(".") if qualname else []
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _owner(path: str, classes: Mapping[str, str]) -> str:
    """The deepest known module on ``path`` (a scope may name a function call inside a module)."""
    for name in reversed(_prefixes(path)):
        if name in classes:
            return name
    return ""


def _matches(pattern: str, node_name: str, path: str, classes: Mapping[str, str]) -> bool:
    owner = _owner(path, classes)
    if owner and fnmatchcase(classes[owner], pattern):
        return True
    return fnmatchcase(node_name, pattern) or any(fnmatchcase(name, pattern) for name in _prefixes(path))


def excluded_nodes(
    node_names: list[str], classes: Mapping[str, str], section: Mapping[str, Any]
) -> tuple[list[str], int]:
    """The nodes ``quantize.layers`` / ``skip_names`` leave out, and how many stay selected.

    ``classes`` maps the exported network's module names to their class names (``Conv2d``, ``Linear``).
    """
    chosen: set[str] = set()
    paths = {name: _module_path(name) or "" for name in node_names}
    for layer in section.get("layers") or []:
        pattern = str(layer.get("module_name") or "")
        dtype = normalize_dtype((layer.get("weights") or {}).get("dtype"))
        hits = {n for n in node_names if _matches(pattern, n, paths[n], classes)}
        chosen = chosen - hits if dtype == "native" else chosen | hits
    for pattern in section.get("skip_names") or []:
        chosen -= {n for n in chosen if _matches(str(pattern), n, paths[n], classes)}
    return [n for n in node_names if n not in chosen], len(chosen)


def calibration_providers(device: str) -> tuple[list[str], str | None]:
    """ModelOpt's ``calibration_eps`` for ``quantize.device``, and a note when it falls back to the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    value = str(device or "cuda")
    if value == "trt":
        if "TensorrtExecutionProvider" in available:
            return ["trt", "cuda:0", "cpu"], None
        return [
            "cpu"
        ], "quantize.device=trt: ONNX Runtime has no TensorRT provider here; calibrating on the CPU"
    if value.startswith("cuda"):
        index = value.split(":", 1)[1] if ":" in value else "0"
        if "CUDAExecutionProvider" in available:
            return [f"cuda:{index}", "cpu"], None
        return [
            "cpu"
        ], f"quantize.device={value}: ONNX Runtime has no CUDA provider here; calibrating on the CPU"
    return ["cpu"], None


def calibration_array(spec: Mapping[str, Any], height: int, width: int) -> np.ndarray:
    """``dataset.quant_calibration_data_sources`` as ``rtdetr evaluate`` feeds the network: N x 3 x H x W."""
    from model.data import build_dataloader
    from model.deploy.onnx_export import spec_for_size

    view = spec_for_size(spec, height, width)
    dataset = view["dataset"]
    view["dataset"] = {
        **dataset,
        "test_data_sources": dataset.get("quant_calibration_data_sources"),
        "workers": 0,
    }
    loader = build_dataloader(view, "test", batch_size=int(spec_section(spec, "dataset")["batch_size"]))
    batches = [images.numpy().astype(np.float32) for images, _targets in loader]
    return np.concatenate(batches, axis=0)


def checked_backend_kwargs(section: Mapping[str, Any]) -> dict[str, Any]:
    """``quantize.backend_kwargs``, refused when a name is not a parameter of ModelOpt's ONNX quantize."""
    quantize = _modelopt_onnx()[1]
    given = dict(section.get("backend_kwargs") or {})
    known = set(inspect.signature(quantize).parameters) - {"kwargs"}
    known |= set(_INT4_KWARGS)
    for key in given:
        if key in _SET_HERE:
            raise ConfigError(
                f"quantize.backend_kwargs.{key}: set by rtdetr quantize itself (from quantize.model_path, "
                "algorithm, layers, device, results_dir and dataset.quant_calibration_data_sources); remove it"
            )
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(
                f"quantize.backend_kwargs.{key}: not a parameter of modelopt.onnx.quantization.quantize{hint}"
            )
    return given


def int4_block_size(model: Any) -> tuple[int, list[str]]:
    """The int4 block (128, 64, 32 or 16 input channels) that quantizes most MatMul/Gemm weight elements,
    and the nodes left in float: those whose input size it does not divide (ModelOpt's default 128
    mis-sizes their scales, and RT-DETR has Linear layers with 4 inputs, the query position head), and the
    ``Gemm`` nodes with a transposed weight (``nn.MultiheadAttention``'s output projection), whose blocked
    scales ModelOpt 0.47's AWQ methods write transposed, which ONNX Runtime refuses."""
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    layers = []  # (node name, input size, elements)
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in weights:
            dims = weights[node.input[1]]
            transposed = any(a.name == "transB" and a.i for a in node.attribute)
            if len(dims) == 2:
                layers.append((node.name, dims[1] if transposed else dims[0], dims[0] * dims[1]))
    covered = {b: sum(n for _, k, n in layers if k % b == 0) for b in (128, 64, 32, 16)}
    block = max(covered, key=lambda b: (covered[b], b))
    left = [name for name, k, _ in layers if k % block]
    if block > 0:
        left += [
            node.name
            for node in model.graph.node
            if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
        ]
    return block, left


def quantize_onnx(
    float_onnx: Path,
    output: Path,
    calibration: np.ndarray,
    section: Mapping[str, Any],
    classes: Mapping[str, str],
) -> dict[str, Any]:
    """Write the QDQ model of ``float_onnx`` to ``output``; returns what results.json records."""
    import onnx

    _, quantize = _modelopt_onnx()
    recipe = onnx_recipe(section)
    kwargs = checked_backend_kwargs(section)
    graph_model = onnx.load(str(float_onnx), load_external_data=False)
    names = [node.name for node in graph_model.graph.node]
    excluded, selected = excluded_nodes(names, classes, section)
    if not selected:
        patterns = [layer.get("module_name") for layer in section.get("layers") or []]
        raise ConfigError(
            f"quantize.layers: the patterns {patterns} (minus quantize.skip_names "
            f"{section.get('skip_names') or []}) select no node of the exported ONNX graph, so nothing would be "
            "quantized; use module names such as '*', 'Conv2d', 'Linear', 'backbone' or 'decoder.*'"
        )
    providers, note = calibration_providers(str(with_defaults(section, "quantize")["device"]))
    if note:
        print(note, flush=True)
    call = {
        "onnx_path": str(float_onnx),
        "quantize_mode": recipe.quantize_mode,
        "calibration_data": calibration,
        "calibration_method": recipe.calibration_method,
        "calibration_eps": providers,
        "calibration_shapes": f"images:1x{'x'.join(str(d) for d in calibration.shape[1:])}",
        "nodes_to_exclude": [re.escape(name) + "$" for name in excluded] or None,
        "high_precision_dtype": "fp32",
        "output_path": str(output),
        "log_level": "WARNING",
    }
    left_float: list[str] = []
    if recipe.quantize_mode == "int4" and "block_size" not in kwargs:
        call["block_size"], left_float = int4_block_size(graph_model)
        call["nodes_to_exclude"] = (call["nodes_to_exclude"] or []) + [re.escape(n) + "$" for n in left_float]
    if recipe.quantize_mode == "int4":
        # ModelOpt 0.47's fusing of the AWQ scales into the previous node needs cupy (numpy arrays have no
        # .get()) and deletes a scale twice when that node has two constant inputs: scale with Mul nodes.
        call["awqlite_fuse_nodes"] = False
    call.update(kwargs)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # ONNX Runtime's quantization tools warn about every non-constant bias
    try:
        quantize(**call)
    finally:
        root.setLevel(level)
    if not output.is_file():
        raise ConfigError(f"quantize: ModelOpt finished without writing {output}; see its log above")
    return {
        "quantize_mode": recipe.quantize_mode,
        "calibration_method": recipe.calibration_method,
        "calibration_eps": providers,
        "calibration_images": int(calibration.shape[0]),
        "block_size": call.get("block_size"),
        "int4_left_float": left_float,
        "selected_nodes": selected,
        "excluded_nodes": len(excluded),
        "backend_kwargs": {k: v for k, v in kwargs.items()},
        "notes": list(recipe.notes),
    }


def count_qdq(path: Path) -> dict[str, Any]:
    """Q/DQ nodes of an ONNX file and the element types of the tensors its DequantizeLinear nodes read."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = Counter(node.op_type for node in model.graph.node)
    initializers = {t.name: onnx.TensorProto.DataType.Name(t.data_type) for t in model.graph.initializer}
    dq_inputs = Counter(
        initializers[node.input[0]]
        for node in model.graph.node
        if node.op_type == "DequantizeLinear" and node.input[0] in initializers
    )
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return {
        "QuantizeLinear": ops.get("QuantizeLinear", 0),
        "DequantizeLinear": ops.get("DequantizeLinear", 0),
        "quantized_weight_types": dict(dq_inputs),
        "opset": int(opset),
    }

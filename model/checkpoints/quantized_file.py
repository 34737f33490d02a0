"""The quantized checkpoint ``quantized_model_<backend>.pth``: save it, recognise it, load it.

The file is a ``torch.save`` dict, readable with ``weights_only=True`` once torchao is imported (torchao
registers its tensor types as safe):

- ``rtdetr_quantization``: the recipe: format version, backend, mode, algorithm, torchao version and the
  plan (``[{module, kind, weights}]``: which module got which weight dtype);
- ``quantized_state``: the quantized network's state_dict (torchao ``Int8Tensor`` / ``Float8Tensor``
  for quantized weights, float tensors for the rest; buffers the model computes from the spec, such as
  the anchors, are left out);
- ``modelopt_state`` (modelopt.pytorch only): ModelOpt's record of the quantizers it inserted;
- ``spec``: the resolved spec of the quantize run; ``tao_model``: ``"rtdetr"``.

Loading rebuilds the float network from the spec, applies the recorded plan (torchao: so every quantized
module has the right tensor type) or restores the quantizers (ModelOpt), then loads the stored tensors. It holds no ``model`` / ``state_dict``
entry, so a loader of float weights (``train.pretrained_model_path``) refuses it instead of copying
int8 codes as floats.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from model.checkpoints.weights import COMPUTED_BUFFERS, LoadReport
from model.errors import CheckpointError
from model.quantize.plan import QuantPlan

__all__ = [
    "FORMAT_VERSION",
    "RECIPE_KEY",
    "is_quantized_checkpoint",
    "load_if_quantized",
    "load_quantized_model",
    "quantized_state",
    "save_quantized",
]

FORMAT_VERSION = 1
RECIPE_KEY = "rtdetr_quantization"


def quantized_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v for k, v in model.state_dict().items() if not COMPUTED_BUFFERS.search(k)}


def save_quantized(
    path: Path,
    model: nn.Module,
    recipe: Mapping[str, Any],
    spec: Mapping[str, Any],
    modelopt_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write the quantized checkpoint (to a temporary name, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        RECIPE_KEY: {"format_version": FORMAT_VERSION, **recipe},
        "quantized_state": quantized_state(model),
        "spec": dict(spec),
        "tao_model": "rtdetr",
    }
    if modelopt_state is not None:
        payload["modelopt_state"] = dict(modelopt_state)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def is_quantized_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a quantized checkpoint written by ``save_quantized``, without unpickling it:
    the recipe key is a plain string in the zip's ``data.pkl``. Any other file (or no file) is False."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            return bool(names) and RECIPE_KEY.encode() in archive.read(names[0])
    except (OSError, zipfile.BadZipFile):
        return False


def _backend_of(path: str) -> str:
    """The backend named in the file's recipe, read without unpickling the tensors."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    return "modelopt.pytorch" if b"modelopt_state" in data else "torchao"


def _read(path: str) -> dict[str, Any]:
    from model.quantize.torchao_backend import torchao_version

    torchao_version()  # imports torchao, which registers its tensor types for weights_only loading
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path!r}: cannot read the quantized checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); it needs torchao >= 0.18 to load"
        ) from exc
    recipe = obj.get(RECIPE_KEY) if isinstance(obj, Mapping) else None
    if not isinstance(recipe, Mapping) or not isinstance(obj.get("quantized_state"), Mapping):
        raise CheckpointError(f"{path!r} is not a quantized checkpoint of `rtdetr quantize`")
    backend = recipe.get("backend")
    if int(recipe.get("format_version", 0)) > FORMAT_VERSION or backend not in (
        "torchao",
        "modelopt.pytorch",
    ):
        raise CheckpointError(
            f"{path!r}: quantized with backend {backend!r}, format {recipe.get('format_version')}; this "
            f"version loads torchao and modelopt.pytorch files of format <= {FORMAT_VERSION}"
        )
    if backend == "modelopt.pytorch" and not isinstance(obj.get("modelopt_state"), Mapping):
        raise CheckpointError(f"{path!r}: a modelopt.pytorch checkpoint without its modelopt_state")
    return obj


def load_quantized_model(spec: Mapping[str, Any], action: str, path: str) -> tuple[nn.Module, LoadReport]:
    """Build ``spec``'s network, quantize it as the file's recipe says and load the file's tensors."""
    from model.network.rtdetr import build_model

    obj = _read(path)
    recipe = obj[RECIPE_KEY]
    modelopt = recipe.get("backend") == "modelopt.pytorch"
    if modelopt:
        from model.quantize.modelopt_backend import modelopt_restore

        model = modelopt_restore(build_model(spec).eval(), obj["modelopt_state"])
        what = f"modelopt.pytorch static PTQ ({recipe.get('algorithm')} calibration)"
    else:
        from model.quantize.torchao_backend import apply_plan

        plan = QuantPlan.from_records(list(recipe.get("plan") or []))
        model = apply_plan(build_model(spec), plan)
        what = f"torchao weight-only, {plan.summary()}"
    own = quantized_state(model)
    state = dict(obj["quantized_state"])
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    differ = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or differ:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", differ))
            if keys
        )
        raise CheckpointError(
            f"{action}.checkpoint: the quantized checkpoint {path} does not fit the model built from the spec "
            f"({detail}). Set dataset.num_classes and the model.* keys to the values it was quantized with "
            "(its quantize/experiment.yaml lists them)."
        )
    model.load_state_dict(state, strict=False, assign=not modelopt)
    report = LoadReport(
        path=path,
        source=f"quantized_state: {what}",
        loaded=list(state),
        computed=[k for k in model.state_dict() if COMPUTED_BUFFERS.search(k)],
    )
    return model.eval(), report


def load_if_quantized(spec: Mapping[str, Any], action: str, path: str) -> tuple[nn.Module, LoadReport] | None:
    """The quantized model when ``path`` is a quantized checkpoint, else None (a float checkpoint).

    ``<action>.is_quantized: true`` with a float checkpoint is an error; a quantized file is recognised
    whatever ``is_quantized`` says. For ``export`` torchao weights come back dequantized (float tensors
    with the quantized values), since ONNX export traces plain tensors; a modelopt.pytorch file is refused
    (its fake-quant modules do not export to ONNX faithfully yet).
    """
    flagged = bool((spec.get(action) or {}).get("is_quantized"))
    if not is_quantized_checkpoint(path):
        if flagged and Path(path).is_file():
            raise CheckpointError(
                f"{action}.is_quantized is true, but {action}.checkpoint {path} is not a quantized checkpoint "
                f"of `rtdetr quantize`; give the quantized_model_<backend>.pth of `rtdetr quantize`, or set {action}.is_quantized=false"
            )
        return None
    if action == "export" and _backend_of(path) == "modelopt.pytorch":
        raise CheckpointError(
            f"export.checkpoint: {path} is fake-quantized by modelopt.pytorch, and exporting its quantizers "
            "to ONNX (QDQ nodes) is not supported yet; export the float checkpoint it was made from and build "
            "an INT8 TensorRT engine with calibration (gen_trt_engine.tensorrt.data_type=int8), or quantize "
            "with quantize.backend=torchao, whose checkpoints export"
        )
    model, report = load_quantized_model(spec, action, path)
    if action == "export":
        from model.quantize.torchao_backend import dequantize_model

        model = dequantize_model(model)
        report.source += " (dequantized for export)"
    return model, report

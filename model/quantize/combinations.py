"""Which ``quantize.backend`` / ``mode`` / ``algorithm`` / dtype combinations exist, in one table.

Both spec validation (``model/spec/quantize_rules.py``) and a search over quantization settings read
this table, so they never disagree. It imports nothing heavy (no torch); ``automl/`` never imports
``model/``, so a search reads it through a file or command that ``rtdetr`` writes from it.

Rows follow TAO's rules (``tao_automl/search_space/params.py`` and its quantization backends):

- ``torchao``: weight-only PTQ (int8, fp8). ``quantize.algorithm`` is ignored by TAO's torchao backend,
  so any value is accepted; the one searchable value is ``minmax``. Activation dtypes are ignored.
- ``modelopt.pytorch``: static PTQ (weights and activations, int8 or fp8_e4m3fn) with ``max``
  calibration; TAO also searches ``awq_lite`` and ``awq_full`` (not run here).
- ``modelopt.onnx``: static PTQ of an exported ONNX file with max, entropy, awq_clip, awq_lite,
  awq_full or rtn_dq.

``runnable_algorithms`` says what this tool runs today; a TAO-valid combination that is not runnable here is a
validation error that says what to use instead (never a silent fallback).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COMBINATIONS",
    "DTYPE_ALIASES",
    "QUANT_DTYPES",
    "Combination",
    "combination_problems",
    "find_combination",
    "normalize_dtype",
    "searchable_combinations",
]

QUANT_DTYPES = ("int8", "fp8_e4m3fn", "fp8_e5m2", "native")
"""TAO's ``SupportedDtype`` values for ``quantize.layers[*].weights|activations.dtype``."""

DTYPE_ALIASES = {"float8_e4m3fn": "fp8_e4m3fn", "float8_e5m2": "fp8_e5m2"}
"""TAO's ``DTYPE_NORMALIZATION_MAP``: the torch spellings used in TAO's skill examples."""


@dataclass(frozen=True)
class Combination:
    """One backend and the modes, algorithms and weight dtypes it takes."""

    backend: str
    modes: tuple[str, ...]
    search_algorithms: tuple[str, ...]
    """Algorithms a search may try with this backend (TAO's searchable set)."""
    accepted_algorithms: tuple[str, ...] | None
    """Algorithms validation accepts; None = any (the backend ignores ``quantize.algorithm``)."""
    weight_dtypes: tuple[str, ...]
    runnable_algorithms: tuple[str, ...] | None
    """What ``rtdetr quantize`` runs here; None = everything accepted; () = nothing yet."""
    needs: str = ""
    """Python package the backend imports (named in the error when it is missing)."""
    not_runnable_reason: str = ""


COMBINATIONS: tuple[Combination, ...] = (
    Combination(
        backend="torchao",
        modes=("weight_only_ptq",),
        search_algorithms=("minmax",),
        accepted_algorithms=None,
        weight_dtypes=("int8", "fp8_e4m3fn", "fp8_e5m2"),
        runnable_algorithms=None,
        needs="torchao",
    ),
    Combination(
        backend="modelopt.pytorch",
        modes=("static_ptq",),
        search_algorithms=("max", "awq_lite", "awq_full"),
        accepted_algorithms=("max", "awq_lite", "awq_full"),
        weight_dtypes=("int8", "fp8_e4m3fn"),
        runnable_algorithms=("max",),
        needs="nvidia-modelopt",
        not_runnable_reason=(
            "rtdetr quantize runs modelopt.pytorch with quantize.algorithm=max only (awq_lite and awq_full "
            "are ModelOpt's int4 weight recipes for language models); set quantize.algorithm=max"
        ),
    ),
    Combination(
        backend="modelopt.onnx",
        modes=("static_ptq",),
        search_algorithms=("max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq"),
        accepted_algorithms=("max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq"),
        weight_dtypes=("int8", "fp8_e4m3fn"),
        runnable_algorithms=(),
        needs="nvidia-modelopt[onnx]",
        not_runnable_reason=(
            "the modelopt.onnx backend (QDQ ONNX quantization) is not implemented in rtdetr quantize yet; "
            "export the model (rtdetr export) and build an INT8 TensorRT engine with calibration "
            "(gen_trt_engine.tensorrt.data_type=int8), or use quantize.backend=torchao"
        ),
    ),
)


def find_combination(backend: str) -> Combination | None:
    for row in COMBINATIONS:
        if row.backend == backend:
            return row
    return None


def normalize_dtype(dtype: object) -> str:
    """TAO's dtype spelling: lower case, ``float8_*`` -> ``fp8_*``; '' and None mean native."""
    text = str(dtype or "native").strip().lower()
    return DTYPE_ALIASES.get(text, text)


def searchable_combinations() -> list[dict[str, str]]:
    """Every (backend, mode, algorithm) a search over quantization settings may try and can run here."""
    rows = []
    for row in COMBINATIONS:
        for mode in row.modes:
            for algorithm in row.search_algorithms:
                if row.runnable_algorithms is None or algorithm in row.runnable_algorithms:
                    rows.append({"backend": row.backend, "mode": mode, "algorithm": algorithm})
    return rows


def combination_problems(
    backend: object, mode: object, algorithm: object, weight_dtypes: list[tuple[str, object]]
) -> list[str]:
    """Problems with one combination; ``weight_dtypes`` is ``[(dotted key, dtype), ...]``.

    Unknown enum values are left to the schema check; this checks how the values fit together and
    whether this tool runs them.
    """
    row = find_combination(str(backend))
    if row is None:
        return []
    problems: list[str] = []
    if mode not in row.modes:
        allowed = ", ".join(f"{r.backend} -> {'/'.join(r.modes)}" for r in COMBINATIONS)
        problems.append(
            f"quantize.mode: {mode!r} is not supported by quantize.backend {row.backend!r}; it supports "
            f"{', '.join(row.modes)} ({allowed}); set quantize.mode={row.modes[0]} or choose another backend"
        )
    if row.accepted_algorithms is not None and algorithm not in row.accepted_algorithms:
        problems.append(
            f"quantize.algorithm: {algorithm!r} is not supported by quantize.backend {row.backend!r}; "
            f"choose one of {', '.join(row.accepted_algorithms)}"
        )
    for key, dtype in weight_dtypes:
        value = normalize_dtype(dtype)
        if value in QUANT_DTYPES and value != "native" and value not in row.weight_dtypes:
            problems.append(
                f"{key}: {dtype!r} is not supported for weights by quantize.backend {row.backend!r}; "
                f"choose one of {', '.join(row.weight_dtypes)} (or native to leave those layers as they are)"
            )
    if not problems and row.runnable_algorithms is not None and algorithm not in row.runnable_algorithms:
        key = "quantize.algorithm" if row.runnable_algorithms else "quantize.backend"
        value = algorithm if row.runnable_algorithms else row.backend
        problems.append(f"{key}: {value!r} with {row.backend} is valid in TAO, but {row.not_runnable_reason}")
    return problems

"""Which ``quantize.backend`` / ``mode`` / ``algorithm`` / dtype combinations exist, in one table.

Both spec validation (``model/spec/quantize_rules.py``) and a search over quantization settings read
this table, so they never disagree. It imports nothing heavy (no torch); ``automl/`` never imports
``model/``, so a search reads it through a file or command that ``rtdetr`` writes from it.

Rows follow TAO's rules (``tao_automl/search_space/params.py`` and its quantization backends):

- ``torchao``: weight-only PTQ (int8, fp8). ``quantize.algorithm`` is ignored by TAO's torchao backend,
  so any value is accepted; the one searchable value is ``minmax``. Activation dtypes are ignored.
- ``modelopt.pytorch``: static PTQ (weights and activations, int8 or fp8_e4m3fn, fake-quantized) with
  ``max`` calibration, or ``awq_lite`` / ``awq_full`` (activation-aware scaling of the Linear layers'
  weights; ``model/quantize/modelopt_backend.py``).
- ``modelopt.onnx``: static PTQ of the exported ONNX graph: ``max`` / ``entropy`` calibration to an int8
  or fp8 QDQ file, or ModelOpt's int4 weight-only methods ``awq_clip``, ``awq_lite``, ``awq_full``,
  ``rtn_dq`` (``model/quantize/modelopt_onnx_backend.py``). One ``quantize_mode`` covers the whole graph,
  so every layer must ask for the same weight dtype; the int4 methods do not use it, so a search pairs
  them with int8 only.

``runnable_algorithms`` says what this tool runs; a TAO-valid combination that is not runnable here is a
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
    "search_weight_dtypes",
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
    one_weight_dtype: bool = False
    """Every ``quantize.layers`` entry must use the same weight dtype (one quantize_mode per graph)."""
    search_dtypes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(algorithm, weight dtypes) a search pairs it with, where not all of ``weight_dtypes``."""


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
        runnable_algorithms=None,
        needs="nvidia-modelopt",
    ),
    Combination(
        backend="modelopt.onnx",
        modes=("static_ptq",),
        search_algorithms=("max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq"),
        accepted_algorithms=("max", "entropy", "awq_clip", "awq_lite", "awq_full", "rtn_dq"),
        weight_dtypes=("int8", "fp8_e4m3fn"),
        runnable_algorithms=None,
        needs="nvidia-modelopt onnx_graphsurgeon onnxslim polygraphy onnxconverter-common onnxscript lief cppimport",
        one_weight_dtype=True,
        search_dtypes=tuple((a, ("int8",)) for a in ("awq_clip", "awq_lite", "awq_full", "rtn_dq")),
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


def search_weight_dtypes(backend: str, algorithm: str) -> tuple[str, ...]:
    """The weight dtypes a search pairs with ``backend`` / ``algorithm``."""
    row = find_combination(backend)
    if row is None:
        return ()
    return dict(row.search_dtypes).get(algorithm, row.weight_dtypes)


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
    chosen = [(key, normalize_dtype(dtype)) for key, dtype in weight_dtypes]
    chosen = [(key, value) for key, value in chosen if value in QUANT_DTYPES and value != "native"]
    if row.one_weight_dtype and len({value for _, value in chosen}) > 1:
        listed = ", ".join(f"{key}={value}" for key, value in chosen)
        problems.append(
            f"{chosen[1][0]}: {row.backend} quantizes the whole graph with one quantize_mode, so every "
            f"quantize.layers entry must use the same weight dtype (got {listed}); use one dtype (native to "
            "leave layers out), or quantize.backend=modelopt.pytorch or torchao for a dtype per layer"
        )
    if not problems and row.runnable_algorithms is not None and algorithm not in row.runnable_algorithms:
        key = "quantize.algorithm" if row.runnable_algorithms else "quantize.backend"
        value = algorithm if row.runnable_algorithms else row.backend
        problems.append(f"{key}: {value!r} with {row.backend} is valid in TAO, but {row.not_runnable_reason}")
    return problems

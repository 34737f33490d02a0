"""The resolved search space: what each searched parameter may take and how it is encoded.

Each :class:`SearchParam` is sampled through exactly one Optuna distribution that never changes
from trial to trial (TPE and GP model fixed distributions best). Its ``encoding`` says how the
Optuna value maps to the spec value:

- ``direct``: the Optuna value is the value (``suggest_float``/``suggest_int``/``suggest_categorical``).
- ``power``: an integer exponent ``p`` (``name#exp``); the value is ``base ** p`` (``math_cond "^ k"``).
- ``log1m``: ``1 - value`` on a log scale (``name#1-x``), for decay-like values just below 1.
- ``weights``: a uniform ``u`` in [0, 1] (``name#u``) mapped through the cumulative option weights.
- ``fraction``: a uniform ``u`` in [0, 1] (``name#u``) mapped into the range the already sampled
  ``parent`` allows (``> depends_on``, ``num_select <= num_queries``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RELATIONS", "Excluded", "SearchParam", "SearchSpace", "powers_in"]

SUFFIX = {"direct": "", "power": "#exp", "log1m": "#1-x", "weights": "#u", "fraction": "#u"}
RELATIONS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


@dataclass(frozen=True)
class SearchParam:
    """One searched parameter (dotted spec key) and the values it may take."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    default: Any = None
    low: float | None = None
    high: float | None = None
    scale: str = "linear"  # linear | log | log1m | power | multiple | choice | weights
    base: int | None = None  # k of "^ k" (power) or "/ k" (multiple)
    choices: tuple[Any, ...] = ()
    weights: tuple[float, ...] = ()
    parent: str | None = None
    relation: str | None = None  # value <relation> parent: gt | ge | lt | le
    encoding: str = "direct"  # direct | power | log1m | weights | fraction
    note: str = ""

    @property
    def optuna_name(self) -> str:
        return self.name + SUFFIX[self.encoding]

    @property
    def span(self) -> tuple[float, float]:
        """(low, high) of an int or float param: the space builder gives every one both bounds."""
        assert self.low is not None and self.high is not None, self.name  # internal invariant
        return self.low, self.high

    @property
    def parent_name(self) -> str:
        """The parameter whose sampled value bounds this ``fraction`` dependant."""
        assert self.parent is not None, self.name  # internal invariant
        return self.parent

    def grid(self, low: float | None = None, high: float | None = None) -> list[int]:
        """The allowed integers of a ``power``/``multiple``/plain int param within [low, high]."""
        lo = self.low if low is None else max(low, self.low if self.low is not None else low)
        hi = self.high if high is None else min(high, self.high if self.high is not None else high)
        if lo is None or hi is None or lo > hi:
            return []
        if self.scale == "power" and self.base:
            return powers_in(self.base, lo, hi)
        step = self.base if self.scale == "multiple" and self.base else 1
        first = math.ceil(lo / step) * step
        return list(range(int(first), math.floor(hi) + 1, step))

    def bounds_given(self, parent_value: float) -> tuple[float, float]:
        """[low, high] this dependant may take once its parent has ``parent_value``."""
        lo, hi = (
            float(self.low if self.low is not None else -math.inf),
            float(self.high if self.high is not None else math.inf),
        )
        integral = self.kind == "int" or (
            self.kind == "categorical"
            and all(isinstance(c, int) and not isinstance(c, bool) for c in self.choices)
        )
        step = 1 if integral else 0.0
        if self.relation == "gt":
            lo = max(lo, parent_value + step) if step else max(lo, math.nextafter(parent_value, math.inf))
        elif self.relation == "ge":
            lo = max(lo, parent_value)
        elif self.relation == "lt":
            hi = min(hi, parent_value - step) if step else min(hi, math.nextafter(parent_value, -math.inf))
        elif self.relation == "le":
            hi = min(hi, parent_value)
        return lo, hi

    def choices_given(self, parent_value: float) -> tuple[tuple[Any, ...], tuple[float, ...]]:
        """The numeric choices (and their renormalized weights) a categorical dependant may take."""
        lo, hi = self.bounds_given(parent_value)
        weights = self.weights or (1.0,) * len(self.choices)
        kept = [(c, w) for c, w in zip(self.choices, weights) if lo <= c <= hi]
        total = sum(w for _, w in kept) or 1.0
        return tuple(c for c, _ in kept), tuple(w / total for _, w in kept)


@dataclass(frozen=True)
class Excluded:
    """A parameter left out of the search, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class SearchSpace:
    """Searched parameters in sampling order (parents before dependants) and the ones left out."""

    params: list[SearchParam] = field(default_factory=list)
    excluded: list[Excluded] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def get(self, name: str) -> SearchParam | None:
        return next((p for p in self.params if p.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for summary.json or a tracking run: every param's fields, and the exclusions."""
        return {"params": [asdict(p) for p in self.params], "excluded": [asdict(e) for e in self.excluded]}

    def defaults(self) -> dict[str, Any]:
        """The base spec's value of every searched parameter (a baseline trial)."""
        return {p.name: p.default for p in self.params}


def powers_in(base: int, low: float, high: float) -> list[int]:
    """``base ** p`` for p >= 1 within [low, high] (TAO's ``^ k`` rule starts at k itself)."""
    out: list[int] = []
    if base < 2:
        return out
    value = base
    while value <= high:
        if value >= low:
            out.append(value)
        value *= base
    return out

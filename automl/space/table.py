"""``automl space``: the resolved search space as an aligned text table."""

from __future__ import annotations

from automl.space.params import RELATIONS, SearchParam, SearchSpace, powers_in

__all__ = ["format_space_table"]

HEADER = ("parameter", "kind", "range", "scale", "default", "notes")


def format_space_table(space: SearchSpace) -> str:
    """One line per searched parameter (kind, range, scale, default, how the range was chosen), then
    one line per excluded parameter with the reason."""
    rows = [HEADER]
    for param in space.params:
        rows.append(
            (param.name, param.kind, _range(param), _scale(param), _short(param.default), _notes(param))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    lines = [line.rstrip() for line in lines]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(HEADER[-1]))
    if not space.params:
        lines.append("(no parameter is searched)")
    if space.excluded:
        lines.append("")
        lines.append("excluded:")
        width = max(len(e.name) for e in space.excluded)
        lines += [f"  {e.name.ljust(width)}  {e.reason}" for e in space.excluded]
    return "\n".join(lines) + "\n"


def _range(param: SearchParam) -> str:
    if param.kind == "categorical":
        if param.weights:
            return ", ".join(f"{c} ({w:.2f})" for c, w in zip(param.choices, param.weights))
        return ", ".join(map(str, param.choices))
    if param.scale == "power":
        return "{" + ", ".join(map(str, powers_in(param.base or 2, *param.span))) + "}"
    text = f"[{_short(param.low)}, {_short(param.high)}]"
    if param.relation and param.parent:
        text += f" and {RELATIONS[param.relation]} {param.parent}"
    return text


def _scale(param: SearchParam) -> str:
    return {
        "power": f"powers of {param.base}",
        "multiple": f"multiples of {param.base}",
        "log1m": "log of 1-x",
        "choice": "uniform",
        "weights": "weights",
    }.get(param.scale, param.scale)


def _notes(param: SearchParam) -> str:
    notes = [param.note] if param.note else []
    if param.encoding == "fraction":
        notes.append(f"sampled after {param.parent}")
    return "; ".join(notes)


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

"""The architecture rules, checked on the source: one-way imports, no import cycle, small files,
lazy backends, a package surface in ``__all__``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path) -> set[str]:
    """Every absolute module a file imports, at any level (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def cycles(package: str) -> list[list[str]]:
    mods = modules(package)
    graph = {m: {t for t in imports(p) if t in mods and t != m} for m, p in mods.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return found


@pytest.mark.parametrize("package", ["automl", "model"])
def test_no_import_cycle(package: str) -> None:
    assert cycles(package) == []


@pytest.mark.parametrize(
    ("package", "forbidden"), [("automl", ("torch", "model")), ("model", ("automl", "mlflow"))]
)
def test_imports_go_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    bad = {
        f"{name}: {target}"
        for name, path in modules(package).items()
        for target in imports(path)
        if target.split(".")[0] in forbidden
    }
    assert not bad, sorted(bad)


def test_backends_never_import_the_loop_above_them() -> None:
    above = ("automl.sweep", "automl.commands", "automl.cli", "automl.pipeline")
    bad = {
        f"{name}: {target}"
        for name, path in modules("automl").items()
        if name.startswith("automl.backends")
        for target in imports(path)
        if target.startswith(above)
    }
    assert not bad, sorted(bad)


def test_importing_automl_loads_neither_a_backend_nor_the_model() -> None:
    code = (
        "import sys, automl, automl.cli, automl.backends, automl.sweep.loop\n"
        "print(sorted(m for m in ('optuna', 'ray', 'torch', 'model') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    # the loop needs launch/ and results/, which use neither; Optuna comes with the Optuna backend
    assert out.stdout.strip() == "[]", out.stdout


def test_files_stay_small() -> None:
    big = {
        str(path.relative_to(ROOT)): n
        for folder in ("automl", "model", "tests", "bench")
        for path in (ROOT / folder).rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, big


@pytest.mark.parametrize("package", ["automl", "model"])
def test_every_package_states_its_public_names(package: str) -> None:
    missing = [
        str(path.relative_to(ROOT))
        for path in (ROOT / package).rglob("__init__.py")
        if "__all__" not in path.read_text(encoding="utf-8")
    ]
    assert not missing, missing


def test_pyproject_lists_every_package() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for folder in ("automl", "model")
        for path in (ROOT / folder).rglob("__init__.py")
    }
    data = {f"rtdetr_automl_files.{name}" for name in ("schemas", "references", "configs")}
    assert listed == found | data, {
        "missing": sorted(found | data - listed),
        "extra": sorted(listed - found - data),
    }

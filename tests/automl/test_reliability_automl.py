"""Bad `automl` command lines and damaged sweep folders (issue 19): each row is a command line, the exit
code and the fragments its one-line message must hold (the flag or file, the value, the fix). No row
may print a traceback, and a refused `automl run` writes no sweep folder.

The seed of the reliability table; a row is one line to add."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.automl.damaged_sweep import make_killed_sweep
from tests.conftest import tiny_spec, write_spec


@dataclass(frozen=True)
class Row:
    id: str
    argv: list[str]  # {spec}, {tmp} and {sweep} are filled in
    code: int
    fragments: list[str]
    setup: Callable[[Path], None] | None = None  # on tmp (the sweep, when there is one, is tmp/sweep)
    sweep: bool = False  # make a killed sweep folder at tmp/sweep first
    absent: list[str] = field(default_factory=list)  # paths (from tmp) that must not exist afterwards


def _file(name: str, text: str = "not a folder\n") -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_text(text)


def _truncate(name: str, keep: float) -> Callable[[Path], None]:
    def cut(tmp: Path) -> None:
        path = tmp / "sweep" / name
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])

    return cut


def _damage_line(number: int) -> Callable[[Path], None]:
    def damage(tmp: Path) -> None:
        path = tmp / "sweep" / "optuna.journal"
        lines = path.read_bytes().splitlines(keepends=True)
        lines[number - 1] = lines[number - 1][:40] + b"\n"
        path.write_bytes(b"".join(lines))

    return damage


def _both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(tmp: Path) -> None:
        for step in steps:
            step(tmp)

    return run


def _remove(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / "sweep" / name).unlink()


SPEC = ["run", "-e", "{spec}", "--no-track", "--no-pipeline"]
RUN = [*SPEC, "--results-dir", "{tmp}/r"]
SCHEMES = ["postgresql://", "mysql://", "sqlite:///", "redis://", ".journal"]
REBUILD = "automl run --resume {sweep} --rebuild-study"

ROWS = [
    # --storage: checked before the sweep folder is written
    Row(
        "storage-bogus",
        [*RUN, "--name", "s", "--storage", "bogus://x"],
        2,
        ["--storage", "'bogus://x'", *SCHEMES],
        absent=["r/s"],
    ),
    Row(
        "storage-no-scheme",
        [*RUN, "--name", "s", "--storage", "somewhere"],
        2,
        ["--storage", "'somewhere'", *SCHEMES],
        absent=["r/s"],
    ),
    Row(
        "storage-sqlite-two-slashes",
        [*RUN, "--name", "s", "--storage", "sqlite://x.db"],
        2,
        ["--storage", "sqlite:///"],
        absent=["r/s"],
    ),
    Row(
        "storage-sqlite-no-folder",
        [*RUN, "--name", "s", "--storage", "sqlite:///{tmp}/no/such/x.db"],
        2,
        ["--storage", "no/such", "does not exist"],
        absent=["r/s"],
    ),
    Row(
        "storage-journal-no-folder",
        [*RUN, "--name", "s", "--storage", "{tmp}/no/such/s.journal"],
        2,
        ["--storage", "no/such", "does not exist"],
        absent=["r/s"],
    ),
    # --results-dir and --name
    Row(
        "results-dir-is-a-file",
        [*SPEC, "--results-dir", "{tmp}/afile", "--name", "s"],
        2,
        ["--results-dir", "afile", "a file"],
        setup=_file("afile"),
    ),
    Row(
        "results-dir-under-a-file",
        [*SPEC, "--results-dir", "{tmp}/afile/sub", "--name", "s"],
        2,
        ["--results-dir", "afile", "a file"],
        setup=_file("afile"),
    ),
    Row(
        "name-climbs-out",
        [*RUN, "--name", "../../x"],
        2,
        ["--name", "'../../x'", "one folder name"],
        absent=["../x", "r"],  # {tmp}/r/../../x
    ),
    Row("name-has-a-slash", [*RUN, "--name", "a/b"], 2, ["--name", "'a/b'", "one folder name"], absent=["r"]),
    Row(
        "name-has-a-backslash",
        [*RUN, "--name", "a\\b"],
        2,
        ["--name", "'a\\\\b'", "one folder name"],
        absent=["r"],
    ),
    Row("name-is-dot-dot", [*RUN, "--name", ".."], 2, ["--name", "'..'", "one folder name"], absent=["r"]),
    Row("name-is-empty", [*RUN, "--name", ""], 2, ["--name", "''", "one folder name"], absent=["r"]),
    Row("name-is-blank", [*RUN, "--name", "  "], 2, ["--name", "one folder name"], absent=["r"]),
    # --time-budget: a negative value is a value, not another flag
    Row(
        "time-budget-negative",
        [*RUN, "--name", "s", "--time-budget", "-5m"],
        2,
        ["time_budget", "-5m", "must be positive"],
        absent=["r/s"],
    ),
    Row(
        "time-budget-negative-equals",
        [*RUN, "--name", "s", "--time-budget=-5m"],
        2,
        ["time_budget", "-5m", "must be positive"],
        absent=["r/s"],
    ),
    Row(
        "time-budget-zero",
        [*RUN, "--name", "s", "--time-budget", "0"],
        2,
        ["time_budget", "must be positive"],
        absent=["r/s"],
    ),
    Row(
        "time-budget-setting",
        [*RUN, "--name", "s", "--setting", "time_budget=-1h"],
        2,
        ["time_budget", "-1h", "must be positive"],
        absent=["r/s"],
    ),
    # automl worker: the same checks
    Row(
        "worker-storage-bogus",
        ["worker", "--storage", "bogus://x", "--study", "s"],
        2,
        ["--storage", "'bogus://x'", *SCHEMES],
    ),
    Row(
        "worker-results-dir-is-a-file",
        ["worker", "--storage", "{tmp}/s.journal", "--study", "s", "--results-dir", "{tmp}/afile"],
        2,
        ["--results-dir", "afile", "a file"],
        setup=_file("afile"),
        absent=["s.journal"],
    ),
    # --resume and --rebuild-study
    Row(
        "rebuild-without-resume",
        [*RUN, "--name", "s", "--rebuild-study"],
        2,
        ["--rebuild-study", "--resume SWEEP"],
        absent=["r/s"],
    ),
    Row(
        "resume-no-folder",
        ["run", "--resume", "{tmp}/nope"],
        2,
        ["nope", "summary.json", "the folder `automl run` printed"],
    ),
    Row(
        "resume-a-file",
        ["run", "--resume", "{tmp}/afile"],
        2,
        ["afile", "summary.json"],
        setup=_file("afile"),
    ),
    # a damaged summary.json: the results are still in trials/ and the journal, and the rebuild says how
    Row(
        "status-corrupt-summary",
        ["status", "{sweep}"],
        2,
        ["summary.json", "trials/", "optuna.journal", REBUILD],
        sweep=True,
        setup=_truncate("summary.json", 0.5),
    ),
    Row(
        "best-corrupt-summary",
        ["best", "{sweep}"],
        2,
        ["summary.json", REBUILD],
        sweep=True,
        setup=_truncate("summary.json", 0.5),
    ),
    Row(
        "resume-corrupt-summary",
        ["run", "--resume", "{sweep}"],
        2,
        ["summary.json", REBUILD],
        sweep=True,
        setup=_truncate("summary.json", 0.5),
    ),
    Row(
        "status-empty-summary",
        ["status", "{sweep}"],
        2,
        ["summary.json", REBUILD],
        sweep=True,
        setup=_truncate("summary.json", 0.0),
    ),
    Row(
        "status-summary-not-a-document",
        ["status", "{sweep}"],
        2,
        ["summary.json", REBUILD],
        sweep=True,
        setup=lambda t: (t / "sweep" / "summary.json").write_text("[1, 2]"),
    ),
    # a damaged journal record in the middle: the file, the line and the rebuild
    Row(
        "resume-damaged-journal",
        ["run", "--resume", "{sweep}"],
        2,
        ["optuna.journal", "line 3", REBUILD],
        sweep=True,
        setup=_damage_line(3),
    ),
    Row(
        "resume-journal-missing",
        ["run", "--resume", "{sweep}"],
        2,
        ["optuna.journal", "missing", REBUILD],
        sweep=True,
        setup=_remove("optuna.journal"),
    ),
    Row(
        "resume-journal-empty",
        ["run", "--resume", "{sweep}"],
        2,
        ["optuna.journal", "empty", REBUILD],
        sweep=True,
        setup=_truncate("optuna.journal", 0.0),
    ),
    Row(
        "resume-summary-incomplete",
        ["run", "--resume", "{sweep}"],
        2,
        ["summary.json", "not a complete sweep summary", "'config'", REBUILD],
        sweep=True,
        setup=lambda t: (t / "sweep" / "summary.json").write_text('{"name": "sweep"}'),
    ),
    Row(
        "rebuild-nothing-readable",
        ["run", "--resume", "{sweep}", "--rebuild-study"],
        2,
        ["summary.json", "optuna.journal", "cannot rebuild", "trials/"],
        sweep=True,
        setup=_both(_truncate("summary.json", 0.5), _remove("optuna.journal")),
    ),
]


@pytest.fixture(scope="module")
def spec_file(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("reliability")
    return write_spec(folder / "spec.yaml", tiny_spec(synthetic_data, folder / "unused"))


def automl(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "automl.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_a_bad_command_line_gets_one_clear_message(
    row: Row, spec_file: Path, tmp_path: Path, root: Path
) -> None:
    sweep = tmp_path / "sweep"
    if row.sweep:
        template = yaml.safe_load((root / "references" / "spec_template_train.yaml").read_text())
        make_killed_sweep(sweep, template, root / "schemas" / "train.schema.json")
    if row.setup is not None:
        row.setup(tmp_path)
    before = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} if row.sweep else {}
    argv = [a.format(spec=spec_file, tmp=tmp_path, sweep=sweep) for a in row.argv]
    proc = automl(*argv, cwd=tmp_path)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert proc.returncode == row.code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    message = proc.stderr.strip()
    assert message.startswith("error: ") and message.count("\n") == 0, message
    for fragment in row.fragments:
        assert fragment.format(sweep=sweep, tmp=tmp_path) in message, (fragment, message)
    for path in row.absent:
        assert not (tmp_path / path).exists(), f"{path} was written"
    after = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()} if row.sweep else {}
    assert after == before, "a refused command changed the sweep folder"


def test_a_sweep_that_fails_at_start_up_is_not_left_running(spec_file: Path, tmp_path: Path) -> None:
    """A storage that passes the checks but cannot be opened (a file that is no SQLite database): the
    sweep stops before its first trial, and summary.json says FAILED and why."""
    (tmp_path / "notadb.db").write_text("this is not a database\n" * 100)
    proc = automl(
        *[a.format(spec=spec_file, tmp=tmp_path) for a in RUN],
        "--name",
        "s",
        "--storage",
        f"sqlite:///{tmp_path}/notadb.db",
        cwd=tmp_path,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "--storage" in proc.stderr and "notadb.db" in proc.stderr
    data = json.loads((tmp_path / "r" / "s" / "summary.json").read_text())
    assert data["status"] == "FAILED" and "notadb.db" in data["failure"] and data["trials"] == []
    assert not (tmp_path / "r" / "s" / "trials").exists()

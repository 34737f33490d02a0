"""`make demo` ends by printing its best beside the recorded plain-training reference
(bench/demo_vs_plain.py --reference), and bench/demo_vs_plain.py measures what the Makefile runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def reference(sweep: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench/demo_vs_plain.py"), "--reference", str(sweep)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_the_demo_prints_its_best_beside_the_recorded_plain_run(tmp_path: Path) -> None:
    recorded = json.loads((ROOT / "bench/data/demo_reference.json").read_text())
    plain = recorded["plain"]["best_val_mAP50"]
    sweep = tmp_path / "demo-20261204-101010"
    sweep.mkdir()
    summary = {"best": {"trial": 2, "value": plain + 0.01}, "settings": {"time_budget": 360.0}}
    (sweep / "summary.json").write_text(json.dumps(summary))
    proc = reference(sweep)
    assert proc.returncode == 0, proc.stderr
    assert f"This sweep: best val_mAP50 {plain + 0.01:.4f} (demo-20261204-101010)" in proc.stdout
    assert f"measured {recorded['date']}" in proc.stdout and f"{plain:.4f}" in proc.stdout
    assert "This sweep against that plain run: +0.0100" in proc.stdout
    assert "not the same race" not in proc.stdout
    summary["settings"]["time_budget"] = 120.0
    (sweep / "summary.json").write_text(json.dumps(summary))
    assert "this sweep's budget was 120 s, the reference's 6m: not the same race" in reference(sweep).stdout


def test_a_sweep_that_left_no_summary_is_said_plainly(tmp_path: Path) -> None:
    proc = reference(tmp_path / "missing")
    assert proc.returncode == 1
    assert "summary.json: cannot be read" in proc.stdout and "Traceback" not in proc.stderr


def test_the_bench_reads_the_automl_run_line_of_the_makefiles_demo_target() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import demo_vs_plain

    words = demo_vs_plain.make_demo_command("4m", "demo-x")
    assert words[1:4] == ["run", "--policy", "auto"]
    assert words[words.index("--time-budget") + 1] == "4m"
    assert words[words.index("--name") + 1] == "demo-x"
    assert Path(words[words.index("-e") + 1]) == ROOT / "configs/fast.yaml"
    makefile = (ROOT / "Makefile").read_text()
    assert "bench/demo_vs_plain.py --reference results/$(DEMO_NAME)" in makefile

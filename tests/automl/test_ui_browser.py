"""`automl ui` in a real browser: headless Chromium lists the sweep run and its trial runs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from automl.tracking.tracker import Tracker
from automl.tracking.ui import free_port
from tests.automl.synthetic_sweep import TRIALS, run_sweep

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing (pip install playwright)"
)


def start_ui(results: Path) -> tuple[subprocess.Popen[str], str]:
    """`serve_ui` in a process of its own, once it printed its URL."""
    port = free_port()
    code = f"from automl.tracking.ui import serve_ui; raise SystemExit(serve_ui({str(results)!r}, {port}))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO,
    )
    url = ""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not url:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line and process.poll() is not None:
            break
        match = re.match(r"MLflow UI: (http://127\.0\.0\.1:\d+)", line)
        url = match.group(1) if match else ""
    if url != f"http://127.0.0.1:{port}":
        process.kill()
        pytest.fail("serve_ui did not print its URL")
    return process, url


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    results = tmp_path_factory.mktemp("ui-results")
    sweep = results / "sweep-ui"
    tracker = Tracker.open(None, "ui-test", sweep)
    run_sweep(tracker, sweep)
    experiment_id = tracker.log.writer.experiment_id()
    process, url = start_ui(results)
    try:
        yield url, experiment_id, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_experiment_page_lists_the_sweep_and_its_trials(ui, tmp_path: Path) -> None:
    url, experiment_id, _ = ui
    shot = tmp_path / "mlflow-ui.png"
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            page.goto(f"{url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
            page.get_by_text("sweep-ui", exact=True).first.wait_for(timeout=60_000)
            row = page.locator("[role=row]", has_text="sweep-ui").first
            row.locator("[col-id='attributes.`Run Name`'] button").first.click()  # expand the child runs
            for number in TRIALS:
                page.get_by_text(f"trial-{number:04d}", exact=True).first.wait_for(timeout=30_000)
            close = page.get_by_role("button", name=re.compile("close", re.I))
            if close.count():
                close.first.click()
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("AUTOML_UI_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_ctrl_c_stops_the_ui_cleanly(ui) -> None:
    _, _, process = ui
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert "MLflow UI stopped" in process.stdout.read()  # type: ignore[union-attr]


def test_kill_stops_the_ui_and_its_server(tmp_path: Path) -> None:
    """SIGTERM (`kill`, a service manager) stops the MLflow server too: nothing is left on the port."""
    import socket

    sweep = tmp_path / "sweep-kill"
    run_sweep(Tracker.open(None, "ui-kill", sweep), sweep)
    process, url = start_ui(tmp_path)
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert "MLflow UI stopped" in process.stdout.read()  # type: ignore[union-attr]
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, (
            "the MLflow server still listens after the UI was killed"
        )

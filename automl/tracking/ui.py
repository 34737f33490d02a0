"""``automl ui``: the MLflow UI for a results folder's store, on 127.0.0.1.

Runs ``mlflow server`` with one worker and MLflow's job-execution workers turned off
(``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``), prints the URL once the server answers, and stops it
cleanly on Ctrl-C (exit 0). ``--port 0`` picks a free port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from automl.errors import AutomlError
from automl.tracking.store import ARTIFACT_DIR, DB_FILE, default_tracking_uri

__all__ = ["free_port", "serve_ui", "server_env", "stop", "wait_until_up"]

START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(backend_uri: str, artifact_root: Path | None, port: int) -> list[str]:
    command = [
        *[sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri],
        *["--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
    ]
    if artifact_root is not None:
        command += ["--default-artifact-root", str(artifact_root)]
    return command


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_S) -> bool:
    """True once ``<url>/health`` answers; False when the process exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def stop(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to the server's process group (its workers too), SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        process.wait()


def _store(results_dir: Path, tracking_uri: str | None) -> tuple[str, Path | None]:
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri, None
    if not (results_dir / DB_FILE).is_file():
        raise AutomlError(
            f"{results_dir}: no MLflow store here ({DB_FILE} is missing); give the results folder "
            "`automl run` used (--results-dir), or the store with --tracking-uri"
        )
    return default_tracking_uri(results_dir), (results_dir.resolve() / ARTIFACT_DIR)


def serve_ui(results_dir: str | Path, port: int = 5000, tracking_uri: str | None = None) -> int:
    """Serves the MLflow UI until Ctrl-C; returns the exit code (0 after Ctrl-C)."""
    uri, artifacts = _store(Path(results_dir), tracking_uri)
    if uri.startswith(("http://", "https://")):
        print(f"this store is an MLflow server already: open {uri}", flush=True)
        return 0
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    # `kill` (SIGTERM) stops the UI like Ctrl-C, so the server in its own session is stopped too
    # instead of being left running (the main thread only: that is where Python runs handlers)
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main else None
    process = subprocess.Popen(server_command(uri, artifacts, port), env=server_env(), start_new_session=True)
    try:
        if not wait_until_up(url, process):
            code = process.poll()
            stop(process)
            raise AutomlError(
                f"the MLflow UI did not start on {url} (exit code {code}); is port {port} in use? "
                "try --port 0 for a free one"
            )
        print(f"MLflow UI: {url}  (store {uri}; Ctrl-C stops it)", flush=True)
        print('the sweeps are under "Model training" (top left), one experiment per --experiment', flush=True)
        return_code = process.wait()
    except KeyboardInterrupt:
        stop(process)
        print("MLflow UI stopped", flush=True)
        return 0
    finally:
        stop(process)
        if on_main:
            signal.signal(signal.SIGTERM, previous)
    return return_code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt

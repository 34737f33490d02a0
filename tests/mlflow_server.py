"""A real ``mlflow server`` for the tests that track through HTTP (one per test module)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from automl.tracking.ui import free_port, server_env, stop, wait_until_up


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a SQLite store and proxied artifacts in a tmp folder."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            *["mlflow", "server", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}"],
            *["--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1"],
            *["--port", str(self.port), "--workers", "1"],
        ]
        command = [sys.executable, "-m", *command]
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(
            command, env=server_env(), stdout=log, stderr=log, start_new_session=True
        )
        if not wait_until_up(self.url, self.process, timeout=90):
            self.stop()
            pytest.fail(f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def kill(self) -> None:
        """The server dies at once (SIGKILL to its process group), as a crashed host would."""
        import os
        import signal

        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None

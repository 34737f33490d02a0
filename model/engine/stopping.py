"""How training ends early: ``TrainingStopped`` (divergence or SIGTERM, with the exit code) and
``SigtermFlag``, which turns SIGTERM into a flag the loop checks after each step."""

from __future__ import annotations

import signal
from typing import Any

__all__ = ["SigtermFlag", "TrainingStopped"]


class TrainingStopped(Exception):
    """Raised inside the loop when training must end early (divergence or SIGTERM)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
        self.status_written = False


class SigtermFlag:
    """Turns SIGTERM into a flag the loop checks after each step (the default handler would kill us)."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: Any = None

    def __enter__(self) -> SigtermFlag:
        self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.raised = True

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)

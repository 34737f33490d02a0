"""The one error hierarchy of the ``model`` package.

Every error a user can cause (a bad spec, a missing file, an unusable checkpoint) is a
``ModelError`` subclass whose message names the key or file, the value and the fix. The CLI
prints the message (the traceback only with ``--debug``) and exits non-zero.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "ModelError", "SpecError"]


class ModelError(Exception):
    """Base class of every error raised on purpose by ``model``."""

    exit_code = 1


class SpecError(ModelError):
    """A spec file, override or value is invalid. Carries every problem found at once."""

    exit_code = 2

    def __init__(self, problems: list[str] | str, source: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.problems) == 1:
            message = f"{head}{self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"{head}{len(self.problems)} problems in the spec:\n{lines}"
        super().__init__(message)


class DataError(ModelError):
    """A data source (folder, archive, annotation file) cannot be used."""


class CheckpointError(ModelError):
    """A checkpoint file cannot be read or does not fit the model."""


class ConfigError(ModelError):
    """A model configuration that the architecture cannot build (e.g. an unsupported backbone)."""

"""The one error hierarchy of the ``automl`` package."""

from __future__ import annotations

__all__ = ["AutomlError", "SettingError", "SpecRejected", "SweepFolderError", "SweepWriteError"]


class AutomlError(Exception):
    """Base class of every error raised on purpose by ``automl``."""

    exit_code = 1


class SpecRejected(AutomlError):
    """The spec handed to a sweep was rejected by ``rtdetr validate``; the message lists why."""

    exit_code = 2


class SettingError(AutomlError):
    """An AutoML setting or run argument is unknown or has a bad value."""

    exit_code = 2


class SweepFolderError(AutomlError):
    """A sweep folder is missing, or its ``summary.json`` or study journal cannot be read; the message
    says what still holds the results and how to rebuild what is damaged."""

    exit_code = 2


class SweepWriteError(AutomlError):
    """A file of the sweep could not be written (a full disk, a read-only folder): what was written
    before is kept whole, and the message says how to go on."""

"""The one error hierarchy of the ``automl`` package."""

from __future__ import annotations

__all__ = ["AutomlError", "SettingError", "SpecRejected"]


class AutomlError(Exception):
    """Base class of every error raised on purpose by ``automl``."""

    exit_code = 1


class SpecRejected(AutomlError):
    """The spec handed to a sweep was rejected by ``rtdetr validate``; the message lists why."""

    exit_code = 2


class SettingError(AutomlError):
    """An AutoML setting or run argument is unknown or has a bad value."""

    exit_code = 2

"""Durations in spec values: ``train.time_budget`` is seconds (``300``) or ``90s``, ``5m``, ``1.5h``."""

from __future__ import annotations

import math
import re

from model.errors import ConfigError

__all__ = ["parse_time_budget"]

_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([smh]?)\s*$")
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_time_budget(value: object, key: str = "train.time_budget") -> float | None:
    """Seconds from ``300``, ``"300"``, ``"90s"``, ``"5m"`` or ``"1.5h"``; None for an empty value."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not a duration; write seconds (300) or 90s, 5m, 1.5h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{key}: {value!r} is not a duration; write seconds (300) or 90s, 5m, 1.5h")
        seconds = float(match.group(1)) * _UNIT[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{key}: {value!r} must be a positive duration (seconds, or 90s, 5m, 1.5h)")
    return seconds

"""How long this process has existed: the trial set-up split (start + imports, data, model) that
`rtdetr train` reports, so a search can tell its own overhead from the trial's."""

from __future__ import annotations

import os
import time

__all__ = ["SetupClock", "process_age"]


def process_age() -> float:
    """Seconds since this process was started (Linux /proc), or since this module was imported."""
    try:
        with open(f"/proc/{os.getpid()}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # field 22 of stat: starttime, in clock ticks after boot
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


_IMPORTED = time.monotonic()


class SetupClock:
    """Marks named phases: ``mark("data")`` records the seconds since the previous mark."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {"start_and_imports": round(process_age(), 3)}
        self._last = time.monotonic()

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self._last, 3)
        self._last = now

    def line(self) -> str:
        return "setup: " + ", ".join(f"{k.replace('_', ' ')} {v:.2f} s" for k, v in self.phases.items())

"""Which GPUs (or CPU slots) each running trial gets.

Each trial needs ``train.num_gpus`` GPUs of its own; the pool hands out free device indices and
takes them back, so concurrent trials never share a GPU. On a machine without GPUs the pool has
``concurrency`` CPU slots instead: ``acquire`` takes one slot and returns ``[]`` (no device), and
``trial_env`` splits the CPU threads between the slots. The visible GPUs come from
``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``, without loading any CUDA library.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import overload

from automl.errors import AutomlError, SettingError

__all__ = ["GpuPool", "PoolError", "cpu_count", "visible_gpus"]


class PoolError(AutomlError):
    """A device was released that the pool did not hand out."""


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def visible_gpus(env: Mapping[str, str] | None = None) -> list[int]:
    """The GPU indices trials may use: TAO's ``TAO_VISIBLE_DEVICES`` when set (TAO copies it to
    ``CUDA_VISIBLE_DEVICES``), else ``CUDA_VISIBLE_DEVICES`` (``""`` or ``-1``: none), else every GPU
    ``nvidia-smi -L`` lists, else none."""
    env = os.environ if env is None else env
    for name in ("TAO_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
        value = env.get(name)
        if value is not None:
            return _parse_visible(value, name)
    smi = shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [int(m.group(1)) for m in re.finditer(r"^GPU (\d+):", out.stdout, re.MULTILINE)]


def _parse_visible(value: str, name: str = "CUDA_VISIBLE_DEVICES") -> list[int]:
    devices: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        if not re.fullmatch(r"-?\d+", part):
            raise SettingError(
                f"{name}: got {value!r}; the sweep hands out GPUs by index, so list "
                f"indices (e.g. {name}=0,1), not UUIDs or MIG names"
            )
        index = int(part)
        if index < 0:  # CUDA ignores this entry and every one after it
            break
        if index not in devices:
            devices.append(index)
    return devices


class GpuPool:
    """Thread-safe pool of GPU indices (or of CPU slots where ``devices`` is empty)."""

    def __init__(self, devices: list[int] | None = None, *, concurrency: int = 1):
        self.devices = list(visible_gpus() if devices is None else devices)
        if len(set(self.devices)) != len(self.devices):
            raise SettingError(f"GPU pool: device list {self.devices} names a GPU twice")
        if concurrency < 1:
            raise SettingError(f"concurrency: got {concurrency}; expected an integer >= 1")
        self.concurrency = concurrency
        self._free = list(self.devices)
        self._cpu_slots = concurrency
        self._lock = threading.Condition()

    @property
    def has_gpus(self) -> bool:
        return bool(self.devices)

    def slots(self, num_gpus: int) -> int:
        """How many trials of ``num_gpus`` GPUs can run at once."""
        if not self.has_gpus:
            return self.concurrency
        return len(self.devices) // max(1, num_gpus)

    @overload
    def acquire(self, n: int, timeout: None = None) -> list[int]: ...

    @overload
    def acquire(self, n: int, timeout: float) -> list[int] | None: ...

    def acquire(self, n: int, timeout: float | None = None) -> list[int] | None:
        """``n`` free GPUs (lowest indices first), or ``[]`` for a CPU slot; waits up to ``timeout``
        seconds (None: as long as it takes) and returns None when nothing was free in time."""
        if self.has_gpus and not 1 <= n <= len(self.devices):
            raise SettingError(
                f"train.num_gpus: got {n}, but {len(self.devices)} GPU(s) are visible "
                f"({self.devices}); set train.num_gpus between 1 and {len(self.devices)}"
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._available(n):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._lock.wait(remaining)
            if not self.has_gpus:
                self._cpu_slots -= 1
                return []
            taken = sorted(self._free)[:n]
            self._free = [d for d in self._free if d not in taken]
            return taken

    def _available(self, n: int) -> bool:
        return len(self._free) >= n if self.has_gpus else self._cpu_slots > 0

    def release(self, devices: list[int]) -> None:
        """Give back what ``acquire`` returned (``[]`` gives back a CPU slot)."""
        with self._lock:
            if not self.has_gpus:
                if devices:
                    raise PoolError(f"GPU pool: released GPUs {devices}, but this pool has CPU slots only")
                if self._cpu_slots >= self.concurrency:
                    raise PoolError("GPU pool: a CPU slot was released that was not acquired")
                self._cpu_slots += 1
            else:
                wrong = [d for d in devices if d not in self.devices or d in self._free]
                if wrong or len(set(devices)) != len(devices):
                    raise PoolError(
                        f"GPU pool: released {devices}, but {wrong or devices} were not handed out"
                    )
                self._free.extend(devices)
            self._lock.notify_all()

    @contextmanager
    def lease(self, n: int) -> Iterator[list[int]]:
        """``with pool.lease(num_gpus) as devices:`` acquire, then release whatever happens."""
        devices = self.acquire(n)  # no timeout: waits until they are free
        try:
            yield devices
        finally:
            self.release(devices)

    def in_use(self) -> int:
        with self._lock:
            if not self.has_gpus:
                return self.concurrency - self._cpu_slots
            return len(self.devices) - len(self._free)

    def trial_env(self, devices: list[int]) -> dict[str, str]:
        """Environment for a trial holding ``devices``: its GPUs, or its share of the CPU threads."""
        if devices:
            visible = ",".join(str(d) for d in devices)
            return {"CUDA_VISIBLE_DEVICES": visible, "TAO_VISIBLE_DEVICES": visible}
        return {"OMP_NUM_THREADS": str(max(1, cpu_count() // self.concurrency))}

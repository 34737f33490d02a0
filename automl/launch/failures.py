"""Why a trial failed, in one word and one line a user can act on.

A trial process tells us about a failure in three ways: its exit code, the last line it wrote to
``status.json`` (TAO's FAILURE line carries the message) and the tail of its log (stderr holds
``error: <message>`` for errors the user can fix, a traceback otherwise). ``classify`` reads the
three and returns a ``Failure(kind, reason)``; it never looks at processes, so it is tested on
canned triples.

Kinds: ``oom``, ``diverged``, ``disk_full``, ``data_error``, ``spec_error``, ``killed``, ``timeout``,
``exit_code``. A full disk is seen in the text (ENOSPC, a quota) or, since a trial on a full disk may
not manage to write its own error, from the free space its caller measured.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DISK_FULL_BYTES", "FAILURE_CLASSES", "classify", "oom_kill_count"]

FAILURE_CLASSES = (
    "oom",
    "diverged",
    "disk_full",
    "data_error",
    "spec_error",
    "killed",
    "timeout",
    "exit_code",
    "infeasible",  # not a failure of the trial: over --max-latency-ms, so never trained (latency_gate)
)
# Below this much free space a failed trial's disk counts as full.
DISK_FULL_BYTES = 8 << 20

# What out-of-memory looks like on a GPU (PyTorch, NCCL, cuDNN/cuBLAS) and on the host.
_OOM = re.compile(
    r"out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED"
    r"|can't allocate memory|Cannot allocate memory|std::bad_alloc|MemoryError",
    re.IGNORECASE,
)
_DIVERGED = re.compile(r"loss diverged[^\n]*", re.IGNORECASE)
_DISK_FULL = re.compile(r"No space left on device|Disk quota exceeded|\[Errno (?:28|122)\]", re.IGNORECASE)
# The data loader's messages (model.errors.DataError) name the dataset key, the json or the images.
_DATA = re.compile(
    r"DataError|\bdataset\.|json_file|image_dir|annotations?\b|COCO json|\.json\b|images?\b"
    r"|archive|category id|no usable|batch size",
    re.IGNORECASE,
)
_CHECKPOINT = re.compile(r"checkpoint|pretrained|\.pth\b|\.tlt\b", re.IGNORECASE)
_TRACEBACK_END = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*")
_TAIL_LINES = 5
_LINE_CHARS = 300


@dataclass(frozen=True)
class Failure:
    kind: str  # one of FAILURE_CLASSES
    reason: str  # one line


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _one_line(text: str, limit: int = _LINE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_lines(log_tail: Sequence[str]) -> list[str]:
    """The CLI's ``error: <message>`` block (the message may continue on indented lines)."""
    lines = [line.rstrip() for line in log_tail]
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].startswith("error: "):
            block = [lines[start][len("error: ") :]]
            block += [line.strip() for line in lines[start + 1 :] if line.startswith((" ", "\t"))]
            return [part for part in block if part]
    return []


def _last_lines(log_tail: Sequence[str], count: int = _TAIL_LINES) -> str:
    kept = [_one_line(line, 200) for line in log_tail if line.strip()]
    return " | ".join(kept[-count:])


def _failure_message(status: Mapping[str, Any] | None) -> str:
    if status and status.get("status") == "FAILURE":
        return str(status.get("message") or "")
    return ""


def _signal_of(returncode: int) -> int | None:
    """The signal that ended the process: -N from Popen, or 128+N from a shell or torchrun wrapper."""
    if returncode < 0:
        return -returncode
    if 128 < returncode < 128 + 65:
        return returncode - 128
    return None


def classify(
    returncode: int | None,
    last_status: Mapping[str, Any] | None,
    log_tail: Sequence[str],
    *,
    oom_killed: bool | None = None,
    free_bytes: int | None = None,
) -> Failure | None:
    """The failure behind a finished trial process, or None when it succeeded.

    ``last_status`` is the last status.json line this run wrote (None if it wrote none) and
    ``log_tail`` the last lines of its stdout+stderr. ``oom_killed`` says whether the kernel's
    out-of-memory killer struck while the trial ran (None: unknown, see ``oom_kill_count``), and
    ``free_bytes`` the free space left on the trial folder's disk (None: not measured). Stops
    the launcher itself asked for (prune, timeout) are not failures of the process and are decided
    by the caller before this.
    """
    message = _failure_message(last_status)
    succeeded = last_status is not None and last_status.get("status") == "SUCCESS"
    if returncode == 0 and succeeded:
        return None
    text = "\n".join([message, *log_tail])
    errors = _error_lines(log_tail)
    headline = message or "; ".join(errors)

    diverged = _DIVERGED.search(message) or _DIVERGED.search("\n".join(log_tail))
    if diverged:
        return Failure(
            "diverged",
            _one_line(diverged.group(0))
            + ": lower train.optim.lr, set train.clip_grad_norm or use precision fp32",
        )
    full = _DISK_FULL.search(text)
    if full or (returncode != 0 and free_bytes is not None and free_bytes < DISK_FULL_BYTES):
        where = _one_line(_matching_line(text, _DISK_FULL)) if full else f"{free_bytes or 0} bytes free"
        return Failure(
            "disk_full",
            f"No space left on device ({where}); free space on the disk of the results folder",
        )
    sig = _signal_of(returncode) if returncode is not None else None
    oom_text = _OOM.search(text)
    if oom_text:
        where = _one_line(_oom_line(text))
        return Failure("oom", f"out of memory: {where}; lower dataset.batch_size or the model size")
    sigkill = sig == signal.SIGKILL or re.search(r"Signal 9 \(SIGKILL\)|exitcode\s*:\s*-9\b", text)
    if sigkill and oom_killed is not False:
        how = "by" if oom_killed else "without a message, most likely by"
        return Failure(
            "oom",
            f"killed by SIGKILL (exit {returncode}) {how} the kernel's out-of-memory killer; lower "
            f"dataset.batch_size or dataset.workers, or run fewer trials at once",
        )
    if returncode == 2:
        detail = "; ".join(errors) or headline or _last_lines(log_tail)
        return Failure("spec_error", _one_line(f"the trial's spec was rejected: {detail}", 600))
    if returncode == 1 and headline and _is_data_problem(message, errors, text):
        return Failure("data_error", _one_line(headline, 600))
    if sig is not None and returncode != 0:
        name = signal_name(sig)
        detail = f": {_one_line(message)}" if message else ""
        return Failure("killed", f"killed by {name} (exit {returncode}) from outside the sweep{detail}")
    if returncode == 0:
        seen = f"its last status line is {last_status.get('status')!r}" if last_status else "none"
        return Failure(
            "exit_code",
            f"exit code 0 but status.json has no SUCCESS line ({seen}); log: {_last_lines(log_tail)}",
        )
    shown = f"{_one_line(headline)} (log: {_last_lines(log_tail)})" if headline else _last_lines(log_tail)
    return Failure("exit_code", f"exit code {returncode}: {shown or 'no output'}")


def _matching_line(text: str, pattern: re.Pattern[str]) -> str:
    for line in text.splitlines():
        if pattern.search(line):
            return line.strip()
    return ""


def _oom_line(text: str) -> str:
    return _matching_line(text, _OOM) or "out of memory"


def _is_data_problem(message: str, errors: Sequence[str], text: str) -> bool:
    """A ``model.errors.DataError``: the CLI printed ``error: ...`` naming the dataset, json or images."""
    if "DataError" in text:
        return True
    user_message = message if message and not _TRACEBACK_END.match(message) else ""
    candidates = [*errors, user_message]
    return any(c and _DATA.search(c) and not _CHECKPOINT.search(c) for c in candidates)


def _own_memory_cgroup() -> tuple[str, str] | None:
    """(version, path) of this process's memory cgroup, from /proc/self/cgroup."""
    try:
        lines = open("/proc/self/cgroup", encoding="utf-8").read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return "v1", path
    for line in lines:
        if line.startswith("0::"):
            return "v2", line[3:]
    return None


def oom_kill_count() -> int | None:
    """How many processes the kernel's OOM killer has killed in this process's memory cgroup
    (cgroup v2 ``memory.events``, v1 ``memory.oom_control``), or None where it cannot be read.
    The launcher compares the count before and after a trial that died of SIGKILL."""
    found = _own_memory_cgroup()
    if found is None:
        return None
    version, path = found
    rel = path.lstrip("/")
    if version == "v2":
        candidates = [f"/sys/fs/cgroup/{rel}/memory.events", "/sys/fs/cgroup/memory.events"]
    else:
        candidates = [
            f"/sys/fs/cgroup/memory/{rel}/memory.oom_control",
            "/sys/fs/cgroup/memory/memory.oom_control",
        ]
    for candidate in candidates:
        try:
            text = open(candidate, encoding="utf-8").read()
        except OSError:
            continue
        match = re.search(r"^oom_kill (\d+)$", text, re.MULTILINE)
        if match:
            return int(match.group(1))
    return None

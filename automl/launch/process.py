"""The processes of one trial: started together, found together, stopped together.

A trial is one ``rtdetr train`` process started in a session (and process group) of its own. Under
``train.num_gpus > 1`` it starts torchrun, and torchrun starts every worker in a *new* session, so
the process group alone does not hold the whole trial. Every process of the trial therefore carries
a marker in its environment (``RTDETR_AUTOML_TRIAL=<token>``, inherited by torchrun, its workers and
their data-loader workers, and kept when a process is re-parented); on Linux the members are the
processes in the leader's group plus every process whose environment holds the marker.

Stopping is graceful first: SIGTERM goes to the trainers, the members started by ``exec`` with no
such member below them (the ``rtdetr train`` process itself, or each torchrun worker; a trainer then
finishes its step, saves a checkpoint and exits 143). Not to the wrappers above them (``rtdetr``
waiting for torchrun, torchrun waiting for its workers), which end and reap their children by
themselves, and not to plain forks such as DataLoader workers, which end with their parent (a SIGTERM
would kill them under the trainer's feet). Whatever is still alive after the grace gets SIGKILL.
The leader is reaped only after the rest is gone, so its pid (the group id) cannot be reused
while a member might still be signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["TrialProcess"]

TOKEN_VARIABLE = "RTDETR_AUTOML_TRIAL"
_PROC = Path("/proc")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a process from /proc/<pid>/stat, None if it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[-1].split()
    return fields[0], int(fields[1]), int(fields[2])


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _stop_with_parent() -> None:
    """In the child before exec: SIGTERM when the launching thread dies (the orchestrator was killed),
    so an orphaned trial saves a checkpoint and exits instead of training on unobserved (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class TrialProcess:
    """One started trial: ``pid`` is its leader, ``pgid`` its process group (the same number)."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: str | Path,
        cwd: str | Path | None = None,
    ):
        self.token = uuid.uuid4().hex
        self._marker = f"{TOKEN_VARIABLE}={self.token}".encode() + b"\0"
        self.command = list(command)
        self.log_path = Path(log_path)
        env = {**env, TOKEN_VARIABLE: self.token}
        with open(self.log_path, "ab") as log:
            started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            log.write(f"==== {started}: {' '.join(self.command)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_stop_with_parent,
            )
        self.pid = self.pgid = self.proc.pid

    # --- finding the members --------------------------------------------------------------------
    def members(self) -> dict[int, int]:
        """Live (non-zombie) processes of the trial: pid -> parent pid."""
        if not _PROC.is_dir():
            return {self.pid: os.getpid()} if self._group_alive() else {}
        found: dict[int, int] = {}
        for entry in _PROC.iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            stat = _stat(pid)
            if stat is None or stat[0] in ("Z", "X"):
                continue
            _, ppid, pgid = stat
            if pgid == self.pgid or self._marker in _read_bytes(entry / "environ"):
                found[pid] = ppid
        return found

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def leader_exited(self) -> bool:
        """True once the leader has exited; it stays a zombie (not reaped) until ``reap``."""
        if self.proc.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def alive(self) -> bool:
        return not self.leader_exited() or bool(self.members())

    # --- signalling -----------------------------------------------------------------------------
    def _trainers(self, members: dict[int, int]) -> list[int]:
        """The members doing the work: started by ``exec`` (not a plain fork of another member,
        i.e. not a DataLoader worker) and with no such member below them. Wrappers above them
        (``rtdetr`` waiting for torchrun, torchrun waiting for its workers) exit by themselves when
        their children do, and reap them."""
        cmdlines = {pid: _read_bytes(_PROC / str(pid) / "cmdline") for pid in members}
        execed = {
            pid
            for pid, ppid in members.items()
            if not (ppid in members and cmdlines[pid] and cmdlines[pid] == cmdlines[ppid])
        }
        wrappers: set[int] = set()
        for pid in execed:
            parent, seen = members.get(pid), {pid}
            while parent in members and parent not in seen:
                wrappers.add(parent)
                seen.add(parent)
                parent = members.get(parent)
        return sorted(execed - wrappers)

    def _send(self, pids: Sequence[int], sig: int) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def terminate(self) -> None:
        """SIGTERM to the trainer processes (not to the wrappers above them nor to their forks)."""
        members = self.members()
        if not self.leader_exited():
            members.setdefault(self.pid, os.getpid())
        self._send(self._trainers(members), signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to every member, repeated until none is left (at most a few seconds)."""
        deadline = time.monotonic() + 5.0
        while True:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pgid, signal.SIGKILL)
            members = self.members()
            self._send(list(members), signal.SIGKILL)
            if not members or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def wait_gone(self, seconds: float, poll: float = 0.1) -> bool:
        """Wait up to ``seconds`` for every member to end; True when none is left."""
        deadline = time.monotonic() + max(0.0, seconds)
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL whatever is still alive after ``grace`` seconds; reaps the leader."""
        self.terminate()
        if not self.wait_gone(grace):
            self.kill()
        self.reap()

    def reap(self, linger: float = 5.0) -> int:
        """After the leader exited: give stragglers ``linger`` seconds, kill the rest, collect the
        leader's exit code (negative: the signal that ended it)."""
        if not self.wait_gone(linger):
            self.kill()
        returncode = self.proc.wait()
        # A member orphaned by a SIGKILL is a zombie until init reaps it; wait a little for that.
        deadline = time.monotonic() + 2.0
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        return returncode

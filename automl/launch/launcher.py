"""One search trial = one ``rtdetr train`` process tree in a folder of its own.

``run_trial`` writes ``trial_dir/spec.yaml`` (the trial's spec, ``results_dir`` = ``trial_dir``),
starts ``rtdetr train -e trial_dir/spec.yaml`` in a new session with a free rendezvous port, appends
its stdout+stderr to ``trial_dir/trial.log``, tails ``trial_dir/train/status.json`` and hands each new
validation to ``on_epoch``. When ``on_epoch`` returns True (prune) or ``timeout`` passes, the trial's
processes get SIGTERM, then SIGKILL after ``grace`` seconds. The result is a ``TrialOutcome``:
COMPLETE, PRUNED or FAIL with a failure class and a reason (``automl.launch.failures``).

A folder that already holds a checkpoint resumes from it (``rtdetr train`` does that by itself);
the history then also holds the validations of the earlier runs, but only new ones go to
``on_epoch``. ``run_trial`` may run in several threads at once; ``stop_all_trials`` (e.g. from a
Ctrl-C handler in the main thread) stops every running trial, whose ``run_trial`` then raises
``TrialInterrupted``. Whatever happens, no process of the trial is left when ``run_trial`` returns
or raises.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from automl.errors import AutomlError
from automl.launch.devices import cpu_count
from automl.launch.failures import classify, oom_kill_count
from automl.launch.process import TrialProcess
from automl.launch.status_tail import (
    EpochReport,
    StatusTail,
    epoch_report,
    every_run_lines,
    file_size,
    final_report,
)
from automl.results.objective import Objective
from automl.results.trial_record import TrialState
from automl.settings.action_profiles import action_profile
from automl.spec import get_dotted, rtdetr_command, set_dotted

__all__ = ["EpochReport", "TrialInterrupted", "TrialOutcome", "run_trial", "stop_all_trials"]

COMPLETE, PRUNED, FAIL = TrialState.COMPLETE.value, TrialState.PRUNED.value, TrialState.FAIL.value
LINGERED = "lingered"
_FINAL_EXIT_GRACE = 30.0  # an action without epochs may take this long to exit after its SUCCESS line
# torchrun's per-worker variables: inherited by a trial they would make it think it is a worker.
_WORKER_VARIABLES = ("RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE")
_LOG_TAIL_BYTES = 64 * 1024
_LOG_TAIL_LINES = 60
DEFAULT_OBJECTIVE = Objective()  # val_mAP50, maximized


class TrialInterrupted(AutomlError):
    """The trial was stopped by ``stop_all_trials``; its folder keeps the last checkpoint."""


@dataclass
class TrialOutcome:
    state: str  # COMPLETE | PRUNED | FAIL
    returncode: int | None
    failure_class: str | None  # None or one of automl.launch.failures.FAILURE_CLASSES
    reason: str | None  # one line a user can act on
    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    best_checkpoint: str | None = None  # <trial_dir>/train/model_epoch_NNN.pth of the best epoch
    last_epoch: int | None = None
    seconds: float = 0.0
    log_path: str = ""
    pgid: int | None = None  # the trial's process group (= its leader's pid), gone by now


class _Running:
    """The registry of running trials (for ports in use, CPU shares and stop_all_trials)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ports: set[int] = set()
        self.cancel_events: set[threading.Event] = set()

    def free_port(self) -> int:
        """A port nobody listens on now and no running trial of this process was given."""
        with self.lock:
            for _ in range(50):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", 0))
                    port = int(sock.getsockname()[1])
                if port not in self.ports:
                    self.ports.add(port)
                    return port
        raise AutomlError("no free TCP port on 127.0.0.1 for the trial's torchrun rendezvous")

    def add(self, event: threading.Event) -> int:
        with self.lock:
            self.cancel_events.add(event)
            return len(self.cancel_events)

    def remove(self, event: threading.Event, port: int) -> None:
        with self.lock:
            self.cancel_events.discard(event)
            self.ports.discard(port)


_RUNNING = _Running()


def stop_all_trials() -> int:
    """Ask every trial running in this process to stop (gracefully, as on a prune); returns how many.
    Their ``run_trial`` calls raise ``TrialInterrupted`` once their processes are gone."""
    with _RUNNING.lock:
        events = list(_RUNNING.cancel_events)
    for event in events:
        event.set()
    return len(events)


def process_spec(spec: Mapping[str, Any], trial_dir: Path, devices: list[int] | None) -> dict[str, Any]:
    """The spec the trial's process runs: outputs in ``trial_dir/train``, GPU count from ``devices``."""
    out = copy.deepcopy(dict(spec))
    out["results_dir"] = str(trial_dir)
    for section in ("train", "distill", "quantize"):  # outputs go to trial_dir/<action>
        if isinstance(out.get(section), dict) and out[section].get("results_dir"):
            out[section] = {k: v for k, v in out[section].items() if k != "results_dir"}
    if devices:
        out = set_dotted(out, "train.num_gpus", len(devices))
        out = set_dotted(out, "train.gpu_ids", list(range(len(devices))))
    return out


def trial_environment(
    devices: list[int] | None, port: int, env: Mapping[str, str] | None, running: int
) -> dict[str, str]:
    """The trial's environment: ours, a rendezvous port, its GPUs or CPU threads, then ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in _WORKER_VARIABLES}
    base = {k: v for k, v in base.items() if not k.startswith("TORCHELASTIC_")}
    base.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), PYTHONUNBUFFERED="1")
    if devices:
        visible = ",".join(str(d) for d in devices)
        base.update(CUDA_VISIBLE_DEVICES=visible, TAO_VISIBLE_DEVICES=visible)
    elif devices is not None:  # a CPU slot: no GPU for this trial
        base["CUDA_VISIBLE_DEVICES"] = ""
        base.pop("TAO_VISIBLE_DEVICES", None)
    if not devices and "OMP_NUM_THREADS" not in os.environ:
        base["OMP_NUM_THREADS"] = str(max(1, cpu_count() // max(1, running)))
    base.update(env or {})
    return base


def log_tail_lines(path: Path, start: int) -> list[str]:
    """The last lines a process wrote to its log since byte ``start`` (for failure reasons)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(start, size - _LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.replace("\r", "\n").splitlines()[-_LOG_TAIL_LINES:]


class _Tracker:
    """What the status lines said so far: the history, the last line, the last epoch."""

    def __init__(self, metric: str, per_epoch: bool = True):
        self.metric = metric
        self.per_epoch = per_epoch  # False: one final result (quantize's SUCCESS kpi)
        self.finished_at: float | None = None  # when that result was first seen
        self.history: list[EpochReport] = []
        self.last_line: dict[str, Any] | None = None
        self.last_epoch: int | None = None

    def take(self, line: dict[str, Any]) -> EpochReport | None:
        self.last_line = line
        if line.get("status") == "RUNNING" and isinstance(line.get("epoch"), int):
            self.last_epoch = max(self.last_epoch or 0, line["epoch"])
        report = epoch_report(line, self.metric) if self.per_epoch else final_report(line, self.metric)
        if report is not None:
            self.history = [r for r in self.history if r.epoch != report.epoch] + [report]
            self.history.sort(key=lambda r: r.epoch)
        return report


def run_trial(
    trial_dir: Path,
    spec: dict[str, Any],
    *,
    on_epoch: Callable[[EpochReport], bool],
    objective: Objective = DEFAULT_OBJECTIVE,
    devices: list[int] | None = None,
    timeout: float | None = None,
    grace: float = 30.0,
    env: dict[str, str] | None = None,
    poll_interval: float = 0.5,
    action: str = "train",
) -> TrialOutcome:
    """Run one training trial to its end (see the module docstring); never leaves a process behind.

    ``devices``: the trial's GPU indices (``[]``: a CPU slot; None: inherit the environment).
    ``on_epoch(report) -> bool``: called once per new validation; True prunes the trial.
    ``objective``: the metric reported and its direction, which decides the best epoch.
    ``action``: the ``rtdetr`` action the trial runs (train, distill, quantize); its status file is
    ``trial_dir/<action>/status.json``. An action without epochs (quantize) reports its final
    SUCCESS kpi once, as epoch 0.
    """
    trial_dir = Path(trial_dir).resolve()
    trial_dir.mkdir(parents=True, exist_ok=True)
    spec_path = trial_dir / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(process_spec(spec, trial_dir, devices), sort_keys=False))
    log_path = trial_dir / "trial.log"
    status_path = trial_dir / action / "status.json"
    metric = objective.metric
    tracker = _Tracker(metric, action_profile(action).per_epoch)
    for line in every_run_lines(status_path):  # earlier runs in this folder (resume)
        tracker.take(line)
    tracker.last_line = None
    tail = StatusTail(status_path, offset=file_size(status_path))
    log_start = file_size(log_path)
    cancel = threading.Event()
    port = _RUNNING.free_port()
    running = _RUNNING.add(cancel)
    oom_before = oom_kill_count()
    started = time.monotonic()
    stop_reason: str | None = None
    process: TrialProcess | None = None
    try:
        process = TrialProcess(
            [*rtdetr_command(), action, "-e", str(spec_path)],
            env=trial_environment(devices, port, env, running),
            log_path=log_path,
        )

        def read_new() -> None:
            nonlocal stop_reason
            for line in tail.read():
                report = tracker.take(line)
                if report is not None and stop_reason is None and on_epoch(report):
                    stop_reason = PRUNED

        while True:
            read_new()
            if stop_reason is None and timeout is not None and time.monotonic() - started > timeout:
                stop_reason = "timeout"
            if stop_reason is None and cancel.is_set():
                stop_reason = "interrupted"
            if stop_reason is None and _lingers(tracker, process):
                stop_reason = LINGERED
            if stop_reason is not None:
                process.stop(grace)
                break
            if process.leader_exited():
                process.reap()
                break
            time.sleep(poll_interval)
        read_new()
    except BaseException:
        if process is not None:
            _stop_hard(process, grace)
        raise
    finally:
        _RUNNING.remove(cancel, port)
    returncode = process.proc.returncode
    outcome = _outcome(tracker, returncode, stop_reason, timeout, log_path, log_start, oom_before)
    if stop_reason == "interrupted" and outcome.state != COMPLETE:
        raise TrialInterrupted(
            f"trial {trial_dir} was stopped before it finished (last epoch {tracker.last_epoch}); "
            f"its checkpoints are kept and running it again resumes it"
        )
    outcome.seconds = round(time.monotonic() - started, 3)
    outcome.pgid = process.pgid
    best = objective.best(tracker.history, lambda r: r.metrics.get(metric))
    if best is not None:
        outcome.best_epoch, outcome.best_value = best.epoch, best.metrics[metric]
        outcome.best_checkpoint = _checkpoint(trial_dir / action, best.epoch, tracker.last_line)
    return outcome


def _lingers(tracker: _Tracker, process: TrialProcess) -> bool:
    """An action without epochs (quantize) wrote its final SUCCESS line long ago and is still running."""
    if tracker.per_epoch or not tracker.history or (tracker.last_line or {}).get("status") != "SUCCESS":
        return False
    if tracker.finished_at is None:
        tracker.finished_at = time.monotonic()
    return time.monotonic() - tracker.finished_at > _FINAL_EXIT_GRACE and not process.leader_exited()


def _stop_hard(process: TrialProcess, grace: float) -> None:
    """Stop after an exception in the caller's thread (Ctrl-C, a failing ``on_epoch``); a second
    Ctrl-C while waiting for the graceful stop goes straight to SIGKILL."""
    try:
        process.stop(grace)
    except BaseException:
        process.kill()
        with contextlib.suppress(Exception):
            process.proc.wait(timeout=5)
        raise


def _outcome(
    tracker: _Tracker,
    returncode: int | None,
    stop_reason: str | None,
    timeout: float | None,
    log_path: Path,
    log_start: int,
    oom_before: int | None,
) -> TrialOutcome:
    def outcome(state: str, failure_class: str | None, reason: str | None) -> TrialOutcome:
        return TrialOutcome(
            state=state,
            returncode=returncode,
            failure_class=failure_class,
            reason=reason,
            history=list(tracker.history),
            last_epoch=tracker.last_epoch,
            log_path=str(log_path),
        )

    last = tracker.last_line
    succeeded = returncode == 0 and last is not None and last.get("status") == "SUCCESS"
    if stop_reason == LINGERED:
        reason = (
            f"the process wrote its result but had not exited {_FINAL_EXIT_GRACE:g} s later; it was stopped "
            "and its result kept"
        )
        return outcome(COMPLETE, None, reason)
    if stop_reason == PRUNED:
        at = tracker.history[-1].epoch if tracker.history else tracker.last_epoch
        return outcome(PRUNED, None, f"pruned by the search after epoch {at}")
    if succeeded:
        return outcome(COMPLETE, None, None)
    if stop_reason == "timeout":
        reason = (
            f"timed out after {timeout:g} s (last finished epoch: {tracker.last_epoch}); raise the trial "
            f"timeout or lower train.num_epochs"
        )
        return outcome(FAIL, "timeout", reason)
    oom_after = oom_kill_count()
    oom_killed = None if oom_before is None or oom_after is None else oom_after > oom_before
    try:
        free: int | None = shutil.disk_usage(log_path.parent).free
    except OSError:
        free = None
    tail = log_tail_lines(log_path, log_start)
    failure = classify(returncode, last, tail, oom_killed=oom_killed, free_bytes=free)
    if failure is None:  # classify only succeeds on exit 0 + SUCCESS, handled above
        return outcome(COMPLETE, None, None)
    return outcome(FAIL, failure.kind, failure.reason)


def _checkpoint(action_dir: Path, epoch: int, last_line: dict[str, Any] | None) -> str | None:
    """The best epoch's checkpoint file, if it was saved (quantize: the quantized checkpoint)."""
    path = action_dir / f"model_epoch_{epoch:03d}.pth"
    if path.is_file():
        return str(path)
    quantized = (  # torchao / modelopt.pytorch write a .pth, modelopt.onnx a quantized .onnx
        sorted([*action_dir.glob("quantized_model_*.pth"), *action_dir.glob("quantized_model_*.onnx")])
        if action_dir.name == "quantize"
        else []
    )
    if quantized:
        return str(quantized[0])
    if last_line and last_line.get("best_epoch") == epoch and last_line.get("best_checkpoint"):
        named = Path(str(last_line["best_checkpoint"]))
        return str(named) if named.is_file() else None
    return None


def spec_num_gpus(spec: Mapping[str, Any]) -> int:
    """GPUs a trial of ``spec`` asks for (``train.num_gpus``, at least ``len(train.gpu_ids)``)."""
    num = int(get_dotted(spec, "train.num_gpus", 1) or 1)
    ids = get_dotted(spec, "train.gpu_ids") or []
    return max(num, len(ids)) if isinstance(ids, list) else num

"""The Ray Tune side of one trial: runs inside a Ray worker process (the actor of a Tune trial).

:class:`TrialTrainable` is a Tune class trainable. It turns Tune's ``config`` (the encoded values of
the space's fixed Optuna distributions, keyed by ``param.optuna_name``) back into spec values with
:func:`decode_params` (:func:`automl.space.sampling.sample_params` replayed, so weights, conditions and
dependencies hold exactly as with the Optuna backend), then starts the trial with the same launcher
as the Optuna backend (:func:`automl.launch.launcher.run_trial`, in a thread of the actor) in
``<sweep>/trials/<nnnn>/``, ``nnnn`` coming from the trial's name (``trial_<nnnn>``, given by the
driver). Each ``step`` returns the next validation (Tune's ``report``); the last one carries
``done``. A Tune checkpoint is a small directory holding ``reference.json`` (the trial folder, the
epoch and the ``.pth`` saved there), so schedulers that pause, clone (PBT exploit) or resume trials
work: a trial restored from *another* trial's checkpoint starts training from that ``.pth``
(``train.resume_training_checkpoint_path``); a trial restored from its own resumes from its folder's
latest checkpoint, as ``rtdetr train`` does by itself.

A class trainable (not a function one) because Tune calls ``cleanup`` when it stops a trial (prune,
pause, end of the sweep) and waits for it: the trial's processes are stopped there through the
launcher (graceful SIGTERM, then SIGKILL), before the actor exits, so no ``torchrun`` or ``rtdetr``
process outlives the trial. If the Ray worker dies instead, the trial's leader gets SIGTERM from the
kernel (``automl.launch.process`` sets the parent-death signal).

A failed trial raises :class:`TrialFailed` (Ray records it as errored); a trial that ends by itself
writes ``<trial>/outcome.json`` for the driver.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from ray.tune import Trainable

from automl.launch.launcher import EpochReport, TrialInterrupted, run_trial, stop_all_trials
from automl.launch.trial_spec import spec_for_params
from automl.results.objective import Objective
from automl.results.selection import keep_only_best_checkpoint
from automl.results.summary import write_json_atomic
from automl.results.trial_record import TrialState
from automl.space.params import SearchSpace
from automl.space.sampling import sample_params
from automl.spec import set_dotted

__all__ = [
    "TIME_ATTR",
    "SpaceDistribution",
    "TrialJob",
    "TrialTrainable",
    "decode_params",
    "read_outcome",
    "space_distributions",
    "trial_number",
]

REFERENCE = "reference.json"
OUTCOME = "outcome.json"
TIME_ATTR = "epochs"  # completed epochs: the schedulers' budget (robust to restores, unlike iterations)
# what sample_params suggests from: the kinds of Optuna distribution a space is made of
SpaceDistribution = CategoricalDistribution | IntDistribution | FloatDistribution


class TrialFailed(RuntimeError):
    """A trial ended as FAIL; ``str()`` is ``<failure_class>: <reason>``."""


@dataclass(frozen=True)
class TrialJob:
    """What every trial of a Ray sweep needs (sent once to the workers with ``tune.with_parameters``)."""

    sweep_dir: str
    base_spec: dict[str, Any]
    space: SearchSpace
    max_epochs: int
    objective: Objective
    timeout: float | None = None
    trial_env: dict[str, str] = field(default_factory=dict)
    cpus_per_trial: int = 1
    gpus_per_trial: int = 0
    keep_only_best: bool = True  # automl_delete_intermediate_ckpt (off for schedulers that clone/pause)
    keep: str = "auto"  # automl_checkpoint_retention_strategy


# --- the space as fixed distributions -----------------------------------------------------------
class _Recorder:
    """A trial-like object that records the distribution of every suggest call."""

    def __init__(self) -> None:
        self.distributions: dict[str, SpaceDistribution] = {}

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        self.distributions[name] = FloatDistribution(low, high, step=step, log=log)
        return low

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        self.distributions[name] = IntDistribution(low, high, step=step, log=log)
        return low

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.distributions[name] = CategoricalDistribution(list(choices))
        return next(iter(choices))

    def set_user_attr(self, key: str, value: Any) -> None:
        pass


def space_distributions(space: SearchSpace) -> dict[str, SpaceDistribution]:
    """``optuna_name`` -> the fixed Optuna distribution :func:`sample_params` draws it from."""
    recorder = _Recorder()
    sample_params(space, recorder)
    return recorder.distributions


class _Replay:
    """A trial-like object answering every suggest call from ``config``, clamped into the distribution
    (PBT's explore multiplies values and may leave the range)."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = config

    def _value(self, name: str) -> Any:
        if name not in self.config:
            raise KeyError(
                f"the trial's config has no value for {name!r}; it was made for another search space"
            )
        return self.config[name]

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        value = min(high, max(low, float(self._value(name))))
        if step:
            value = min(high, low + round((value - low) / step) * step)
        return value

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        value = min(high, max(low, round(float(self._value(name)))))
        return int(min(high, low + round((value - low) / step) * step))

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        value = self._value(name)
        return value if value in list(choices) else next(iter(choices))

    def set_user_attr(self, key: str, value: Any) -> None:
        pass


def decode_params(space: SearchSpace, config: Mapping[str, Any]) -> dict[str, Any]:
    """Tune's config (encoded values) -> spec values, every constraint of the space holding."""
    return sample_params(space, _Replay(config))


def trial_number(trial_name: str) -> int:
    """``trial_0007`` -> 7 (the driver names every trial so)."""
    return int(str(trial_name).rsplit("_", 1)[-1])


# --- the trainable ------------------------------------------------------------------------------
def _epoch_checkpoint(folder: Path, epoch: int | None) -> str | None:
    if epoch is None:
        return None
    path = folder / "train" / f"model_epoch_{epoch:03d}.pth"
    return str(path) if path.is_file() else None


def _node_id() -> str:
    import ray

    try:
        return ray.get_runtime_context().get_node_id()
    except Exception:
        return ""


def _devices(gpus_per_trial: int) -> list[int]:
    """The trial's GPUs as Ray granted them ([] = a CPU slot)."""
    if gpus_per_trial <= 0:
        return []
    import ray

    return [int(g) for g in ray.get_gpu_ids()]


class TrialTrainable(Trainable):
    """One trial: the training process runs in a thread of this actor from the first ``step`` on;
    each ``step`` returns its next validation, the last one with ``done``."""

    # Tune passes tune.with_parameters' keywords (job) to setup, which Ray's signature omits
    def setup(self, config: dict[str, Any], job: TrialJob) -> None:  # type: ignore[override]
        self.job = job
        self.number = trial_number(self.trial_name)
        self.folder = (Path(job.sweep_dir) / "trials" / f"{self.number:04d}").resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.params = decode_params(job.space, config)
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.start_from: str | None = None
        self.last: EpochReport | None = None
        self.began = time.time()

    # training in the background ----------------------------------------------------------------
    def _start(self) -> None:
        terminal = self.job.keep == "terminal"
        spec = spec_for_params(self.job.base_spec, self.params, self.job.max_epochs, True, terminal)
        if self.start_from:
            spec = set_dotted(spec, "train.resume_training_checkpoint_path", self.start_from)
        env = dict(self.job.trial_env)
        if self.job.gpus_per_trial <= 0:
            env.setdefault("OMP_NUM_THREADS", str(max(1, self.job.cpus_per_trial)))
        self.thread = threading.Thread(target=self._train, args=(spec, env), name="automl-trial", daemon=True)
        self.thread.start()

    def _train(self, spec: dict[str, Any], env: dict[str, str]) -> None:
        try:
            outcome = run_trial(
                self.folder,
                spec,
                on_epoch=self._on_epoch,
                objective=self.job.objective,
                devices=_devices(self.job.gpus_per_trial),
                timeout=self.job.timeout,
                env=env,
            )
            self.events.put(("end", outcome))
        except TrialInterrupted:
            self.events.put(("stopped", None))
        except BaseException as exc:
            self.events.put(("error", exc))

    def _on_epoch(self, report: EpochReport) -> bool:
        if report.metrics.get(self.job.objective.metric) is not None:
            self.events.put(("epoch", report))
        return False  # Tune's scheduler decides; a stop arrives through cleanup()

    def _metrics(self, report: EpochReport) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            k: float(v) for k, v in report.metrics.items() if isinstance(v, (int, float))
        }
        metrics.update(
            {
                TIME_ATTR: report.epoch + 1,
                "epoch": report.epoch,
                "trial_number": self.number,
                "checkpoint_path": _epoch_checkpoint(self.folder, report.epoch) or "",
                "node_id": _node_id(),
                "hostname": os.uname().nodename,
            }
        )
        if report.epoch + 1 >= self.job.max_epochs:  # the last epoch: done now, so no scheduler acts on it
            metrics["done"] = True
        return metrics

    # Tune's interface ----------------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        if self.thread is None:
            self._start()
        kind, item = self.events.get()
        if kind == "epoch":
            self.last = item
            return self._metrics(item)
        if kind == "error":
            raise item
        if kind == "stopped":  # pragma: no cover - only cleanup() stops, and Tune does not step after it
            raise TrialFailed("killed: the trial was stopped")
        outcome = item
        self._write_outcome(outcome)
        if outcome.state == TrialState.FAIL.value:
            raise TrialFailed(f"{outcome.failure_class}: {outcome.reason}")
        # a restored trial whose process had already finished reports its last earlier validation
        last = self.last or (outcome.history[-1] if outcome.history else None)
        if outcome.best_value is None or last is None or last.metrics.get(self.job.objective.metric) is None:
            raise TrialFailed(f"no_metric: training finished without a {self.job.objective.metric} value")
        return {**self._metrics(last), "done": True}

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        epoch = self.last.epoch if self.last is not None else None
        reference = {
            "folder": str(self.folder),
            "epoch": epoch,
            "checkpoint": _epoch_checkpoint(self.folder, epoch),
        }
        (Path(checkpoint_dir) / REFERENCE).write_text(json.dumps(reference), encoding="utf-8")

    # save_checkpoint returns None, so Tune passes the checkpoint's directory (Ray types only a dict)
    def load_checkpoint(self, checkpoint_dir: str) -> None:  # type: ignore[override]
        reference = json.loads((Path(checkpoint_dir) / REFERENCE).read_text(encoding="utf-8"))
        if Path(reference.get("folder", "")) != self.folder:  # PBT exploit: another trial's weights
            self.start_from = reference.get("checkpoint") or None
        # our own checkpoint: rtdetr train resumes from the folder's latest checkpoint by itself

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        return False  # a new configuration needs a new training process

    def cleanup(self) -> None:
        """Tune stops the trial (prune, pause, end of the sweep): stop its processes before returning."""
        if self.thread is not None and self.thread.is_alive():
            if self.last is not None and self.last.epoch + 1 >= self.job.max_epochs:
                self.thread.join(timeout=60)  # the last epoch was reported: the process is finishing
            if self.thread.is_alive():
                stop_all_trials()  # one trial per actor (reuse_actors=False)
                self.thread.join(timeout=120)
        ended = [item for kind, item in _drain(self.events) if kind == "end"]
        if ended:
            self._write_outcome(ended[-1])
        if self.job.keep_only_best:
            best = _best_epoch_so_far(self.folder, self.job.objective)
            if best is not None:
                keep_only_best_checkpoint(self.folder / "train", best)

    def _write_outcome(self, outcome: Any) -> None:
        write_json_atomic(
            self.folder / OUTCOME,
            {
                "state": outcome.state,
                "seconds": outcome.seconds,
                "failure_class": outcome.failure_class,
                "reason": outcome.reason,
                "log": outcome.log_path,
                "params": self.params,
                "node_id": _node_id(),
                "best_epoch": outcome.best_epoch,
                "best_value": outcome.best_value,
                "restored_from": self.start_from,
            },
        )


def _drain(events: queue.Queue) -> list[tuple[str, Any]]:
    out = []
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out


def _best_epoch_so_far(folder: Path, objective: Objective) -> int | None:
    from automl.launch.status_tail import epoch_report, every_run_lines

    metric = objective.metric
    reports = [
        r
        for r in (epoch_report(line, metric) for line in every_run_lines(folder / "train" / "status.json"))
        if r
    ]
    best = objective.best(reports, lambda r: r.metrics.get(metric))
    return best.epoch if best is not None else None


def read_outcome(folder: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / OUTCOME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None

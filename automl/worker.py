"""``automl worker``: join a sweep from another process or machine through its Optuna storage.

``automl run --storage URL`` stores what a worker needs in the study (base spec, settings, parameter
ranges, schema, max_epochs, sweep folder, tracking URI), so ``automl worker --storage URL --study
NAME`` needs nothing else. Every process of the sweep (the first one included) runs a
``SharedSweep``: trials until the study holds the budget (``automl_max_recommendations``).

The budget is the study's, counted in the storage, so it holds exactly across processes:

1. Under the process's lock, count the study's trials (any state) that are not tagged
   ``over_budget`` and are not re-queued copies (``resume_folder``); at the budget, stop.
2. Otherwise ``ask``. Storages number trials densely in creation order, so the trial's rank among
   counted trials with a number up to its own is fixed: when it exceeds the budget (another process
   asked in between), the trial is tagged ``over_budget``, told FAIL without running, and the
   process stops. A trial below such a trial is never over budget, so exactly ``budget`` trials
   run; tagged ones (at most one per racing process) are left out of every view.

Each trial records ``host``, ``worker``, its parameters, folder, value and outcome as user
attributes, so ``sweep_view`` (``automl status``/``automl best``) lists every trial from the storage
once, with one best, from any process's folder.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import zlib
from pathlib import Path
from typing import Any

import optuna

from automl.errors import AutomlError, SettingError
from automl.launcher import TrialOutcome
from automl.sampling import sample_params
from automl.selection import best_trial
from automl.spec import get_dotted
from automl.summary import SUMMARY, SweepRecord, read_summary, write_json_atomic
from automl.sweep import Sweep

OVER_BUDGET = "over_budget"
_RESULT_ATTRS = ("value", "best_epoch", "last_epoch", "checkpoint", "error", "failure_class", "seconds")


class _BudgetUsed(Exception):
    """The study holds the budget: this process asks for no more trials."""


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def rendezvous_env(base: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    """For a trial spanning several nodes, the rendezvous the other nodes join: ``MASTER_ADDR`` and
    ``MASTER_PORT`` from this environment (TAO's default port 29500) instead of a free local port."""
    env = dict(os.environ if env is None else env)
    nodes = int(env.get("NUM_NODES") or get_dotted(base, "train.num_nodes", 1) or 1)
    if nodes <= 1:
        return {}
    out = {"MASTER_PORT": env.get("MASTER_PORT") or "29500"}
    if env.get("MASTER_ADDR"):
        out["MASTER_ADDR"] = env["MASTER_ADDR"]
    return out


def counted(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials that use the budget: not over budget, not a re-queued copy of an interrupted one."""
    return [t for t in trials if not t.user_attrs.get(OVER_BUDGET) and "resume_folder" not in t.user_attrs]


def claim_trial(study: optuna.Study, budget: int) -> optuna.Trial | None:
    """A new trial of the study, or None when the study holds its budget (the scheme above)."""
    trials = study.get_trials(deepcopy=False)
    waiting = any(t.state == optuna.trial.TrialState.WAITING for t in trials)
    if len(counted(trials)) >= budget and not waiting:
        return None
    trial = study.ask()
    if "resume_folder" in trial.user_attrs:  # replaces an interrupted trial that was counted
        return trial
    upto = [t for t in study.get_trials(deepcopy=False) if t.number <= trial.number]
    if len(counted(upto)) > budget:
        trial.set_user_attr(OVER_BUDGET, True)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return None
    return trial


class SharedSweep(Sweep):
    """A ``Sweep`` whose budget is the study's, shared with every other process on the storage."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.worker = worker_id()
        self.host = socket.gethostname()
        self.exhausted = False
        self._claim = threading.Lock()

    def _ask(self) -> tuple[int, dict[str, Any], Any, str | None]:
        study, budget = self.plan.study, self.plan.settings.max_recommendations
        assert study is not None and self.plan.space is not None  # a SharedSweep always searches
        with self._claim, self.lock:
            trial = claim_trial(study, budget)
        if trial is None:
            raise _BudgetUsed
        params = sample_params(self.plan.space, trial)
        folder = self.plan.folder.resolve() / "trials" / f"{trial.number:04d}"
        for key, value in (
            ("host", self.host),
            ("worker", self.worker),
            ("params", params),
            ("folder", str(folder)),
        ):
            trial.set_user_attr(key, value)
        return trial.number, params, trial, trial.user_attrs.get("resume_folder")

    def run_one(self) -> dict[str, Any] | None:  # type: ignore[override]
        try:
            return super().run_one()
        except _BudgetUsed:
            self.exhausted = True
            return None

    def _finish(
        self, number: int, trial: Any, outcome: TrialOutcome, entry: dict[str, Any]
    ) -> dict[str, Any]:
        if trial is not None:  # before the tell: a finished trial's attributes are frozen
            result = {"value": outcome.best_value, "best_epoch": outcome.best_epoch, "last_epoch": outcome.last_epoch,
                      "checkpoint": outcome.best_checkpoint, "error": outcome.reason,
                      "failure_class": outcome.failure_class, "seconds": round(outcome.seconds, 2)}  # fmt: skip
            for key, value in result.items():
                trial.set_user_attr(key, value)
        return super()._finish(number, trial, outcome, {**entry, "host": self.host, "worker": self.worker})

    def may_launch(self, launched: int) -> bool:
        return not self.exhausted  # the budget is the study's, claimed trial by trial in _ask

    def conclude(self) -> dict[str, Any]:
        """The record also lists the other processes' trials (as the storage has them now)."""
        local = {t["number"] for t in self.record.trials()}
        assert self.plan.study is not None
        for entry in storage_trials(self.plan.study):
            if entry["number"] not in local:
                self.record.upsert_trial(entry)
        return super().conclude()


# --- the view of a shared sweep ---------------------------------------------------------------
def storage_trials(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial of the study as a summary entry (over-budget ones left out)."""
    entries = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get(OVER_BUDGET):
            continue
        attrs = t.user_attrs
        entry = {"number": t.number, "state": t.state.name, "params": attrs.get("params", dict(t.params)),
                 "folder": attrs.get("folder"), "host": attrs.get("host"), "worker": attrs.get("worker")}  # fmt: skip
        entry.update({k: attrs.get(k) for k in _RESULT_ATTRS})
        if entry["value"] is None and t.state == optuna.trial.TrialState.COMPLETE:
            entry["value"] = t.value
        if attrs.get("baseline"):
            entry["baseline"] = True
        entries.append(entry)
    return entries


def _load_study(storage_url: str, name: str, folder: Path) -> optuna.Study:
    from automl.backends.optuna_study import make_storage

    storage = make_storage(storage_url, folder)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise SettingError(
            f"--study: no study named {name!r} in {storage_url}; start the sweep with "
            f"`automl run --storage {storage_url} --name {name} ...`"
        ) from None


def best_entry(best: dict[str, Any] | None, metric: str) -> dict[str, Any] | None:
    if best is None:
        return None
    return {"trial": best["number"], "params": best.get("params", {}), "value": best["value"], "metric": metric,
            "best_epoch": best.get("best_epoch"), "last_value": best.get("last_value"),
            "checkpoint": best.get("checkpoint"), "folder": best.get("folder")}  # fmt: skip


def sweep_view(sweep: str | Path) -> dict[str, Any]:
    """``summary.json`` of a sweep (or worker) folder; for a sweep on a shared storage, with every
    trial the storage holds (this folder's entries win, except a stale RUNNING) and the best of all."""
    folder = Path(sweep)
    data = read_summary(folder)
    config = data.get("config") or {}
    if not config.get("storage") or data.get("backend") != "optuna":
        return data
    try:
        study = _load_study(config["storage"], config["study"], folder)
        remote = storage_trials(study)
    except Exception as exc:  # a storage that is down: show what this folder knows
        print(
            f"warning: could not read the study from {config['storage']} ({exc}); showing {folder}/{SUMMARY}"
        )
        return data
    merged = {t["number"]: t for t in remote}
    for entry in data.get("trials", []):
        old = merged.get(entry["number"])
        # this folder's own trials keep their details (log, last value); a copy of another process's
        # trial (or a RUNNING entry the storage has since finished) gives way to the storage
        own = old is None or (
            entry.get("worker") == old.get("worker") and entry.get("state") == old.get("state")
        )
        merged[entry["number"]] = {**old, **entry} if own or old is None else {**entry, **old}
    trials = [merged[n] for n in sorted(merged)]
    settings = data.get("settings") or {}
    best = best_trial(trials, multi_fidelity=settings.get("fidelity") in ("hyperband", "asha"),
                      maximize=settings.get("direction", "maximize") == "maximize")  # fmt: skip
    running = any(t.get("state") in ("RUNNING", "WAITING") for t in trials)
    status = "RUNNING" if running else ("FINISHED" if best else data.get("status"))
    return {
        **data,
        "trials": trials,
        "best": best_entry(best, settings.get("metric", "val_mAP50")),
        "status": status,
    }


# --- automl worker ------------------------------------------------------------------------------
def _worker_folder(results_dir: str | None, definition: dict[str, Any], study: str) -> Path:
    if results_dir:
        return Path(results_dir)
    shared = Path(definition.get("folder") or "")
    if definition.get("folder") and (shared / SUMMARY).is_file():
        return shared  # the sweep folder is on a disk this machine shares
    return Path("results") / study


def _tracker(definition: dict[str, Any], folder: Path) -> Any:
    from automl.tracking import DEFAULT_EXPERIMENT, NullTracker, Tracker

    uri = str(definition.get("tracking_uri") or "")
    if not definition.get("track", True):
        return NullTracker()
    if uri.startswith(("http://", "https://")):
        return Tracker.open(uri, definition.get("experiment") or DEFAULT_EXPERIMENT, folder)
    print("note: no MLflow tracking from this worker: the sweep tracks to a local store of the first "
          "process (one writer per store); start the sweep with --tracking-uri http://HOST:5000 to track "
          f"every worker, or run `automl sync {folder}` there later", flush=True)  # fmt: skip
    return NullTracker()


def run_worker(
    storage_url: str, study_name: str, results_dir: str | None = None, concurrency: int | None = None
) -> int:
    from automl.backends.optuna_study import DEFINITION_ATTR, make_storage, open_study
    from automl.display import SweepDisplay
    from automl.gpu_pool import visible_gpus
    from automl.run import ROOT, _concurrency, make_space
    from automl.settings import parse_settings
    from automl.sweep import SweepPlan

    probe = _load_study(storage_url, study_name, Path.cwd())
    definition = probe.user_attrs.get(DEFINITION_ATTR)
    if not definition:
        raise AutomlError(f"study {study_name!r} in {storage_url} holds no sweep definition; workers join "
                          f"sweeps started with `automl run --storage {storage_url} ...`")  # fmt: skip
    settings = parse_settings(definition["setting_pairs"])
    if settings.algorithm == "pbt":
        raise SettingError(f"study {study_name!r} searches with automl_algorithm=pbt, whose clones continue "
                           f"checkpoints in the sweep's own folder: run it in one `automl run` (with "
                           f"--concurrency), or use --backend ray for a population across machines")  # fmt: skip
    me = worker_id()
    if settings.seed is not None:  # the same seed would sample the same start-up trials as the others
        settings = dataclasses.replace(settings, seed=(settings.seed + zlib.crc32(me.encode())) % 2**31)
    base, max_epochs = definition["base_spec"], int(definition["max_epochs"])
    action = definition.get("action", "train")  # what each trial runs: train, distill, quantize
    schema = Path(definition["schema"])
    if not schema.is_file():  # another machine: this installation's schema
        schema = ROOT / "schemas" / f"{action}.schema.json"
    space = make_space(schema, base, settings, definition.get("param_ranges") or {}, action)
    study = open_study(study_name, make_storage(storage_url, Path.cwd()), settings, max_epochs, create=False)
    folder = _worker_folder(results_dir, definition, study_name)
    folder.mkdir(parents=True, exist_ok=True)
    data = {"name": study_name, "status": "RUNNING", "backend": "optuna", "worker": me,
            "policy": {"decision": "auto", "reason": f"worker of sweep {study_name}", "message": None},
            "algorithm": {"sampler": settings.algorithm, "fidelity": settings.fidelity, "name": settings.algorithm_name},
            "settings": dataclasses.asdict(settings), "config": {**definition, "storage": storage_url, "study": study_name},
            "space": space.as_dict(), "max_epochs": max_epochs, "trials": [], "best": None, "pipeline": {}}  # fmt: skip
    if not (folder / SUMMARY).exists():  # lets `automl status <folder>` find the storage on this machine
        write_json_atomic(folder / SUMMARY, data)
    record = SweepRecord(folder, data)
    record.path = folder / f"worker-{me}.json"
    record.save()
    gpus = visible_gpus()
    tracker = _tracker(definition, folder)
    tracker.start_sweep(record.data)
    plan = SweepPlan(folder=folder, base_spec=base, space=space, settings=settings, max_epochs=max_epochs,
                     concurrency=concurrency or _concurrency(settings, base, gpus), devices=gpus or None,
                     study=study, tracker=tracker, trial_env=rendezvous_env(base), action=action)  # fmt: skip
    print(f"worker {me}: sweep {study_name} on {storage_url}; trial folders in {folder}", flush=True)
    with SweepDisplay(settings.metric) as display:
        sweep = SharedSweep(plan, record, display)
        data = sweep.run()
    tracker.finish_sweep(data)
    mine = [t for t in data["trials"] if t.get("worker") == me]
    print(f"worker {me}: ran {len(mine)} trial(s); the study holds its budget of {settings.max_recommendations}",
          flush=True)  # fmt: skip
    best = data.get("best")
    if best:
        print(
            f"best so far: trial {best['trial']} {best['metric']}={best['value']:.4f} {best['checkpoint']}",
            flush=True,
        )
    return 0

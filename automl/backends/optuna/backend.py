"""The Optuna backend: an ask/tell study (sampler + pruner from the AutoML settings).

The study lives in a journal file inside the sweep folder, or in any storage URL (``--storage``)
that ``automl worker`` processes on other machines join; the trial budget is then the study's,
claimed exactly across processes (:mod:`automl.backends.optuna.shared_budget`), and the storage is
the sweep's ledger. ``automl_algorithm=pbt`` runs population based training on the study
(:mod:`automl.backends.optuna.pbt`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import optuna

from automl.backends.base import AskTellBackend, SweepHooks, SweepPlan, TrialRequest
from automl.backends.optuna.fidelity_twin import FidelityTwin
from automl.backends.optuna.journal_file import check_journal, rebuild_hint
from automl.backends.optuna.pbt import Population, clone_of
from automl.backends.optuna.rebuild import folder_records, rebuild_study, study_lag
from automl.backends.optuna.resume import record_finished, requeue_interrupted
from automl.backends.optuna.shared_budget import RECORD_ATTR, claim_trial, storage_records
from automl.backends.optuna.study import make_storage, open_study, told_values
from automl.backends.storage_url import journal_path
from automl.errors import SettingError, SweepFolderError
from automl.results.trial_folders import trial_numbers
from automl.results.trial_record import TrialRecord, TrialState
from automl.space.sampling import encode_params, sample_params

__all__ = ["OptunaBackend", "worker_id"]

_STATES = {
    TrialState.PRUNED: optuna.trial.TrialState.PRUNED,
    TrialState.FAIL: optuna.trial.TrialState.FAIL,
}


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class OptunaBackend(AskTellBackend):
    name = "optuna"

    def __init__(self, plan: SweepPlan, *, join: bool = False):
        """``join``: an ``automl worker`` joining a study that ``automl run`` created."""
        super().__init__(plan)
        if plan.space is None:
            raise ValueError("the optuna backend searches a space; plain training uses the 'none' backend")
        self.space = plan.space
        self.join = join
        self.shared = bool(plan.storage)
        self.host, self.worker = socket.gethostname(), worker_id()
        self.lock = threading.Lock()
        self.study: optuna.Study | None = None
        self.population: Population | None = None
        self.twin: FidelityTwin | None = None  # --objectives: pruning on the training metric alone
        if plan.settings.algorithm == "pbt":
            self.population = Population(plan.space, plan.settings, seed=plan.settings.seed)

    def open(self, hooks: SweepHooks, *, resume: bool) -> None:
        plan = self.plan
        journal = journal_path(plan.storage, plan.folder)
        written = journal is not None and journal.is_file() and journal.stat().st_size > 0
        if journal is not None and (resume or (self.join and written)):
            warning = check_journal(journal, plan.folder, shared=self.shared)  # a torn last record is cut
            if warning:
                print(warning, flush=True)
        create = not (resume or self.join)
        try:
            self.study = self._open_study(create)
        except SettingError:  # no study of that name
            if not (resume and journal is not None):
                raise
            name = plan.study or plan.folder.name
            raise SweepFolderError(
                f"{journal}: holds no study named {name!r}; {rebuild_hint(plan.folder, self.shared)}"
            ) from None
        if resume and journal is not None:
            self._catch_up(hooks, journal)
        if create and plan.settings.run_baseline and not self.study.trials:
            # TAO's baseline: the first trial runs the spec's own values
            self.study.enqueue_trial(
                encode_params(self.space, self.space.defaults()), user_attrs={"baseline": True}
            )
        if resume:
            record_finished(self.study, hooks)
            requeue_interrupted(self.study, hooks)

    def _open_study(self, create: bool) -> optuna.Study:
        plan = self.plan
        name, storage = plan.study or plan.folder.name, make_storage(plan.storage, plan.folder)
        study = open_study(
            name, storage, plan.settings, plan.max_epochs, create=create, definition=plan.definition or None
        )
        if plan.settings.objectives and plan.settings.fidelity != "none":
            self.twin = FidelityTwin(name, storage, plan.settings, plan.max_epochs)
        return study

    def _catch_up(self, hooks: SweepHooks, journal: Path) -> None:
        """A journal that lacks trials summary.json or the trial folders show (cut short by a crash) is
        rebuilt from them before the resume, so no finished trial is run again and no trial number is
        used twice (:mod:`automl.backends.optuna.rebuild`)."""
        plan, known = self.plan, hooks.trials()
        lag = study_lag(self._study(), known, trial_numbers(plan.folder))
        if not lag:
            return
        shown = "; ".join(lag[:3]) + ("; ..." if len(lag) > 3 else "")
        if self.shared:  # other processes may be writing to it: the user stops them first
            raise SweepFolderError(
                f"{journal}: the study is behind summary.json ({shown}); {rebuild_hint(plan.folder, True)}"
            )
        records = folder_records(plan, known)
        kept = rebuild_study(plan, records, journal)
        numbers = {r.number for r in known}
        for record in records:  # trials only their folders knew about
            if record.number not in numbers:
                hooks.trial_updated(record)
        print(
            f"warning: {journal}: the study was behind summary.json ({shown}); rebuilt it from summary.json "
            f"and the trial folders" + (f" (the old journal is kept in {kept.name})" if kept else ""),
            flush=True,
        )
        self.study = self._open_study(create=False)

    # --- ask / report / tell -----------------------------------------------------------------
    def _study(self) -> optuna.Study:
        if self.study is None:
            raise RuntimeError("the optuna backend is not open")
        return self.study

    def may_launch(self, launched: int, finished: Sequence[TrialRecord]) -> bool:
        if self.shared:
            return True  # the budget is the study's, claimed trial by trial in ask()
        if launched >= self.plan.settings.max_recommendations:
            return False
        if self.population is not None and self.population.founders_launched(self._study()):
            return bool(self.population.parents(finished))  # a clone needs a finished trial to continue
        return True

    def ask(self, finished: Sequence[TrialRecord]) -> TrialRequest | None:
        study = self._study()
        with self.lock:
            if self.shared:
                trial = claim_trial(study, self.plan.settings.max_recommendations)
                if trial is None:
                    return None
            else:
                if self.population is not None and self.population.founders_launched(study):
                    self.population.enqueue_clone(study, finished)
                trial = study.ask()
        params = sample_params(self.space, trial)
        clone = clone_of(trial) if self.population is not None else None
        request = TrialRequest(
            number=trial.number,
            params=params,
            resume_folder=trial.user_attrs.get("resume_folder"),
            continues=clone.as_continuation() if clone is not None else None,
            baseline=bool(trial.user_attrs.get("baseline")),
            labels={"host": self.host, "worker": self.worker} if self.shared else {},
            handle=trial,
        )
        if self.shared:  # the ledger shows the trial while it runs, wherever it runs
            record = TrialRecord(
                trial.number,
                params=params,
                folder=str(self.plan.trial_folder(trial.number)),
                started=time.time(),
                **request.labels,
            )
            trial.set_user_attr(RECORD_ATTR, record.to_dict())
        return request

    def report(self, request: TrialRequest, epoch: int, value: float) -> bool:
        trial = request.handle
        if self.plan.settings.objectives:  # a multi-objective study takes no intermediate values
            return self.twin.report(request.number, epoch, value) if self.twin is not None else False
        with self.lock:
            trial.report(value, step=epoch)
            if self.plan.settings.fidelity == "none":
                return False
            return bool(trial.should_prune())

    def tell(self, request: TrialRequest, record: TrialRecord) -> None:
        study, trial = self._study(), request.handle
        with self.lock:
            # before the tell (a finished trial's attributes are frozen): the study holds every finished
            # trial's record, the ledger of a shared storage and what a rebuild of summary.json reads
            trial.set_user_attr(RECORD_ATTR, record.to_dict())
            limit = self.plan.settings.max_latency_ms
            if limit is not None and record.latency_ms is not None:  # feasible when <= 0 (Optuna's rule)
                trial.set_constraint("latency_ms", record.latency_ms - limit)
            state = optuna.trial.TrialState.COMPLETE
            if record.state == TrialState.COMPLETE:
                study.tell(trial, told_values(self.plan.settings, record.value, record.latency_ms))
            else:
                state = _STATES.get(record.state, optuna.trial.TrialState.FAIL)
                study.tell(trial, state=state)
        if self.twin is not None:
            self.twin.tell(request.number, state, record.value)

    def stop_reason(self, launched: int) -> str | None:
        if self.population is not None and launched < self.plan.settings.max_recommendations:
            return (
                "pbt: no finished trial left to continue from (none left a checkpoint, "
                "or every lineage has automl_max_generations generations)"
            )
        return None

    def ledger(self) -> list[TrialRecord] | None:
        return storage_records(self._study()) if self.shared else None

"""A sweep's Optuna study made again from its trial records: ``automl run --resume SWEEP --rebuild-study``,
or by itself on a resume whose journal lags summary.json (a journal cut short by a crash).

The records (summary.json's; the trial folders' for trials it lacks) go into a fresh journal in
trial-number order, each through the sweep's own sampling code: its parameters are enqueued (encoded
as :func:`automl.space.sampling.encode_params` does) and asked, so the trial carries the space's
distributions; the best-so-far value after each epoch (from its status.json) is reported, as the loop
did, for the pruner to compare; then it is told COMPLETE with its value, PRUNED or FAIL. A trial
that was running stays RUNNING, and the resume re-queues it as after any kill
(:mod:`automl.backends.optuna.resume`); a re-queued copy that never started is enqueued again. A
number without a record gets a placeholder tagged over budget, so trial numbers keep matching the
trial folders. The old journal is moved aside (``optuna.journal.damaged-<time>``), never deleted.

Not rebuilt: the pruner's own bookkeeping (Hyperband's and ASHA's rung attributes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna

from automl.backends.base import SweepPlan
from automl.backends.optuna.pbt import ATTR as PBT_ATTR
from automl.backends.optuna.shared_budget import OVER_BUDGET, RECORD_ATTR
from automl.backends.optuna.study import DEFINITION_ATTR, study_directions, told_values
from automl.errors import SettingError
from automl.results.kept_files import move_aside
from automl.results.trial_folders import (
    folder_record,
    merge_records,
    reported_values,
    settled,
    trial_numbers,
    validations,
)
from automl.results.trial_record import TrialRecord, TrialState
from automl.space.params import SearchSpace
from automl.space.sampling import encode_params, sample_params
from automl.spec import get_dotted

__all__ = ["folder_records", "rebuild_study", "study_lag"]

_UNFINISHED = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
_TOLD = {
    TrialState.PRUNED: optuna.trial.TrialState.PRUNED,
    TrialState.FAIL: optuna.trial.TrialState.FAIL,
}
PLACEHOLDER = "rebuilt"  # the user attribute of a trial the rebuild could not fill in, and why


def study_lag(
    study: optuna.Study, records: Sequence[TrialRecord], folder_numbers: Sequence[int]
) -> list[str]:
    """What the study lacks that the records or the trial folders show (empty: it is up to date)."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    lag = []
    for record in records:
        trial = trials.get(record.number)
        if trial is None:
            lag.append(f"trial {record.number} is missing")
        elif record.finished and trial.state in _UNFINISHED:
            lag.append(
                f"trial {record.number} is {record.state} in summary.json but {trial.state.name} in the study"
            )
    known = {r.number for r in records}
    lag += [f"trials/{n:04d} has no trial" for n in folder_numbers if n not in trials and n not in known]
    return lag


def folder_records(plan: SweepPlan, known: Sequence[TrialRecord]) -> list[TrialRecord]:
    """``known`` records with the trial folders' records for the numbers they lack."""
    names = [p.name for p in plan.space.params] if plan.space is not None else []
    numbers = {r.number for r in known}
    found = [
        folder_record(plan.trial_folder(n), n, names, plan.objective, plan.action)
        for n in trial_numbers(plan.folder)
        if n not in numbers
    ]
    return merge_records(known, [settled(r) for r in found if r is not None])


def rebuild_study(plan: SweepPlan, records: Sequence[TrialRecord], journal: Path) -> Path | None:
    """Write the study of ``records`` (the module docstring) to ``journal``; returns where the old
    journal was moved (None when there was none)."""
    if plan.space is None:
        raise SettingError("a plain training sweep has no study to rebuild")
    fresh = journal.with_name(f".{journal.name}.rebuilding")
    fresh.unlink(missing_ok=True)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.create_study(
        study_name=plan.study or plan.folder.name,
        storage=JournalStorage(JournalFileBackend(str(fresh))),
        sampler=optuna.samplers.RandomSampler(seed=0),  # every parameter is fixed: nothing is sampled
        directions=study_directions(plan.settings),
    )
    if plan.definition:
        study.set_user_attr(DEFINITION_ATTR, plan.definition)
    by_number = {r.number: r for r in records}
    for number in range(max(by_number, default=-1) + 1):
        record = by_number.get(number)
        if record is None:
            _placeholder(study, "no record or folder of this trial was found")
        else:
            _add(study, plan, plan.space, record, by_number)
    resumed = {r.resumed_from for r in records if r.resumed_from}
    for record in records:  # a re-queued copy that had not started yet
        if record.requeued and record.folder and record.folder not in resumed:
            _enqueue(study, plan.space, record, {"resume_folder": record.folder})
    kept = move_aside(journal, "damaged") if journal.exists() else None
    os.replace(fresh, journal)
    return kept


def _placeholder(study: optuna.Study, why: str, record: TrialRecord | None = None) -> None:
    attrs: dict[str, Any] = {OVER_BUDGET: True, PLACEHOLDER: why}
    if record is not None:
        attrs[RECORD_ATTR] = record.to_dict()
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=attrs))


def _enqueue(study: optuna.Study, space: SearchSpace, record: TrialRecord, attrs: Mapping[str, Any]) -> bool:
    try:
        encoded = encode_params(space, record.params)
    except SettingError:
        return False
    study.enqueue_trial(encoded, user_attrs=dict(attrs), skip_if_exists=False)
    return True


def _attrs(plan: SweepPlan, record: TrialRecord, by_number: Mapping[int, TrialRecord]) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if record.baseline:
        attrs["baseline"] = True
    if record.resumed_from:  # a re-queued copy: not counted again in a shared budget
        attrs["resume_folder"] = record.resumed_from
    if record.parent is not None:  # a PBT clone stays one (its lineage and its parent's checkpoint)
        parent = by_number.get(record.parent)
        spec = Path(record.folder or plan.trial_folder(record.number)) / "spec.yaml"
        epochs = _spec_epochs(spec) or (record.last_epoch or 0) + 1
        attrs[PBT_ATTR] = {
            "parent": record.parent,
            "checkpoint": (parent.checkpoint if parent else None) or "",
            "resume_epoch": record.resume_epoch or 0,
            "generation": record.generation or 1,
            "epochs": epochs,
        }
    return attrs


def _spec_epochs(spec: Path) -> int | None:
    import yaml

    try:
        epochs = get_dotted(yaml.safe_load(spec.read_text(encoding="utf-8")) or {}, "train.num_epochs")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return epochs if isinstance(epochs, int) else None


def _add(
    study: optuna.Study,
    plan: SweepPlan,
    space: SearchSpace,
    record: TrialRecord,
    by_number: Mapping[int, TrialRecord],
) -> None:
    if not _enqueue(study, space, record, _attrs(plan, record, by_number)):
        _placeholder(study, "its parameters are not in the sweep's space", record)
        return
    trial = study.ask()
    if trial.number != record.number:  # internal invariant: trials are numbered in creation order
        raise RuntimeError(f"rebuilt trial {record.number} got number {trial.number}")
    sample_params(space, trial)
    folder = Path(record.folder or plan.trial_folder(record.number))
    if not plan.settings.objectives:  # a multi-objective study takes no intermediate values
        for epoch, value in reported_values(
            validations(folder, plan.objective.metric, plan.action), plan.objective
        ):
            trial.report(value, step=epoch)
    trial.set_user_attr(RECORD_ATTR, record.to_dict())
    if record.state == TrialState.COMPLETE and record.value is not None:
        study.tell(trial, told_values(plan.settings, record.value, record.latency_ms))
    elif record.state.finished:
        study.tell(trial, state=_TOLD.get(record.state, optuna.trial.TrialState.FAIL))
    # RUNNING: interrupted; the resume re-queues it

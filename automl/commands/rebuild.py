"""``automl run --resume SWEEP --rebuild-study``: a sweep whose study journal or summary.json is damaged,
made whole again from what its folder still holds, then resumed.

What is read, best first: summary.json's trial records; the study's (each finished trial's record is a
user attribute of the study, with its state); each trial folder (``spec.yaml``, ``status.json``,
``trial.log``: :mod:`automl.results.trial_folders`) for trials neither lists. The sweep's settings come
from summary.json or, when it is lost, from the sweep definition the study holds (the ``automl_sweep``
attribute, found in the journal line by line even when other lines are damaged). With neither, the
rebuild is refused, saying what is missing.

What is written: the study again when its journal is missing, damaged or behind the records
(:mod:`automl.backends.optuna.rebuild`; kept as it is otherwise), and summary.json from the records,
STOPPED, with its best trial. Damaged files are moved aside (``<name>.damaged-<time>``), never deleted.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from automl.backends.base import SweepPlan
from automl.backends.storage_url import journal_path, shown
from automl.commands.sweep_folder import summary_document
from automl.commands.sweep_inputs import make_space
from automl.errors import SettingError, SweepFolderError
from automl.results.kept_files import move_aside
from automl.results.selection import best_trial
from automl.results.summary import SUMMARY, SweepSummary, read_summary
from automl.results.trial_folders import folder_record, merge_records, settled, trial_numbers
from automl.results.trial_record import BestTrial, TrialRecord, TrialState
from automl.settings.tao_settings import parse_settings

__all__ = ["rebuild_sweep"]


def _summary(folder: Path) -> tuple[dict[str, Any] | None, str | None]:
    """summary.json, or None and why it cannot be read."""
    try:
        return read_summary(folder), None
    except SweepFolderError as exc:
        return None, str(exc).split(";", 1)[0]


def _definition(folder: Path, storage: str | None, journal: Path | None) -> tuple[dict[str, Any] | None, str]:
    """The sweep definition the study holds, or None and why there is none."""
    from automl.backends.optuna.journal_file import read_definition
    from automl.backends.optuna.study import DEFINITION_ATTR

    if journal is not None:
        if not journal.is_file():
            return None, f"{journal} is missing"
        found = read_definition(journal, DEFINITION_ATTR)
        return found, "" if found else f"{journal} holds no sweep definition"
    study = _load_study(storage, folder.name, folder)
    found = study.user_attrs.get(DEFINITION_ATTR) if study is not None else None
    return (
        found,
        "" if found else f"the study {folder.name!r} in {shown(str(storage))} holds no sweep definition",
    )


def _load_study(storage: str | None, name: str, folder: Path) -> Any:
    import optuna

    from automl.backends.optuna.study import make_storage

    try:
        return optuna.load_study(study_name=name, storage=make_storage(storage, folder))
    except KeyError:
        return None


def _study_records(study: Any, plan: SweepPlan) -> list[TrialRecord]:
    """The study's trials as records: each finished trial's stored record, else its folder's with the
    study's state (a pruned trial is known as pruned only there)."""
    from automl.backends.optuna.shared_budget import OVER_BUDGET, RECORD_ATTR

    names = [p.name for p in plan.space.params] if plan.space is not None else []
    records = []
    for trial in study.get_trials(deepcopy=False):
        state = TrialState(trial.state.name)
        if trial.user_attrs.get(OVER_BUDGET) or state == TrialState.WAITING:
            continue
        stored = trial.user_attrs.get(RECORD_ATTR)
        if isinstance(stored, dict):
            record = TrialRecord.from_dict(stored)
            record = record.updated(state=state) if state.finished else record
        else:
            folder = plan.trial_folder(trial.number)
            found = folder_record(folder, trial.number, names, plan.objective, plan.action)
            record = settled(found or TrialRecord(trial.number, folder=str(folder)), state)
        if state == TrialState.COMPLETE and record.value is None:
            record = record.updated(value=trial.value)
        records.append(record)
    return records


def _plan(folder: Path, config: dict[str, Any], max_epochs: int, storage: str | None) -> SweepPlan:
    settings = parse_settings(config["setting_pairs"])
    base = config["base_spec"]
    action = config.get("action", "train")
    space = make_space(Path(config["schema"]), base, settings, config.get("param_ranges") or {}, action)
    definition = {**config, "max_epochs": max_epochs, "folder": str(folder.resolve())}
    study = config.get("study") or folder.name
    return SweepPlan(
        folder,
        base,
        space,
        settings,
        max_epochs,
        1,
        action=action,
        storage=storage,
        study=study,
        definition=definition,
    )


def _check_rebuildable(folder: Path, data: dict[str, Any]) -> None:
    backend = data.get("backend")
    if (data.get("policy") or {}).get("decision") != "auto" or backend == "none":
        raise SettingError(
            f"--rebuild-study: {folder} is a plain training run, which has no study; resume it with "
            f"`automl run --resume {folder}`"
        )
    if backend != "optuna":
        raise SettingError(
            f"--rebuild-study: {folder} ran on the {backend!r} backend; only an Optuna study is rebuilt "
            f"(resume a Ray Tune sweep with `automl run --resume {folder}`)"
        )


def rebuild_sweep(folder: Path, storage: str | None = None) -> dict[str, Any]:
    """Rebuild what is damaged (the module docstring); returns the summary document, ready to resume."""
    from automl.backends.optuna.journal_file import check_journal
    from automl.backends.optuna.rebuild import folder_records, rebuild_study, study_lag

    if not folder.is_dir():
        raise SweepFolderError(f"{folder}: no such sweep folder; give the folder `automl run` printed")
    data, unreadable = _summary(folder)
    storage = data["config"].get("storage") if data is not None else storage
    journal = journal_path(storage, folder)
    if data is None:
        definition, missing = _definition(folder, storage, journal)
        if definition is None:
            raise SweepFolderError(
                f"{folder}: cannot rebuild: {unreadable} and {missing}, so the sweep's settings are lost; "
                f"{folder}/trials/ still holds each trial's spec.yaml, trial.log and status.json; start a new "
                f"sweep with `automl run` (and --storage URL here if the study is elsewhere)"
            )
        config = {k: v for k, v in definition.items() if k not in ("max_epochs", "folder")}
        policy = {
            "decision": "auto",
            "reason": f"rebuilt from the study ({SUMMARY} was damaged)",
            "message": None,
        }
        plan = _plan(folder, config, int(definition["max_epochs"]), storage)
        data = summary_document(folder.name, plan.settings, config, plan.space, plan.max_epochs, policy)
    else:
        _check_rebuildable(folder, data)
        plan = _plan(folder, data["config"], int(data["max_epochs"]), storage)
    study = None
    try:
        if journal is not None:
            warning = check_journal(journal, folder, shared=bool(storage))
            if warning:
                print(warning, flush=True)
        study = _load_study(storage, plan.study or folder.name, folder)
    except SweepFolderError as damaged:
        print(f"rebuilding the study: {str(damaged).split(';', 1)[0]}", flush=True)
    from_study = {r.number: r for r in _study_records(study, plan)} if study is not None else {}
    known = [TrialRecord.from_dict(t) for t in data.get("trials") or []]
    # a trial summary.json last saw running that the study saw finish (killed between the two writes)
    known = [
        from_study[r.number]
        if not r.finished and r.number in from_study and from_study[r.number].finished
        else r
        for r in known
    ]
    records = folder_records(plan, merge_records(known, from_study.values()))
    where = str(journal) if journal is not None else shown(str(storage))
    lag = study_lag(study, records, trial_numbers(folder)) if study is not None else ["it cannot be read"]
    if not lag:
        print(f"the study in {where} is whole and up to date: kept as it is", flush=True)
    elif journal is None:
        raise SweepFolderError(
            f"--rebuild-study: the study {plan.study!r} in {where} is behind the trial folders ({'; '.join(lag[:3])}); "
            f"only a journal file is rebuilt: start a new sweep, or copy the trial folders into a new one"
        )
    else:
        kept = rebuild_study(plan, records, journal)
        note = f" (the old journal is kept in {kept.name})" if kept else ""
        print(f"rebuilt the study in {journal} from {len(records)} trial records{note}", flush=True)
    summary_path = folder / SUMMARY
    if unreadable is not None and summary_path.exists():
        print(f"{summary_path} was damaged: kept in {move_aside(summary_path, 'damaged').name}", flush=True)
    summary = SweepSummary(folder, {**data, "status": "STOPPED"})
    summary.replace_trials(records)
    best = best_trial(records, multi_fidelity=plan.multi_fidelity, objective=plan.objective)
    summary.set(
        status="STOPPED",
        best=BestTrial.of(best, plan.objective.metric).to_dict() if best is not None else None,
        rebuilt=time.time(),
    )
    print(f"rebuilt {summary_path} from {len(records)} trials", flush=True)
    return summary.data

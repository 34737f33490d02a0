"""Which trial is best, and which checkpoints a finished sweep keeps.

A trial's score is its best epoch's metric (TAO keeps the last epoch's; we keep the best and record
both). With multi-fidelity search (hyperband, asha) the best is chosen among the trials that reached
the largest budget, when any did, as TAO does; otherwise among all scored trials. In a sweep that
measures latency, of equally scored trials the fastest is best (the earliest of equally fast ones).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from automl.results.objective import Objective
from automl.results.trial_record import TrialRecord, TrialState

__all__ = ["best_trial", "keep_only_best_checkpoint", "shared_failure"]

_EPOCH = re.compile(r"model_epoch_(\d+)\.pth$")


def best_trial(
    trials: Sequence[TrialRecord], *, multi_fidelity: bool, objective: Objective
) -> TrialRecord | None:
    scored = [t for t in trials if t.value is not None and t.state.scored]
    if not scored:
        return None
    if multi_fidelity:
        top_budget = max(int(t.last_epoch or 0) for t in scored)
        at_top = [t for t in scored if int(t.last_epoch or 0) == top_budget]
        scored = at_top or scored
    best = objective.best(scored, lambda t: t.value)
    if best is None or best.latency_ms is None:
        return best
    # of trials with the same score, the fastest network (a latency sweep): the best is on the front
    tied = [t for t in scored if t.value == best.value and t.latency_ms is not None]
    return min(tied, key=lambda t: float(t.latency_ms or 0.0))


def keep_only_best_checkpoint(train_dir: Path, best_epoch: int | None) -> list[Path]:
    """Delete a trial's epoch checkpoints except its best one (``automl_delete_intermediate_ckpt``)."""
    removed: list[Path] = []
    if not train_dir.is_dir():
        return removed
    for path in train_dir.glob("model_epoch_*.pth"):
        match = _EPOCH.search(path.name)
        if match and (best_epoch is None or int(match.group(1)) != best_epoch):
            path.unlink(missing_ok=True)
            removed.append(path)
    link = train_dir / "rtdetr_model_latest.pth"
    if link.is_symlink() and not link.exists():
        link.unlink()
    return removed


def shared_failure(trials: Sequence[TrialRecord]) -> str | None:
    """When every finished trial failed, the cause they share (or the most common one)."""
    finished = [t for t in trials if t.state.finished]
    if not finished or any(t.state != TrialState.FAIL for t in finished):
        return None
    classes: dict[str, list[TrialRecord]] = {}
    for t in finished:
        classes.setdefault(t.failure_class or "unknown", []).append(t)
    name, group = max(classes.items(), key=lambda kv: len(kv[1]))
    return f"all {len(finished)} trials failed; {len(group)} with {name}: {group[0].error or 'no reason recorded'}"

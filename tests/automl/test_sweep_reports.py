"""What the multi-fidelity schedule sees of a trial's epochs (a real Optuna study)."""

from __future__ import annotations

from types import SimpleNamespace

import optuna

from automl.backends.base import SweepPlan, TrialRequest
from automl.backends.optuna.backend import OptunaBackend
from automl.launch.status_tail import EpochReport
from automl.results.summary import SweepSummary
from automl.settings.tao_settings import parse_settings
from automl.space.params import SearchParam, SearchSpace
from automl.sweep.loop import SweepLoop

SPACE = SearchSpace([SearchParam("train.optim.lr", "float", 1e-3, 1e-4, 1e-2, "log")])


class _Sweep:
    """The loop's epoch handling in front of an Optuna backend on ``study``."""

    def __init__(self, tmp_path, study: optuna.Study, **settings):
        plan = SweepPlan(
            folder=tmp_path,
            base_spec={},
            space=SPACE,
            settings=parse_settings(settings),
            max_epochs=5,
            concurrency=1,
        )
        self.backend = OptunaBackend(plan)
        self.backend.study = study
        display = SimpleNamespace(epoch=lambda *args: None)
        self.loop = SweepLoop(plan, SweepSummary(tmp_path, {}), display)  # type: ignore[arg-type]

    def _on_epoch(self, number, trial, report: EpochReport) -> bool:
        return self.loop._on_epoch(self.backend, TrialRequest(number, {}, handle=trial), report)


def _sweep(tmp_path, study: optuna.Study, **settings) -> _Sweep:
    return _Sweep(tmp_path, study, **settings)


def test_the_schedule_sees_each_trials_best_epoch_so_far(tmp_path):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    sweep, trial = _sweep(tmp_path, study, automl_algorithm="asha"), study.ask()
    for epoch, value in enumerate([0.1, 0.4, 0.3, 0.5]):
        sweep._on_epoch(trial.number, trial, EpochReport(epoch, {"val_mAP50": value}))
    assert study.trials[0].intermediate_values == {0: 0.1, 1: 0.4, 2: 0.4, 3: 0.5}


def test_a_dip_after_a_lead_is_not_pruned_by_successive_halving(tmp_path):
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    sweep = _sweep(tmp_path, study, automl_algorithm="asha")
    leader = study.ask()
    for epoch, value in enumerate([0.1, 0.3, 0.35, 0.4]):
        sweep._on_epoch(leader.number, leader, EpochReport(epoch, {"val_mAP50": value}))
    study.tell(leader, 0.4)
    challenger = study.ask()
    pruned = [
        sweep._on_epoch(challenger.number, challenger, EpochReport(e, {"val_mAP50": v}))
        for e, v in enumerate([0.1, 0.47, 0.5, 0.38])
    ]
    # at the rung (epoch 3) its 0.38 is under the leader's 0.4, but its best epoch so far is not
    assert pruned == [False, False, False, False]


def test_loss_metrics_keep_the_lowest_value(tmp_path):
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.NopPruner())
    sweep, trial = _sweep(tmp_path, study, metric="val_loss"), study.ask()
    for epoch, value in enumerate([3.0, 2.0, 2.5]):
        sweep._on_epoch(trial.number, trial, EpochReport(epoch, {"val_loss": value}))
    assert study.trials[0].intermediate_values == {0: 3.0, 1: 2.0, 2: 2.0}

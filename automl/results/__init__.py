"""A sweep's results: the objective, trial records, summary.json and the choice of the best trial."""

from automl.results.objective import Objective
from automl.results.summary import SweepSummary, read_summary, write_json_atomic
from automl.results.trial_record import BestTrial, TrialRecord, TrialState

__all__ = [
    "BestTrial",
    "Objective",
    "SweepSummary",
    "TrialRecord",
    "TrialState",
    "read_summary",
    "write_json_atomic",
]

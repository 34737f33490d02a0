"""`automl_algorithm=pbt` on the Optuna backend: founders, then clones that continue the best checkpoints.

The explore step and the parent choice run on a real Optuna study over TAO's RT-DETR space; one
slow test runs a real sweep whose second trial resumes the first one's best checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from automl.backends.optuna.pbt import Population, clone_of, explore_moves, perturb_params
from automl.backends.ray_tune.trainable import space_distributions
from automl.commands.sweep_inputs import make_space
from automl.results.trial_record import TrialRecord, TrialState
from automl.settings.tao_settings import parse_settings
from automl.space.sampling import sample_params
from tests.conftest import tiny_spec, write_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def space(root: Path):
    import yaml

    spec = yaml.safe_load((root / "references" / "spec_template_train.yaml").read_text(encoding="utf-8"))
    return make_space(root / "schemas" / "train.schema.json", spec, parse_settings({}), {})


def test_explore_moves_training_parameters_only(space) -> None:
    """A clone keeps the architecture of the weights it copies; numbers move by the factor, choices
    are drawn again a quarter of the time, and every value stays inside its range."""
    moves = explore_moves(space)
    names = {p.optuna_name: p.name for p in space.params}
    assert moves and not any(names[n].startswith("model.") for n in moves)
    assert any(names[n].startswith("model.") for n in names), "the space searches the architecture too"
    dists = space_distributions(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rng = random.Random(0)
    changed = {name: 0 for name in moves}
    for _ in range(40):
        parent = study.ask()
        sample_params(space, parent)
        params = perturb_params(parent.params, parent.distributions, moves, 1.2, rng)
        for name, value in params.items():
            if name not in moves:
                assert value == parent.params[name], name
                continue
            changed[name] += value != parent.params[name]
            dist = dists[name]
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                assert value in dist.choices
            else:
                assert dist.low <= value <= dist.high, (name, value)
                if moves[name] == "scale" and value not in (dist.low, dist.high):
                    ratio = value / parent.params[name]
                    if isinstance(dist, optuna.distributions.FloatDistribution) and not dist.step:
                        assert ratio == pytest.approx(1.2) or ratio == pytest.approx(1 / 1.2), name
        study.tell(parent, 0.0)
    scaled = [n for n, m in moves.items() if m == "scale"]
    assert all(changed[n] > 20 for n in scaled), changed  # numbers always move (unless at a bound)
    choices = [n for n, m in moves.items() if m == "choice"]
    assert all(0 < changed[n] < 30 for n in choices), changed  # about a quarter of the time


def test_clones_copy_a_top_trial_after_the_founders(space, tmp_path: Path) -> None:
    settings = parse_settings(
        {
            "automl_algorithm": "pbt",
            "automl_population_size": 4,
            "automl_eval_interval": 3,
            "automl_max_generations": 2,
        }
    )
    population = Population(space, settings, seed=1)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.enqueue_trial({})  # a waiting trial (the baseline) is not a launched founder
    assert not population.founders_launched(study)
    finished = []
    for number, value in enumerate([0.2, 0.9, 0.5, 0.1]):
        trial = study.ask()
        sample_params(space, trial)
        study.tell(trial, value)
        ckpt = tmp_path / f"{number}.pth"
        ckpt.write_bytes(b"weights")
        finished.append(
            TrialRecord(number, state=TrialState.COMPLETE, value=value, best_epoch=4, checkpoint=str(ckpt))
        )
    assert population.founders_launched(study)
    assert [t.number for t in population.parents(finished)] == [1]  # the top quarter

    clone = population.enqueue_clone(study, finished)
    assert clone is not None
    assert (clone.parent, clone.resume_epoch, clone.epochs, clone.generation) == (1, 5, 8, 1)
    trial = study.ask()
    assert clone_of(trial) == clone
    values = sample_params(space, trial)  # the enqueued params decode inside the space
    parent_values = sample_params(space, optuna.trial.FixedTrial(study.trials[1].params))
    assert all(values[k] == v for k, v in parent_values.items() if k.startswith("model."))
    assert values != parent_values

    # a clone at automl_max_generations has no children; a trial without its checkpoint neither
    finished = [finished[1].updated(generation=2), finished[2].updated(checkpoint=str(tmp_path / "gone.pth"))]
    assert population.parents(finished) == []
    assert population.enqueue_clone(study, finished) is None


def automl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "automl.cli", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.slow
def test_a_pbt_sweep_continues_the_baselines_best_checkpoint(synthetic_data: Path, tmp_path: Path) -> None:
    """Population of one (the baseline): trials 1 and 2 each resume the best trial's best epoch
    checkpoint for one more epoch at a perturbed lr, which the trainer applies."""
    spec = tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 2})
    path = write_spec(tmp_path / "spec.yaml", spec)
    proc = automl(
        *["run", "-e", str(path), "--algorithm", "pbt", "--trials", "3", "--max-epochs", "2"],
        *["--setting", "run_baseline=true", "--setting", "automl_population_size=1"],
        *["--setting", "automl_eval_interval=1", "--results-dir", str(tmp_path)],
        *["--name", "p", "--seed", "0", "--experiment", "pbt", "--no-pipeline"],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "p" / "summary.json").read_text())
    trials = {t["number"]: t for t in data["trials"]}
    assert data["status"] == "FINISHED" and sorted(trials) == [0, 1, 2]
    assert all(t["state"] == "COMPLETE" for t in trials.values())
    for number in (1, 2):
        clone = trials[number]
        parent = trials[clone["parent"]]
        assert clone["parent"] < number and clone["generation"] == parent.get("generation", 0) + 1
        assert clone["resume_epoch"] == parent["best_epoch"] + 1
        log = (Path(clone["folder"]) / "trial.log").read_text()
        resumed = f"Resuming from {parent['folder']}/train/model_epoch_{parent['best_epoch']:03d}.pth"
        assert resumed in log, log[-2000:]
        lines = [
            json.loads(s) for s in (Path(clone["folder"]) / "train" / "status.json").read_text().splitlines()
        ]
        epochs = [s["epoch"] for s in lines if s["status"] == "RUNNING"]
        assert epochs == [clone["resume_epoch"]]  # one more epoch on top of the parent's
        # the trainer trains at the clone's lr (times the schedule's decays so far), not the parent's;
        # the kpi's lr is the backbone's (TAO logs the last parameter group's)
        lr = float(clone["params"]["train.optim.lr_backbone"])
        decay = float(clone["params"].get("train.optim.lr_decay", 0.1))
        assert lr != pytest.approx(float(parent["params"]["train.optim.lr_backbone"]))
        logged = float([s for s in lines if s["status"] == "RUNNING"][-1]["kpi"]["lr"])
        assert any(logged == pytest.approx(lr * decay**k) for k in range(3)), (logged, lr)
    assert data["best"]["trial"] in trials
    assert "trial 1 started (continues trial 0 from epoch" in proc.stdout

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pbt")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    tags = runs["trial-0002"].data.tags
    assert tags["pbt.parent"] == str(trials[2]["parent"]) and tags["pbt.resume_epoch"] == str(
        trials[2]["resume_epoch"]
    )
    assert "pbt.parent" not in runs["trial-0000"].data.tags


def test_a_resumed_sweep_requeues_an_interrupted_clone_as_a_clone(tmp_path: Path) -> None:
    """`automl run --resume`: a clone left RUNNING comes back with its parent's checkpoint to continue."""
    from automl.backends.base import SweepPlan
    from automl.backends.optuna.pbt import ATTR
    from automl.backends.optuna.resume import requeue_interrupted
    from automl.results.summary import SweepSummary
    from automl.sweep.loop import SweepLoop

    study = optuna.create_study(direction="maximize")
    attr = {
        "parent": 0,
        "checkpoint": "/x/model_epoch_004.pth",
        "resume_epoch": 5,
        "generation": 1,
        "epochs": 7,
    }
    study.enqueue_trial({}, user_attrs={ATTR: attr})
    interrupted = study.ask()
    (tmp_path / "sweep").mkdir()
    summary = SweepSummary(tmp_path / "sweep", {"name": "pbt", "settings": {}, "config": {}})
    plan = SweepPlan(tmp_path / "sweep", {}, None, parse_settings({}), max_epochs=7, concurrency=1)
    hooks = SweepLoop(plan, summary, display=None)  # type: ignore[arg-type]
    assert requeue_interrupted(study, hooks) == [interrupted.number]
    assert summary.trials()[0].requeued and summary.trials()[0].state == TrialState.FAIL
    again = study.ask()
    assert clone_of(again) == clone_of(interrupted) and again.user_attrs["resume_folder"]

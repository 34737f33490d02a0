"""`automl run --backend ray`: a real Ray Tune sweep of real trial processes on local Ray.

One Ray sweep per test module (Ray's start-up costs ~10-30 s on a small machine); the rest are
checks that need no Ray start: the space's encoding round trip, the Tune domains PBT perturbs, the
BOHB package message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from automl.backends.ray_tune.trainable import decode_params, space_distributions
from automl.commands.sweep_inputs import make_space
from automl.settings.tao_settings import parse_settings
from automl.space.sampling import sample_params
from tests.conftest import tiny_spec, write_spec


def automl(*args: str, timeout: int = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "automl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def live_trial_processes(marker: str) -> list[str]:
    """Command lines of running processes that mention ``marker`` (a test's tmp folder)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and "model.cli" in cmd:
            found.append(cmd)
    return found


@pytest.fixture(scope="module")
def space(root: Path):
    spec = yaml_spec(root)
    return make_space(root / "schemas" / "train.schema.json", spec, parse_settings({}), {})


def yaml_spec(root: Path) -> dict:
    import yaml

    return yaml.safe_load((root / "references" / "spec_template_train.yaml").read_text(encoding="utf-8"))


def test_tune_config_decodes_to_the_same_values_optuna_samples(space) -> None:
    """Ray's config holds the encoded values; decoding them gives exactly what sample_params drew."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        trial = study.ask()
        drawn = sample_params(space, trial)
        assert decode_params(space, trial.params) == drawn
        study.tell(trial, 0.0)


def test_pbt_domains_keep_the_space_constraints(space) -> None:
    """PBT samples and perturbs the fixed distributions; decoded values still obey the space's rules
    (dependencies such as num_select <= num_queries, ranges), even when a value is pushed out of range."""
    import random

    from automl.backends.ray_tune.tuner import _tune_domains

    domains = _tune_domains(space)
    assert set(domains) == set(space_distributions(space))
    rng = random.Random(0)
    for _ in range(50):
        config = {name: domain.sample() for name, domain in domains.items()}
        for name in config:  # PBT explore: multiply by 1.2 or 0.8, possibly leaving the range
            if isinstance(config[name], float):
                config[name] *= rng.choice((1.2, 0.8, 5.0))
        params = decode_params(space, config)
        if "model.num_select" in params and "model.num_queries" in params:
            assert params["model.num_select"] <= params["model.num_queries"]
        for param in space.params:
            value = params[param.name]
            if param.kind == "categorical":
                assert value in param.choices
            elif param.encoding != "fraction":
                assert param.low <= value <= param.high, (param.name, value)


def test_bohb_without_its_packages_says_what_to_install(synthetic_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    try:
        import ConfigSpace  # noqa: F401
        import hpbandster  # noqa: F401

        pytest.skip("TuneBOHB's packages are installed")
    except ImportError:
        pass
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused"))
    proc = automl(
        *["run", "-e", str(spec), "--backend", "ray", "--algorithm", "bohb", "--trials", "2"],
        *["--results-dir", str(tmp_path), "--name", "b", "--no-track", "--no-pipeline"],
    )
    assert proc.returncode != 0
    assert "pip install ConfigSpace hpbandster" in proc.stderr, proc.stderr[-2000:]
    assert not live_trial_processes(str(tmp_path))


@pytest.mark.slow
def test_asha_sweep_on_local_ray(synthetic_data: Path, tmp_path: Path) -> None:
    """3 trials, ASHA (the Ray default), 2 at a time: the same summary, MLflow runs and trial folders
    as the Optuna backend, each trial recording the Ray node that ran it; nothing left running."""
    pytest.importorskip("ray")
    spec = write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 2})
    )
    proc = automl(
        *["run", "-e", str(spec), "--backend", "ray", "--trials", "3", "--max-epochs", "2"],
        *["--concurrency", "2", "--results-dir", str(tmp_path), "--name", "r1"],
        *["--seed", "0", "--param", "train.optim.lr=1e-4:3e-3:log", "--no-pipeline"],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "r1" / "summary.json").read_text())
    assert data["status"] == "FINISHED" and data["backend"] == "ray"
    assert data["algorithm"]["fidelity"] == "asha" and data["ray"]["scheduler"] == "asha"
    trials = data["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in trials)
    assert all(1e-4 <= t["params"]["train.optim.lr"] <= 3e-3 for t in trials)
    assert len({t["params"]["train.optim.lr"] for t in trials}) == 3
    assert all(t["node_id"] and t["hostname"] for t in trials)
    for t in trials:  # TAO's layout in each trial folder; only the best epoch's checkpoint is kept
        folder = Path(t["folder"])
        assert folder == tmp_path / "r1" / "trials" / f"{t['number']:04d}"
        assert (folder / "spec.yaml").is_file() and (folder / "train" / "status.json").is_file()
        assert [p.name for p in (folder / "train").glob("model_epoch_*.pth")] == [
            f"model_epoch_{t['best_epoch']:03d}.pth"
        ]
    best = data["best"]
    assert best["value"] == max(t["value"] for t in trials if t["state"] == "COMPLETE")
    assert Path(best["checkpoint"]).is_file()
    assert "trial 0 started" in proc.stdout and "best: trial" in proc.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("automl").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and len(children) == 3
    assert {c.data.tags.get("state") for c in children} <= {"COMPLETE", "PRUNED"}
    # the trial processes and the local Ray are gone
    assert not live_trial_processes(str(tmp_path))
    status = automl("status", str(tmp_path / "r1"))
    assert status.returncode == 0 and "backend ray" in status.stdout


@pytest.mark.slow
def test_pbt_clones_the_top_trial_and_perturbs(synthetic_data: Path, tmp_path: Path) -> None:
    """PBT with 2 trials and 2 epochs: after epoch 0 the bottom trial restarts from the top trial's
    checkpoint (its log says so), keeps the top trial's architecture and runs on with explored values."""
    pytest.importorskip("ray")
    spec = write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 2})
    )
    proc = automl(
        *["run", "-e", str(spec), "--backend", "ray", "--algorithm", "pbt", "--trials", "2"],
        *["--max-epochs", "2", "--concurrency", "2", "--results-dir", str(tmp_path)],
        *["--name", "p1", "--seed", "0", "--no-track", "--no-pipeline"],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "p1" / "summary.json").read_text())
    assert data["status"] == "FINISHED" and data["ray"]["scheduler"] == "pbt"
    trials = {t["number"]: t for t in data["trials"]}
    assert sorted(trials) == [0, 1] and all(t["state"] == "COMPLETE" for t in trials.values())
    clones = []
    for number, trial in trials.items():
        other = trials[1 - number]
        log = (Path(trial["folder"]) / "trial.log").read_text()
        if f"Resuming from {other['folder']}/train/model_epoch_000.pth" in log:
            clones.append((trial, other))
    assert len(clones) == 1, "exactly one trial (the bottom one) copies the other's checkpoint"
    clone, top = clones[0]
    arch = [name for name in top["params"] if name.startswith("model.")]
    assert arch and all(clone["params"][name] == top["params"][name] for name in arch)
    assert not live_trial_processes(str(tmp_path))


def _wait(condition, timeout: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _ray_processes_of_this_user() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and proc.stat().st_uid == os.getuid():
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if "raylet" in cmd or "gcs_server" in cmd or cmd.startswith("ray::"):
                    found.append(cmd[:120])
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_resume_after_the_driver_is_killed(synthetic_data: Path, tmp_path: Path) -> None:
    """SIGKILL the driver mid-trial: its local Ray and the trial's processes go with it; `--resume`
    restores the Tune experiment, the interrupted trial continues from its own last checkpoint and the
    sweep finishes with every trial."""
    pytest.importorskip("ray")
    assert not _ray_processes_of_this_user(), (
        "another Ray is running; this test needs the machine's Ray to itself"
    )
    spec = write_spec(
        tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused", train={"num_epochs": 6})
    )
    summary = tmp_path / "k1" / "summary.json"
    driver = subprocess.Popen(
        [
            *[sys.executable, "-m", "automl.cli", "run", "-e", str(spec), "--backend", "ray"],
            *["--trials", "2", "--max-epochs", "6", "--concurrency", "1"],
            *["--results-dir", str(tmp_path), "--name", "k1", "--seed", "0", "--no-track"],
            *["--no-pipeline", "--param", "train.optim.lr=1e-4:3e-3:log"],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:

        def trial_0_validated() -> bool:
            try:
                trials = json.loads(summary.read_text())["trials"]
            except (OSError, ValueError, KeyError):
                return False
            return bool(trials) and trials[0].get("last_epoch") is not None

        _wait(trial_0_validated, 300, "trial 0's first validation")
    finally:
        driver.kill()
        driver.wait()
    _wait(lambda: not live_trial_processes(str(tmp_path)), 60, "the killed sweep's trial processes to end")
    _wait(lambda: not _ray_processes_of_this_user(), 60, "the killed sweep's Ray to end")
    before = json.loads(summary.read_text())
    assert before["status"] == "RUNNING" and before["trials"][0]["state"] == "RUNNING"
    proc = automl("run", "--resume", str(tmp_path / "k1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(summary.read_text())
    assert data["status"] == "FINISHED"
    assert [(t["number"], t["state"]) for t in data["trials"]] == [(0, "COMPLETE"), (1, "COMPLETE")]
    log = (tmp_path / "k1" / "trials" / "0000" / "trial.log").read_text()
    assert f"Resuming from {tmp_path / 'k1' / 'trials' / '0000' / 'train'}" in log
    assert not live_trial_processes(str(tmp_path))

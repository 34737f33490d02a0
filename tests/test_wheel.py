"""The wheel works: built from the checkout, installed (not editable) into a fresh venv, and run by
its console scripts from an unrelated folder, as a user who ran `pip install .` would.

The venv gets no dependencies of its own: a ``.pth`` file puts this environment's site-packages
after its own, so nothing is downloaded, and the checkout is on no path (the packages that run are
the venv's copies, which the first test checks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT, tiny_spec, write_spec

pytestmark = pytest.mark.slow

# Not part of a source distribution: local environments, build outputs, run outputs (at the top),
# caches (anywhere).
_TOP_LEVEL_OUTPUTS = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "data",
    "results",
    "bench-*",
    "mlruns",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
)
_CACHES = shutil.ignore_patterns("__pycache__", "*.egg-info")


def _not_source(folder: str, names: list[str]) -> set[str]:
    ignored = _CACHES(folder, names)
    return ignored | _TOP_LEVEL_OUTPUTS(folder, names) if Path(folder) == ROOT else ignored


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    # A clean copy of the checkout: a stale build/ folder would leak moved modules into the wheel.
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_not_source, symlinks=True)
    built = _run(
        [
            *[sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"],
            *["--no-index", "--wheel-dir", str(work / "dist"), str(source)],
        ],
        cwd=work,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (work / "dist").glob("rtdetr_automl-*.whl")

    venv = work / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    assert made.returncode == 0, made.stderr[-3000:]
    python = venv / "bin" / "python"
    own = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work)
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))  # this env's, in order
    (Path(own.stdout.strip()) / "_test_env_site_packages.pth").write_text("\n".join(deps) + "\n")
    installed = _run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile", str(wheel)], cwd=work
    )
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return venv


@pytest.fixture()
def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def _user(venv: Path, *args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """A console script of the venv, run as a user would (the venv on PATH, nothing else set)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RTDETR_AUTOML_ROOT", "VIRTUAL_ENV")
    }
    env.update(
        OMP_NUM_THREADS="1", VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    )
    return _run([str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, timeout=timeout)


def test_the_installed_copy_runs_with_its_files(venv, user_folder):
    probe = (
        "import json, automl, model\n"
        "from automl import project_files\n"
        "from model import paths\n"
        "print(json.dumps({'automl': automl.__file__, 'model': model.__file__,\n"
        "    'schema': str(project_files.schema_file('train')), 'skill_info': str(project_files.skill_info_file()),\n"
        "    'template': str(project_files.spec_template_file('train')), 'demo': str(project_files.demo_spec_file()),\n"
        "    'references': str(paths.references_dir()), 'configs': str(paths.configs_dir())}))\n"
    )
    proc = _user(venv, "python", "-c", probe, cwd=user_folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = {name: Path(path) for name, path in json.loads(proc.stdout).items()}
    for name, path in found.items():
        assert path.is_relative_to(venv) and path.exists(), (name, path)
        assert not path.resolve().is_relative_to(ROOT), (name, path)
    assert found["schema"].parent.name == "schemas" and found["demo"].name == "demo.yaml"


def test_rtdetr_validate_on_the_embedded_default(venv, user_folder):
    synth = _user(
        venv,
        *["rtdetr", "dataset", "synth", "--out", "data/synthetic"],
        *["--train", "8", "--val", "4", "--test", "4", "--size", "64"],
        cwd=user_folder,
    )
    assert synth.returncode == 0, synth.stderr[-3000:]
    where = _user(
        venv, "python", "-c", "from model.paths import configs_dir; print(configs_dir())", cwd=user_folder
    )
    demo = Path(where.stdout.strip()) / "demo.yaml"
    proc = _user(venv, "rtdetr", "validate", "-e", str(demo), "--format", "json", cwd=user_folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = json.loads(proc.stdout)
    assert spec["dataset"]["train_data_sources"][0]["json_file"].startswith(
        str(user_folder / "data" / "synthetic")
    )
    assert spec["train"]["num_epochs"] >= 1 and spec["model"]["backbone"]


def test_automl_space_on_the_embedded_default(venv, user_folder):
    proc = _user(venv, "automl", "space", cwd=user_folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train.optim.lr" in proc.stdout
    assert not (user_folder / "schemas").exists()  # read from the installed package, nothing written here


def test_automl_run_policy_off_one_epoch(venv, user_folder, synthetic_data):
    spec = write_spec(
        user_folder / "spec.yaml", tiny_spec(synthetic_data, user_folder / "unused", train={"num_epochs": 1})
    )
    proc = _user(
        venv,
        *["automl", "run", "-e", spec.name, "--policy", "off", "--results-dir", "results", "--name", "plain"],
        cwd=user_folder,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "AutoML: plain training" in proc.stdout
    folder = user_folder / "results" / "plain"
    data = json.loads((folder / "summary.json").read_text())
    assert data["status"] == "FINISHED" and data["policy"]["decision"] == "off"
    assert [t["state"] for t in data["trials"]] == ["COMPLETE"] and data["space"] is None
    assert data["best"]["trial"] == 0 and Path(data["best"]["checkpoint"]).is_file()
    trial = user_folder / data["trials"][0]["folder"]  # relative where --results-dir is
    assert (trial / "spec.yaml").is_file() and (trial / "train" / "status.json").is_file()
    assert (trial / "train" / "model_epoch_000.pth").is_file()
    # the best trial's pipeline, whose specs start from the installed spec templates
    pipeline = data["pipeline"]
    assert pipeline["status"] == "FINISHED" and pipeline["failed"] == []
    assert pipeline["evaluate"]["state"] == "SUCCESS" and pipeline["export"]["state"] == "SUCCESS"
    assert Path(pipeline["export"]["onnx_file"]).is_file()

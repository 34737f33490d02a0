"""`rtdetr distill`: a trained tiny teacher (ResNet-34, 3 decoder layers) distilled into a smaller
student (ResNet-18, 2 decoder layers) on the synthetic data; bad bindings fail before training."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from model.errors import ConfigError, SpecError
from tests.conftest import tiny_spec, write_spec

TEACHER_MODEL = {"backbone": "resnet_34", "dec_layers": 3}
BINDINGS = [
    {"student_module_name": "srcs", "teacher_module_name": "srcs", "criterion": "IOU", "weight": 1.0},
    {"student_module_name": "backbone", "teacher_module_name": "backbone", "criterion": "L2", "weight": 1.0},
    {
        "student_module_name": "model.decoder",
        "teacher_module_name": "model.decoder",
        "criterion": "KL",
        "weight": 2.0,
    },
]
KPI_NAMES = ["distill_srcs", "distill_backbone", "distill_decoder"]


def teacher_spec(data: Path, out: Path) -> dict:
    spec = tiny_spec(data, out, model=TEACHER_MODEL, train={"num_epochs": 1})
    return spec


def distill_spec(data: Path, out: Path, teacher_ckpt: Path, bindings: list | None = None, **sections) -> dict:
    spec = tiny_spec(data, out, **sections)
    spec["distill"] = {
        "teacher": teacher_spec(data, out)["model"],
        "pretrained_teacher_model_path": str(teacher_ckpt),
        "bindings": bindings if bindings is not None else BINDINGS,
    }
    return spec


def status_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "status.json").read_text().splitlines()]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def teacher_ckpt(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher trained for one epoch by `rtdetr train`."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    folder = tmp_path_factory.mktemp("teacher")
    spec = write_spec(folder / "teacher.yaml", teacher_spec(synthetic_data, folder / "out"))
    proc = subprocess.run(
        [sys.executable, "-m", "model.cli", "train", "-e", str(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder / "out" / "train" / "model_epoch_000.pth"


@pytest.mark.slow
def test_distill_logs_each_binding_loss_and_saves_the_student_like_train(
    synthetic_data, teacher_ckpt, tmp_path, run_rtdetr
):
    spec = distill_spec(synthetic_data, tmp_path / "out", teacher_ckpt, train={"num_epochs": 3})
    before = sha(teacher_ckpt)
    proc = run_rtdetr("distill", "-e", str(write_spec(tmp_path / "spec.yaml", spec)))
    assert proc.returncode == 0, proc.stderr[-3000:]

    folder = tmp_path / "out" / "distill"
    lines = status_lines(folder)
    assert [line["status"] for line in lines] == ["STARTED", "RUNNING", "RUNNING", "RUNNING", "SUCCESS"]
    assert lines[0]["message"] == "Starting RT-DETR distill."
    epochs = [line for line in lines if line["status"] == "RUNNING"]
    for line in epochs:
        kpi = {k: float(v) for k, v in line["kpi"].items()}
        assert {"train_loss", "train_detection_loss", "val_mAP50", *KPI_NAMES} <= set(kpi)
        # the total is the detection loss plus every binding's weighted loss
        parts = kpi["train_detection_loss"] + sum(kpi[name] for name in KPI_NAMES)
        assert kpi["train_loss"] == pytest.approx(parts, rel=1e-4)
        assert all(kpi[name] > 0 for name in KPI_NAMES)
    for name in KPI_NAMES:
        first, last = float(epochs[0]["kpi"][name]), float(epochs[-1]["kpi"][name])
        assert last < first, f"{name} did not fall: {first} -> {last}"

    # checkpoints as train writes them, holding the student alone
    names = {p.name for p in folder.iterdir()}
    assert {
        "model_epoch_000.pth",
        "model_epoch_002.pth",
        "rtdetr_model_latest.pth",
        "experiment.yaml",
    } <= names
    assert os.readlink(folder / "rtdetr_model_latest.pth") == "model_epoch_002.pth"
    ckpt = torch.load(folder / "model_epoch_002.pth", map_location="cpu", weights_only=True)
    from model.network.rtdetr import build_model

    assert set(ckpt["model"]) == set(build_model(spec).state_dict())
    assert ckpt["tao_model"] == "rtdetr" and ckpt["epoch"] == 2

    # the teacher was frozen: its checkpoint untouched and its weights the same after training
    assert sha(teacher_ckpt) == before
    assert "teacher weights unchanged" in proc.stdout
    assert "distillation bindings: distill_srcs (srcs -> srcs, IOU" in proc.stdout


def test_teacher_stays_frozen_in_eval_mode_while_the_student_learns(
    synthetic_data, teacher_ckpt, tmp_path, one_thread
):
    from model.distill import parse_bindings
    from model.distill.distiller import Distiller, build_teacher, probe_batch
    from model.network.rtdetr import build_criterion, build_model

    spec = distill_spec(synthetic_data, tmp_path, teacher_ckpt)
    teacher = build_teacher(spec)
    frozen = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = build_model(spec).train()
    start = {k: v.clone() for k, v in student.state_dict().items()}
    distiller = Distiller(student, teacher, parse_bindings(spec["distill"]["bindings"]))
    criterion = build_criterion(spec)
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-3)
    images, targets = probe_batch(spec, torch.device("cpu"))
    for _ in range(2):
        outputs = student(images, targets)
        extra = distiller(images, targets, outputs)
        loss = sum(criterion(outputs, targets).values()) + sum(extra.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert set(extra) == set(KPI_NAMES)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(frozen[k], v) for k, v in teacher.state_dict().items())
    assert any(not torch.equal(start[k], v) for k, v in student.state_dict().items())


@pytest.mark.parametrize(
    ("binding", "expected"),
    [
        (
            {"student_module_name": "backbone", "teacher_module_name": "backbone", "criterion": "IOU"},
            "must name srcs or dsrcs on both sides",
        ),
        (
            {"student_module_name": "srcs", "teacher_module_name": "dsrcs", "criterion": "IOU"},
            "must name the same feature maps",
        ),
        (
            {"student_module_name": "encoder", "teacher_module_name": "encoder", "criterion": "MSE"},
            "'MSE' is not supported (did you mean L2?)",
        ),
        (
            {"student_module_name": "encoder", "teacher_module_name": "encoder", "criterion": "l1"},
            "did you mean L1?",
        ),
    ],
)
def test_spec_check_rejects_bad_bindings(synthetic_data, tmp_path, binding, expected):
    from model.spec import resolve_spec

    spec = distill_spec(
        synthetic_data, tmp_path, tmp_path / "teacher.pth", bindings=[{**binding, "weight": 1.0}]
    )
    with pytest.raises(SpecError) as info:
        resolve_spec("distill", user_spec=spec, check_paths=False)
    assert "distill.bindings[0]" in str(info.value) and expected in str(info.value)


def test_unknown_module_name_fails_before_training(synthetic_data, teacher_ckpt, tmp_path, run_rtdetr):
    bindings = [
        {"student_module_name": "encodr", "teacher_module_name": "encoder", "criterion": "L2", "weight": 1.0}
    ]
    spec = distill_spec(synthetic_data, tmp_path / "out", teacher_ckpt, bindings=bindings)
    proc = run_rtdetr("distill", "-e", str(write_spec(tmp_path / "spec.yaml", spec)))
    assert proc.returncode != 0
    assert "distill.bindings[0].student_module_name: 'encodr' is not a module of the student" in proc.stderr
    assert "did you mean encoder" in proc.stderr and "Valid names are srcs, dsrcs" in proc.stderr
    folder = tmp_path / "out" / "distill"
    assert status_lines(folder)[-1]["status"] == "FAILURE"
    assert not list(folder.glob("model_epoch_*.pth"))


def test_features_of_different_shapes_are_a_clear_error(synthetic_data, tmp_path, one_thread):
    from model.distill import parse_bindings
    from model.distill.distiller import Distiller, freeze, probe_batch
    from model.network.rtdetr import build_model

    spec = distill_spec(synthetic_data, tmp_path, tmp_path / "unused.pth")
    wide = tiny_spec(synthetic_data, tmp_path, model={"hidden_dim": 64, "feat_channels": [64, 64, 64]})
    teacher = build_model(wide)
    freeze(teacher)
    distiller = Distiller(build_model(spec), teacher, parse_bindings(BINDINGS[:1]))
    with pytest.raises(ConfigError) as info:
        distiller.check(*probe_batch(spec, torch.device("cpu")))
    message = str(info.value)
    assert "distill.bindings[0] (srcs -> srcs, IOU)" in message
    assert "[2, 32, 8, 8] in the student and [2, 64, 8, 8] in the teacher" in message


def test_teacher_checkpoint_must_fit_distill_teacher(synthetic_data, teacher_ckpt, tmp_path):
    from model.distill.distiller import build_teacher
    from model.errors import CheckpointError

    spec = distill_spec(synthetic_data, tmp_path, teacher_ckpt)
    spec["distill"]["teacher"] = {**spec["distill"]["teacher"], "dec_layers": 2}
    with pytest.raises(CheckpointError, match=r"does not fit the teacher described by distill\.teacher"):
        build_teacher(spec)


def test_binding_names_in_the_kpi_are_unique():
    from model.distill import parse_bindings

    names = [
        b.kpi_name
        for b in parse_bindings(
            [
                {"student_module_name": "srcs", "teacher_module_name": "srcs", "criterion": "IOU"},
                {"student_module_name": "srcs", "teacher_module_name": "srcs", "criterion": "L2"},
                {
                    "student_module_name": "model.encoder.fpn_blocks.0",
                    "teacher_module_name": "encoder",
                    "criterion": "L1",
                },
            ]
        )
    ]
    assert names == ["distill_srcs_IOU", "distill_srcs_L2", "distill_encoder.fpn_blocks.0"]

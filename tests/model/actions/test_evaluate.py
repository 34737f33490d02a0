"""``rtdetr evaluate``: the files and status lines a user gets, checkpoint mismatches, exact metrics."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from model.actions.evaluate import run
from model.checkpoints.trained_model import load_trained_model
from model.engine.coco_metrics import STAT_NAMES
from model.engine.evaluation import ScoreThreshold, evaluate_model
from model.engine.status import read_status
from model.errors import CheckpointError, ConfigError
from model.spec import resolve_spec
from tests.conftest import tiny_spec, write_spec
from tests.model.actions.conftest import save_tiny_checkpoint


def _spec_file(tmp_path: Path, data: Path, checkpoint: Path | str, **dataset: object) -> Path:
    spec = tiny_spec(data, tmp_path / "results")
    spec["dataset"].update(dataset)
    spec["evaluate"] = {"checkpoint": str(checkpoint)}
    return write_spec(tmp_path / "spec.yaml", spec)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_evaluate_writes_status_results_and_table(tmp_path, synthetic_data, tiny_checkpoint, run_rtdetr):
    spec = _spec_file(tmp_path, synthetic_data, tiny_checkpoint)
    proc = run_rtdetr("evaluate", "-e", str(spec))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "results" / "evaluate"
    lines = read_status(out / "status.json")
    assert [line["status"] for line in lines] == ["STARTED", "SUCCESS"]
    assert lines[0]["message"] == "Starting RT-DETR evaluate."
    assert lines[1]["message"] == "Evaluation finished successfully."
    kpi = lines[1]["kpi"]
    assert isinstance(kpi["test_mAP"], str) and isinstance(kpi["test_mAP50"], str)
    assert {f"test_{name}" for name in STAT_NAMES} <= set(kpi)
    results = json.loads((out / "results.json").read_text())
    assert list(results["stats"]) == list(STAT_NAMES)
    assert results["images"] == 8
    assert results["checkpoint"] == str(tiny_checkpoint)
    assert float(kpi["test_mAP50"]) == pytest.approx(results["mAP50"])
    assert set(results["per_class_AP"]) == {"1", "2", "3"}
    assert set(results["per_class_AP_by_name"]) == {"circle", "square", "triangle"}
    assert (out / "experiment.yaml").is_file()
    assert "AR_large" in proc.stdout and "maxDets=100" in proc.stdout


def test_checkpoint_of_another_class_count_is_refused(tmp_path, synthetic_data, run_rtdetr):
    other = tiny_spec(synthetic_data, tmp_path)
    other["dataset"]["num_classes"] = 6
    checkpoint = save_tiny_checkpoint(other, tmp_path / "six_classes")
    proc = run_rtdetr("evaluate", "-e", str(_spec_file(tmp_path, synthetic_data, checkpoint)))
    assert proc.returncode != 0
    assert str(checkpoint) in proc.stderr
    assert "6 classes" in proc.stderr and "dataset.num_classes is 4" in proc.stderr
    assert "dataset.num_classes=6" in proc.stderr  # the fix
    lines = read_status(tmp_path / "results" / "evaluate" / "status.json")
    assert lines[-1]["status"] == "FAILURE" and "6 classes" in lines[-1]["message"]
    assert not (tmp_path / "results" / "evaluate" / "results.json").exists()


def test_checkpoint_of_another_architecture_is_refused(tmp_path, synthetic_data, tiny_checkpoint):
    spec = resolve_spec(
        "evaluate", _spec_file(tmp_path, synthetic_data, tiny_checkpoint), ["model.dim_feedforward=96"]
    )
    with pytest.raises(CheckpointError, match=r"differ in shape.*model\.\* keys"):
        load_trained_model(spec, "evaluate")


def test_ema_weights_are_preferred(tmp_path, synthetic_data, tiny_checkpoint):
    plain = torch.load(tiny_checkpoint, weights_only=True)
    ema_state = {k: v + 1 if v.is_floating_point() else v for k, v in plain["model"].items()}
    ema_file = tmp_path / "ema.pth"
    torch.save({**plain, "ema": {"module": ema_state, "updates": 3}}, ema_file)
    spec = resolve_spec("evaluate", _spec_file(tmp_path, synthetic_data, ema_file))
    model, report = load_trained_model(spec, "evaluate")
    assert report.source == "ema.module"
    name = "decoder.dec_score_head.0.bias"
    assert torch.equal(model.state_dict()[name], ema_state[name])
    assert not model.training


def test_unreadable_deployed_model_fails_with_the_key_and_file(tmp_path, synthetic_data, tiny_checkpoint):
    engine = tmp_path / "model.onnx"
    engine.write_bytes(b"onnx")
    spec = resolve_spec(
        "evaluate", _spec_file(tmp_path, synthetic_data, tiny_checkpoint), [f"evaluate.trt_engine={engine}"]
    )
    with pytest.raises(ConfigError, match=r"evaluate\.trt_engine.*model\.onnx.*ONNX Runtime cannot load"):
        run(spec, ["evaluate"])
    lines = read_status(tmp_path / "results" / "evaluate" / "status.json")
    assert [line["status"] for line in lines] == ["STARTED", "FAILURE"]


class GroundTruthOracle(nn.Module):
    """Answers each batch with its ground truth: one confident query per box, the rest silent."""

    def __init__(self, batches: list[list[dict]], num_classes: int, num_queries: int = 20):
        super().__init__()
        self.batches = list(batches)
        self.num_classes = num_classes
        self.num_queries = num_queries

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        targets = self.batches.pop(0)
        logits = torch.full((len(targets), self.num_queries, self.num_classes), -10.0)
        boxes = torch.full((len(targets), self.num_queries, 4), 0.05)
        for i, target in enumerate(targets):
            n = len(target["labels"])
            logits[i, torch.arange(n), target["labels"]] = 10.0
            boxes[i, :n] = target["boxes"]
        return {"pred_logits": logits, "pred_boxes": boxes}


@pytest.mark.parametrize("remap", [False, True])
def test_perfect_predictions_score_one(tmp_path, synthetic_data, tiny_checkpoint, remap):
    from model.data import build_dataloader

    spec = resolve_spec(
        "evaluate",
        _spec_file(tmp_path, synthetic_data, tiny_checkpoint, remap_mscoco_category=remap),
        ["evaluate.conf_threshold=0.5"],
    )
    batches = [targets for _, targets in build_dataloader(spec, "test", batch_size=4)]
    if remap:  # the synthetic ids 1..3 are COCO ids; the model then predicts labels 0..2
        assert min(int(label) for targets in batches for t in targets for label in t["labels"]) == 0
    metrics = evaluate_model(spec, GroundTruthOracle(batches, num_classes=4))
    assert metrics["images"] == 8
    assert metrics["mAP50"] == pytest.approx(1.0)
    assert metrics["mAP"] == pytest.approx(1.0)
    assert set(metrics["per_class_AP"]) == {"1", "2", "3"}  # COCO category ids on both sides
    assert all(v == pytest.approx(1.0) for v in metrics["per_class_AP"].values())


def test_score_threshold_drops_low_scores():
    class Fixed(nn.Module):
        def forward(self, outputs, sizes):
            return [
                {
                    "scores": torch.tensor([0.9, 0.2, 0.5]),
                    "labels": torch.tensor([1, 2, 3]),
                    "boxes": torch.zeros(3, 4),
                }
            ]

    kept = ScoreThreshold(Fixed(), 0.5)({}, torch.ones(1, 2))[0]
    assert kept["labels"].tolist() == [1, 3]
    assert len(ScoreThreshold(Fixed(), 0.0)({}, torch.ones(1, 2))[0]["scores"]) == 3


def test_two_processes_gather_every_test_image(tmp_path, synthetic_data, tiny_checkpoint, run_rtdetr):
    spec = _spec_file(tmp_path, synthetic_data, tiny_checkpoint)
    proc = run_rtdetr(
        "evaluate", "-e", str(spec), "evaluate.num_gpus=2", env={"MASTER_PORT": str(_free_port())}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Launching 2 processes" in proc.stdout
    out = tmp_path / "results" / "evaluate"
    assert json.loads((out / "results.json").read_text())["images"] == 8
    assert [line["status"] for line in read_status(out / "status.json")] == ["STARTED", "SUCCESS"]

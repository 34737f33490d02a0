"""``rtdetr evaluate`` / ``inference`` with ``<action>.trt_engine``: an exported ONNX file run by ONNX
Runtime gives the PyTorch path's detections and metrics; bad deployed models and precisions are
clear errors; ``<action>.precision=bf16`` runs a checkpoint under autocast."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from model.actions import evaluate, inference
from model.actions.export import run as export
from model.engine.coco_metrics import STAT_NAMES
from model.engine.model_to_run import model_to_run
from model.engine.status import read_status
from model.errors import ConfigError
from model.spec import resolve_spec
from tests.conftest import tiny_spec, write_spec


def _checkpoint(spec: dict, folder: Path) -> Path:
    """An untrained tiny model whose first boxes are object-sized (enc box-head bias on w, h), so
    its mAP50 on the synthetic test set is above 0 and the comparison means something."""
    from model.checkpoints.training_files import save_checkpoint
    from model.network.rtdetr import build_model

    torch.manual_seed(0)
    model = build_model(spec)
    with torch.no_grad():
        model.decoder.enc_bbox_head.layers[-1].bias[2:] = 2.0
    return save_checkpoint(
        folder, 0, {"model": model.state_dict(), "ema": None, "global_step": 0, "spec": spec}
    )


@pytest.fixture(scope="module")
def deployed(synthetic_data, tmp_path_factory):
    """The checkpoint, its 64x64 exports (dynamic batch and batch 3) and a spec file without checkpoints."""
    folder = tmp_path_factory.mktemp("deployed")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    spec = tiny_spec(synthetic_data, folder / "results")
    spec["dataset"]["eval_class_ids"] = [1, 2, 3]
    checkpoint = _checkpoint(spec, folder / "ckpt")
    files = {}
    for name, batch in (("dynamic", -1), ("fixed3", 3)):
        files[name] = folder / f"{name}.onnx"
        keys = [
            f"export.checkpoint={checkpoint}",
            f"export.onnx_file={files[name]}",
            f"export.batch_size={batch}",
        ]
        keys += ["export.input_width=64", "export.input_height=64", f"export.results_dir={folder / name}"]
        assert export(resolve_spec("export", user_spec=spec, overrides=keys), ["export"]) == 0
    spec_file = write_spec(folder / "spec.yaml", spec)
    yield SimpleNamespace(folder=folder, spec=spec, spec_file=spec_file, checkpoint=checkpoint, **files)
    torch.set_num_threads(threads)


def _spec(deployed, action: str, *overrides: str) -> dict:
    return resolve_spec(action, deployed.spec_file, list(overrides))


@torch.no_grad()
def _detections(spec: dict, action: str = "evaluate", batch_size: int = 4) -> list[dict]:
    from model.data import build_dataloader
    from model.network.rtdetr import build_postprocessor

    chosen = model_to_run(spec, action, torch.device("cpu"))
    loader = build_dataloader(chosen.spec, "test", rank=0, world_size=1, batch_size=batch_size)
    post = build_postprocessor(spec)
    found = []
    for images, targets in loader:
        sizes = torch.stack([torch.as_tensor(t["orig_size"]) for t in targets]).float()
        found += post(chosen.model(images), sizes)
    return found


def test_evaluate_with_the_onnx_file_gives_the_pytorch_metrics(deployed, run_rtdetr, one_thread):
    onnx_dir = deployed.folder / "eval_onnx"
    proc = run_rtdetr(
        "evaluate",
        "-e",
        str(deployed.spec_file),
        f"evaluate.trt_engine={deployed.dynamic}",
        f"evaluate.results_dir={onnx_dir}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Running {deployed.dynamic} with ONNX Runtime at 64x64" in proc.stdout
    lines = read_status(onnx_dir / "status.json")
    assert [line["status"] for line in lines] == ["STARTED", "SUCCESS"]
    onnx_results = json.loads((onnx_dir / "results.json").read_text())
    assert onnx_results["trt_engine"] == str(deployed.dynamic)
    assert onnx_results["weights"] == "ONNX Runtime"
    assert float(lines[-1]["kpi"]["test_mAP50"]) == pytest.approx(onnx_results["mAP50"])

    torch_dir = deployed.folder / "eval_torch"
    spec = _spec(
        deployed,
        "evaluate",
        f"evaluate.checkpoint={deployed.checkpoint}",
        f"evaluate.results_dir={torch_dir}",
    )
    assert evaluate.run(spec, ["evaluate"]) == 0
    torch_results = json.loads((torch_dir / "results.json").read_text())
    assert torch_results["mAP50"] > 0  # a comparison of two zeros would prove nothing
    assert onnx_results["images"] == torch_results["images"] == 8
    assert abs(onnx_results["mAP50"] - torch_results["mAP50"]) <= 0.005
    for name in STAT_NAMES:
        assert abs(onnx_results["stats"][name] - torch_results["stats"][name]) <= 0.005, name


def test_deployed_detections_equal_pytorch_with_dynamic_and_fixed_batch(deployed, one_thread):
    reference = _detections(_spec(deployed, "evaluate", f"evaluate.checkpoint={deployed.checkpoint}"))
    for onnx_file, batch_size in ((deployed.dynamic, 4), (deployed.fixed3, 4), (deployed.fixed3, 2)):
        got = _detections(
            _spec(deployed, "evaluate", f"evaluate.trt_engine={onnx_file}"), batch_size=batch_size
        )
        assert len(got) == len(reference) == 8
        for ours, theirs in zip(got, reference):
            assert torch.equal(ours["labels"], theirs["labels"])
            assert torch.allclose(ours["scores"], theirs["scores"], atol=1e-4)
            assert torch.allclose(ours["boxes"], theirs["boxes"], atol=1e-3)  # pixels of a 64 px image


def test_inference_with_the_onnx_file_writes_the_pytorch_detections(deployed, one_thread):
    outputs = {}
    for name, key in (
        ("onnx", f"inference.trt_engine={deployed.fixed3}"),
        ("torch", f"inference.checkpoint={deployed.checkpoint}"),
    ):
        out = deployed.folder / f"infer_{name}"
        spec = _spec(
            deployed, "inference", key, f"inference.results_dir={out}", "inference.conf_threshold=0.001"
        )
        assert inference.run(spec, ["inference"]) == 0
        assert read_status(out / "status.json")[-1]["status"] == "SUCCESS"
        outputs[name] = json.loads((out / "results.json").read_text())
        assert len(list((out / "images_annotated").iterdir())) == len(list((out / "labels").iterdir())) > 0
    assert outputs["torch"], "no detection above the threshold: the comparison would prove nothing"
    assert len(outputs["onnx"]) == len(outputs["torch"])
    for ours, theirs in zip(outputs["onnx"], outputs["torch"]):
        assert (ours["image_id"], ours["category_id"]) == (theirs["image_id"], theirs["category_id"])
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-4)
        assert ours["bbox"] == pytest.approx(theirs["bbox"], abs=1e-2)


def _bad_file(folder: Path, name: str, content: bytes = b"not a model") -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("make", "extra", "pattern"),
    [
        (lambda d, tmp: tmp / "absent.onnx", [], r"evaluate\.trt_engine: .*absent\.onnx' does not exist"),
        (
            lambda d, tmp: _bad_file(tmp, "model.txt"),
            [],
            r"neither an ONNX file \(\.onnx\) nor a TensorRT engine",
        ),
        (
            lambda d, tmp: _bad_file(tmp, "broken.onnx"),
            [],
            r"evaluate\.trt_engine: .*broken\.onnx: ONNX Runtime cannot load this file",
        ),
        (
            lambda d, tmp: d.dynamic,
            ["dataset.num_classes=6"],
            r"predicts 4 classes but dataset\.num_classes is 6",
        ),
        (
            lambda d, tmp: d.dynamic,
            ["evaluate.precision=bf16"],
            r"evaluate\.precision: bf16 applies to a checkpoint",
        ),
    ],
)
def test_bad_deployed_models_are_clear_errors(deployed, tmp_path, make, extra, pattern):
    path = make(deployed, tmp_path)
    spec = resolve_spec(
        "evaluate", deployed.spec_file, [f"evaluate.trt_engine={path}", *extra], check_paths=False
    )
    with pytest.raises(ConfigError, match=pattern):
        model_to_run(spec, "evaluate", torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where no GPU is visible")
def test_engine_without_gpu_suggests_the_onnx_file(deployed, tmp_path):
    engine = _bad_file(tmp_path, "model.engine")
    spec = _spec(
        deployed, "evaluate", f"evaluate.trt_engine={engine}", f"evaluate.results_dir={tmp_path / 'out'}"
    )
    with pytest.raises(
        ConfigError, match=r"TensorRT engine, which needs a GPU.*\.onnx file written by `rtdetr export`"
    ):
        evaluate.run(spec, ["evaluate"])
    lines = read_status(tmp_path / "out" / "status.json")
    assert lines[-1]["status"] == "FAILURE" and "needs a GPU" in lines[-1]["message"]


def test_bf16_precision_runs_the_checkpoint_under_autocast(deployed, tmp_path, one_thread):
    out = tmp_path / "bf16"
    spec = _spec(
        deployed,
        "evaluate",
        f"evaluate.checkpoint={deployed.checkpoint}",
        "evaluate.precision=bf16",
        f"evaluate.results_dir={out}",
    )
    assert evaluate.run(spec, ["evaluate"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["precision"] == "bf16" and results["images"] == 8
    fp16 = _spec(
        deployed, "evaluate", f"evaluate.checkpoint={deployed.checkpoint}", "evaluate.precision=fp16"
    )
    with pytest.raises(ConfigError, match=r"evaluate\.precision: fp16 needs a GPU"):
        model_to_run(fp16, "evaluate", torch.device("cpu"))

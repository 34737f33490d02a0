"""``rtdetr inference``: annotated images, KITTI labels and COCO records from folders and archives."""

from __future__ import annotations

import json
import socket
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image

from model.actions.inference import category_names
from model.engine.status import read_status
from model.errors import ConfigError
from model.predictions.drawing import class_colors, draw_detections
from model.predictions.files import Detection, kitti_line, parse_kitti_line, unique_output_names
from model.spec import resolve_spec
from tests.conftest import tiny_spec, write_spec


def _median_named_score(spec_path: Path) -> float:
    """The median score of the checkpoint's named (category 1..3) detections on the inference images,
    a threshold that keeps some detections and drops others."""
    from model.checkpoints.trained_model import load_trained_model
    from model.data import build_infer_dataloader
    from model.network.rtdetr import build_postprocessor

    spec = resolve_spec("inference", spec_path)
    model, _ = load_trained_model(spec, "inference")
    postprocessor = build_postprocessor(spec)
    scores = []
    with torch.no_grad():
        for images, infos in build_infer_dataloader(spec, batch_size=8):
            for result in postprocessor(model(images), torch.stack([i["box_scale"] for i in infos])):
                scores += result["scores"][result["labels"] > 0].tolist()
    return round(float(torch.tensor(scores).median()), 4)


def _image_folder(data: Path, out: Path) -> Path:
    """The test split's images as a plain folder (the same files as its images.tar.gz)."""
    with tarfile.open(data / "test" / "images.tar.gz") as tar:
        tar.extractall(out, filter="data")
    return out


def test_inference_on_a_folder_and_an_archive(tmp_path, synthetic_data, tiny_checkpoint, run_rtdetr):
    folder = _image_folder(synthetic_data, tmp_path / "images")
    sources = sorted(p for p in folder.rglob("*.jpg"))
    spec = tiny_spec(synthetic_data, tmp_path / "results")
    spec["dataset"]["infer_data_sources"]["image_dir"] = [
        str(folder),
        str(synthetic_data / "test" / "images.tar.gz"),
    ]
    spec["inference"] = {"checkpoint": str(tiny_checkpoint), "outline_width": 1}
    spec_path = write_spec(tmp_path / "spec.yaml", spec)
    threshold = _median_named_score(spec_path)
    proc = run_rtdetr("inference", "-e", str(spec_path), f"inference.conf_threshold={threshold}")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "results" / "inference"

    annotated = sorted(
        p.relative_to(out / "images_annotated").as_posix() for p in (out / "images_annotated").rglob("*.jpg")
    )
    assert len(annotated) == 2 * len(sources)  # every image of both sources; same names kept apart
    originals = {p.relative_to(folder).as_posix(): p for p in sources}
    for name in annotated:
        original = originals[name.replace("_2.jpg", ".jpg")]
        assert Image.open(out / "images_annotated" / name).size == Image.open(original).size

    classes = set((synthetic_data / "label_map.txt").read_text().split())
    records = json.loads((out / "results.json").read_text())
    assert records, "the threshold keeps some detections of this checkpoint"
    per_file = Counter(r["file_name"] for r in records)
    label_lines = 0
    for name in annotated:
        lines = (out / "labels" / Path(name).with_suffix(".txt")).read_text().splitlines()
        parsed = [parse_kitti_line(line) for line in lines]  # 16 fields each
        assert all(p["name"] in classes and p["score"] >= threshold - 5e-4 for p in parsed)
        assert all(
            0 <= p["box"][0] <= p["box"][2] <= 64 and 0 <= p["box"][1] <= p["box"][3] <= 64 for p in parsed
        )
        label_lines += len(lines)
    assert label_lines == len(records)
    assert sum(per_file.values()) == len(records) and set(per_file) <= set(originals)
    assert all(r["score"] >= threshold for r in records)
    assert all(r["category_id"] in (1, 2, 3) and len(r["bbox"]) == 4 for r in records)
    assert len(records) < 2 * len(sources) * spec["model"]["num_select"]  # the threshold dropped some

    lines = read_status(out / "status.json")
    assert [line["status"] for line in lines] == ["STARTED", "SUCCESS"]
    assert lines[1]["message"] == "Inference finished successfully."
    assert (out / "experiment.yaml").is_file()


def test_classmap_lines_name_category_ids():
    shapes = ["circle", "square", "triangle"]
    assert category_names(shapes, 4, False) == {1: "circle", 2: "square", 3: "triangle"}  # ids 1..K
    assert category_names(shapes, 3, False) == {
        0: "circle",
        1: "square",
        2: "triangle",
    }  # TAO: line i = label i
    coco = [f"c{i}" for i in range(80)]
    names = category_names(coco, 91, True)
    assert names[1] == "c0" and names[90] == "c79" and 12 not in names


def test_output_names_never_collide():
    assert unique_output_names(["a.jpg", "b/a.jpg", "a.jpg", "a.png", "a.jpg"]) == [
        "a.jpg",
        "b/a.jpg",
        "a_2.jpg",
        "a_3.png",
        "a_4.jpg",
    ]


def test_kitti_line_has_16_fields_with_a_spaced_class_name():
    line = kitti_line(Detection(3, "traffic light", (1.0, 2.5, 30.25, 40.0), 0.87654))
    assert (
        line == "traffic_light 0.00 0 0.00 1.000 2.500 30.250 40.000 0.00 0.00 0.00 0.00 0.00 0.00 0.00 0.877"
    )
    assert parse_kitti_line(line) == {"name": "traffic_light", "box": (1.0, 2.5, 30.25, 40.0), "score": 0.877}


def test_color_map_colours_the_box_and_rejects_unknown_colours():
    colors = class_colors({1: "circle", 2: "square"}, {"circle": "red"})
    assert colors[1] == (255, 0, 0) and colors[2] != colors[1]
    image = draw_detections(
        Image.new("RGB", (64, 64)), [Detection(1, "circle", (10, 30, 50, 60), 0.9)], colors, 2
    )
    assert image.getpixel((30, 59)) == (255, 0, 0)  # bottom edge of the box
    with pytest.raises(ConfigError, match=r"inference\.color_map\.circle.*not a colour"):
        class_colors({1: "circle"}, {"circle": "reddish"})


def test_two_processes_share_the_images(tmp_path, synthetic_data, tiny_checkpoint, run_rtdetr):
    spec = tiny_spec(synthetic_data, tmp_path / "results")
    spec["inference"] = {"checkpoint": str(tiny_checkpoint), "conf_threshold": 0.0, "num_gpus": 2}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run_rtdetr(
        "inference", "-e", str(write_spec(tmp_path / "spec.yaml", spec)), env={"MASTER_PORT": str(port)}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "results" / "inference"
    assert len(list((out / "images_annotated").glob("*.jpg"))) == 8
    assert len(list((out / "labels").glob("*.txt"))) == 8
    records = json.loads((out / "results.json").read_text())
    per_image = Counter(r["image_id"] for r in records)  # conf_threshold 0 keeps num_select per image
    assert per_image == dict.fromkeys(range(8), spec["model"]["num_select"])
    assert [line["status"] for line in read_status(out / "status.json")] == ["STARTED", "SUCCESS"]

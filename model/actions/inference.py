"""``rtdetr inference -e spec.yaml [key=value ...]``: detections on ``dataset.infer_data_sources``.

The model built from the spec loads ``inference.checkpoint`` (EMA weights when present) and runs in
eval mode on every image under ``infer_data_sources.image_dir`` (folders or archives), resized to
``dataset.augmentation.eval_spatial_size`` as in TAO's PyTorch inference (``inference.precision``
bf16/fp16: under autocast). With ``inference.trt_engine`` set, the deployed model runs instead (an
``.onnx`` file from ``rtdetr export`` in ONNX Runtime, or a TensorRT ``.engine``) at the size it was
exported for, with the same pre- and post-processing. Detections scoring at
least ``inference.conf_threshold`` are kept, in source-image pixels, and named by the classmap (see
``category_names``). Under ``inference.num_gpus > 1`` the command re-runs itself under torchrun and
each process takes every n-th image.

Output in ``inference.results_dir`` (default ``<results_dir>/inference``):
``images_annotated/<name>`` (boxes, names and scores drawn, ``inference.color_map`` /
``outline_width``), ``labels/<stem>.txt`` (TAO's KITTI lines), ``results.json`` (COCO detection
records with ``file_name``), ``status.json`` and ``experiment.yaml``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from model.config.defaults import spec_section
from model.engine.action_session import action_session, launch
from model.engine.evaluation import action_batch_size
from model.predictions.files import Detection, coco_records, kitti_line, unique_output_names

__all__ = ["category_names", "detections_of", "inference_worker", "run"]

_JPEG = {".jpg", ".jpeg"}


def category_names(names: Sequence[str], num_classes: int, remap_mscoco_category: bool) -> dict[int, str]:
    """Which category id (the label the model reports) each classmap line names.

    TAO's rule is line ``i`` (from 0) = label ``i``; it applies when the classmap has
    ``num_classes`` lines. A classmap of ``num_classes - 1`` lines is a list for category ids
    ``1..K`` with label 0 unused (``num_classes = K + 1``, as ``rtdetr dataset synth`` writes
    ``label_map.txt``), so line ``i`` names id ``i + 1``. With ``remap_mscoco_category`` the model
    reports COCO's category ids: 80 lines name COCO's 80 categories in order, 90 lines name ids
    1..90, 91 or more lines start at id 0. Any other length falls back to TAO's rule.
    """
    from model.data import MSCOCO_CATEGORY_IDS

    count = len(names)
    if remap_mscoco_category:
        if count == len(MSCOCO_CATEGORY_IDS):
            return {int(c): n for c, n in zip(MSCOCO_CATEGORY_IDS, names)}
        if count == 90:
            return {i + 1: n for i, n in enumerate(names)}
        return dict(enumerate(names))
    if count == num_classes - 1:
        return {i + 1: n for i, n in enumerate(names)}
    return dict(enumerate(names))


def detections_of(
    result: Mapping[str, torch.Tensor],
    names: Mapping[int, str],
    threshold: float,
    image_size: tuple[int, int],
) -> tuple[list[Detection], set[int]]:
    """The named detections scoring at least ``threshold``, best first, boxes clipped to the image.

    Also returns the category ids that were dropped for having no name in the classmap.
    """
    width, height = image_size
    scores = result["scores"].float().cpu()
    order = torch.argsort(scores, descending=True)
    labels, boxes = result["labels"].cpu()[order], result["boxes"].float().cpu()[order]
    kept, unnamed = [], set()
    for label, box, score in zip(labels.tolist(), boxes.tolist(), scores[order].tolist()):
        if score < threshold:
            break
        if label not in names:
            unnamed.add(int(label))
            continue
        x1, x2 = (min(max(v, 0.0), float(width)) for v in (box[0], box[2]))
        y1, y2 = (min(max(v, 0.0), float(height)) for v in (box[1], box[3]))
        kept.append(Detection(int(label), names[label], (x1, y1, x2, y2), float(score)))
    return kept, unnamed


def _write_label_file(path: Path, detections: list[Detection]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(kitti_line(d) + "\n" for d in detections), encoding="utf-8")


def _save_annotated(source: str, target: Path, detections: list[Detection], colors: Any, width: int) -> None:
    from model.predictions.drawing import draw_detections

    with Image.open(source) as image:
        drawn = draw_detections(image, detections, colors, width)
    target.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if target.suffix.lower() in _JPEG else {}
    drawn.save(target, **options)


class _ImageOutputs:
    """Writes one image's label file and annotated copy, and collects its COCO records."""

    def __init__(
        self,
        results_dir: Path,
        names: Mapping[int, str],
        colors: Mapping[int, Any],
        outline: int,
        threshold: float,
        output_names: Sequence[str],
    ):
        self.results_dir = results_dir
        self.names, self.colors, self.outline = names, colors, outline
        self.threshold = threshold
        self.output_names = list(output_names)

    def write(
        self, index: int, info: Mapping[str, Any], result: Mapping[str, torch.Tensor]
    ) -> tuple[list, set]:
        size = (int(info["orig_size"][0]), int(info["orig_size"][1]))
        dets, unnamed = detections_of(result, self.names, self.threshold, size)
        name = self.output_names[index]
        _write_label_file(self.results_dir / "labels" / Path(name).with_suffix(".txt"), dets)
        _save_annotated(
            info["path"], self.results_dir / "images_annotated" / name, dets, self.colors, self.outline
        )
        return coco_records(index, info["file_name"], dets), unnamed

    @torch.no_grad()
    def run(
        self,
        model: Any,
        postprocessor: Any,
        loader: Any,
        indices: Sequence[int],
        device: torch.device,
        precision: str = "fp32",
    ) -> tuple[list[dict[str, Any]], set[int]]:
        """Every image of ``loader`` (dataset positions ``indices``, in order): files written, records back.

        ``precision`` bf16/fp16 runs ``model`` under autocast; its outputs are cast back to fp32."""
        from model.engine.validation import autocast_for

        records: list[dict[str, Any]] = []
        unnamed: set[int] = set()
        position = 0
        for images, infos in loader:
            sizes = torch.stack([info["box_scale"] for info in infos]).to(device)
            with autocast_for(precision, device):
                outputs = model(images.to(device))
            outputs = {k: outputs[k].float() for k in ("pred_logits", "pred_boxes")}
            for info, result in zip(infos, postprocessor(outputs, sizes)):
                found, dropped = self.write(indices[position], info, result)
                position += 1
                records += found
                unnamed |= dropped
        return records, unnamed


def run(spec: dict[str, Any], argv: Sequence[str]) -> int:
    return launch(spec, "inference", argv, inference_worker)


def inference_worker(spec: dict[str, Any]) -> int:
    """One process of the inference (the only one without torchrun)."""
    from torch.utils.data import DataLoader, Subset

    from model.data import build_infer_dataset, read_classmap
    from model.data.infer_source import collate_infer
    from model.engine.distributed import all_gather_objects
    from model.engine.model_to_run import model_to_run
    from model.engine.status import SUCCESS
    from model.network.rtdetr import build_postprocessor
    from model.predictions.drawing import class_colors

    with action_session(spec, "inference", "Starting RT-DETR inference.") as (results_dir, world, status):
        section, dataset_spec = spec_section(spec, "inference"), spec_section(spec, "dataset")
        threshold = float(section["conf_threshold"])
        outline = int(section["outline_width"])
        names = category_names(
            read_classmap((dataset_spec["infer_data_sources"] or {}).get("classmap") or ""),
            int(dataset_spec["num_classes"]),
            bool(dataset_spec["remap_mscoco_category"]),
        )
        colors = class_colors(names, section["color_map"])
        chosen = model_to_run(spec, "inference", world.device)
        dataset = build_infer_dataset(chosen.spec)
        outputs = unique_output_names([name for _, name in dataset.files])
        if world.is_main:
            print(chosen.summary, flush=True)
        model = chosen.model.to(world.device)
        postprocessor = build_postprocessor(spec).to(world.device)
        mine = list(range(world.rank, len(dataset), world.size))
        loader = DataLoader(
            Subset(dataset, mine),
            batch_size=action_batch_size(spec, "inference"),
            shuffle=False,
            collate_fn=collate_infer,
            num_workers=int(dataset_spec["workers"]),
        )
        writer = _ImageOutputs(results_dir, names, colors, outline, threshold, outputs)
        records, unnamed = writer.run(model, postprocessor, loader, mine, world.device, chosen.precision)
        gathered = all_gather_objects((records, sorted(unnamed)), world)
        all_records = sorted(
            (r for part, _ in gathered for r in part), key=lambda r: (r["image_id"], -r["score"])
        )
        all_unnamed = sorted({label for _, part in gathered for label in part})
        if world.is_main:
            (results_dir / "results.json").write_text(json.dumps(all_records, indent=1), encoding="utf-8")
            # Id 0 unnamed means a classmap for ids 1..K: label 0 is the unused background slot.
            noteworthy = [label for label in all_unnamed if label != 0]
            if noteworthy:
                print(
                    f"warning: detections of category ids {noteworthy} were left out: the classmap "
                    f"{(dataset_spec['infer_data_sources'] or {}).get('classmap')} names no class for them",
                    file=sys.stderr,
                    flush=True,
                )
            print(
                f"{len(all_records)} detections (score >= {threshold}) on {len(dataset)} images; "
                f"results in {results_dir}",
                flush=True,
            )
        status.write(
            SUCCESS,
            "Inference finished successfully.",
            kpi={"images": len(dataset), "detections": len(all_records)},
        )
    return 0

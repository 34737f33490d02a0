"""``rtdetr <action> --parent JOB``: an action's input files taken from an earlier job, as TAO does.

TAO fills an action's inputs from its parent job through ``skill_info.yaml`` ``spec_params``:
``parent_model`` (the parent's model: ``evaluate.checkpoint``, ``inference.checkpoint``,
``export.checkpoint``, ``quantize.model_path``, ``distill.pretrained_teacher_model_path``,
``gen_trt_engine.onnx_file``, ``evaluate.trt_engine`` / ``inference.trt_engine``), ``resume_model``
(``train.resume_training_checkpoint_path``) and ``ptm_if_no_resume_model``
(``train.pretrained_model_path``). The ``create_*`` mappings name new output files, which the
actions default by themselves (``<results dir>/model.onnx``, ...), so they are left alone.

``JOB`` is one of:

- a train results folder (holding ``train/``), or a ``train/`` folder itself: its checkpoints
  ``model_epoch_NNN.pth``, ``rtdetr_model_latest.pth`` and ``status.json`` (kpi per epoch);
- a sweep folder (``summary.json`` of ``automl run``): the best trial's checkpoint, and the
  pipeline's ``best/export`` ONNX model and ``best/gen_trt_engine`` engine;
- an export or gen_trt_engine results folder: its ``.onnx`` or ``.engine`` file.

``--checkpoint best`` (the default) takes the epoch with the highest ``val_mAP50`` in the train
folder's status.json and its earlier finished runs' ``status.run<N>.json`` (the sweep's best epoch
for a sweep), falling back to the latest checkpoint when no epoch was validated; ``--checkpoint
latest`` takes the last saved one. A trained parent
fills the ``checkpoint`` keys of evaluate and inference; a deployed parent (export or
gen_trt_engine folder) fills their ``trt_engine`` keys. Only keys the user left unset (absent,
empty or ``???`` in the spec and the overrides) are filled. ``train`` fine-tunes from the parent
(``train.pretrained_model_path``), or resumes it (``train.resume_training_checkpoint_path``, the
latest checkpoint) when the parent is the train run's own results folder. A parent without the
file an action needs is a ``ModelError`` listing what the folder holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.checkpoints.training_files import EPOCH_GLOB, LATEST, epoch_of
from model.engine.status import archived_status_files
from model.errors import ModelError

__all__ = ["CHOICES", "ParentJob", "find_parent", "parent_overrides", "read_train_folder", "resolve_parent"]

CHOICES = ("best", "latest")
_BLANK = ("", "???", None)


@dataclass
class ParentJob:
    """What a parent folder holds."""

    folder: Path
    kind: str  # sweep | train | export | gen_trt_engine
    train_dir: Path | None = None
    best: Path | None = None  # the best epoch's checkpoint
    best_note: str = ""  # how it was chosen
    latest: Path | None = None
    onnx: Path | None = None
    engine: Path | None = None
    notes: list[str] = field(default_factory=list)

    def found(self) -> str:
        items = [
            f"{name} {path}"
            for name, path in (
                ("best checkpoint", self.best),
                ("latest checkpoint", self.latest),
                ("ONNX model", self.onnx),
                ("TensorRT engine", self.engine),
            )
            if path is not None
        ]
        return "; ".join(items + self.notes) or "nothing usable"

    def checkpoint(self, which: str) -> tuple[Path | None, str]:
        if which == "latest":
            return self.latest, "latest checkpoint"
        if self.best is not None:
            return self.best, self.best_note or "best checkpoint"
        return self.latest, "latest checkpoint (no validated epoch to choose the best from)"


def _epoch(path: Path) -> int:
    epoch = epoch_of(path.name)
    return -1 if epoch is None else epoch


def _status_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return lines
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def _val_map50(line: Mapping[str, Any]) -> float | None:
    kpi = line.get("kpi")
    if line.get("status") != "RUNNING" or not isinstance(kpi, Mapping) or "val_mAP50" not in kpi:
        return None
    try:
        value = float(kpi["val_mAP50"])
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def read_train_folder(train_dir: Path, job: ParentJob) -> ParentJob:
    """The best and latest checkpoints of a train folder (``model_epoch_NNN.pth`` + status.json)."""
    files = {_epoch(p): p for p in train_dir.glob(EPOCH_GLOB) if p.is_file()}
    job.train_dir = train_dir
    link = train_dir / LATEST
    if link.exists():
        job.latest = link.resolve()
    elif files:
        job.latest = files[max(files)]
    scores: dict[int, float] = {}
    # earlier finished runs of this folder first (a run continued them), then the current one
    status_files = [path for _, path in archived_status_files(train_dir)] + [train_dir / "status.json"]
    lines = [line for path in status_files for line in _status_lines(path)]
    for line in lines:
        value = _val_map50(line)
        if value is not None and isinstance(line.get("epoch"), int):
            scores[int(line["epoch"])] = value
    saved = {e: v for e, v in scores.items() if e in files}
    if saved:
        epoch = max(saved, key=lambda e: (saved[e], -e))  # highest val_mAP50, earliest on a tie
        job.best = files[epoch]
        job.best_note = f"best epoch {epoch}, val_mAP50 {saved[epoch]:.4f}"
    if scores and not saved:
        job.notes.append(f"validated epochs {sorted(scores)} have no checkpoint file left")
    if not files:
        job.notes.append(f"no model_epoch_*.pth in {train_dir}")
    return job


def _first(folder: Path, pattern: str) -> Path | None:
    found = sorted(p for p in folder.glob(pattern) if p.is_file()) if folder.is_dir() else []
    return found[0] if found else None


def _read_sweep(folder: Path) -> ParentJob:
    job = ParentJob(folder, "sweep")
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"--parent {folder}: cannot read its summary.json ({exc})") from None
    best = summary.get("best") or {}
    if not best:
        job.notes.append(
            f"the sweep has no best trial (status {summary.get('status')}: {summary.get('failure') or 'no result yet'})"
        )
    else:
        trial_dir = Path(best.get("folder") or folder / "trials" / f"{int(best.get('trial', 0)):04d}")
        if (trial_dir / "train").is_dir():
            read_train_folder(trial_dir / "train", job)
        checkpoint = best.get("checkpoint")
        job.best = None
        if checkpoint and Path(checkpoint).is_file():
            job.best = Path(checkpoint)
            job.best_note = (
                f"the sweep's best: trial {best.get('trial')}, epoch {best.get('best_epoch')}, "
                f"{best.get('metric', 'val_mAP50')} {float(best.get('value') or 0):.4f}"
            )
        elif checkpoint:
            job.notes.append(f"the best trial's checkpoint {checkpoint} is missing")
    pipeline = summary.get("pipeline") or {}
    onnx = (pipeline.get("export") or {}).get("onnx_file")
    engine = (pipeline.get("gen_trt_engine") or {}).get("engine_file")
    job.onnx = Path(onnx) if onnx and Path(onnx).is_file() else _first(folder / "best" / "export", "*.onnx")
    job.engine = (
        Path(engine)
        if engine and Path(engine).is_file()
        else _first(folder / "best" / "gen_trt_engine", "*.engine")
    )
    return job


def find_parent(parent: str | Path) -> ParentJob:
    """What the parent folder (or file's folder) holds; a ModelError when it is not a job folder."""
    folder = Path(parent).expanduser()
    if not folder.exists():
        raise ModelError(
            f"--parent {parent}: no such folder; give a train results folder or an `automl run` sweep folder"
        )
    folder = folder.resolve()
    if folder.is_file():
        raise ModelError(
            f"--parent {parent} is a file; give the job folder that holds it (or set the spec key to the file)"
        )
    if (folder / "summary.json").is_file():
        return _read_sweep(folder)
    train = folder / "train"
    if train.is_dir() and (any(train.glob(EPOCH_GLOB)) or (train / "status.json").is_file()):
        return read_train_folder(train, ParentJob(folder, "train"))
    if any(folder.glob(EPOCH_GLOB)) or (folder / LATEST).exists():
        return read_train_folder(folder, ParentJob(folder, "train"))
    engine, onnx = _first(folder, "*.engine"), _first(folder, "*.onnx")
    if engine is not None:
        return ParentJob(folder, "gen_trt_engine", engine=engine, onnx=onnx)
    if onnx is not None:
        return ParentJob(folder, "export", onnx=onnx)
    entries = sorted(p.name for p in folder.iterdir())[:12]
    said = [line for line in _status_lines(folder / "status.json") if line.get("status") != "RUNNING"][-1:]
    state = f" (its status.json ends: {said[0].get('status')} {said[0].get('message', '')})" if said else ""
    raise ModelError(
        f"--parent {folder}: not a job folder; it holds {', '.join(entries) or 'nothing'}{state}. Give a train results "
        "folder (with train/model_epoch_*.pth), a train/ folder, an `automl run` sweep folder (summary.json), "
        "or an export / gen_trt_engine results folder (.onnx / .engine)"
    )


def _mappings(action: str) -> dict[str, str]:
    from model.spec.skill_info import skill_info

    params = (skill_info().get("spec_params") or {}).get(action) or {}
    return {
        k: str(v)
        for k, v in params.items()
        if str(v) in ("parent_model", "resume_model", "ptm_if_no_resume_model")
    }


def _user_values(spec_path: str | Path | None, overrides: Sequence[str]) -> dict[str, Any]:
    """The user's own spec (file + overrides, shorthand keys included), without template defaults."""
    from model.spec.overrides import apply_overrides
    from model.spec.skill_info import shorthand_keys
    from model.spec.yaml_io import load_spec_file

    user = load_spec_file(spec_path) if spec_path is not None else {}
    merged, _problems = apply_overrides(user, overrides, shorthand_keys())  # resolve_spec reports problems
    return merged


def _is_set(spec: Mapping[str, Any], key: str) -> bool:
    node: Any = spec
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return not (node in _BLANK or (isinstance(node, str) and not node.strip()))


def _missing(job: ParentJob, action: str, key: str, what: str, hint: str = "") -> ModelError:
    return ModelError(
        f"--parent {job.folder} ({job.kind} folder): no {what} for {key} of `rtdetr {action}`; it holds: "
        f"{job.found()}.{(' ' + hint) if hint else ''} Or set {key} yourself."
    )


def resolve_parent(
    action: str,
    parent: str | Path,
    which: str = "best",
    *,
    spec_path: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, tuple[Path, str]]:
    """``{dotted key: (file, why)}`` for the inputs of ``action`` that ``parent`` fills."""
    if which not in CHOICES:
        raise ModelError(f"--checkpoint {which!r}: choose best or latest")
    mappings = _mappings(action)
    if not mappings:
        raise ModelError(f"--parent: `rtdetr {action}` takes no input from a parent job")
    job = find_parent(parent)
    user = _user_values(spec_path, overrides)
    todo = {k: v for k, v in mappings.items() if not _is_set(user, k)}
    deployed = job.kind in ("export", "gen_trt_engine")
    filled: dict[str, tuple[Path, str]] = {}
    if action == "train":
        own = Path(str(user.get("results_dir") or "")).expanduser()
        resuming = bool(user.get("results_dir")) and own.resolve() in (job.folder, job.folder.parent)
        key = "train.resume_training_checkpoint_path" if resuming else "train.pretrained_model_path"
        if key in todo and not _is_set(user, "train.resume_training_checkpoint_path"):
            path, why = job.checkpoint("latest" if resuming else which)
            if path is None:
                raise _missing(job, action, key, "checkpoint")
            filled[key] = (path, ("resume: " if resuming else "fine-tune from ") + why)
        return filled
    for key, kind in todo.items():
        if kind != "parent_model":
            continue
        if key == "gen_trt_engine.onnx_file":
            if job.onnx is None:
                raise _missing(
                    job, action, key, "ONNX model", f"Run `rtdetr export --parent {job.folder}` first."
                )
            filled[key] = (job.onnx, "the parent's ONNX model")
        elif key.endswith(".trt_engine"):
            if deployed and job.engine is not None:  # a trained parent fills the checkpoint key instead
                filled[key] = (job.engine, "the parent's TensorRT engine")
            elif deployed and job.onnx is not None:
                filled[key] = (job.onnx, "the parent's ONNX model")
        elif deployed:
            if not any(k.endswith(".trt_engine") for k in mappings):
                raise _missing(job, action, key, "checkpoint", "A deployed model cannot be used here.")
        else:
            path, why = job.checkpoint(which)
            if path is None:
                raise _missing(job, action, key, "checkpoint")
            filled[key] = (path, why)
    return filled


def parent_overrides(
    action: str,
    parent: str | Path,
    which: str = "best",
    *,
    spec_path: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> list[str]:
    """``key='file'`` overrides for ``resolve_spec``, and one printed line per key filled."""
    filled = resolve_parent(action, parent, which, spec_path=spec_path, overrides=overrides)
    out = []
    if not filled:
        print(f"--parent: nothing to fill; the spec already sets the inputs of `rtdetr {action}`", flush=True)
    for key, (path, why) in filled.items():
        print(f"--parent: {key}={path} ({why})", flush=True)
        out.append(f"{key}='" + str(path).replace("'", "''") + "'")
    return out

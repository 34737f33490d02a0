"""``rtdetr distill -e spec.yaml [key=value ...]``: train the student (``model.*``) with a frozen teacher.

The teacher is ``distill.teacher`` loaded from ``distill.pretrained_teacher_model_path``; the
bindings' losses (``distill.bindings``, see :mod:`model.distill`) are added to the detection loss
by the same trainer as ``rtdetr train``, so everything else is train's: GPUs from ``train.*``
(torchrun when more than one), ``train.*`` optimiser/schedule/EMA/precision, validation, resume
from the results folder, SIGTERM handling. Output in ``<results_dir>/distill/`` (or
``distill.results_dir``): status.json (each epoch's kpi has ``train_loss``, ``train_detection_loss``
and one ``distill_<binding>`` per binding), experiment.yaml, model_epoch_NNN.pth and
rtdetr_model_latest.pth holding the student only.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from model.config.defaults import spec_section
from model.engine.action_session import action_session, launch
from model.engine.determinism import apply_cudnn, seed_everything

__all__ = ["distill_worker", "run"]


def run(spec: dict[str, Any], argv: Sequence[str]) -> int:
    # TAO's distill entry point reads its GPUs from train.*
    return launch(spec, "train", argv, distill_worker)


def distill_worker(spec: dict[str, Any]) -> int:
    from model.actions.train import freeze_modules, wrap_distributed
    from model.checkpoints.weights import load_weights
    from model.data import build_dataloader
    from model.distill.bindings import parse_bindings
    from model.distill.distiller import Distiller, build_teacher, copy_encoder_decoder, digest, probe_batch
    from model.engine import activation_checkpoint
    from model.engine.ema import unwrap
    from model.engine.timing import SetupClock
    from model.engine.trainer import Trainer, TrainingStopped
    from model.errors import ModelError
    from model.network.rtdetr import build_criterion, build_model, build_postprocessor

    clock = SetupClock()
    try:
        with action_session(spec, "distill", None) as (results_dir, world, status):
            train = spec_section(spec, "train")
            model_section = spec_section(spec, "model")
            seed_everything(int(train["seed"]), world.rank)
            apply_cudnn(train["cudnn"])
            bindings = parse_bindings(spec["distill"]["bindings"])
            student = build_model(spec)
            if train["pretrained_model_path"]:
                report = load_weights(student, train["pretrained_model_path"])
                if world.is_main:
                    print(report.summary(), flush=True)
            teacher = build_teacher(spec)
            teacher_digest = digest(teacher)
            if world.is_main:
                print(
                    f"teacher {spec['distill']['teacher'].get('backbone')} loaded from "
                    f"{spec['distill']['pretrained_teacher_model_path']} (frozen, eval mode; digest {teacher_digest})",
                    flush=True,
                )
            if model_section["load_teacher_enc_dec"]:
                copied = copy_encoder_decoder(teacher, student)
                if world.is_main:
                    print(
                        f"model.load_teacher_enc_dec: copied {copied} encoder/decoder tensors of the teacher "
                        "into the student",
                        flush=True,
                    )
            freeze_modules(student, list(train["freeze"] or []))
            if activation_checkpoint.wanted(spec, world.size):
                activation_checkpoint.enable(student)
            student.to(world.device)
            teacher.to(world.device)
            precision = str(train["precision"])
            # hooks go on the wrapped student's own modules (SyncBatchNorm conversion replaces some)
            wrapped = wrap_distributed(student, spec, world)
            student = unwrap(wrapped)
            distiller = Distiller(
                student,
                teacher,
                bindings,
                coef=float(model_section["distillation_loss_coef"]),
                precision=precision,
            )
            # every binding's outputs exist and have matching shapes: fail now, not at step 1
            first = distiller.check(*probe_batch(spec, world.device))
            if world.is_main:
                shown = ", ".join(
                    f"{b.kpi_name} ({b.student} -> {b.teacher}, {b.criterion}, weight {b.weight:g}) "
                    f"{first[b.kpi_name]:.4g}"
                    for b in bindings
                )
                print(f"distillation bindings: {shown}", flush=True)
            clock.mark("model")
            seed = max(0, int(train["seed"]))
            parts = {
                "model": wrapped,
                "criterion": build_criterion(spec).to(world.device),
                "postprocessor": build_postprocessor(spec).to(world.device),
                "train_loader": build_dataloader(
                    spec, "train", rank=world.rank, world_size=world.size, seed=seed
                ),
                "val_loader": build_dataloader(
                    spec, "val", rank=world.rank, world_size=world.size, seed=seed
                ),
                "extra_losses": distiller,
                "action": "distill",
                "status": status,
            }
            clock.mark("data")
            trainer = Trainer(spec, results_dir, world, parts)
            trainer.resume_from(train["resume_training_checkpoint_path"] or None)
            trainer.setup_seconds = clock.phases
            if world.is_main:
                print(clock.line(), flush=True)
            state = trainer.fit(dry_run=bool(train["is_dry_run"]))
            distiller.close()
            if digest(teacher) != teacher_digest:
                raise ModelError(
                    "the teacher's weights changed during distillation; this is a bug, please report it"
                )
            if world.is_main:
                print(f"teacher weights unchanged (digest {teacher_digest})", flush=True)
                if state.best_epoch >= 0:
                    print(
                        f"best val_mAP50 {state.best_map50:.4f} at epoch {state.best_epoch}: {state.best_checkpoint}"
                    )
        return 0
    except TrainingStopped as stop:
        print(f"error: {stop}", file=sys.stderr, flush=True)
        return stop.exit_code

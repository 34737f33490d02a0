"""The training loop behind ``rtdetr train``: epochs, validation, status.json, checkpoints, resume.

Every rank runs this; rank 0 alone writes status.json and checkpoints. A non-finite loss stops
training with FAILURE "loss diverged at epoch E step S"; SIGTERM finishes the current step, saves a
checkpoint that resumes the interrupted epoch, writes FAILURE "interrupted by SIGTERM" and exits 143.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.checkpoints.training_files import (
    epoch_path,
    find_latest,
    read_training_checkpoint,
    save_checkpoint,
)
from model.config.defaults import spec_section
from model.config.durations import parse_time_budget
from model.data.mscoco import label_to_category_id
from model.engine.distributed import World, all_gather_objects, all_reduce_mean
from model.engine.ema import ModelEMA, unwrap
from model.engine.loss_scaling import LossScaler
from model.engine.optim import Warmup, build_optimizer, build_scheduler, follow_spec_after_resume
from model.engine.schedules import DeadlineFit
from model.engine.status import FAILURE, STARTED, SUCCESS, StatusLogger, hms
from model.engine.stopping import SigtermFlag, TrainingStopped
from model.engine.validation import autocast_for, evaluate_loader, to_device

__all__ = ["SigtermFlag", "TrainState", "Trainer", "TrainingStopped"]


@dataclass
class TrainState:
    epoch: int = 0  # the next epoch to run
    global_step: int = 0
    best_map50: float = -1.0
    best_epoch: int = -1
    best_checkpoint: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    def __init__(self, spec: dict[str, Any], results_dir: Path, world: World, parts: dict[str, Any]):
        self.spec = spec
        self.train_cfg = spec_section(spec, "train")
        self.results_dir = results_dir
        self.world = world
        self.model: nn.Module = parts["model"]
        self.criterion: nn.Module = parts["criterion"]
        self.postprocessor: nn.Module = parts["postprocessor"]
        self.train_loader = parts["train_loader"]
        self.val_loader = parts["val_loader"]
        # Optional hook (``rtdetr distill``): ``extra_losses(images, targets, outputs)`` returns named loss
        # tensors added to the detection loss; each is logged per epoch in the kpi under its name.
        self.extra_losses = parts.get("extra_losses")
        self.action = str(parts.get("action", "train"))
        self.step_losses: dict[str, torch.Tensor] = {}
        optim = self.train_cfg["optim"]
        self.num_epochs = int(self.train_cfg["num_epochs"])
        self.planned_epochs = self.num_epochs  # as written; a time budget refits num_epochs
        self.deadline_s = parse_time_budget(self.train_cfg["time_budget"])
        self.optimizer = build_optimizer(unwrap(self.model), optim)
        self.scheduler = build_scheduler(
            self.optimizer, optim, total_steps=self.num_epochs * max(1, len(self.train_loader))
        )
        self.per_step_schedule = bool(getattr(self.scheduler, "per_step", False))
        # FlatCosine warms up itself; the epoch schedules get TAO's per-step linear warm-up
        self.warmup = Warmup(self.optimizer, 0 if self.per_step_schedule else int(optim["warmup_steps"]))
        ema_cfg = self.train_cfg["ema"]
        self.ema = (
            ModelEMA(
                self.model,
                ema_cfg["decay"],
                ema_cfg["every_n_steps"],
                ema_cfg["cpu_offload"],
                warmup_steps=int(ema_cfg["warmup_steps"]),
            )
            if self.train_cfg["enable_ema"]
            else None
        )
        self.mix_stop_fraction = float(spec_section(spec, "dataset.augmentation")["mix_stop_fraction"])
        self.validation_seconds = 0.0
        # the action session's logger (it knows whether the folder holds a finished run), else our own
        own = parts.get("status") is None
        self.status = (
            StatusLogger(results_dir, enabled=world.is_main, keep_finished=True) if own else parts["status"]
        )
        self.state = TrainState()
        self.sigterm = SigtermFlag()
        self.stop_requested = False
        self.setup_seconds: dict[str, float] = {}
        self.precision = str(self.train_cfg["precision"])
        if self.precision == "fp16" and world.device.type != "cuda" and world.is_main:
            print(
                "warning: train.precision=fp16 needs a GPU; training in fp32 on the CPU (bf16 works on CPUs)",
                flush=True,
            )
        self.clip = float(self.train_cfg["clip_grad_norm"] or 0.0)
        self.loss_scaler = LossScaler.for_training(self.precision, world.device)  # fp16 on a GPU
        # Validation scores every class, as TAO's trainer does (eval_class_ids is for `rtdetr evaluate`).
        remap = bool(spec_section(spec, "dataset")["remap_mscoco_category"])
        self.gt_label_map = (lambda labels: label_to_category_id(labels, True)) if remap else None

    # --- resume ---------------------------------------------------------------------------------
    def resume_from(self, path: str | Path | None) -> None:
        explicit = bool(path)
        path = path or find_latest(self.results_dir)
        if not path:
            return
        ckpt = read_training_checkpoint(
            path, "train.resume_training_checkpoint_path" if explicit else "latest checkpoint"
        )
        unwrap(self.model).load_state_dict(ckpt["model"])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        if ckpt.get("optimizer"):
            self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler"):
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.loss_scaler.load_state_dict(ckpt.get("loss_scaler"))
        follow_spec_after_resume(self.optimizer, self.scheduler, self.train_cfg["optim"])
        extra = ckpt.get("train_state") or {}
        self.state = TrainState(
            epoch=int(ckpt.get("resume_epoch", int(ckpt["epoch"]) + 1)),
            global_step=int(ckpt.get("global_step", 0)),
            best_map50=float(extra.get("best_map50", -1.0)),
            best_epoch=int(extra.get("best_epoch", -1)),
            best_checkpoint=str(extra.get("best_checkpoint", "")),
            history=list(extra.get("history", [])),
        )
        if self.world.is_main:
            how = (
                ""
                if explicit
                else " (found in the results folder; train.resume_training_checkpoint_path is empty)"
            )
            print(
                f"Resuming from {path}{how}: epoch {self.state.epoch}, step {self.state.global_step}",
                flush=True,
            )

    # --- checkpoints ----------------------------------------------------------------------------
    def _payload(self, metrics: dict[str, Any], resume_epoch: int) -> dict[str, Any]:
        return {
            "model": unwrap(self.model).state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "loss_scaler": self.loss_scaler.state_dict(),
            "global_step": self.state.global_step,
            "resume_epoch": resume_epoch,
            "spec": self.spec,
            "metrics": metrics,
            "train_state": {
                "best_map50": self.state.best_map50,
                "best_epoch": self.state.best_epoch,
                "best_checkpoint": self.state.best_checkpoint,
                "history": self.state.history,
            },
        }

    def _save(self, epoch: int, metrics: dict[str, Any], resume_epoch: int) -> Path | None:
        if not self.world.is_main:
            return None
        return save_checkpoint(self.results_dir, epoch, self._payload(metrics, resume_epoch))

    # --- the loop -------------------------------------------------------------------------------
    def _step(self, images: torch.Tensor, targets: list[dict[str, Any]]) -> float:
        images = images.to(self.world.device, non_blocking=True)
        targets = to_device(targets, self.world.device)
        self.warmup.apply(self.state.global_step)
        with autocast_for(self.precision, self.world.device):
            outputs = self.model(images, targets)
        losses = self.criterion(_float(outputs), targets)
        loss = sum(losses.values())
        if self.extra_losses is not None:
            extra = self.extra_losses(images, targets, outputs)
            self.step_losses = {"train_detection_loss": loss.detach()}
            self.step_losses.update({name: value.detach() for name, value in extra.items()})
            loss = loss + sum(extra.values())
        # one collective per step carries both "some rank's loss is not finite" and "some rank got
        # SIGTERM", so every rank stops at the same step and none waits for the others
        flags = torch.tensor(
            [0.0 if torch.isfinite(loss).item() else 1.0, 1.0 if self.sigterm.raised else 0.0],
            device=self.world.device,
        )
        if self.world.distributed:
            torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        if flags[0].item() > 0:
            raise TrainingStopped(
                f"loss diverged at epoch {self.state.epoch} step {self.state.global_step}", 1
            )
        self.stop_requested = flags[1].item() > 0
        self.optimizer.zero_grad(set_to_none=True)
        self.loss_scaler.backward(loss)
        if self.clip > 0:
            self.loss_scaler.unscale(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.loss_scaler.step(self.optimizer)
        if self.per_step_schedule:
            self.scheduler.step()
        self.state.global_step += 1
        if self.state.global_step == self.warmup.steps:
            self.warmup.release()
        if self.ema is not None:
            self.ema.update(self.model, self.state.global_step)
        return float(loss.item())

    def _validate(self) -> dict[str, Any]:
        validate_original = bool(self.train_cfg["ema"]["validate_original_weights"])
        net = self.ema.module if self.ema is not None and not validate_original else unwrap(self.model)
        if self.ema is not None:
            net.to(self.world.device)
        return evaluate_loader(
            net,
            self.val_loader,
            self.postprocessor,
            self.world,
            criterion=self.criterion,
            precision=self.precision,
            gt_label_map=self.gt_label_map,
        )

    def fit(self, dry_run: bool = False) -> TrainState:
        world, cfg = self.world, self.train_cfg
        val_every = int(cfg["validation_interval"])
        ckpt_every = int(cfg["checkpoint_interval"])
        by_step = cfg["checkpoint_interval_unit"] == "step"
        self.status.write(STARTED, f"Starting RT-DETR {self.action}.", setup_seconds=self.setup_seconds)
        steps_per_epoch = len(self.train_loader)
        deadline = (
            DeadlineFit(
                self.deadline_s, time.time(), first_epoch=self.state.epoch, planned_epochs=self.planned_epochs
            )
            if self.deadline_s is not None
            else None
        )
        with SigtermFlag() as sigterm:
            self.sigterm = sigterm
            try:
                while self.state.epoch < self.num_epochs:
                    epoch = self.state.epoch
                    sampler = getattr(self.train_loader, "sampler", None)
                    if hasattr(sampler, "set_epoch"):
                        sampler.set_epoch(epoch)
                    batch_sampler = getattr(self.train_loader, "batch_sampler", None)
                    if hasattr(batch_sampler, "set_epoch"):
                        batch_sampler.set_epoch(epoch)
                    self._set_mixing(batch_sampler, epoch)
                    self.model.train()
                    started, total, count = time.time(), 0.0, 0
                    extra_totals: dict[str, Any] = {}
                    for step, (images, targets) in enumerate(self.train_loader):
                        total += self._step(images, targets)
                        count += 1
                        for name, value in self.step_losses.items():
                            extra_totals[name] = extra_totals.get(name, 0.0) + value
                        if by_step and world.is_main and self.state.global_step % ckpt_every == 0:
                            self._save(epoch, {}, resume_epoch=epoch)
                        if world.is_main and (step % 10 == 0 or step == steps_per_epoch - 1):
                            self._progress(epoch, step, steps_per_epoch, total / count, started)
                        if self.stop_requested:
                            self._save(epoch, {}, resume_epoch=epoch)
                            raise TrainingStopped(
                                f"interrupted by SIGTERM at epoch {epoch} step {self.state.global_step}; "
                                f"a checkpoint to resume from was saved",
                                143,
                            )
                        if dry_run:
                            break
                    if not self.per_step_schedule:
                        self.scheduler.step()
                    self._sync_buffers()
                    if deadline is not None and not dry_run:
                        self._fit_to_deadline(deadline, epoch, steps_per_epoch)
                    seconds = time.time() - started
                    kpi: dict[str, Any] = {"train_loss": all_reduce_mean(total / max(1, count), world)}
                    for name, value in extra_totals.items():
                        kpi[name] = all_reduce_mean(float(value) / max(1, count), world)
                    kpi["lr"] = self.optimizer.param_groups[-1]["lr"]
                    last = epoch == self.num_epochs - 1 or dry_run
                    if (epoch + 1) % val_every == 0 or last:
                        validation_started = time.time()
                        metrics = self._validate()
                        self.validation_seconds = time.time() - validation_started
                        kpi.update(
                            val_loss=metrics["loss"], val_mAP=metrics["mAP"], val_mAP50=metrics["mAP50"]
                        )
                    self.state.epoch = epoch + 1
                    improved = "val_mAP50" in kpi and kpi["val_mAP50"] > self.state.best_map50
                    saved = None
                    if not dry_run and (
                        improved or (not by_step and ((epoch + 1) % ckpt_every == 0 or last))
                    ):
                        if improved:
                            self.state.best_map50, self.state.best_epoch = float(kpi["val_mAP50"]), epoch
                            self.state.best_checkpoint = str(epoch_path(self.results_dir, epoch))
                        saved = self._save(epoch, kpi, resume_epoch=epoch + 1)
                    self.state.history.append({"epoch": epoch, "seconds": round(seconds, 3), **kpi})
                    self.status.epoch(
                        epoch, self.num_epochs - 1, seconds, kpi, epoch_seconds=round(seconds, 3)
                    )
                    if world.is_main:
                        shown = " ".join(f"{k}={v:.4g}" for k, v in kpi.items() if isinstance(v, float))
                        saved_note = f" (saved {saved.name})" if saved else ""
                        print(
                            f"epoch {epoch}/{self.num_epochs - 1} done in {seconds:.1f}s: {shown}{saved_note}",
                            flush=True,
                        )
                    if dry_run:
                        break
            except TrainingStopped as stop:
                self.status.write(FAILURE, str(stop), epoch=self.state.epoch, max_epoch=self.num_epochs - 1)
                stop.status_written = True
                raise
        self._check_ranks_in_sync()
        best = {"best_epoch": self.state.best_epoch, "best_checkpoint": self.state.best_checkpoint}
        kpi = {"best_val_mAP50": self.state.best_map50} if self.state.best_epoch >= 0 else {}
        self.status.write(SUCCESS, f"{self.action.capitalize()} finished successfully.", kpi=kpi, **best)
        return self.state

    def _set_mixing(self, batch_sampler: Any, epoch: int) -> None:
        """Mosaic and mixup for the first ``mix_stop_fraction`` of the epochs, plain images after."""
        if not hasattr(batch_sampler, "set_mixing"):
            return
        on = epoch < math.ceil(self.mix_stop_fraction * self.num_epochs - 1e-9)
        batch_sampler.set_mixing(on)

    def _fit_to_deadline(self, deadline: DeadlineFit, epoch: int, steps_per_epoch: int) -> None:
        """Refit num_epochs and the schedule to ``train.time_budget`` after the training steps of ``epoch``;
        the pace counts this epoch's validation as the last one measured took."""
        validates = (epoch + 1) % int(self.train_cfg["validation_interval"]) == 0
        fitted, note = deadline.refit(
            self.scheduler,
            epoch=epoch,
            num_epochs=self.num_epochs,
            steps_per_epoch=steps_per_epoch,
            optim=self.train_cfg["optim"],
            now=time.time() + (self.validation_seconds if validates else 0.0),
        )
        if self.world.distributed:  # every rank takes rank 0's answer, so all stop at the same epoch
            fitted = int(all_gather_objects(fitted, self.world)[0])
        if fitted != self.num_epochs and self.world.is_main:
            print(f"{note} (was {self.num_epochs})", flush=True)
        self.num_epochs = fitted

    def _sync_buffers(self) -> None:
        """Rank 0's BatchNorm statistics everywhere: every rank validates and saves the same model."""
        if not self.world.distributed:
            return
        for buffer in unwrap(self.model).buffers():
            torch.distributed.broadcast(buffer.data, src=0)

    def _check_ranks_in_sync(self) -> None:
        """DDP keeps every rank's weights identical; prove it once at the end (a digest per rank)."""
        if not self.world.distributed:
            return
        digest = hashlib.sha256()
        for tensor in unwrap(self.model).state_dict().values():
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        digests = all_gather_objects(digest.hexdigest()[:16], self.world)
        if len(set(digests)) != 1:
            raise TrainingStopped(f"model weights differ across ranks after training: {digests}", 1)
        if self.world.is_main:
            print(f"parameters in sync across {self.world.size} ranks (digest {digests[0]})", flush=True)

    def _progress(self, epoch: int, step: int, steps: int, loss: float, started: float) -> None:
        elapsed = time.time() - started
        per_step = elapsed / (step + 1)
        remaining = per_step * (steps - step - 1) + per_step * steps * (self.num_epochs - epoch - 1)
        lr = self.optimizer.param_groups[-1]["lr"]
        print(
            f"epoch {epoch}/{self.num_epochs - 1} step {step + 1}/{steps} loss {loss:.4f} lr {lr:.2e} "
            f"{per_step:.2f}s/step eta {hms(remaining)}",
            file=sys.stdout,
            flush=True,
        )


def _float(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, dict):
        return {k: _float(v) for k, v in outputs.items()}
    if isinstance(outputs, list):
        return [_float(v) for v in outputs]
    return outputs

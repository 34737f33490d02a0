"""``rtdetr train -e spec.yaml [key=value ...]``.

Under ``train.num_gpus > 1`` or ``train.num_nodes > 1`` (or TAO's launch variables) the command
re-runs itself under torchrun; each worker builds the model, the loaders and the trainer. Output in
``<results_dir>/train/``: status.json, experiment.yaml, model_epoch_NNN.pth, rtdetr_model_latest.pth.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from model.config.defaults import spec_section
from model.engine.action_session import action_session, launch
from model.engine.determinism import apply_cudnn, seed_everything
from model.errors import ConfigError

__all__ = ["freeze_modules", "run", "train_worker", "wrap_distributed"]


def wrap_distributed(model: Any, spec: dict[str, Any], world: Any) -> Any:
    import torch

    train = spec_section(spec, "train")
    if not world.distributed:
        return model
    if train["distributed_strategy"] == "fsdp":
        if world.device.type != "cuda":
            raise ConfigError("train.distributed_strategy: fsdp needs GPUs; use ddp on the CPU")
        from torch.distributed.fsdp import FullyShardedDataParallel, MixedPrecision

        half = MixedPrecision(
            param_dtype=torch.float16, reduce_dtype=torch.float16, buffer_dtype=torch.float16
        )
        return FullyShardedDataParallel(model, mixed_precision=half, device_id=world.device)
    if world.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    m = spec_section(spec, "model")
    # Every parameter gets a gradient in the default configuration; without denoising queries or
    # auxiliary losses some heads are idle and DDP must be told.
    find_unused = int(m["dn_number"]) == 0 or not m["aux_loss"] or bool(train["freeze"])
    return torch.nn.parallel.DistributedDataParallel(
        model,
        device_ids=[world.device.index] if world.device.type == "cuda" else None,
        find_unused_parameters=find_unused,
    )


def freeze_modules(model: Any, names: Sequence[str]) -> None:
    known = {name for name, _ in model.named_children()}
    unknown = [n for n in names if n.split(".")[0] not in known]
    if unknown:
        raise ConfigError(f"train.freeze: unknown module(s) {unknown}; choose from {sorted(known)}")
    for name, param in model.named_parameters():
        if any(name == n or name.startswith(n + ".") for n in names):
            param.requires_grad_(False)


def run(spec: dict[str, Any], argv: Sequence[str]) -> int:
    return launch(spec, "train", argv, train_worker)


def train_worker(spec: dict[str, Any]) -> int:
    from model.checkpoints.weights import load_weights
    from model.data import build_dataloader
    from model.engine import activation_checkpoint
    from model.engine.timing import SetupClock
    from model.engine.trainer import Trainer, TrainingStopped
    from model.network.rtdetr import build_criterion, build_model, build_postprocessor

    clock = SetupClock()

    try:
        with action_session(spec, "train", None) as (results_dir, world, status):
            train = spec_section(spec, "train")
            seed_everything(int(train["seed"]), world.rank)
            apply_cudnn(train["cudnn"])
            seed = max(0, int(train["seed"]))
            train_loader = build_dataloader(spec, "train", rank=world.rank, world_size=world.size, seed=seed)
            val_loader = build_dataloader(spec, "val", rank=world.rank, world_size=world.size, seed=seed)
            clock.mark("data")
            model = build_model(spec)
            if train["pretrained_model_path"]:
                report = load_weights(model, train["pretrained_model_path"])
                if world.is_main:
                    print(report.summary(), flush=True)
            freeze_modules(model, list(train["freeze"] or []))
            if activation_checkpoint.wanted(spec, world.size):
                wrapped = activation_checkpoint.enable(model)
                if world.is_main:
                    print(f"activation checkpointing on {wrapped} blocks", flush=True)
            model.to(world.device)
            parts = {
                "model": wrap_distributed(model, spec, world),
                "criterion": build_criterion(spec).to(world.device),
                "postprocessor": build_postprocessor(spec).to(world.device),
                "train_loader": train_loader,
                "val_loader": val_loader,
                "status": status,
            }
            trainer = Trainer(spec, results_dir, world, parts)
            trainer.resume_from(train["resume_training_checkpoint_path"] or None)
            clock.mark("model")
            trainer.setup_seconds = clock.phases
            if world.is_main:
                print(clock.line(), flush=True)
            state = trainer.fit(dry_run=bool(train["is_dry_run"]))
            if world.is_main and state.best_epoch >= 0:
                print(
                    f"best val_mAP50 {state.best_map50:.4f} at epoch {state.best_epoch}: {state.best_checkpoint}"
                )
        return 0
    except TrainingStopped as stop:
        print(f"error: {stop}", file=sys.stderr, flush=True)
        return stop.exit_code

"""Training checkpoints in TAO's layout: file names, the latest link, pruning, clear errors."""

from __future__ import annotations

import pytest
import torch

from model.checkpoints.training_files import (
    LATEST,
    epoch_of,
    find_latest,
    prune_checkpoints,
    read_training_checkpoint,
    save_checkpoint,
)
from model.errors import CheckpointError


def test_checkpoints_are_named_like_tao_and_latest_links(tmp_path):
    for epoch in range(3):
        save_checkpoint(tmp_path, epoch, {"model": {"w": torch.ones(1) * epoch}})
    assert sorted(p.name for p in tmp_path.glob("model_epoch_*.pth")) == [
        "model_epoch_000.pth",
        "model_epoch_001.pth",
        "model_epoch_002.pth",
    ]
    assert (tmp_path / LATEST).is_symlink()
    assert find_latest(tmp_path).name == "model_epoch_002.pth"
    data = read_training_checkpoint(tmp_path / LATEST)
    assert data["epoch"] == 2 and data["tao_model"] == "rtdetr"
    assert epoch_of(tmp_path / "model_epoch_002.pth") == 2
    removed = prune_checkpoints(tmp_path, keep={0})
    assert sorted(p.name for p in removed) == ["model_epoch_001.pth"]


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="is not a readable PyTorch checkpoint"):
        read_training_checkpoint(bad, "train.resume_training_checkpoint_path")
    other = tmp_path / "weights.pth"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="no 'model' entry"):
        read_training_checkpoint(other)

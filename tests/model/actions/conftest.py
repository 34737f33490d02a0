"""A checkpoint of ``tests.conftest.tiny_spec``'s model saved as the trainer saves it, and a fixture that
runs ``rtdetr <action>`` as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ROOT, tiny_spec


def save_tiny_checkpoint(spec: dict, folder: Path, *, score_bias: float | None = None, seed: int = 0) -> Path:
    """An untrained checkpoint in the trainer's format. ``score_bias`` sets the class-head biases of
    the real classes (0 spreads their scores around 0.5, so a confidence threshold keeps some and
    drops others); label 0, unused with category ids 1..3, is silenced as training would."""
    import torch

    from model.checkpoints.training_files import save_checkpoint
    from model.network.rtdetr import build_model

    torch.manual_seed(seed)
    model = build_model(spec)
    if score_bias is not None:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "score_head" in name and name.endswith("bias"):
                    param.fill_(score_bias)
                    param[0] = -10.0
    return save_checkpoint(
        folder, 0, {"model": model.state_dict(), "ema": None, "global_step": 0, "spec": spec}
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(synthetic_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    return save_tiny_checkpoint(tiny_spec(synthetic_data, folder), folder, score_bias=0.0)


@pytest.fixture()
def run_rtdetr() -> Callable[..., subprocess.CompletedProcess]:
    """``rtdetr <args>`` in a fresh interpreter, from the project root; returns the finished process."""

    def call(
        *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "model.cli", *args],
            cwd=ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return call

"""Shared fixtures of the model tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 threads under contention run ~7x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small dynamic-batch ONNX file shaped like RT-DETR's export (``tests.model.deploy.onnx_stand_in``)."""
    from tests.model.deploy.onnx_stand_in import write_onnx

    return write_onnx(tmp_path_factory.mktemp("onnx") / "model.onnx")

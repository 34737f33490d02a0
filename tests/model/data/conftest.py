"""Fixtures of the data-layer tests: a private cache folder per test, and tar archive builders."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test extracts and downloads into its own cache (``RTDETR_CACHE_DIR``)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RTDETR_CACHE_DIR", str(cache))
    return cache


def write_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> Path:
    """Write a tar archive of ``(name, data)`` files and ready-made ``TarInfo`` entries (links...)."""
    with tarfile.open(path, mode) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path

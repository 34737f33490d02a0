"""The local data cache: where it lives, and the file lock that lets processes share it.

The cache root is ``RTDETR_CACHE_DIR`` when set, otherwise ``~/.cache/rtdetr-automl``. Downloads
(``fetch.py``) and extracted archives (``archive_cache.py``) live in sub-folders of it. Every
writer takes an exclusive ``fcntl.flock`` on a ``.lock`` file next to the entry it fills, writes
into a temporary folder or file and renames it into place, so readers never see a partial entry
and concurrent processes (ranks, trials) fill each entry once.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model.errors import DataError

__all__ = ["CACHE_ENV", "cache_root", "file_lock"]

CACHE_ENV = "RTDETR_CACHE_DIR"
DEFAULT_CACHE = Path("~/.cache/rtdetr-automl")


def cache_root(root: str | Path | None = None) -> Path:
    """The cache folder (created): ``root`` if given, else ``$RTDETR_CACHE_DIR``, else the default."""
    chosen = Path(root) if root is not None else Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    chosen = chosen.expanduser()
    try:
        chosen.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"data cache folder {str(chosen)!r} cannot be created ({error}); set {CACHE_ENV} to a "
            "writable folder with room for the extracted images"
        ) from error
    return chosen


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block.

    The lock is released by the kernel when the process dies, so a crashed writer never blocks
    the next one; the lock file itself is left in place (deleting it would race with waiters).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)

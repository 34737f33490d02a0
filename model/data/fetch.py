"""Read data paths that may be URLs (``s3://``, ``gs://``, ``https://``...) into the local cache.

TAO users write ``image_dir: s3://bucket/data/train/images.tar.gz``; anything with a ``scheme://``
(other than ``file://``) is opened with fsspec and copied once under
``<cache root>/downloads/<sha256 of the URL>/<file name>``. Credentials and endpoints come from the
usual environment of each filesystem (``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``
for S3 through botocore; ``GOOGLE_APPLICATION_CREDENTIALS`` for GCS) and from fsspec's own
configuration (``FSSPEC_S3_ENDPOINT_URL=...`` and the like). A download is reused while the remote
object's fingerprint (size plus ETag / modification time when the server gives them) is unchanged;
otherwise it is fetched again. A remote folder (object stores) is copied recursively; over HTTP(S)
an ``image_dir`` must be an archive. Local paths pass through.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from model.data.cache_dir import cache_root, file_lock
from model.errors import DataError

__all__ = ["fetch", "is_url"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_FINGERPRINT_KEYS = (
    "size",
    "ETag",
    "etag",
    "LastModified",
    "Last-Modified",
    "last_modified",
    "mtime",
    "md5",
    "Content-MD5",
    "Digest",
)
_SOURCE_FILE = ".source.json"


def is_url(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` paths other than ``file://``."""
    text = os.fspath(path)
    return bool(_URL.match(text)) and not text.startswith("file://")


def _local(path: str, key: str) -> Path:
    if path.startswith("file://"):
        path = path[len("file://") :]
    local = Path(path).expanduser()
    if not local.exists():
        raise DataError(f"{key}: {path!r} does not exist; point it at an existing file or folder (or a URL)")
    return local


def _fingerprint(info: dict[str, Any]) -> dict[str, str]:
    return {k: str(info[k]) for k in _FINGERPRINT_KEYS if info.get(k) is not None}


def _open_filesystem(url: str, key: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as error:
        raise DataError(
            f"{key}: {url!r} needs a filesystem package that is not installed ({error}); install it "
            "(s3fs for s3://, gcsfs for gs://, adlfs for az://, aiohttp for https://)"
        ) from error
    except ValueError as error:
        raise DataError(f"{key}: {url!r} is not a URL fsspec can open: {error}") from error


def _remote_error(url: str, key: str, error: Exception) -> DataError:
    if isinstance(error, FileNotFoundError):
        return DataError(f"{key}: {url!r} was not found; check the URL (bucket, path and file name)")
    return DataError(
        f"{key}: cannot read {url!r}: {type(error).__name__}: {error}; check the URL and the credentials "
        "in the environment (e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE, and "
        "AWS_ENDPOINT_URL for an S3-compatible server)"
    )


def _download(fs: Any, remote: str, info: dict[str, Any], target: Path) -> None:
    """Copy ``remote`` (file or folder) to ``target`` through a temporary sibling, then rename."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    try:
        if info.get("type") == "directory":
            tmp.mkdir(parents=True)
            fs.get(remote.rstrip("/") + "/", str(tmp) + "/", recursive=True)
        else:
            with fs.open(remote, "rb") as source, open(tmp, "wb") as sink:
                shutil.copyfileobj(source, sink, length=1 << 20)
                sink.flush()
                os.fsync(sink.fileno())
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.rename(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def fetch(path: str | os.PathLike[str], *, key: str = "path", cache: str | Path | None = None) -> Path:
    """Return a local path for ``path``: itself when local, else a cached copy of the URL.

    Args:
        path: a local path, ``file://`` path, or any fsspec URL (file or folder).
        key: the spec key the path came from, named in error messages.
        cache: the cache root (default: ``RTDETR_CACHE_DIR`` or ``~/.cache/rtdetr-automl``).

    Raises:
        DataError: the local path does not exist, or the URL cannot be read (message names the URL).
    """
    text = os.fspath(path)
    if not is_url(text):
        return _local(text, key)
    fs, remote = _open_filesystem(text, key)
    try:
        info = fs.info(remote)
    except Exception as error:  # every backend raises its own types; all mean "cannot read"
        raise _remote_error(text, key, error) from error
    name = Path(remote.rstrip("/")).name or "download"
    folder = cache_root(cache) / "downloads" / hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    target = folder / name
    record = folder / _SOURCE_FILE
    wanted = {"url": text, "fingerprint": _fingerprint(info)}
    reusable = bool(wanted["fingerprint"])  # without any fingerprint we cannot tell: fetch again
    with file_lock(folder.with_suffix(".lock")):
        if reusable and target.exists() and record.exists():
            try:
                if json.loads(record.read_text(encoding="utf-8")) == wanted:
                    return target
            except (OSError, ValueError):
                pass  # an unreadable record only means we download again
        folder.mkdir(parents=True, exist_ok=True)
        record.unlink(missing_ok=True)  # the old copy is no longer vouched for
        try:
            _download(fs, remote, info, target)
        except DataError:
            raise
        except Exception as error:
            raise _remote_error(text, key, error) from error
        record.write_text(json.dumps(wanted, sort_keys=True), encoding="utf-8")
    return target

"""Image folders given as archives, extracted once into a content-addressed cache, safely.

An ``image_dir`` is a folder or an archive: ``.tar.gz``, ``.tgz``, ``.tar`` (also ``.tar.bz2``,
``.tar.xz``) or ``.zip`` (COCO ships ``train2017.zip``). An archive is extracted to
``<cache root>/archives/<sha256 of its bytes>/files/``, so the same bytes under another name or
path reuse the same folder, and a changed archive gets a new one.

Hashing a large archive costs one read, so the content hash is remembered in
``archives/index/`` under a key made of the archive's real path, size, mtime (ns) and inode;
while these are unchanged the archive is not read again. (A file rewritten in place with the
same size within the same mtime tick would fool that key; writers such as ``cp``, ``tar`` and
downloads change the mtime, and deleting ``archives/index`` forces a re-hash.)

Concurrency and crashes: the extractor holds ``fcntl.flock`` on ``archives/<hash>.lock``,
extracts into ``archives/.tmp-<hash>-<pid>-<random>/``, writes ``complete.json`` there last and
renames the folder to ``archives/<hash>``. A folder without ``complete.json`` (an interrupted
run, a copy) is never used: the next extractor removes it and starts again.

Safety: every member is checked before it is written. Absolute names, ``..`` components,
symbolic links, hard links and special files (devices, FIFOs) are a ``DataError`` naming the
archive and the member; a truncated or corrupt archive is a ``DataError`` naming the file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from model.data.cache_dir import CACHE_ENV, cache_root, file_lock
from model.data.fetch import fetch
from model.errors import DataError

__all__ = ["ARCHIVE_SUFFIXES", "extract_archive", "is_archive", "resolve_image_dir"]

ARCHIVE_SUFFIXES: tuple[str, ...] = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz", ".zip")
MARKER = "complete.json"
FILES = "files"
_CHUNK = 1 << 20
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, ValueError)
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


def is_archive(path: str | os.PathLike[str]) -> bool:
    """True when the name ends with a supported archive suffix."""
    return os.fspath(path).lower().endswith(ARCHIVE_SUFFIXES)


def _content_hash(archive: Path, index: Path) -> str:
    """sha256 of the archive's bytes, remembered per (real path, size, mtime, inode)."""
    st = archive.stat()
    identity = f"{archive.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}"
    memo = index / (hashlib.sha256(identity.encode("utf-8")).hexdigest() + ".sha256")
    try:
        known = memo.read_text(encoding="ascii").strip()
        if re.fullmatch(r"[0-9a-f]{64}", known):
            return known
    except OSError:
        pass
    digest = hashlib.sha256()
    with open(archive, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    value = digest.hexdigest()
    index.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_name(f".{memo.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(value, encoding="ascii")
    os.replace(tmp, memo)
    return value


def _safe_relative(archive: Path, name: str) -> PurePosixPath:
    """The member's path inside the extraction folder, or a DataError if it could escape it."""
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
        raise DataError(
            f"archive {str(archive)!r}: member {name!r} has an absolute path; refusing to extract it "
            "(rebuild the archive with relative member names, e.g. `tar -C images -czf images.tar.gz .`)"
        )
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    if ".." in parts:
        raise DataError(
            f"archive {str(archive)!r}: member {name!r} contains a '..' component and could write "
            "outside the extraction folder; refusing to extract it (rebuild the archive without '..')"
        )
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _reject_link(archive: Path, name: str, kind: str) -> DataError:
    return DataError(
        f"archive {str(archive)!r}: member {name!r} is a {kind}; links are refused because they can "
        "point outside the extraction folder (rebuild the archive with the real files, e.g. `tar -h`)"
    )


def _tar_members(archive: Path, tar: tarfile.TarFile) -> Iterator[tuple[PurePosixPath, IO[bytes] | None]]:
    for member in tar:
        if member.issym():
            raise _reject_link(archive, member.name, "symbolic link")
        if member.islnk():
            raise _reject_link(archive, member.name, "hard link")
        relative = _safe_relative(archive, member.name)
        if member.isdir():
            yield relative, None
        elif member.isfile():
            yield relative, tar.extractfile(member)
        else:
            raise DataError(
                f"archive {str(archive)!r}: member {member.name!r} is a special file (device or FIFO); "
                "an image archive may hold only regular files and folders"
            )


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> Iterator[tuple[PurePosixPath, IO[bytes] | None]]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _reject_link(archive, info.filename, "symbolic link")
        relative = _safe_relative(archive, info.filename)
        yield relative, (None if info.is_dir() else zf.open(info))


def _write_members(archive: Path, destination: Path) -> int:
    """Extract every member of ``archive`` under ``destination``; return the number of files."""
    count = 0

    def write(members: Iterator[tuple[PurePosixPath, IO[bytes] | None]]) -> None:
        nonlocal count
        for relative, stream in members:
            target = destination / relative
            if stream is None:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with stream, open(target, "wb") as sink:
                shutil.copyfileobj(stream, sink, length=_CHUNK)
            count += 1

    if archive.name.lower().endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            write(_zip_members(archive, zf))
    else:
        with tarfile.open(archive, mode="r:*") as tar:
            write(_tar_members(archive, tar))
    return count


def _corrupt(path: Path, error: BaseException) -> DataError:
    return DataError(
        f"archive {str(path)!r} is truncated or corrupt ({type(error).__name__}: {error}); "
        "copy or download it again, or recreate it"
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def extract_archive(archive: str | Path, *, cache: str | Path | None = None) -> Path:
    """Extract ``archive`` once into the cache and return the folder holding its files.

    Concurrent callers (processes or threads) extract it once; later calls return at once.

    Raises:
        DataError: the archive is missing, truncated or corrupt, or a member is unsafe.
    """
    path = Path(archive)
    if not path.is_file():
        raise DataError(f"archive {str(path)!r} does not exist or is not a file")
    root = cache_root(cache) / "archives"
    try:
        key = _content_hash(path, root / "index")
    except OSError as error:
        raise DataError(f"archive {str(path)!r} cannot be read: {error}") from error
    final = root / key
    if (final / MARKER).is_file():
        return final / FILES
    with file_lock(root / f"{key}.lock"):
        if (final / MARKER).is_file():
            return final / FILES
        for leftover in root.glob(f".tmp-{key}-*"):
            _remove(leftover)  # we hold the lock, so these belong to extractors that died
        _remove(final)  # a folder without the marker is incomplete
        work = root / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        (work / FILES).mkdir(parents=True)
        try:
            try:
                count = _write_members(path, work / FILES)
            except DataError:
                raise
            except OSError as error:
                if error.errno not in _DISK_ERRNOS:
                    raise _corrupt(path, error) from error
                raise DataError(
                    f"cannot extract archive {str(path)!r} into the cache {str(root)!r}: {error}; free space "
                    f"there or set {CACHE_ENV} to a writable folder with room for the images"
                ) from error
            except _CORRUPT as error:
                raise _corrupt(path, error) from error
            marker = {"archive": str(path.resolve()), "sha256": key, "files": count}
            (work / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
            os.rename(work, final)
        finally:
            _remove(work)
    return final / FILES


def resolve_image_dir(image_dir: str | os.PathLike[str], *, key: str = "image_dir") -> Path:
    """The local folder of images for a spec's ``image_dir``: a folder, archive or URL of either.

    Raises:
        DataError: empty value, missing path, or a file that is not a supported archive.
    """
    text = os.fspath(image_dir).strip() if image_dir is not None else ""
    if not text:
        raise DataError(f"{key} is empty; set it to an image folder or an images.tar.gz archive")
    local = fetch(text, key=key)
    if local.is_dir():
        return local
    if is_archive(local):
        return extract_archive(local)
    raise DataError(
        f"{key}: {text!r} is a file but not an archive; give a folder of images or an archive "
        f"ending in {', '.join(ARCHIVE_SUFFIXES)}"
    )

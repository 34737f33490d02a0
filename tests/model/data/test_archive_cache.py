"""Image archives are extracted once into a content-addressed cache, safely and concurrently."""

from __future__ import annotations

import hashlib
import multiprocessing
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from model.data.archive_cache import MARKER, extract_archive, resolve_image_dir
from model.errors import DataError
from tests.model.data.conftest import write_tar


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _archive_names(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        return {m.name for m in tar.getmembers() if m.isfile()}


def test_extracted_once_and_reused(synthetic_data: Path, data_cache: Path, tmp_path: Path) -> None:
    archive = synthetic_data / "train" / "images.tar.gz"
    first = extract_archive(archive)
    assert set(_tree(first)) == _archive_names(archive)
    mtimes = {p: p.stat().st_mtime_ns for p in first.rglob("*")}

    assert extract_archive(archive) == first
    assert {p: p.stat().st_mtime_ns for p in first.rglob("*")} == mtimes  # nothing rewritten

    copy = shutil.copy(archive, tmp_path / "renamed.tgz")  # same bytes, other name: same cache entry
    assert extract_archive(copy) == first
    assert first.is_relative_to(data_cache)


def test_changed_archive_gets_a_new_entry(tmp_path: Path) -> None:
    archive = write_tar(tmp_path / "images.tar.gz", [("a.jpg", b"one")])
    first = extract_archive(archive)
    write_tar(archive, [("a.jpg", b"two"), ("b.jpg", b"three")])
    second = extract_archive(archive)
    assert second != first
    assert _tree(second) == {"a.jpg": b"two", "b.jpg": b"three"}


def _extract_in_child(archive: str, cache: str, barrier: multiprocessing.synchronize.Barrier, out) -> None:
    import os

    os.environ["RTDETR_CACHE_DIR"] = cache
    barrier.wait()
    out.put(str(extract_archive(archive)))


def test_two_processes_share_one_complete_extraction(synthetic_data: Path, data_cache: Path) -> None:
    archive = synthetic_data / "val" / "images.tar.gz"
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(2), context.Queue()
    children = [
        context.Process(target=_extract_in_child, args=(str(archive), str(data_cache), barrier, out))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    results = {out.get(timeout=5) for _ in children}
    assert len(results) == 1
    folder = Path(results.pop())
    assert set(_tree(folder)) == _archive_names(archive)
    assert (folder.parent / MARKER).is_file()
    entries = [p.name for p in (data_cache / "archives").iterdir() if p.is_dir() and p.name != "index"]
    assert entries == [folder.parent.name]  # no temporary folder left behind


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (("../escape.jpg", b"x"), "'..'"),
        (("images/../../escape.jpg", b"x"), "'..'"),
        (("/tmp/escape.jpg", b"x"), "absolute path"),
        (_link("link.jpg", "/etc/passwd", tarfile.SYMTYPE), "symbolic link"),
        (_link("hard.jpg", "/etc/passwd", tarfile.LNKTYPE), "hard link"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink"],
)
def test_unsafe_members_are_refused(tmp_path: Path, member: object, reason: str) -> None:
    archive = write_tar(tmp_path / "images.tar.gz", [("ok.jpg", b"fine"), member])
    name = member.name if isinstance(member, tarfile.TarInfo) else member[0]
    with pytest.raises(DataError, match=reason) as caught:
        extract_archive(archive)
    assert str(archive) in str(caught.value) and repr(name) in str(caught.value)
    assert not (tmp_path / "escape.jpg").exists()
    assert not list((tmp_path / "cache" / "archives").glob("*/files"))  # nothing half-made is kept


def test_unsafe_zip_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "val2017.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.jpg", b"fine")
        zf.writestr("../escape.jpg", b"x")
    with pytest.raises(DataError, match=r"'\.\./escape\.jpg'"):
        extract_archive(archive)


def test_zip_archive_is_extracted(tmp_path: Path) -> None:
    archive = tmp_path / "val2017.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("val2017/a.jpg", b"a")
    assert _tree(extract_archive(archive)) == {"val2017/a.jpg": b"a"}


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_archive_names_the_file(synthetic_data: Path, tmp_path: Path, cut: float) -> None:
    data = (synthetic_data / "test" / "images.tar.gz").read_bytes()
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(DataError, match="truncated or corrupt") as caught:
        extract_archive(broken)
    assert str(broken) in str(caught.value)


def test_garbage_archive_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "images.tar"
    broken.write_bytes(b"this is not a tar file at all" * 40)
    with pytest.raises(DataError, match=str(broken)):
        extract_archive(broken)


def test_interrupted_extraction_is_not_used(tmp_path: Path, data_cache: Path) -> None:
    archive = write_tar(tmp_path / "images.tar.gz", [("a.jpg", b"a"), ("b.jpg", b"b")])
    key = hashlib.sha256(archive.read_bytes()).hexdigest()
    archives = data_cache / "archives"
    half_final = archives / key / "files"  # a final-looking folder without the completion marker
    half_final.mkdir(parents=True)
    (half_final / "a.jpg").write_bytes(b"partial")
    dead_tmp = archives / f".tmp-{key}-99999-deadbeef" / "files"  # left by a killed extractor
    dead_tmp.mkdir(parents=True)

    folder = extract_archive(archive)
    assert folder == half_final
    assert _tree(folder) == {"a.jpg": b"a", "b.jpg": b"b"}
    assert (archives / key / MARKER).is_file()
    assert not dead_tmp.parent.exists()


def test_resolve_image_dir(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    assert resolve_image_dir(folder) == folder
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not an archive"):
        resolve_image_dir(tmp_path / "notes.txt", key="dataset.val_data_sources.image_dir")
    with pytest.raises(DataError, match=r"dataset\.val_data_sources\.image_dir.*does not exist"):
        resolve_image_dir(tmp_path / "missing", key="dataset.val_data_sources.image_dir")
    with pytest.raises(DataError, match="is empty"):
        resolve_image_dir("", key="dataset.val_data_sources.image_dir")

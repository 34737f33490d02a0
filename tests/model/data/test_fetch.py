"""Data paths written as URLs (https://, s3://) are read into the local cache and used like files."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.data import build_dataloader, fetch, is_url
from model.errors import DataError


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_root(synthetic_data: Path) -> Iterator[str]:
    """The synthetic dataset served by a local HTTP server on 127.0.0.1."""
    handler = functools.partial(_QuietHandler, directory=str(synthetic_data))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", _free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _spec(root: str) -> dict:
    return {
        "dataset": {
            "train_data_sources": [
                {"image_dir": f"{root}/train/images.tar.gz", "json_file": f"{root}/train/annotations.json"}
            ],
            "val_data_sources": {
                "image_dir": f"{root}/val/images.tar.gz",
                "json_file": f"{root}/val/annotations.json",
            },
            "num_classes": 4,
            "batch_size": 4,
            "workers": 0,
            "augmentation": {
                "multi_scales": [64],
                "train_spatial_size": [64, 64],
                "eval_spatial_size": [64, 64],
            },
        }
    }


def test_local_paths_pass_through(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    assert not is_url(tmp_path / "a.json") and not is_url(f"file://{tmp_path}/a.json")
    assert is_url("s3://bucket/x") and is_url("https://host/x")
    assert fetch(tmp_path / "a.json") == tmp_path / "a.json"
    assert fetch(f"file://{tmp_path}/a.json") == tmp_path / "a.json"
    with pytest.raises(DataError, match=r"dataset\.val_data_sources\.json_file.*does not exist"):
        fetch(tmp_path / "missing.json", key="dataset.val_data_sources.json_file")


def test_https_archive_and_json_are_fetched_once(http_root: str, synthetic_data: Path) -> None:
    url = f"{http_root}/train/images.tar.gz"
    local = fetch(url)
    assert local.read_bytes() == (synthetic_data / "train" / "images.tar.gz").read_bytes()
    assert local.name == "images.tar.gz"  # the suffix survives, so it is recognised as an archive
    stamp = local.stat().st_mtime_ns
    assert fetch(url) == local and local.stat().st_mtime_ns == stamp  # reused, not downloaded again


def test_https_missing_file_is_a_data_error(http_root: str) -> None:
    with pytest.raises(DataError, match=r"train/nothing\.json"):
        fetch(f"{http_root}/train/nothing.json", key="dataset.train_data_sources[0].json_file")


def test_loader_reads_https_sources(http_root: str) -> None:
    images, targets = next(iter(build_dataloader(_spec(http_root), "val")))
    assert images.shape == (4, 3, 64, 64) and len(targets) == 4


@pytest.fixture
def s3_bucket(synthetic_data: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The synthetic dataset uploaded to a moto S3 server on 127.0.0.1 (fake credentials)."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    import boto3
    import fsspec

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="tao-data")
        for path in synthetic_data.rglob("*"):
            if path.is_file():
                key = "data/" + path.relative_to(synthetic_data).as_posix()
                client.upload_file(str(path), "tao-data", key)
        fsspec.filesystem("s3").clear_instance_cache()
        yield "s3://tao-data/data"
    finally:
        server.stop()


def test_s3_sources_through_moto(s3_bucket: str, synthetic_data: Path) -> None:
    local = fetch(f"{s3_bucket}/val/annotations.json")
    assert local.read_bytes() == (synthetic_data / "val" / "annotations.json").read_bytes()
    images, targets = next(iter(build_dataloader(_spec(s3_bucket), "train")))
    assert images.shape[0] == 4 and all(t["boxes"].shape[1] == 4 for t in targets)
    with pytest.raises(DataError, match=r"s3://tao-data/data/val/missing\.tar\.gz.*not found"):
        fetch(f"{s3_bucket}/val/missing.tar.gz")
    folder = fetch(f"{s3_bucket}/val")  # a remote folder is copied whole
    assert sorted(p.name for p in folder.iterdir()) == ["annotations.json", "images.tar.gz"]

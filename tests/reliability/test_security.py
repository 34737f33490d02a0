"""Attempts to make `rtdetr` run code or write outside its folders, each as a real subprocess.

- A checkpoint whose unpickling would run code, at every key that loads one (resume, pretrained
  weights, evaluate, inference, export, a distillation teacher), with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
  in the environment as TAO's launcher sets it: refused, naming the file, and the code never ran.
- An image archive that would write outside the cache ('..', an absolute path, a symbolic or hard
  link): refused, naming the archive and the member, and nothing written outside.
- `automl ui` reachable from other machines: the server it starts listens on 127.0.0.1 only (read
  from the kernel's socket table, /proc/net/tcp).

Each attempt asserts: a non-zero exit with the message, no traceback, no escape (the marker file
the payload would create, or the file the archive would write, does not exist).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import tiny_spec, write_spec

MARKER = "pwned.txt"


class _Payload:
    """Unpickled, it would write the marker file: what a malicious checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


def evil_checkpoint(path: Path, key: str) -> Path:
    """A .pth that looks like a training checkpoint, with the payload under ``key``."""
    import torch

    payload = {"model": {"w": torch.zeros(1)}, "epoch": 0, "tao_model": "rtdetr"}
    payload[key] = _Payload(path.parent / MARKER)
    torch.save(payload, path)
    return path


CHECKPOINT_KEYS = [
    ("resume", "train", "train.resume_training_checkpoint_path", "model"),
    ("pretrained", "train", "train.pretrained_model_path", "model"),
    ("evaluate", "evaluate", "evaluate.checkpoint", "optimizer"),
    ("inference", "inference", "inference.checkpoint", "ema"),
    ("export", "export", "export.checkpoint", "spec"),
    ("teacher", "distill", "distill.pretrained_teacher_model_path", "model"),
]


def rtdetr(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "model.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env,
    )


@pytest.mark.parametrize(
    ("action", "key", "where"), [c[1:] for c in CHECKPOINT_KEYS], ids=[c[0] for c in CHECKPOINT_KEYS]
)
def test_a_checkpoint_that_would_run_code_is_refused(
    action: str, key: str, where: str, synthetic_data: Path, tmp_path: Path
) -> None:
    evil = evil_checkpoint(tmp_path / "evil.pth", where)
    values = tiny_spec(synthetic_data, tmp_path / "out")
    if action == "distill":  # a teacher shaped like the student; its weights are the evil file
        binding = {"student_module_name": "backbone", "teacher_module_name": "backbone", "criterion": "L2"}
        values["distill"] = {"teacher": dict(values["model"]), "bindings": [{**binding, "weight": 1.0}]}
    spec = write_spec(tmp_path / "spec.yaml", values)
    proc = rtdetr(action, "-e", str(spec), f"{key}={evil}", cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert not (tmp_path / MARKER).exists(), "the checkpoint's code ran"
    assert proc.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert str(evil) in proc.stderr, proc.stderr[-2000:]


def _tar(path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> None:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("ok.jpg")
        ok.size = 4
        tar.addfile(ok, io.BytesIO(b"fine"))
        if member.isfile():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


ARCHIVES = [
    ("dotdot", "../../escape.jpg", lambda tmp: _member("../../escape.jpg")),
    ("absolute", "{tmp}/escape.jpg", lambda tmp: _member(f"{tmp}/escape.jpg")),
    ("symlink", "link.jpg", lambda tmp: _member("link.jpg", tarfile.SYMTYPE, f"{tmp}/escape.jpg")),
    ("hardlink", "hard.jpg", lambda tmp: _member("hard.jpg", tarfile.LNKTYPE, "/etc/passwd")),
]


@pytest.mark.parametrize(("member_name", "member"), [a[1:] for a in ARCHIVES], ids=[a[0] for a in ARCHIVES])
def test_an_image_archive_that_would_write_outside_is_refused(
    member_name: str, member, synthetic_data: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "evil" / "images.tar.gz"
    archive.parent.mkdir()
    _tar(archive, member(tmp_path))
    assert_archive_refused(archive, member_name.format(tmp=tmp_path), synthetic_data, tmp_path)


def assert_archive_refused(archive: Path, member: str, synthetic_data: Path, tmp_path: Path) -> None:
    spec = tiny_spec(synthetic_data, tmp_path / "out")
    spec["dataset"]["val_data_sources"]["image_dir"] = str(archive)
    path = write_spec(tmp_path / "spec.yaml", spec)
    cache = tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-m", "model.cli", "train", "-e", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "RTDETR_CACHE_DIR": str(cache)},
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert str(archive) in proc.stderr and repr(member) in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path.parent / "escape.jpg").exists()
    assert not list(cache.rglob("escape.jpg"))


def _listening_addresses(port: int) -> set[str]:
    """The local IPv4/IPv6 addresses (hex, as /proc/net/tcp* writes them) listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_automl_ui_listens_on_the_loopback_interface_only(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from automl.tracking.ui import free_port

    MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()  # the store
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "automl.cli", "ui", "--results-dir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        line = ""
        while "MLflow UI:" not in line:
            line = ui.stdout.readline()  # type: ignore[union-attr]
            assert line or ui.poll() is None, "automl ui ended before it served"
        addresses = _listening_addresses(port)
        assert addresses == {"0100007F"}, addresses  # 127.0.0.1, and no wildcard 0.0.0.0 or ::
    finally:
        if ui.poll() is None:
            os.killpg(ui.pid, signal.SIGINT)
        ui.wait(timeout=60)

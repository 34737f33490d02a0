"""The disk filling up under a sweep: nothing already written is lost or corrupted, the sweep stops
with a message that says what to do, no process is left, and --resume finishes once there is room.

With root and CAP_SYS_ADMIN (this project's machines) the sweep's results folder is a real tmpfs mount that
the test fills while a trial runs; elsewhere that case is skipped with the reason and the writes
that a full disk breaks (summary.json, a checkpoint) are made to raise ENOSPC instead.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from automl.errors import AutomlError
from automl.results.summary import write_json_atomic
from tests.conftest import tiny_spec, write_spec
from tests.reliability.sweep_faults import (
    Sweep,
    assert_kept,
    assert_no_orphans,
    automl,
    completed,
    no_traceback,
    summary,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 GiB tmpfs mounted at tmp_path/disk (filled up by the test itself), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the ENOSPC cases below cover the writes")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"this machine refuses a tmpfs mount ({done.stderr.strip()}); the ENOSPC cases cover it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path) -> Path:
    """Write one file until the mount is full; returns it (delete it to make room again)."""
    filler = mount / "filler"
    block = b"\0" * (1 << 20)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_a_full_disk_mid_sweep_stops_it_cleanly_and_resume_finishes(
    synthetic_data: Path, tmp_path: Path, small_disk: Path
) -> None:
    spec = write_spec(tmp_path / "spec.yaml", tiny_spec(synthetic_data, tmp_path / "unused"))
    sweep = Sweep.start(
        spec,
        small_disk / "sweep",
        "--trials",
        "3",
        "--max-epochs",
        "2",
        "--no-track",
        log=tmp_path / "sweep.log",
    )
    sweep.wait_for_trial_running(1)
    before = completed(sweep.folder)
    filler = fill(small_disk)
    code = sweep.wait()
    output = sweep.output()
    assert code != 0, output[-3000:]
    no_traceback(output)
    assert "No space left on device" in output and f"automl run --resume {sweep.folder}" in output
    # the last summary.json written whole is still there and valid; it may still read RUNNING (the
    # disk took no more writes, not even FAILED), which --resume takes as it takes a killed sweep
    assert summary(sweep.folder)["status"] in ("RUNNING", "FAILED")
    assert_kept(before, sweep.folder)
    assert_no_orphans(sweep.folder)
    filler.unlink()
    resumed = automl("run", "--resume", str(sweep.folder))
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    data = summary(sweep.folder)
    assert data["status"] == "FINISHED"
    # trial 1 ran when the disk filled: re-run if the sweep could not record its end, else a
    # disk_full failure; either way the sweep has its 3 trials and trial 2 ran once there was room
    states = [(t["state"], t.get("failure_class")) for t in data["trials"] if not t.get("requeued")]
    assert len(states) == 3 and states[0] == states[2] == ("COMPLETE", None), states
    assert states[1] in (("COMPLETE", None), ("FAIL", "disk_full")), states
    assert_kept(before, sweep.folder)
    assert_no_orphans(sweep.folder)


def _enospc_after(limit: int):  # type: ignore[no-untyped-def]
    """A Path.write_text that writes ``limit`` characters of a temporary file, then fails as a full
    disk does."""
    original = Path.write_text

    def write_text(self: Path, data: str, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
        if self.name.endswith(".tmp"):
            original(self, data[:limit], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return original(self, data, *args, **kwargs)

    return write_text


def test_summary_json_is_kept_whole_when_its_rewrite_hits_enospc(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"status": "RUNNING", "trials": [{"number": 0, "state": "COMPLETE"}]})
    monkeypatch.setattr(Path, "write_text", _enospc_after(10))
    with pytest.raises(AutomlError) as caught:
        write_json_atomic(path, {"status": "RUNNING", "trials": [{"number": 0}, {"number": 1}]})
    message = str(caught.value)
    assert str(path) in message and "No space left on device" in message and "kept" in message
    assert json.loads(path.read_text())["trials"] == [{"number": 0, "state": "COMPLETE"}]
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no half-written temporary left


def test_a_checkpoint_that_hits_enospc_leaves_the_previous_ones_and_no_partial_file(
    tmp_path: Path, monkeypatch
) -> None:
    import torch

    from model.checkpoints.training_files import find_latest, save_checkpoint
    from model.errors import ModelError

    first = save_checkpoint(tmp_path, 1, {"model": {"w": torch.zeros(3)}})
    original = torch.save

    def full_disk(obj, f, *args, **kwargs):  # type: ignore[no-untyped-def]
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(ModelError) as caught:
        save_checkpoint(tmp_path, 2, {"model": {"w": torch.ones(3)}})
    monkeypatch.setattr(torch, "save", original)
    assert "No space left on device" in str(caught.value) and "model_epoch_002.pth" in str(caught.value)
    assert not (tmp_path / "model_epoch_002.pth").exists()
    assert find_latest(tmp_path) == first
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no partial file left
    assert torch.load(first)["model"]["w"].tolist() == [0.0, 0.0, 0.0]

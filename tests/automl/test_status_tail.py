"""Tailing status.json while a trainer appends to it."""

from __future__ import annotations

import json

from automl.launch.status_tail import EpochReport, StatusTail, epoch_report, parse_seconds
from automl.results.objective import Objective


def running(epoch: int, map50: str, **kpi: str) -> dict:
    return {
        "status": "RUNNING",
        "epoch": epoch,
        "max_epoch": 9,
        "time_per_epoch": "0:01:05",
        "eta": "0:09:00",
        "kpi": {
            "train_loss": "12.5",
            "lr": "0.0001",
            "val_loss": "3.25",
            "val_mAP": "0.1",
            "val_mAP50": map50,
            **kpi,
        },
    }


def test_missing_file_then_lines_as_they_are_appended(tmp_path):
    path = tmp_path / "train" / "status.json"
    tail = StatusTail(path)
    assert tail.read() == []
    path.parent.mkdir()
    started = json.dumps({"status": "STARTED", "message": "Starting RT-DETR train."})
    first = json.dumps(running(0, "0.25"))
    path.write_text(started + "\n" + first[:40])  # the writer is half-way through a line
    assert [line["status"] for line in tail.read()] == ["STARTED"]
    with open(path, "a") as handle:
        handle.write(first[40:] + "\n")
    (line,) = tail.read()
    assert line["epoch"] == 0
    assert tail.read() == []


def test_offset_skips_lines_of_an_earlier_run(tmp_path):
    path = tmp_path / "status.json"
    path.write_text(json.dumps(running(0, "0.1")) + "\n")
    tail = StatusTail(path, offset=path.stat().st_size)
    with open(path, "a") as handle:
        handle.write("not json\n" + json.dumps(running(1, "0.2")) + "\n")
    assert [line["epoch"] for line in tail.read()] == [1]


def test_epoch_report_parses_kpi_strings_and_time():
    report = epoch_report(running(4, "0.5"), "val_mAP50")
    assert report == EpochReport(
        4,
        {
            "train_loss": 12.5,
            "lr": 0.0001,
            "val_loss": 3.25,
            "val_mAP": 0.1,
            "val_mAP50": 0.5,
            "seconds": 65.0,
        },
    )
    no_validation = running(5, "0.5")
    del no_validation["kpi"]["val_mAP50"]
    assert epoch_report(no_validation, "val_mAP50") is None
    assert epoch_report({"status": "SUCCESS", "kpi": {"best_val_mAP50": "0.5"}}, "best_val_mAP50") is None
    assert parse_seconds("1:00:01") == 3601.0 and parse_seconds(2.5) == 2.5 and parse_seconds("") is None


def test_the_objective_takes_the_best_finite_value_earliest_on_ties():
    history = [
        EpochReport(0, {"m": 0.2}),
        EpochReport(1, {"m": float("nan")}),
        EpochReport(2, {"m": 0.4}),
        EpochReport(3, {"m": 0.4}),
        EpochReport(4, {"m": 0.1}),
    ]
    assert Objective("m").best(history, lambda r: r.metrics.get("m")).epoch == 2
    # a minimized metric (val_loss): the lowest value, not the largest
    assert Objective("m", "minimize").best(history, lambda r: r.metrics.get("m")).epoch == 4
    assert Objective("m").best([], lambda r: r.metrics.get("m")) is None


def test_a_replaced_status_file_is_read_from_its_start_and_earlier_runs_come_first(tmp_path):
    """A new run after a finished one moves status.json to status.run1.json and starts afresh."""
    from automl.launch.status_tail import earlier_runs, every_run_lines

    status = tmp_path / "status.json"
    status.write_text(
        '{"status": "STARTED", "run": 1}\n' + '{"status": "SUCCESS", "padding": "' + "x" * 50 + '"}\n'
    )
    tail = StatusTail(status)
    assert [line["status"] for line in tail.read()] == ["STARTED", "SUCCESS"]
    status.rename(tmp_path / "status.run1.json")
    # a fresh, longer file than the old one: only its inode says it was replaced
    status.write_text('{"status": "STARTED", "run": 2, "padding": "' + "y" * 200 + '"}\n')
    assert [line.get("run") for line in tail.read()] == [2]
    (tmp_path / "status.run10.json").write_text('{"status": "SUCCESS", "run": 10}\n')
    assert [p.name for p in earlier_runs(tmp_path)] == ["status.run1.json", "status.run10.json"]
    assert [line.get("run") for line in every_run_lines(status)] == [1, None, 10, 2]

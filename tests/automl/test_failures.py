"""Failure classification on canned (exit code, last status line, log tail) triples."""

from __future__ import annotations

import pytest

from automl.launch.failures import FAILURE_CLASSES, classify, oom_kill_count

SUCCESS = {"status": "SUCCESS", "message": "Train finished successfully.", "best_epoch": 1}
RUNNING = {"status": "RUNNING", "epoch": 3, "kpi": {"val_mAP50": "0.1"}}


def failure(message: str) -> dict:
    return {"status": "FAILURE", "message": message}


def test_success_is_not_a_failure():
    assert classify(0, SUCCESS, ["epoch 1/1 done"]) is None


def test_exit_zero_without_success_line_is_an_exit_code_failure():
    found = classify(0, RUNNING, ["epoch 3/9 done in 2.0s"])
    assert found is not None and found.kind == "exit_code"
    assert "exit code 0" in found.reason and "no SUCCESS line" in found.reason
    assert classify(0, None, []).kind == "exit_code"


def test_divergence_names_epoch_and_step():
    found = classify(
        1,
        failure("loss diverged at epoch 3 step 120"),
        ["epoch 3/9 step 11/40 loss nan", "error: loss diverged at epoch 3 step 120"],
    )
    assert found.kind == "diverged"
    assert found.reason.startswith("loss diverged at epoch 3 step 120")
    assert "train.optim.lr" in found.reason


@pytest.mark.parametrize(
    "line",
    [
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total)",
        "RuntimeError: [enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory",
        "RuntimeError: CUDA error: out of memory",
    ],
)
def test_out_of_memory_messages(line):
    found = classify(1, failure(line.split(": ", 1)[-1]), ["Traceback (most recent call last):", line])
    assert found.kind == "oom"
    assert "dataset.batch_size" in found.reason


def test_sigkill_without_message_is_probably_the_oom_killer():
    found = classify(-9, RUNNING, ["epoch 3/9 step 1/40 loss 3.2"])
    assert found.kind == "oom" and "most likely" in found.reason
    assert classify(137, RUNNING, []).kind == "oom"
    # torchrun reports a worker killed by SIGKILL in its summary and exits 1
    torchrun = [
        "  exitcode  : -9 (pid: 1234)",
        "  error_file: <N/A>",
        "Signal 9 (SIGKILL) received by PID 1234",
    ]
    assert classify(1, None, torchrun).kind == "oom"


def test_sigkill_when_the_kernel_killed_nothing_is_killed():
    found = classify(-9, RUNNING, [], oom_killed=False)
    assert found.kind == "killed" and "SIGKILL" in found.reason
    assert "by the kernel" in classify(-9, RUNNING, [], oom_killed=True).reason


def test_spec_error_quotes_every_problem():
    tail = [
        "error: /t/spec.yaml: 2 problems in the spec:",
        "  - train.optim.lr: got 1e+30; allowed range is a number (>= 0.0 and <= 1.0)",
        "  - train.num_epochs: got -1; allowed range is an integer >= 1",
    ]
    found = classify(2, None, tail)
    assert found.kind == "spec_error"
    assert "train.optim.lr: got 1e+30" in found.reason and "train.num_epochs: got -1" in found.reason
    assert "\n" not in found.reason


def test_data_error_from_the_trainer_message():
    message = (
        "/d/train/annotations.json: the largest category id is 3, but dataset.num_classes is 2 (category "
        "ids are used as labels and must be < num_classes); set dataset.num_classes: 4"
    )
    found = classify(1, failure(message), [f"error: {message}"])
    assert found.kind == "data_error"
    assert "dataset.num_classes: 4" in found.reason


def test_data_error_before_any_status_line():
    found = classify(1, None, ["error: dataset.train_data_sources[0].image_dir: '/nope' does not exist"])
    assert found.kind == "data_error" and "/nope" in found.reason


def test_checkpoint_error_is_not_a_data_error():
    message = "train.pretrained_model_path: /w/x.pth does not exist or is not a file"
    found = classify(1, failure(message), [f"error: {message}"])
    assert found.kind == "exit_code"
    assert found.reason.startswith("exit code 1: train.pretrained_model_path")


def test_crash_with_traceback_quotes_the_last_log_lines():
    tail = [
        "epoch 0/9 step 1/4 loss 20.1",
        "Traceback (most recent call last):",
        '  File "model/engine/trainer.py", line 200, in fit',
        "    total += self._step(images, targets)",
        "ZeroDivisionError: division by zero",
    ]
    found = classify(1, failure("ZeroDivisionError: division by zero"), tail)
    assert found.kind == "exit_code"
    assert found.reason.startswith("exit code 1: ZeroDivisionError: division by zero")
    assert "self._step(images, targets)" in found.reason
    bare = classify(3, None, tail)
    assert bare.kind == "exit_code" and "ZeroDivisionError" in bare.reason


def test_a_signal_from_outside_is_killed():
    found = classify(-15, RUNNING, [])
    assert found.kind == "killed" and "SIGTERM" in found.reason
    interrupted = failure("interrupted by SIGTERM at epoch 2 step 9; a checkpoint to resume from was saved")
    found = classify(143, interrupted, ["error: interrupted by SIGTERM at epoch 2 step 9"])
    assert found.kind == "killed" and "interrupted by SIGTERM at epoch 2" in found.reason
    assert classify(-11, None, []).reason.startswith("killed by SIGSEGV")


def test_a_full_disk_is_disk_full_from_its_message_or_from_the_free_space_left():
    message = "/r/trials/0001/train/model_epoch_001.pth: could not be saved (No space left on device)"
    found = classify(1, failure(message), [f"error: {message}"])
    assert found.kind == "disk_full" and "model_epoch_001.pth" in found.reason
    # a trial on a full disk may not manage to write its error: the free space tells
    silent = classify(1, RUNNING, [], free_bytes=0)
    assert silent.kind == "disk_full" and "0 bytes free" in silent.reason
    assert classify(1, RUNNING, ["ZeroDivisionError: x"], free_bytes=10 << 30).kind == "exit_code"
    assert classify(0, {"status": "SUCCESS"}, [], free_bytes=0) is None  # a success on a full disk is one


def test_every_class_is_declared():
    cases = [
        (0, None, []),
        (1, failure("loss diverged at epoch 0 step 0"), []),
        (-9, None, []),
        (2, None, ["error: x"]),
        (1, failure("dataset.num_classes: 2 is too small"), []),
        (-15, None, []),
    ]
    assert {classify(*case).kind for case in cases} <= set(FAILURE_CLASSES)


def test_oom_kill_count_is_a_count_or_unknown():
    count = oom_kill_count()
    assert count is None or count >= 0

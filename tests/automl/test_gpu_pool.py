"""GPU and CPU-slot hand-out for concurrent trials."""

from __future__ import annotations

import stat
import threading
import time

import pytest

from automl.errors import AutomlError, SettingError
from automl.launch.devices import GpuPool, PoolError, cpu_count, visible_gpus


def test_visible_gpus_from_cuda_visible_devices():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}) == [0, 1, 2, 3]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": " 2, 5 "}) == [2, 5]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,2"}) == [1]  # CUDA stops at the first invalid id
    with pytest.raises(SettingError, match="indices"):
        visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-8e1d5a7b-0000"})


def test_visible_gpus_from_nvidia_smi(tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        "echo 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)'\n"
        "echo '  MIG 3g.40gb     Device  0: (UUID: MIG-bbbb)'\n"
        "echo 'GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-cccc)'\n"
    )
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    assert visible_gpus({"PATH": str(tmp_path)}) == [0, 1]
    assert visible_gpus({"PATH": str(tmp_path / "nowhere")}) == []


def test_two_gpu_trials_on_four_gpus_never_share():
    pool = GpuPool(visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}))
    assert pool.slots(2) == 2
    first, second = pool.acquire(2), pool.acquire(2)
    assert first == [0, 1] and second == [2, 3]
    assert pool.acquire(2, timeout=0.05) is None  # all four are busy
    pool.release(first)
    assert pool.acquire(2, timeout=0.05) == [0, 1]
    assert pool.trial_env([2, 3]) == {"CUDA_VISIBLE_DEVICES": "2,3", "TAO_VISIBLE_DEVICES": "2,3"}


def test_concurrent_trials_each_get_their_own_devices():
    pool = GpuPool([0, 1, 2, 3])
    held: list[list[int]] = []
    in_use: set[int] = set()
    overlaps: list[int] = []
    lock = threading.Lock()

    def trial() -> None:
        with pool.lease(2) as devices:
            with lock:
                overlaps.extend(d for d in devices if d in in_use)
                in_use.update(devices)
                held.append(devices)
            time.sleep(0.02)
            with lock:
                in_use.difference_update(devices)

    threads = [threading.Thread(target=trial) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(held) == 8 and overlaps == []
    assert all(len(d) == 2 and set(d) <= {0, 1, 2, 3} for d in held)
    assert pool.in_use() == 0


def test_release_of_devices_not_handed_out_is_an_error():
    pool = GpuPool([0, 1])
    devices = pool.acquire(1)
    pool.release(devices)
    with pytest.raises(PoolError, match="not handed out"):
        pool.release(devices)
    with pytest.raises(PoolError):
        pool.release([7])
    assert issubclass(PoolError, AutomlError)


def test_a_trial_wanting_more_gpus_than_exist_is_a_setting_error():
    with pytest.raises(SettingError, match=r"train\.num_gpus: got 3, but 2 GPU"):
        GpuPool([0, 1]).acquire(3)


def test_cpu_machine_has_concurrency_slots():
    pool = GpuPool([], concurrency=2)
    assert not pool.has_gpus and pool.slots(1) == 2
    assert pool.acquire(1) == [] and pool.acquire(1) == []
    assert pool.acquire(1, timeout=0.05) is None
    pool.release([])
    assert pool.acquire(1, timeout=0.05) == []
    assert pool.in_use() == 2
    pool.release([])
    pool.release([])
    with pytest.raises(PoolError, match="not acquired"):
        pool.release([])
    assert pool.trial_env([]) == {"OMP_NUM_THREADS": str(max(1, cpu_count() // 2))}


def test_a_waiting_trial_starts_when_devices_come_back():
    pool = GpuPool([0])
    first = pool.acquire(1)
    got: list[list[int] | None] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire(1, timeout=5)))
    waiter.start()
    time.sleep(0.05)
    assert got == []
    pool.release(first)
    waiter.join(timeout=5)
    assert got == [[0]]


def test_tao_visible_devices_selects_the_gpus():
    env = {"TAO_VISIBLE_DEVICES": "2,3", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert visible_gpus(env) == [2, 3]  # TAO copies TAO_VISIBLE_DEVICES to CUDA_VISIBLE_DEVICES
    with pytest.raises(SettingError, match="TAO_VISIBLE_DEVICES"):
        visible_gpus({"TAO_VISIBLE_DEVICES": "MIG-1"})


# A stand-in for `rtdetr train` (a real process started by the real launcher): it records the GPUs
# its environment and spec give it, holds them a moment, and writes one validation and SUCCESS.
FAKE_TRAIN = """
import json, os, sys, time
spec_path = sys.argv[sys.argv.index("-e") + 1]
folder = os.path.dirname(spec_path)
import yaml
spec = yaml.safe_load(open(spec_path))
started = time.time()
time.sleep(1.0)
os.makedirs(os.path.join(folder, "train"), exist_ok=True)
with open(os.path.join(folder, "devices.json"), "w") as f:
    json.dump({"cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "tao": os.environ.get("TAO_VISIBLE_DEVICES"),
               "num_gpus": spec["train"]["num_gpus"], "start": started, "end": time.time()}, f)
with open(os.path.join(folder, "train", "status.json"), "w") as f:
    f.write(json.dumps({"status": "RUNNING", "epoch": 0, "kpi": {"val_mAP50": "0.5"}}) + "\\n")
    f.write(json.dumps({"status": "SUCCESS", "message": "done"}) + "\\n")
"""


def test_a_sweep_packs_two_gpu_trials_on_four_faked_gpus(tmp_path, monkeypatch):
    """CUDA_VISIBLE_DEVICES=0,1,2,3 and train.num_gpus=2: two trials run at once on {0,1} and {2,3},
    a third waits for a set to come back, and released sets are reused; no GPU needed."""
    import json
    import sys

    import automl.launch.launcher
    from automl.backends.optuna.backend import OptunaBackend
    from automl.commands.sweep_inputs import concurrency
    from automl.results.summary import SweepSummary
    from automl.settings.tao_settings import parse_settings
    from automl.space.params import SearchParam, SearchSpace
    from automl.sweep.display import SweepDisplay
    from automl.sweep.loop import SweepLoop, SweepPlan

    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    monkeypatch.setattr(automl.launch.launcher, "rtdetr_command", lambda: [sys.executable, str(script)])
    gpus = visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    settings = parse_settings({"automl_max_recommendations": 5, "automl_algorithm": "random"})
    base = {"train": {"num_gpus": 2, "num_epochs": 1}}
    space = SearchSpace([SearchParam("train.optim.lr", "float", 1e-3, 1e-4, 1e-2, "log")])
    plan = SweepPlan(
        folder=tmp_path / "sweep",
        base_spec=base,
        space=space,
        settings=settings,
        max_epochs=1,
        concurrency=concurrency(settings, base, gpus),
        devices=gpus,
    )
    assert plan.concurrency == 2  # one trial per pair of GPUs
    (tmp_path / "sweep").mkdir()
    record = SweepSummary(tmp_path / "sweep", {"name": "gpus", "settings": {}, "config": {}})
    with SweepDisplay(live=False) as display:
        data = SweepLoop(plan, record, display).run(OptunaBackend(plan))
    assert [t["state"] for t in data["trials"]] == ["COMPLETE"] * 5
    seen = [
        json.loads((tmp_path / "sweep" / "trials" / f"{n:04d}" / "devices.json").read_text())
        for n in range(5)
    ]
    assert {s["cuda"] for s in seen} == {"0,1", "2,3"}
    assert all(s["tao"] == s["cuda"] and s["num_gpus"] == 2 for s in seen)
    for i, a in enumerate(seen):  # trials that overlap in time never share a GPU
        for b in seen[i + 1 :]:
            if a["start"] < b["end"] and b["start"] < a["end"]:
                assert a["cuda"] != b["cuda"]
    times = sorted([(s["start"], 1) for s in seen] + [(s["end"], -1) for s in seen])
    running = [sum(step for _, step in times[: k + 1]) for k in range(len(times))]
    assert max(running) <= 2  # a third trial waited for a pair to come back
    assert {seen[0]["cuda"], seen[1]["cuda"]} == {"0,1", "2,3"}  # the first two ran side by side

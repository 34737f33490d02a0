"""FlatCosine, the schedule rescaling behind ``train.time_budget``, EMA warm-up, and a real deadline run."""

from __future__ import annotations

import itertools
import json
import math
from datetime import datetime
from pathlib import Path

import pytest
import torch

from model.config.durations import parse_time_budget
from model.engine.ema import ModelEMA
from model.engine.optim import build_optimizer, build_scheduler, follow_spec_after_resume
from model.engine.schedules import DeadlineFit, FlatCosineLR, rescale_schedule
from model.errors import ConfigError
from tests.conftest import tiny_spec, write_spec
from tests.model.actions.test_train import rtdetr


def _optimizer(lr: float = 1.0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _lrs(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return lrs


def test_flat_cosine_warms_up_holds_then_decays_to_its_floor_at_the_last_step():
    sched = FlatCosineLR(_optimizer(2.0), 100, warmup_steps=10, flat_fraction=0.5, min_lr_ratio=0.05)
    lrs = _lrs(sched, 100)
    assert lrs[0] == pytest.approx(0.2) and lrs[9] == pytest.approx(2.0)  # linear warm-up
    assert all(lr == pytest.approx(2.0) for lr in lrs[10:50])  # flat until half the steps
    assert all(a >= b for a, b in itertools.pairwise(lrs[50:]))  # then never rises
    assert lrs[-1] == pytest.approx(0.1)  # 2.0 * 0.05 at the last step
    assert lrs[75] == pytest.approx(0.1 + 1.9 * 0.5 * (1 + math.cos(math.pi * 25 / 49)))


def test_flat_cosine_is_built_from_the_spec_and_follows_it_after_a_resume():
    model = torch.nn.Linear(2, 2)
    optim = {"lr_scheduler": "FlatCosine", "lr": 0.01, "lr_backbone": 0.01, "warmup_steps": 0}
    optimizer = build_optimizer(model, optim)
    sched = build_scheduler(optimizer, optim, total_steps=10)
    assert isinstance(sched, FlatCosineLR) and sched.total_steps == 10
    _lrs(sched, 6)
    state = sched.state_dict()
    lowered = {**optim, "lr": 0.001, "lr_backbone": 0.001}
    again = build_scheduler(build_optimizer(model, lowered), lowered, total_steps=10)
    again.load_state_dict(state)
    follow_spec_after_resume(again.optimizer, again, lowered)
    assert again.last_epoch == 6
    assert again.optimizer.param_groups[0]["lr"] == pytest.approx(0.001 * again.factor(6))


def test_rescaling_moves_multistep_milestones_and_steplr_size_in_proportion():
    multi = torch.optim.lr_scheduler.MultiStepLR(_optimizer(), milestones=[8, 12], gamma=0.1)
    note = rescale_schedule(
        multi, planned_epochs=16, new_epochs=32, lr_steps=[8, 12], lr_step_size=5, steps_per_epoch=3
    )
    assert sorted(multi.milestones) == [16, 24] and "lr_steps [16, 24]" in note
    lrs = [multi.optimizer.param_groups[0]["lr"]]
    for _ in range(31):
        multi.optimizer.step()
        multi.step()
        lrs.append(multi.optimizer.param_groups[0]["lr"])
    assert lrs[15] == 1.0 and lrs[16] == pytest.approx(0.1) and lrs[24] == pytest.approx(0.01)

    # shrinking behind the current epoch applies the decay at once
    late = torch.optim.lr_scheduler.MultiStepLR(_optimizer(), milestones=[10], gamma=0.1)
    for _ in range(6):
        late.optimizer.step()
        late.step()
    rescale_schedule(late, planned_epochs=20, new_epochs=8, lr_steps=[10], lr_step_size=1, steps_per_epoch=1)
    assert late.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)

    step = torch.optim.lr_scheduler.StepLR(_optimizer(), step_size=4, gamma=0.5)
    rescale_schedule(step, planned_epochs=8, new_epochs=4, lr_steps=[], lr_step_size=4, steps_per_epoch=1)
    assert step.step_size == 2

    cosine = FlatCosineLR(_optimizer(), 10)
    rescale_schedule(cosine, planned_epochs=2, new_epochs=7, lr_steps=[], lr_step_size=1, steps_per_epoch=5)
    assert cosine.total_steps == 35


def test_deadline_fit_counts_the_epochs_left_at_the_measured_pace():
    fit = DeadlineFit(100.0, start=0.0, first_epoch=0, planned_epochs=10)
    assert fit.epochs(1, now=10.0) == 10  # 10 s per epoch: 9 more fit
    assert fit.epochs(2, now=50.0) == 4  # 25 s per epoch: 2 more
    assert fit.epochs(3, now=120.0) == 3  # past the deadline: stop now
    resumed = DeadlineFit(60.0, start=0.0, first_epoch=5)
    assert resumed.epochs(1, now=20.0) == 8  # 5 done before the resume, 1 here, 2 more


@pytest.mark.parametrize(
    ("value", "seconds"), [("300", 300.0), (" 90s", 90.0), ("5m", 300.0), ("1.5h", 5400.0), (45, 45.0)]
)
def test_time_budget_values(value, seconds):
    assert parse_time_budget(value) == seconds


@pytest.mark.parametrize("value", ["5x", "-5m", "0", "m", True])
def test_bad_time_budgets_name_the_key_and_the_forms(value):
    with pytest.raises(ConfigError, match=r"train\.time_budget"):
        parse_time_budget(value)
    assert parse_time_budget("") is None


def test_ema_warm_up_ramps_the_decay():
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = ModelEMA(model, decay=0.999, warmup_steps=10)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model, 1)
    # decay 0.999 * (1 - e^-0.1) = 0.095: the average moves most of the way at once
    assert ema.module.weight.item() == pytest.approx(1 - 0.999 * (1 - math.exp(-0.1)))
    plain = ModelEMA(torch.nn.Linear(1, 1, bias=False).requires_grad_(False), decay=0.999)
    assert plain.current_decay() == 0.999


def _stamp(line: dict) -> datetime:
    return datetime.strptime(f"{line['date']} {line['time']}", "%m/%d/%Y %H:%M:%S")


def test_time_budget_ends_near_the_deadline_with_the_schedule_completed(synthetic_data, tmp_path: Path):
    budget = 24
    spec = tiny_spec(
        synthetic_data,
        tmp_path / "out",
        train={
            "num_epochs": 2,
            "time_budget": f"{budget}s",
            "optim": {
                "lr": 0.001,
                "lr_backbone": 0.001,
                "warmup_steps": 2,
                "lr_scheduler": "FlatCosine",
                "min_lr_ratio": 0.1,
            },
        },
    )
    proc = rtdetr("train", "-e", str(write_spec(tmp_path / "spec.yaml", spec)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train.time_budget 24s" in proc.stdout
    lines = [json.loads(x) for x in (tmp_path / "out" / "train" / "status.json").read_text().splitlines()]
    started = next(x for x in lines if x["status"] == "STARTED")
    done = next(x for x in lines if x["status"] == "SUCCESS")
    epochs = [x for x in lines if x["status"] == "RUNNING" and "kpi" in x]
    assert len(epochs) > 2  # stretched beyond the written num_epochs
    assert epochs[-1]["epoch"] == epochs[-1]["max_epoch"]  # the last epoch ran as the last
    seconds = (_stamp(done) - _stamp(started)).total_seconds()
    assert 0.85 * budget <= seconds <= 1.1 * budget, seconds
    # the cosine ran to (about) its floor 1e-4: exactly when the pace held, a few % above it when the
    # last refit (after the last epoch's steps) shortened the run by an epoch
    assert 0.0001 - 1e-12 <= float(epochs[-1]["kpi"]["lr"]) <= 0.0001 + 0.1 * (0.001 - 0.0001)
    assert max(float(x["kpi"]["lr"]) for x in epochs) > 0.0009  # after the flat part at the full lr

"""status.json lines, optimiser groups, TAO's launch variables, activation checkpointing."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from model.engine.distributed import plan_launch, torchrun_command
from model.engine.optim import Warmup, build_optimizer, build_scheduler, follow_spec_after_resume
from model.engine.status import FAILURE, RUNNING, STARTED, SUCCESS, StatusLogger, read_status
from model.errors import ConfigError


def test_status_lines_follow_tao_format(tmp_path):
    status = StatusLogger(tmp_path)
    status.write(STARTED, "Starting RT-DETR train.")
    status.epoch(0, 9, 12.3, {"train_loss": 1.5, "val_mAP50": 0.25})
    lines = [json.loads(line) for line in (tmp_path / "status.json").read_text().splitlines()]
    assert [line["status"] for line in lines] == [STARTED, RUNNING]
    assert {"date", "time", "status", "verbosity", "message"} <= set(lines[0])
    epoch = lines[1]
    assert epoch["epoch"] == 0 and epoch["max_epoch"] == 9
    assert epoch["kpi"] == {"train_loss": "1.5", "val_mAP50": "0.25"}  # TAO writes strings
    assert epoch["time_per_epoch"] == "0:00:12" and epoch["eta"] == "0:01:51"


def test_status_disabled_on_other_ranks_and_partial_lines_ignored(tmp_path):
    StatusLogger(tmp_path / "a", enabled=False).write(STARTED)
    assert not (tmp_path / "a" / "status.json").exists()
    path = tmp_path / "status.json"
    path.write_text('{"status": "STARTED"}\n{"status": "RUN')
    assert read_status(path) == [{"status": "STARTED"}]


def _finished_run(folder):
    """A training folder as a finished run leaves it; returns its status.json bytes."""
    first = StatusLogger(folder, keep_finished=True)
    first.write(STARTED, "Starting RT-DETR train.")
    first.epoch(0, 0, 1.0, {"val_mAP50": 0.5})
    first.write(SUCCESS, "Train finished successfully.")
    return (folder / "status.json").read_bytes()


def test_a_failure_before_the_start_leaves_a_finished_run_untouched(tmp_path, capsys):
    before = _finished_run(tmp_path)
    again = StatusLogger(tmp_path, keep_finished=True)
    assert again.holds_finished_run()
    line = again.write(FAILURE, "dataset.num_classes: 3 is too small")
    assert line["status"] == FAILURE  # still returned to the caller, just not written
    assert (tmp_path / "status.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]
    assert "holds a finished run" in capsys.readouterr().err


def test_a_new_run_after_a_finished_one_starts_a_fresh_file(tmp_path):
    before = _finished_run(tmp_path)
    numbers = []
    second = StatusLogger(tmp_path, keep_finished=True)
    second.on_new_file = numbers.append
    second.write(STARTED, "Starting RT-DETR train.")
    second.epoch(1, 1, 1.0, {"val_mAP50": 0.6})
    second.write(FAILURE, "interrupted by SIGTERM")  # after the start: appended to the fresh file
    assert (tmp_path / "status.run1.json").read_bytes() == before and numbers == [1]
    lines = read_status(tmp_path / "status.json")
    assert [line["status"] for line in lines] == [STARTED, RUNNING, FAILURE]
    assert lines[0]["run"] == 2 and lines[0]["previous_status"] == "status.run1.json"
    assert "run 2 in this folder" in lines[0]["message"] and "status.run1.json" in lines[0]["message"]
    # that run was interrupted, not finished: its resume appends to the same file
    resumed = StatusLogger(tmp_path, keep_finished=True)
    assert not resumed.holds_finished_run()
    resumed.write(STARTED, "Starting RT-DETR train.")
    resumed.write(SUCCESS, "Train finished successfully.")
    assert [line["status"] for line in read_status(tmp_path / "status.json")][-2:] == [STARTED, SUCCESS]
    assert len(read_status(tmp_path / "status.json")) == 5
    # a third run after the (now finished) second one
    StatusLogger(tmp_path, keep_finished=True).write(STARTED, "Starting RT-DETR train.")
    assert len(read_status(tmp_path / "status.run2.json")) == 5
    assert read_status(tmp_path / "status.json")[0]["run"] == 3


@pytest.mark.parametrize("last", [FAILURE, RUNNING])
def test_an_interrupted_run_is_appended_to(tmp_path, last):
    """SIGTERM (FAILURE) or SIGKILL (a RUNNING last line): resuming appends, as the automl launcher expects."""
    status = StatusLogger(tmp_path, keep_finished=True)
    status.write(STARTED, "Starting RT-DETR train.")
    status.epoch(0, 3, 1.0, {"val_mAP50": 0.5})
    if last == FAILURE:
        status.write(FAILURE, "interrupted by SIGTERM")
    again = StatusLogger(tmp_path, keep_finished=True)
    assert not again.holds_finished_run()
    again.write(FAILURE, "a data check failed")
    again.write(STARTED, "Starting RT-DETR train.")
    statuses = [line["status"] for line in read_status(tmp_path / "status.json")]
    assert statuses[-2:] == [FAILURE, STARTED] and statuses[:2] == [STARTED, RUNNING]
    assert not list(tmp_path.glob("status.run*.json"))


def test_other_actions_keep_appending_after_a_finished_run(tmp_path):
    """evaluate, export, ...: one file, appended (automl's pipeline reads a step's lines from the old end)."""
    StatusLogger(tmp_path).write(SUCCESS, "Evaluation finished successfully.")
    again = StatusLogger(tmp_path)
    assert not again.holds_finished_run()
    again.write(FAILURE, "bad input")
    assert [line["status"] for line in read_status(tmp_path / "status.json")] == [SUCCESS, FAILURE]


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, 2)


def test_optimizer_groups_backbone_lr_and_no_decay_on_norms_and_biases():
    opt = build_optimizer(_Tiny(), {"lr": 1e-3, "lr_backbone": 1e-5, "weight_decay": 0.05})
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["backbone"]["lr"] == 1e-5 and groups["backbone"]["weight_decay"] == 0.05
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0
    assert groups["detector"]["lr"] == 1e-3 and groups["detector_no_decay"]["weight_decay"] == 0.0
    with pytest.raises(ConfigError, match="SGD"):
        build_optimizer(_Tiny(), {"optimizer": "SGD"})


def test_schedulers_and_warmup():
    opt = build_optimizer(_Tiny(), {"lr": 1.0, "lr_backbone": 1.0})
    sched = build_scheduler(opt, {"lr_scheduler": "MultiStep", "lr_steps": [2], "lr_decay": 0.1})
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 1.0, 0.1])
    opt = build_optimizer(_Tiny(), {"lr": 1.0, "lr_backbone": 1.0})
    warm = Warmup(opt, 4)
    seen = []
    for step in range(4):
        warm.apply(step)
        seen.append(opt.param_groups[0]["lr"])
    warm.release()
    assert seen == pytest.approx([0.25, 0.5, 0.75, 1.0]) and opt.param_groups[0]["lr"] == 1.0


def _trained_optimizer(optim: dict, epochs: int) -> tuple[dict, dict]:
    model = _Tiny()
    opt = build_optimizer(model, optim)
    sched = build_scheduler(opt, optim)
    for _ in range(epochs):
        model.head(torch.ones(1, 4)).sum().backward()
        opt.step()
        sched.step()
    return opt.state_dict(), sched.state_dict()


def _resumed(optim: dict, saved: tuple[dict, dict]):
    opt = build_optimizer(_Tiny(), optim)
    sched = build_scheduler(opt, optim)
    opt.load_state_dict(saved[0])
    sched.load_state_dict(saved[1])
    follow_spec_after_resume(opt, sched, optim)
    return opt, sched


def test_a_resume_trains_with_the_specs_lr_and_schedule():
    old = {"lr": 1.0, "lr_backbone": 0.1, "weight_decay": 0.05, "lr_steps": [2], "lr_decay": 0.1}
    saved = _trained_optimizer(old, epochs=3)  # past the decay at epoch 2: lr 0.1, backbone 0.01

    opt, _ = _resumed(old, saved)  # the same spec: nothing changes
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["detector"]["lr"] == pytest.approx(0.1) and groups["backbone"]["lr"] == pytest.approx(0.01)
    assert opt.state_dict()["state"] == saved[0]["state"]  # AdamW's moments and step counts kept

    new = {"lr": 0.5, "lr_backbone": 0.2, "weight_decay": 0.01, "lr_steps": [4], "lr_decay": 0.5}
    opt, sched = _resumed(new, saved)  # a lowered lr and a later decay, from epoch 3 on
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["detector"]["lr"] == pytest.approx(0.5) and groups["backbone"]["lr"] == pytest.approx(0.2)
    assert groups["detector"]["weight_decay"] == 0.01 and groups["detector_no_decay"]["weight_decay"] == 0.0
    opt.step()
    sched.step()  # epoch 4: the new decay
    assert {g["name"]: g["lr"] for g in opt.param_groups}["detector"] == pytest.approx(0.25)

    step_lr = {"lr": 1.0, "lr_scheduler": "StepLR", "lr_step_size": 2, "lr_decay": 0.5}
    opt, _ = _resumed(step_lr, _trained_optimizer(step_lr, epochs=5))  # two decays by epoch 5
    assert {g["name"]: g["lr"] for g in opt.param_groups}["detector"] == pytest.approx(0.25)


def test_tao_launch_variables():
    plan = plan_launch({"num_gpus": 1, "num_nodes": 1}, env={})
    assert plan.world == 1 and plan.master_port == 29500
    plan = plan_launch({"num_gpus": 1, "gpu_ids": [0, 1]}, env={})
    assert plan.procs_per_node == 2
    env = {
        "WORLD_SIZE": "2",
        "NODE_RANK": "1",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "1234",
        "NUM_GPUS": "4",
    }
    plan = plan_launch({"num_gpus": 1}, env=env)
    assert (plan.num_nodes, plan.procs_per_node, plan.node_rank) == (2, 4, 1)
    cmd, child_env = torchrun_command(plan, ["train", "-e", "s.yaml"])
    assert "--nnodes=2" in cmd and "--node-rank=1" in cmd and "--master-addr=10.0.0.1" in cmd
    assert "WORLD_SIZE" not in child_env  # TAO's WORLD_SIZE meant nodes; torchrun sets its own
    plan = plan_launch({"num_gpus": 2}, env={"NUM_NODES": "3", "TAO_VISIBLE_DEVICES": "2,3"})
    assert plan.num_nodes == 3 and plan.visible_devices == "2,3"


def test_activation_checkpointing_keeps_outputs_and_gradients():
    from model import build_model
    from model.engine import activation_checkpoint

    spec = {
        "model": {
            "backbone": "resnet_18",
            "hidden_dim": 32,
            "nheads": 4,
            "feat_channels": [32, 32, 32],
            "dim_feedforward": 64,
            "dec_layers": 1,
            "num_queries": 10,
            "num_select": 10,
            "dn_number": 0,
        },
        "dataset": {"num_classes": 3, "augmentation": {"eval_spatial_size": [64, 64]}},
    }
    torch.manual_seed(0)
    plain = build_model(spec)
    wrapped = build_model(spec)
    wrapped.load_state_dict(plain.state_dict())
    assert activation_checkpoint.enable(wrapped) > 8
    plain.eval(), wrapped.eval()  # identical BatchNorm behaviour for the comparison
    for m in (plain, wrapped):
        for module in m.modules():
            module.training = not isinstance(module, nn.BatchNorm2d)
    x = torch.rand(2, 3, 64, 64)
    grads = []
    for m in (plain, wrapped):
        out = m.backbone(x)
        loss = sum(o.square().mean() for o in m.encoder(out))
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-6)
    assert activation_checkpoint.wanted({"train": {"activation_checkpoint": True}}, world_size=1)
    assert not activation_checkpoint.wanted({"train": {"activation_checkpoint": True}}, world_size=2)
    assert not activation_checkpoint.wanted({"train": {"activation_checkpoint": False}}, world_size=1)

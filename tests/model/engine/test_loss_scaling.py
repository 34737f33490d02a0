"""fp16 training's loss scale (model.engine.loss_scaling): the scaled step gives the plain step's
update, a step with non-finite gradients is skipped and shrinks the scale, and the scale survives a
checkpoint. The scaler runs on the CPU here (torch's GradScaler works there too); in training it is
on exactly when the step runs under fp16 autocast, on a GPU."""

from __future__ import annotations

import copy

import pytest
import torch

from model.engine.loss_scaling import LossScaler


def _setup() -> tuple[torch.nn.Linear, torch.optim.Optimizer, torch.Tensor]:
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 2)
    return layer, torch.optim.SGD(layer.parameters(), lr=0.1), torch.randn(8, 4)


def _train_step(scaler: LossScaler, layer: torch.nn.Linear, optimizer: torch.optim.Optimizer, x, clip=1.0):
    optimizer.zero_grad(set_to_none=True)
    loss = layer(x).pow(2).mean()
    scaler.backward(loss)
    scaler.unscale(optimizer)
    grads = [p.grad.clone() for p in layer.parameters()]
    torch.nn.utils.clip_grad_norm_(layer.parameters(), clip)
    scaler.step(optimizer)
    return grads


def test_the_scaled_step_unscales_before_clipping_and_updates_as_the_plain_step() -> None:
    plain_layer, plain_opt, x = _setup()
    scaled_layer = copy.deepcopy(plain_layer)
    scaled_opt = torch.optim.SGD(scaled_layer.parameters(), lr=0.1)
    plain_grads = _train_step(LossScaler(False), plain_layer, plain_opt, x)
    scaler = LossScaler(True, "cpu")
    assert scaler.enabled and scaler.scaler.get_scale() > 1000  # the loss really is multiplied
    scaled_grads = _train_step(scaler, scaled_layer, scaled_opt, x)
    for a, b in zip(plain_grads, scaled_grads):
        torch.testing.assert_close(a, b)  # clip_grad_norm sees the true gradients
    for a, b in zip(plain_layer.parameters(), scaled_layer.parameters()):
        torch.testing.assert_close(a, b)


def test_a_step_with_non_finite_gradients_is_skipped_and_the_scale_shrinks() -> None:
    layer, optimizer, x = _setup()
    scaler = LossScaler(True, "cpu")
    before = [p.detach().clone() for p in layer.parameters()]
    scale = scaler.scaler.get_scale()
    optimizer.zero_grad(set_to_none=True)
    scaler.backward(layer(x).sum() * float("inf"))
    scaler.unscale(optimizer)
    scaler.step(optimizer)
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters()))
    assert scaler.scaler.get_scale() == scale / 2


def test_the_scale_is_saved_and_restored() -> None:
    layer, optimizer, x = _setup()
    scaler = LossScaler(True, "cpu")
    optimizer.zero_grad(set_to_none=True)
    scaler.backward(layer(x).sum() * float("inf"))
    scaler.unscale(optimizer)
    scaler.step(optimizer)
    restored = LossScaler(True, "cpu")
    restored.load_state_dict(scaler.state_dict())
    assert restored.scaler.get_scale() == scaler.scaler.get_scale() < 65536.0
    assert LossScaler(False).state_dict() is None


@pytest.mark.filterwarnings("ignore::UserWarning")  # GradScaler("cuda") on a machine without CUDA
def test_only_fp16_on_a_gpu_is_scaled() -> None:
    assert not LossScaler.for_training("fp16", torch.device("cpu")).enabled  # trains in fp32 there
    assert not LossScaler.for_training("bf16", torch.device("cuda")).enabled
    assert not LossScaler.for_training("fp32", torch.device("cuda")).enabled
    assert LossScaler.for_training("fp16", torch.device("cuda")).enabled

"""Weight-only PTQ with torchao: int8 (symmetric, one scale per output channel) and fp8 (e4m3fn or
e5m2, one scale per output channel).

- ``nn.Linear``: int8 through ``torchao.quantization.quantize_(model, Int8WeightOnlyConfig())``; fp8
  through torchao's ``Float8Tensor.from_hp`` with a floor on the per-row maximum (what
  ``Float8WeightOnlyConfig`` builds, minus its NaN on all-zero rows). The weight becomes torchao's
  ``Int8Tensor`` / ``Float8Tensor``, which ``F.linear`` dispatches on.
- ``nn.Conv2d``: torchao has no convolution for these tensors on the CPU, so the weight is quantized into
  the same torchao tensor types (as a ``out x in*kh*kw`` matrix, ``from_hp``) and each call dequantizes
  it and runs a float convolution (``WeightOnlyQuantConv2d``): the storage is quantized, the arithmetic
  is simulated.

On a CPU, torchao's fp8 linear also dequantizes before multiplying, so fp8 runs anywhere (simulated
where the hardware has no fp8 units). Unlike TAO (which maps fp8_e5m2 to e4m3 for weights), e5m2 is
kept. The result is identical however often a plan is applied to the same float weights, which is how
a quantized checkpoint is rebuilt (``quantized_file.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.errors import ConfigError
from model.quantize.plan import QuantPlan

__all__ = ["WeightOnlyQuantConv2d", "apply_plan", "torchao_version"]

FP8_DTYPES = {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
# torchao's fp8 scale is amax / fp8_max: an all-zero row (RT-DETR initialises sampling offsets and the last
# box layer to zero) would get scale 0 and dequantize to NaN, so amax is floored.
_FP8_AMAX_FLOOR = 1e-12


def _torchao():
    try:
        import torchao
        import torchao.quantization as quantization
    except ImportError as exc:
        raise ConfigError(
            "quantize.backend=torchao needs the torchao package, which failed to import "
            f"({exc}); install it with `pip install 'torchao>=0.18'` (it is a dependency of this project)"
        ) from None
    return torchao, quantization


def torchao_version() -> str:
    return str(_torchao()[0].__version__)


class WeightOnlyQuantConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weight is a torchao quantized matrix, dequantized on each call."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        dense = weight.dequantize().reshape(shape).to(input.dtype)
        return super()._conv_forward(input, dense, bias)


def _quantized_matrix(weight: Tensor, dtype: str) -> Tensor:
    from torchao.quantization import Float8Tensor, Int8Tensor
    from torchao.quantization.granularity import PerRow

    matrix = weight.detach().reshape(weight.shape[0], -1)
    if dtype == "int8":
        return Int8Tensor.from_hp(matrix, PerRow())
    return Float8Tensor.from_hp(
        matrix, float8_dtype=FP8_DTYPES[dtype], granularity=PerRow(), hp_value_lb=_FP8_AMAX_FLOOR
    )


def _quantize_conv(conv: nn.Conv2d, dtype: str) -> None:
    conv.weight = nn.Parameter(_quantized_matrix(conv.weight, dtype), requires_grad=False)
    conv.__class__ = WeightOnlyQuantConv2d


def _quantize_fp8_linear(linear: nn.Linear, dtype: str) -> None:
    linear.weight = nn.Parameter(_quantized_matrix(linear.weight, dtype), requires_grad=False)


def apply_plan(model: nn.Module, plan: QuantPlan) -> nn.Module:
    """Quantize ``model`` in place (on the CPU) as ``plan`` says; returns it."""
    _, quantization = _torchao()
    modules = dict(model.named_modules())
    int8_linears: set[str] = set()
    for choice in plan.layers:
        module = modules.get(choice.module)
        if module is None:
            raise ConfigError(
                f"quantize: module {choice.module!r} is not in the model built from the spec; set the model.* "
                "keys to the values the quantized checkpoint was made with"
            )
        if choice.kind == "Conv2d":
            _quantize_conv(module, choice.weights)
        elif choice.weights == "int8":
            int8_linears.add(choice.module)
        else:
            _quantize_fp8_linear(module, choice.weights)
    if int8_linears:
        quantization.quantize_(
            model, quantization.Int8WeightOnlyConfig(), filter_fn=lambda _m, fqn: fqn in int8_linears
        )
    return model


def dequantize_model(model: nn.Module) -> nn.Module:
    """Replace every quantized weight with its float value (what ONNX export of a quantized model needs):
    the network then computes exactly what the quantized one does, in plain float tensors."""
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if (
            isinstance(weight, Tensor)
            and hasattr(weight, "dequantize")
            and type(weight)
            not in (
                Tensor,
                nn.Parameter,
            )
        ):
            dense = weight.dequantize()
            if isinstance(module, WeightOnlyQuantConv2d):
                dense = dense.reshape(
                    module.out_channels, module.in_channels // module.groups, *module.kernel_size
                )
                module.__class__ = nn.Conv2d
            module.weight = nn.Parameter(dense.detach().clone(), requires_grad=False)
    return model

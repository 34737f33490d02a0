"""Small building blocks shared by the backbone, encoder and decoder: activations, conv+BN, MLP."""

from __future__ import annotations

from torch import Tensor, nn

from model.errors import ConfigError

__all__ = ["MLP", "ConvNormLayer", "make_activation"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "hardsigmoid": nn.Hardsigmoid,
}


def make_activation(name: str | None, key: str = "model.act") -> nn.Module:
    """An activation module by name (``None`` gives Identity); unknown names raise ConfigError."""
    if name is None:
        return nn.Identity()
    cls = _ACTIVATIONS.get(str(name).lower())
    if cls is None:
        raise ConfigError(f"{key}: unknown activation {name!r}; use one of {sorted(_ACTIVATIONS)}.")
    module = cls()
    if hasattr(module, "inplace"):
        module.inplace = True
    return module


class ConvNormLayer(nn.Module):
    """Conv2d (no bias by default, 'same' padding for odd kernels) + BatchNorm2d + activation."""

    def __init__(
        self,
        ch_in: int,
        ch_out: int,
        kernel_size: int,
        stride: int,
        padding: int | None = None,
        bias: bool = False,
        act: str | None = None,
    ):
        super().__init__()
        pad = (kernel_size - 1) // 2 if padding is None else padding
        self.conv = nn.Conv2d(ch_in, ch_out, kernel_size, stride, padding=pad, bias=bias)
        self.norm = nn.BatchNorm2d(ch_out)
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU between them (none after the last)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return x

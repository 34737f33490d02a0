"""Re-parameterisable blocks of the CCFM neck: RepVggBlock (3x3 + 1x1 branches) and CSPRepLayer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.network.layers import ConvNormLayer, make_activation

__all__ = ["CSPRepLayer", "RepVggBlock"]


def _fuse_conv_bn(branch: ConvNormLayer) -> tuple[Tensor, Tensor]:
    """Kernel and bias of a conv followed by an eval-mode BatchNorm, folded into one conv."""
    norm = branch.norm
    std = (norm.running_var + norm.eps).sqrt()
    scale = norm.weight / std
    kernel = branch.conv.weight * scale.reshape(-1, 1, 1, 1)
    bias = norm.bias - norm.running_mean * scale
    return kernel, bias


class RepVggBlock(nn.Module):
    """act(conv3x3_bn(x) + conv1x1_bn(x)); ``convert_to_deploy`` folds both into one 3x3 conv."""

    def __init__(self, ch_in: int, ch_out: int, act: str = "relu"):
        super().__init__()
        self.ch_in = ch_in
        self.ch_out = ch_out
        self.conv1 = ConvNormLayer(ch_in, ch_out, 3, 1, padding=1)
        self.conv2 = ConvNormLayer(ch_in, ch_out, 1, 1, padding=0)
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        if hasattr(self, "conv"):
            return self.act(self.conv(x))
        return self.act(self.conv1(x) + self.conv2(x))

    @torch.no_grad()
    def convert_to_deploy(self) -> None:
        """Replace the two branches by one equivalent 3x3 conv with bias (export/inference)."""
        kernel3, bias3 = _fuse_conv_bn(self.conv1)
        kernel1, bias1 = _fuse_conv_bn(self.conv2)
        fused = nn.Conv2d(self.ch_in, self.ch_out, 3, 1, padding=1, bias=True)
        fused = fused.to(device=kernel3.device, dtype=kernel3.dtype)
        fused.weight.copy_(kernel3 + F.pad(kernel1, [1, 1, 1, 1]))
        fused.bias.copy_(bias3 + bias1)
        self.conv = fused
        del self.conv1
        del self.conv2


class CSPRepLayer(nn.Module):
    """CSP block: conv3(bottlenecks(conv1(x)) + conv2(x)), hidden width = out * expansion."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int = 3,
        expansion: float = 1.0,
        act: str = "silu",
    ):
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = ConvNormLayer(in_channels, hidden, 1, 1, act=act)
        self.conv2 = ConvNormLayer(in_channels, hidden, 1, 1, act=act)
        self.bottlenecks = nn.Sequential(*[RepVggBlock(hidden, hidden, act=act) for _ in range(num_blocks)])
        if hidden != out_channels:
            self.conv3: nn.Module = ConvNormLayer(hidden, out_channels, 1, 1, act=act)
        else:
            self.conv3 = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))

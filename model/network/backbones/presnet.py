"""PResNet: the ResNet-vd backbone of RT-DETR (3-conv stem, avg-pool shortcut on downsampling)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.errors import ConfigError
from model.network.layers import ConvNormLayer, make_activation

__all__ = [
    "BLOCKS_PER_STAGE",
    "STAGE_STRIDES",
    "STAGE_WIDTHS",
    "BasicBlock",
    "Blocks",
    "BottleNeck",
    "FrozenBatchNorm2d",
    "PResNet",
    "freeze_batch_norm",
]

BLOCKS_PER_STAGE: dict[int, list[int]] = {
    18: [2, 2, 2, 2],
    34: [3, 4, 6, 3],
    50: [3, 4, 6, 3],
    101: [3, 4, 23, 3],
}
STAGE_WIDTHS = [64, 128, 256, 512]
STAGE_STRIDES = [4, 8, 16, 32]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine terms (all buffers, nothing trains)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight.reshape(1, -1, 1, 1) * (self.running_var.reshape(1, -1, 1, 1) + self.eps).rsqrt()
        shift = self.bias.reshape(1, -1, 1, 1) - self.running_mean.reshape(1, -1, 1, 1) * scale
        return x * scale + shift

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d under ``module`` (or module itself) by a FrozenBatchNorm2d."""
    if isinstance(module, nn.BatchNorm2d):
        return FrozenBatchNorm2d(module.num_features, eps=module.eps)
    for name, child in module.named_children():
        replaced = freeze_batch_norm(child)
        if replaced is not child:
            setattr(module, name, replaced)
    return module


def _projection_shortcut(ch_in: int, ch_out: int, stride: int, variant: str) -> nn.Module:
    """1x1 conv shortcut; variant 'd' downsamples with a 2x2 average pool instead of the stride."""
    if variant == "d" and stride == 2:
        return nn.Sequential(
            OrderedDict(
                [
                    ("pool", nn.AvgPool2d(2, 2, 0, ceil_mode=True)),
                    ("conv", ConvNormLayer(ch_in, ch_out, 1, 1)),
                ]
            )
        )
    return ConvNormLayer(ch_in, ch_out, 1, stride)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual (ResNet-18/34)."""

    expansion = 1

    def __init__(self, ch_in: int, ch_out: int, stride: int, shortcut: bool, act: str, variant: str):
        super().__init__()
        self.shortcut = shortcut
        if not shortcut:
            self.short = _projection_shortcut(ch_in, ch_out, stride, variant)
        self.branch2a = ConvNormLayer(ch_in, ch_out, 3, stride, act=act)
        self.branch2b = ConvNormLayer(ch_out, ch_out, 3, 1)
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch2b(self.branch2a(x))
        short = x if self.shortcut else self.short(x)
        return self.act(out + short)


class BottleNeck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4) with a residual (ResNet-50/101); 'b'/'d' put the stride on the 3x3."""

    expansion = 4

    def __init__(self, ch_in: int, ch_out: int, stride: int, shortcut: bool, act: str, variant: str):
        super().__init__()
        stride1, stride2 = (stride, 1) if variant == "a" else (1, stride)
        self.branch2a = ConvNormLayer(ch_in, ch_out, 1, stride1, act=act)
        self.branch2b = ConvNormLayer(ch_out, ch_out, 3, stride2, act=act)
        self.branch2c = ConvNormLayer(ch_out, ch_out * self.expansion, 1, 1)
        self.shortcut = shortcut
        if not shortcut:
            self.short = _projection_shortcut(ch_in, ch_out * self.expansion, stride, variant)
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch2c(self.branch2b(self.branch2a(x)))
        short = x if self.shortcut else self.short(x)
        return self.act(out + short)


class Blocks(nn.Module):
    """One stage: ``count`` blocks, the first projecting (and striding, except in stage 2)."""

    def __init__(
        self,
        block: type[BasicBlock | BottleNeck],
        ch_in: int,
        ch_out: int,
        count: int,
        stage_num: int,
        act: str,
        variant: str,
    ):
        super().__init__()
        self.blocks = nn.ModuleList()
        for i in range(count):
            stride = 2 if i == 0 and stage_num != 2 else 1
            self.blocks.append(block(ch_in, ch_out, stride, i != 0, act, variant))
            ch_in = ch_out * block.expansion

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class PResNet(nn.Module):
    """ResNet-vd 18/34/50/101 returning the stages in ``return_idx`` (0..3 = strides 4..32).

    ``freeze_at >= 0`` freezes the stem and the first ``freeze_at`` stages; ``freeze_norm``
    swaps every BatchNorm2d for FrozenBatchNorm2d (the official R50/R101 setting).
    """

    def __init__(
        self,
        depth: int,
        variant: str = "d",
        num_stages: int = 4,
        return_idx: list[int] | tuple[int, ...] = (1, 2, 3),
        act: str = "relu",
        freeze_at: int = -1,
        freeze_norm: bool = False,
    ):
        super().__init__()
        if depth not in BLOCKS_PER_STAGE:
            raise ConfigError(
                f"PResNet depth {depth} is not available; use one of {sorted(BLOCKS_PER_STAGE)}."
            )
        bad = [i for i in return_idx if not 0 <= int(i) < num_stages]
        if bad:
            raise ConfigError(
                f"model.return_interm_indices: {list(return_idx)} has stage indices outside 0..{num_stages - 1}."
            )
        stem_width = 64
        if variant in ("c", "d"):
            stem = [
                ("conv1_1", 3, stem_width // 2, 3, 2),
                ("conv1_2", stem_width // 2, stem_width // 2, 3, 1),
                ("conv1_3", stem_width // 2, stem_width, 3, 1),
            ]
        else:
            stem = [("conv1_1", 3, stem_width, 7, 2)]
        self.conv1 = nn.Sequential(
            OrderedDict((name, ConvNormLayer(cin, cout, k, s, act=act)) for name, cin, cout, k, s in stem)
        )
        block = BottleNeck if depth >= 50 else BasicBlock
        stage_channels = [w * block.expansion for w in STAGE_WIDTHS]
        self.res_layers = nn.ModuleList()
        ch_in = stem_width
        for i in range(num_stages):
            count = BLOCKS_PER_STAGE[depth][i]
            self.res_layers.append(Blocks(block, ch_in, STAGE_WIDTHS[i], count, i + 2, act, variant))
            ch_in = stage_channels[i]
        self.return_idx = [int(i) for i in return_idx]
        self.out_channels = [stage_channels[i] for i in self.return_idx]
        self.out_strides = [STAGE_STRIDES[i] for i in self.return_idx]

        if freeze_at >= 0:
            self.conv1.requires_grad_(False)
            for i in range(min(freeze_at, num_stages)):
                self.res_layers[i].requires_grad_(False)
        if freeze_norm:
            freeze_batch_norm(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.max_pool2d(self.conv1(x), kernel_size=3, stride=2, padding=1)
        outs = []
        for idx, stage in enumerate(self.res_layers):
            x = stage(x)
            if idx in self.return_idx:
                outs.append(x)
        return outs

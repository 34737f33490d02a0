"""Building blocks of the hybrid Fully Attentional Network (Zhou et al., ICML 2022).

A hybrid FAN is a two-stage ConvNeXt (stride 4 and 8) whose last map is projected to tokens at
stride 16, a Fourier positional encoding, a stack of FAN blocks (self-attention token mixing, then
"channel processing": an MLP with depth-wise convolutions whose output channels are re-weighted by a
token-aggregated channel attention) and CaiT-style class-attention blocks. Sub-module names follow
NVIDIA's releases (NVlabs/FAN, TAO), so their checkpoints load by name.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ClassAttentionBlock",
    "ConvNeXtStem",
    "FANBlock",
    "FourierPositionalEncoding",
    "LayerNorm2d",
]


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p``."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) map."""

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


# --- convolutional stem: ConvNeXt stages at strides 4 and 8 ------------------------------------
class _PointwiseMlp(nn.Module):
    """1x1 conv -> GELU -> 1x1 conv (the ConvNeXt inverted bottleneck, channels first)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ConvNeXtBlock(nn.Module):
    """7x7 depth-wise conv, LayerNorm, 4x MLP, layer scale (init 1e-6), residual."""

    def __init__(self, dim: int, layer_scale: float = 1e-6):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.mlp = _PointwiseMlp(dim, 4 * dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:
        y = self.mlp(self.norm(self.conv_dw(x)))
        return x + y * self.gamma.view(1, -1, 1, 1)


class ConvNeXtStage(nn.Module):
    def __init__(self, in_dim: int, dim: int, depth: int):
        super().__init__()
        if in_dim == dim:
            self.downsample: nn.Module = nn.Identity()
        else:
            self.downsample = nn.Sequential(
                LayerNorm2d(in_dim, eps=1e-6), nn.Conv2d(in_dim, dim, 2, stride=2)
            )
        self.blocks = nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(depth)))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.downsample(x))


class ConvNeXtStem(nn.Module):
    """Patchify 4x4 conv + LayerNorm, then one ConvNeXt stage per entry of ``depths`` (stride x2 after the first)."""

    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...], in_chans: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        prev = dims[0]
        stages = []
        for depth, dim in zip(depths, dims):
            stages.append(ConvNeXtStage(prev, dim, depth))
            prev = dim
        self.stages = nn.Sequential(*stages)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        """The output map of every stage (strides 4, 8, ...)."""
        x = self.stem(x)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps


class FourierPositionalEncoding(nn.Module):
    """Sine/cosine encoding of normalised (y, x) positions, projected to ``dim`` by a 1x1 conv."""

    def __init__(self, dim: int, hidden_dim: int = 32, temperature: float = 10000.0):
        super().__init__()
        self.token_projection = nn.Conv2d(2 * hidden_dim, dim, 1)
        self.hidden_dim = hidden_dim
        self.temperature = temperature

    def forward(self, h: int, w: int) -> Tensor:
        """Encoding for an ``h`` x ``w`` grid as (1, h*w, dim) tokens."""
        device = self.token_projection.weight.device
        eps, scale = 1e-6, 2 * math.pi
        ys = torch.arange(1, h + 1, dtype=torch.float32, device=device)
        xs = torch.arange(1, w + 1, dtype=torch.float32, device=device)
        ys = ys / (ys[-1:] + eps) * scale
        xs = xs / (xs[-1:] + eps) * scale
        i = torch.arange(self.hidden_dim, dtype=torch.float32, device=device)
        freq = self.temperature ** (2 * torch.div(i, 2, rounding_mode="floor") / self.hidden_dim)

        def encode(pos: Tensor) -> Tensor:  # (L,) -> (L, hidden_dim), sin/cos interleaved
            angles = pos[:, None] / freq
            return torch.stack([angles[:, 0::2].sin(), angles[:, 1::2].cos()], dim=2).flatten(1)

        enc_y = encode(ys)[:, None, :].expand(h, w, self.hidden_dim)
        enc_x = encode(xs)[None, :, :].expand(h, w, self.hidden_dim)
        grid = torch.cat([enc_y, enc_x], dim=2).permute(2, 0, 1).unsqueeze(0)  # (1, 2*hidden, h, w)
        grid = self.token_projection(grid.to(self.token_projection.weight.dtype))
        return grid.flatten(2).transpose(1, 2)


# --- FAN block ------------------------------------------------------------------------------
def _heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, N, C) -> (B, heads, N, C / heads)."""
    b, n, c = x.shape
    return x.view(b, n, num_heads, c // num_heads).transpose(1, 2)


class TokenMixing(nn.Module):
    """Multi-head self-attention over the tokens (queries, joint key/value projection)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q = _heads(self.q(x), self.num_heads)
        k, v = (_heads(t, self.num_heads) for t in self.kv(x).chunk(2, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    """Two 3x3 depth-wise convs with GELU and BatchNorm between, on tokens laid out as an H x W map."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.act = nn.GELU()
        self.bn = nn.BatchNorm2d(dim)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        for conv in (self.conv1, self.conv2):  # He init over the fan-out of a depth-wise kernel
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / 9))
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        y = x.transpose(1, 2).reshape(b, c, h, w)
        y = self.conv2(self.bn(self.act(self.conv1(y))))
        return y.flatten(2).transpose(1, 2)


class ChannelMlp(nn.Module):
    """Linear up, plus a layer-scaled depth-wise conv branch on the expanded tokens, linear down."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.gamma = nn.Parameter(torch.ones(hidden))
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = self.fc1(x)
        x = x + self.gamma * self.dwconv(x, h, w)
        return self.fc2(x)


class ChannelProcessing(nn.Module):
    """FAN's channel attention: per head, a sigmoid gate over the channels, computed from queries
    and keys softmax-normalised over the tokens, scales the MLP-processed values."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.mlp_v = ChannelMlp(dim, mlp_hidden)
        self.norm_v = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, n, c = x.shape
        q = _heads(self.q(x), self.num_heads).softmax(dim=-2)  # (B, heads, N, d), over tokens
        k = _heads(x, self.num_heads).softmax(dim=-2).mean(dim=-1, keepdim=True)  # (B, heads, N, 1)
        gate = torch.sigmoid(q.transpose(-1, -2) @ k) * self.temperature  # (B, heads, d, 1)
        v = _heads(self.norm_v(self.mlp_v(x, h, w)), self.num_heads)  # (B, heads, N, d)
        out = v * gate.transpose(-1, -2)
        return out.transpose(1, 2).reshape(b, n, c)


class FANBlock(nn.Module):
    """Pre-norm token mixing and channel processing, each residual with layer scale and drop path."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = TokenMixing(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ChannelProcessing(dim, num_heads, int(dim * mlp_ratio))
        self.gamma1 = nn.Parameter(torch.ones(dim))
        self.gamma2 = nn.Parameter(torch.ones(dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = x + self.drop_path(self.gamma1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma2 * self.mlp(self.norm2(x), h, w))


# --- class attention ------------------------------------------------------------------------
class ClassAttention(nn.Module):
    """Attention of the class token (token 0) over all tokens; returns the new class token."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, _, c = x.shape
        q = _heads(self.q(x[:, :1]), self.num_heads)
        k = _heads(self.k(x), self.num_heads)
        v = _heads(self.v(x), self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, 1, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ClassAttentionBlock(nn.Module):
    """CaiT class-attention block in FAN's "tokens norm" form.

    The class token is updated by attention and an MLP; the patch tokens take the residual of their
    own first normalisation and the second normalisation, as in the released FAN models (whose
    weights expect exactly this).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ClassAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))
        self.gamma1 = nn.Parameter(torch.ones(dim))
        self.gamma2 = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        normed = self.norm1(x)
        mixed = torch.cat([self.attn(normed), normed[:, 1:]], dim=1)
        x = self.norm2(x + self.gamma1 * mixed)
        cls = self.gamma2 * self.mlp(x[:, :1])
        return x + torch.cat([cls, x[:, 1:]], dim=1)

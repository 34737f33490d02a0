"""HybridEncoder: input projection, AIFI (attention on the coarsest level), CCFM (FPN + PAN)."""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.errors import ConfigError
from model.network.layers import ConvNormLayer, make_activation
from model.network.rep_blocks import CSPRepLayer

__all__ = ["HybridEncoder", "TransformerEncoder", "TransformerEncoderLayer", "sincos_position_embedding"]


def sincos_position_embedding(w: int, h: int, embed_dim: int, temperature: float) -> Tensor:
    """2D sin-cos position embedding (1, w*h, embed_dim), computed in float32 as the official code.

    The grid is ``meshgrid(arange(w), arange(h), indexing='ij')`` flattened, exactly as the
    official implementation does (for square maps this is the usual row-major layout).
    """
    grid_w, grid_h = torch.meshgrid(
        torch.arange(int(w), dtype=torch.float32), torch.arange(int(h), dtype=torch.float32), indexing="ij"
    )
    pos_dim = embed_dim // 4
    omega = 1.0 / (temperature ** (torch.arange(pos_dim, dtype=torch.float32) / pos_dim))
    out_w = grid_w.flatten()[:, None] @ omega[None]
    out_h = grid_h.flatten()[:, None] @ omega[None]
    return torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)[None]


class TransformerEncoderLayer(nn.Module):
    """Post-norm transformer layer; the position embedding is added to queries and keys only."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, activation: str):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.activation = make_activation(activation, key="model.enc_act")

    def forward(self, src: Tensor, pos_embed: Tensor | None = None) -> Tensor:
        q = k = src if pos_embed is None else src + pos_embed
        attended, _ = self.self_attn(q, k, value=src, need_weights=False)
        src = self.norm1(src + self.dropout1(attended))
        ffn = self.linear2(self.dropout(self.activation(self.linear1(src))))
        return self.norm2(src + self.dropout2(ffn))


class TransformerEncoder(nn.Module):
    """A stack of ``num_layers`` independent copies of one encoder layer."""

    def __init__(self, layer: TransformerEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, src: Tensor, pos_embed: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            src = layer(src, pos_embed=pos_embed)
        return src


def _upsample_to(x: Tensor, like: Tensor) -> Tensor:
    """Nearest 2x upsampling (nearest resize when the target is not exactly twice as large)."""
    if like.shape[-2] == 2 * x.shape[-2] and like.shape[-1] == 2 * x.shape[-1]:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class HybridEncoder(nn.Module):
    """RT-DETR's efficient hybrid encoder; outputs ``len(in_channels)`` maps of ``hidden_dim``."""

    def __init__(
        self,
        in_channels: list[int],
        feat_strides: list[int],
        hidden_dim: int = 256,
        nhead: int = 8,
        dim_feedforward: int = 1024,
        dropout: float = 0.0,
        enc_act: str = "gelu",
        use_encoder_idx: list[int] | tuple[int, ...] = (2,),
        num_encoder_layers: int = 1,
        pe_temperature: float = 10000.0,
        expansion: float = 1.0,
        depth_mult: float = 1.0,
        act: str = "silu",
        eval_spatial_size: list[int] | tuple[int, int] | None = None,
    ):
        super().__init__()
        if hidden_dim % 4 != 0:
            raise ConfigError(
                f"encoder width {hidden_dim} (model.feat_channels) must be divisible by 4 for the "
                "2D sin-cos position embedding."
            )
        if hidden_dim % nhead != 0:
            raise ConfigError(f"model.nheads: encoder width {hidden_dim} is not divisible by nheads={nhead}.")
        bad = [i for i in use_encoder_idx if not 0 <= int(i) < len(in_channels)]
        if bad:
            raise ConfigError(
                f"model.use_encoder_idx: {list(use_encoder_idx)} refers to levels outside 0..{len(in_channels) - 1}."
            )
        self.in_channels = list(in_channels)
        self.feat_strides = list(feat_strides)
        self.hidden_dim = hidden_dim
        self.use_encoder_idx = [int(i) for i in use_encoder_idx]
        self.num_encoder_layers = num_encoder_layers
        self.pe_temperature = pe_temperature
        self.eval_spatial_size = list(eval_spatial_size) if eval_spatial_size else None
        self.out_channels = [hidden_dim] * len(in_channels)
        self.out_strides = self.feat_strides

        self.input_proj = nn.ModuleList(
            nn.Sequential(
                OrderedDict(
                    [
                        ("conv", nn.Conv2d(ch, hidden_dim, kernel_size=1, bias=False)),
                        ("norm", nn.BatchNorm2d(hidden_dim)),
                    ]
                )
            )
            for ch in in_channels
        )
        layer = TransformerEncoderLayer(hidden_dim, nhead, dim_feedforward, dropout, enc_act)
        self.encoder = nn.ModuleList(
            TransformerEncoder(copy.deepcopy(layer), num_encoder_layers) for _ in self.use_encoder_idx
        )
        num_blocks = round(3 * depth_mult)
        levels = len(in_channels)
        self.lateral_convs = nn.ModuleList(
            ConvNormLayer(hidden_dim, hidden_dim, 1, 1, act=act) for _ in range(levels - 1)
        )
        self.fpn_blocks = nn.ModuleList(
            CSPRepLayer(hidden_dim * 2, hidden_dim, num_blocks, expansion=expansion, act=act)
            for _ in range(levels - 1)
        )
        self.downsample_convs = nn.ModuleList(
            ConvNormLayer(hidden_dim, hidden_dim, 3, 2, act=act) for _ in range(levels - 1)
        )
        self.pan_blocks = nn.ModuleList(
            CSPRepLayer(hidden_dim * 2, hidden_dim, num_blocks, expansion=expansion, act=act)
            for _ in range(levels - 1)
        )
        if self.eval_spatial_size:
            eval_h, eval_w = self.eval_spatial_size
            for idx in self.use_encoder_idx:
                stride = self.feat_strides[idx]
                pos = sincos_position_embedding(
                    eval_w // stride, eval_h // stride, hidden_dim, pe_temperature
                )
                self.register_buffer(f"pos_embed{idx}", pos, persistent=False)

    def _position_embedding(self, idx: int, h: int, w: int, like: Tensor) -> Tensor:
        cached = getattr(self, f"pos_embed{idx}", None)
        if not self.training and cached is not None and cached.shape[1] == h * w:
            pos = cached
        else:
            pos = sincos_position_embedding(w, h, self.hidden_dim, self.pe_temperature)
        return pos.to(device=like.device, dtype=like.dtype)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        proj = [self.input_proj[i](feat) for i, feat in enumerate(feats)]
        if self.num_encoder_layers > 0:
            for i, idx in enumerate(self.use_encoder_idx):
                h, w = proj[idx].shape[2:]
                src = proj[idx].flatten(2).permute(0, 2, 1)
                memory = self.encoder[i](src, pos_embed=self._position_embedding(idx, h, w, src))
                proj[idx] = memory.permute(0, 2, 1).reshape(-1, self.hidden_dim, h, w).contiguous()

        levels = len(self.in_channels)
        # top-down (FPN)
        inner_outs = [proj[-1]]
        for idx in range(levels - 1, 0, -1):
            j = levels - 1 - idx
            feat_high = self.lateral_convs[j](inner_outs[0])
            inner_outs[0] = feat_high
            feat_low = proj[idx - 1]
            fused = self.fpn_blocks[j](torch.cat([_upsample_to(feat_high, feat_low), feat_low], dim=1))
            inner_outs.insert(0, fused)
        # bottom-up (PAN)
        outs = [inner_outs[0]]
        for idx in range(levels - 1):
            down = self.downsample_convs[idx](outs[-1])
            outs.append(self.pan_blocks[idx](torch.cat([down, inner_outs[idx + 1]], dim=1)))
        return outs

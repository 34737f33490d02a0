"""Multi-scale deformable attention (RT-DETRv2: its own number of sampling points per level).

Sampling is bilinear ``F.grid_sample`` (zeros padding, align_corners False), so the module is
plain PyTorch and exports to ONNX (GridSample, opset >= 16).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import init

from model.errors import ConfigError

__all__ = ["MSDeformableAttention", "deformable_attention_core"]


def deformable_attention_core(
    value: Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: Tensor,
    attention_weights: Tensor,
    num_points_list: list[int],
) -> Tensor:
    """Weighted bilinear samples of every level.

    value: (B, sum(H*W), heads, head_dim); sampling_locations: (B, Lq, heads, sum(points), 2)
    in [0, 1] image coordinates; attention_weights: (B, Lq, heads, sum(points)).
    Returns (B, Lq, heads * head_dim).
    """
    bs, _, n_heads, head_dim = value.shape
    len_q = sampling_locations.shape[1]
    per_level = value.permute(0, 2, 3, 1).flatten(0, 1).split([h * w for h, w in spatial_shapes], dim=-1)
    grids = (2 * sampling_locations - 1).permute(0, 2, 1, 3, 4).flatten(0, 1)
    grids_per_level = grids.split(num_points_list, dim=-2)
    samples = []
    for level, (h, w) in enumerate(spatial_shapes):
        value_l = per_level[level].reshape(bs * n_heads, head_dim, h, w)
        samples.append(
            F.grid_sample(
                value_l, grids_per_level[level], mode="bilinear", padding_mode="zeros", align_corners=False
            )
        )
    weights = attention_weights.permute(0, 2, 1, 3).reshape(bs * n_heads, 1, len_q, sum(num_points_list))
    out = (torch.cat(samples, dim=-1) * weights).sum(-1).reshape(bs, n_heads * head_dim, len_q)
    return out.permute(0, 2, 1)


class MSDeformableAttention(nn.Module):
    """Deformable cross-attention around 4-d reference boxes (cx, cy, w, h in [0, 1])."""

    def __init__(
        self,
        embed_dim: int = 256,
        num_heads: int = 8,
        num_levels: int = 3,
        num_points: int | list[int] = 4,
        offset_scale: float = 0.5,
    ):
        super().__init__()
        if embed_dim % num_heads != 0:
            raise ConfigError(
                f"decoder width {embed_dim} (model.hidden_dim) is not divisible by {num_heads} heads."
            )
        points = list(num_points) if isinstance(num_points, (list, tuple)) else [int(num_points)] * num_levels
        if len(points) != num_levels:
            raise ConfigError(f"num_points {points} must have one entry per feature level ({num_levels}).")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.head_dim = embed_dim // num_heads
        self.offset_scale = offset_scale
        self.num_points_list = points
        scale = [1.0 / n for n in points for _ in range(n)]
        self.register_buffer("num_points_scale", torch.tensor(scale, dtype=torch.float32))
        total = num_heads * sum(points)
        self.sampling_offsets = nn.Linear(embed_dim, total * 2)
        self.attention_weights = nn.Linear(embed_dim, total)
        self.value_proj = nn.Linear(embed_dim, embed_dim)
        self.output_proj = nn.Linear(embed_dim, embed_dim)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        init.constant_(self.sampling_offsets.weight, 0)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True).values
        grid = grid.reshape(self.num_heads, 1, 2).tile([1, sum(self.num_points_list), 1])
        scaling = torch.cat([torch.arange(1, n + 1) for n in self.num_points_list]).reshape(1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_((grid * scaling).flatten())
        init.constant_(self.attention_weights.weight, 0)
        init.constant_(self.attention_weights.bias, 0)
        init.xavier_uniform_(self.value_proj.weight)
        init.constant_(self.value_proj.bias, 0)
        init.xavier_uniform_(self.output_proj.weight)
        init.constant_(self.output_proj.bias, 0)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        value: Tensor,
        spatial_shapes: list[tuple[int, int]],
    ) -> Tensor:
        """query (B, Lq, C); reference_points (B, Lq, 1, 4); value (B, Lv, C) -> (B, Lq, C)."""
        bs, len_q = query.shape[:2]
        total_points = sum(self.num_points_list)
        value = self.value_proj(value).reshape(bs, value.shape[1], self.num_heads, self.head_dim)
        offsets = self.sampling_offsets(query).reshape(bs, len_q, self.num_heads, total_points, 2)
        weights = self.attention_weights(query).reshape(bs, len_q, self.num_heads, total_points)
        weights = F.softmax(weights, dim=-1)
        points_scale = self.num_points_scale.to(dtype=query.dtype).unsqueeze(-1)
        offset = offsets * points_scale * reference_points[:, :, None, :, 2:] * self.offset_scale
        locations = reference_points[:, :, None, :, :2] + offset
        out = deformable_attention_core(value, spatial_shapes, locations, weights, self.num_points_list)
        return self.output_proj(out)

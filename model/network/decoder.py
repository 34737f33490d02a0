"""RT-DETRv2 decoder: query selection from encoder memory, deformable decoder layers, heads.

Query selection scores every memory position (anchors at each level's grid; positions whose
anchor is not inside (eps, 1 - eps) are masked out), keeps the top ``num_queries`` as initial
reference boxes and content, and refines the boxes layer by layer. In training, denoising
queries are prepended and outputs of every layer are returned for the auxiliary losses.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn import init

from model.errors import ConfigError
from model.network.boxes import inverse_sigmoid
from model.network.deform_attn import MSDeformableAttention
from model.network.denoising import build_denoising_queries
from model.network.layers import MLP, make_activation

__all__ = ["RTDETRDecoder", "TransformerDecoder", "TransformerDecoderLayer", "generate_anchors"]


def generate_anchors(
    spatial_shapes: list[tuple[int, int]], grid_size: float = 0.05, eps: float = 1e-2
) -> tuple[Tensor, Tensor]:
    """Anchor logits (1, sum(H*W), 4) and validity mask (1, sum(H*W), 1), in float32.

    Level ``l`` anchors sit at the cell centres with width and height ``grid_size * 2**l``;
    invalid anchors (a coordinate outside (eps, 1 - eps)) become +inf.
    """
    anchors = []
    for lvl, (h, w) in enumerate(spatial_shapes):
        grid_y, grid_x = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        grid_xy = (torch.stack([grid_x, grid_y], dim=-1).unsqueeze(0) + 0.5) / torch.tensor(
            [w, h], dtype=torch.float32
        )
        wh = torch.ones_like(grid_xy) * grid_size * (2.0**lvl)
        anchors.append(torch.cat([grid_xy, wh], dim=-1).reshape(-1, h * w, 4))
    all_anchors = torch.cat(anchors, dim=1)
    valid = ((all_anchors > eps) * (all_anchors < 1 - eps)).all(-1, keepdim=True)
    logits = torch.log(all_anchors / (1 - all_anchors))
    return torch.where(valid, logits, torch.inf), valid


class TransformerDecoderLayer(nn.Module):
    """Post-norm: self-attention, deformable cross-attention, FFN; each followed by add & norm."""

    def __init__(
        self,
        d_model: int,
        n_head: int,
        dim_feedforward: int,
        dropout: float,
        activation: str,
        n_levels: int,
        n_points: list[int],
    ):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, n_head, dropout=dropout, batch_first=True)
        self.dropout1 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = MSDeformableAttention(d_model, n_head, n_levels, n_points)
        self.dropout2 = nn.Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.activation = make_activation(activation)
        self.dropout3 = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout4 = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)
        init.xavier_uniform_(self.linear1.weight)
        init.xavier_uniform_(self.linear2.weight)

    def forward(
        self,
        target: Tensor,
        reference_points: Tensor,
        memory: Tensor,
        spatial_shapes: list[tuple[int, int]],
        attn_mask: Tensor | None,
        query_pos: Tensor,
    ) -> Tensor:
        q = k = target + query_pos
        attended, _ = self.self_attn(q, k, value=target, attn_mask=attn_mask, need_weights=False)
        target = self.norm1(target + self.dropout1(attended))
        sampled = self.cross_attn(target + query_pos, reference_points, memory, spatial_shapes)
        target = self.norm2(target + self.dropout2(sampled))
        ffn = self.linear2(self.dropout3(self.activation(self.linear1(target))))
        return self.norm3(target + self.dropout4(ffn))


class TransformerDecoder(nn.Module):
    """Decoder layers with iterative box refinement; in eval only layers up to ``eval_idx`` run."""

    def __init__(self, layer: TransformerDecoderLayer, num_layers: int, eval_idx: int = -1):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.eval_idx = eval_idx if eval_idx >= 0 else num_layers + eval_idx

    def forward(
        self,
        target: Tensor,
        ref_points_unact: Tensor,
        memory: Tensor,
        spatial_shapes: list[tuple[int, int]],
        bbox_head: nn.ModuleList,
        score_head: nn.ModuleList,
        query_pos_head: nn.Module,
        attn_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        out_boxes: list[Tensor] = []
        out_logits: list[Tensor] = []
        ref_detached = F.sigmoid(ref_points_unact)
        ref_points = ref_detached
        output = target
        for i, layer in enumerate(self.layers):
            query_pos = query_pos_head(ref_detached)
            output = layer(output, ref_detached.unsqueeze(2), memory, spatial_shapes, attn_mask, query_pos)
            inter_ref = F.sigmoid(bbox_head[i](output) + inverse_sigmoid(ref_detached))
            if self.training:
                out_logits.append(score_head[i](output))
                if i == 0:
                    out_boxes.append(inter_ref)
                else:
                    # "look forward twice": the gradient also reaches the previous layer's box
                    out_boxes.append(F.sigmoid(bbox_head[i](output) + inverse_sigmoid(ref_points)))
            elif i == self.eval_idx:
                out_logits.append(score_head[i](output))
                out_boxes.append(inter_ref)
                break
            ref_points = inter_ref
            ref_detached = inter_ref.detach()
        return torch.stack(out_boxes), torch.stack(out_logits)


class RTDETRDecoder(nn.Module):
    """RTDETRTransformerv2 of the official code (parameter names kept for checkpoint loading)."""

    def __init__(
        self,
        num_classes: int = 80,
        hidden_dim: int = 256,
        num_queries: int = 300,
        feat_channels: list[int] | tuple[int, ...] = (256, 256, 256),
        feat_strides: list[int] | tuple[int, ...] = (8, 16, 32),
        num_levels: int = 3,
        num_points: int | list[int] = 4,
        nhead: int = 8,
        num_layers: int = 6,
        dim_feedforward: int = 1024,
        dropout: float = 0.0,
        activation: str = "relu",
        num_denoising: int = 100,
        label_noise_ratio: float = 0.5,
        box_noise_scale: float = 1.0,
        eval_spatial_size: list[int] | tuple[int, int] | None = None,
        eval_idx: int = -1,
        eps: float = 1e-2,
        aux_loss: bool = True,
    ):
        super().__init__()
        if len(feat_channels) > num_levels:
            raise ConfigError(
                f"model.num_feature_levels={num_levels} is smaller than the {len(feat_channels)} "
                "encoder outputs (model.feat_channels); make them equal."
            )
        if len(feat_strides) != len(feat_channels):
            raise ConfigError(
                f"model.feat_strides {list(feat_strides)} and model.feat_channels {list(feat_channels)} "
                "must have the same length."
            )
        if hidden_dim % nhead != 0:
            raise ConfigError(
                f"model.hidden_dim={hidden_dim} must be divisible by the decoder's {nhead} attention heads."
            )
        if not -num_layers <= eval_idx < num_layers:
            raise ConfigError(
                f"model.eval_idx={eval_idx} is outside {-num_layers}..{num_layers - 1} (dec_layers={num_layers})."
            )
        strides = list(feat_strides)
        while len(strides) < num_levels:
            strides.append(strides[-1] * 2)
        self.hidden_dim = hidden_dim
        self.feat_strides = strides
        self.num_levels = num_levels
        self.num_classes = num_classes
        self.num_queries = num_queries
        self.eps = eps
        self.num_layers = num_layers
        self.aux_loss = aux_loss
        self.num_denoising = num_denoising
        self.label_noise_ratio = label_noise_ratio
        self.box_noise_scale = box_noise_scale
        self.eval_spatial_size = list(eval_spatial_size) if eval_spatial_size else None
        points = list(num_points) if isinstance(num_points, (list, tuple)) else [int(num_points)] * num_levels

        self.input_proj = nn.ModuleList()
        for ch in feat_channels:
            self.input_proj.append(self._proj(ch, 1))
        ch = feat_channels[-1]
        for _ in range(num_levels - len(feat_channels)):
            self.input_proj.append(self._proj(ch, 3))
            ch = hidden_dim

        layer = TransformerDecoderLayer(
            hidden_dim, nhead, dim_feedforward, dropout, activation, num_levels, points
        )
        self.decoder = TransformerDecoder(layer, num_layers, eval_idx)
        if num_denoising > 0:
            self.denoising_class_embed = nn.Embedding(num_classes + 1, hidden_dim, padding_idx=num_classes)
            init.normal_(self.denoising_class_embed.weight[:-1])
        self.query_pos_head = MLP(4, 2 * hidden_dim, hidden_dim, 2)
        self.enc_output = nn.Sequential(
            OrderedDict([("proj", nn.Linear(hidden_dim, hidden_dim)), ("norm", nn.LayerNorm(hidden_dim))])
        )
        self.enc_score_head = nn.Linear(hidden_dim, num_classes)
        self.enc_bbox_head = MLP(hidden_dim, hidden_dim, 4, 3)
        self.dec_score_head = nn.ModuleList(nn.Linear(hidden_dim, num_classes) for _ in range(num_layers))
        self.dec_bbox_head = nn.ModuleList(MLP(hidden_dim, hidden_dim, 4, 3) for _ in range(num_layers))

        self._anchor_shapes: list[tuple[int, int]] = []
        if self.eval_spatial_size:
            eval_h, eval_w = self.eval_spatial_size
            self._anchor_shapes = [(int(eval_h / s), int(eval_w / s)) for s in self.feat_strides]
            anchors, valid_mask = generate_anchors(self._anchor_shapes, eps=eps)
            self.register_buffer("anchors", anchors)
            self.register_buffer("valid_mask", valid_mask)
        self._reset_parameters()

    def _proj(self, ch_in: int, kernel: int) -> nn.Sequential:
        stride, pad = (1, 0) if kernel == 1 else (2, 1)
        return nn.Sequential(
            OrderedDict(
                [
                    ("conv", nn.Conv2d(ch_in, self.hidden_dim, kernel, stride, padding=pad, bias=False)),
                    ("norm", nn.BatchNorm2d(self.hidden_dim)),
                ]
            )
        )

    def _reset_parameters(self) -> None:
        prior_bias = -math.log((1 - 0.01) / 0.01)
        init.constant_(self.enc_score_head.bias, prior_bias)
        init.constant_(self.enc_bbox_head.layers[-1].weight, 0)
        init.constant_(self.enc_bbox_head.layers[-1].bias, 0)
        for score, box in zip(self.dec_score_head, self.dec_bbox_head):
            init.constant_(score.bias, prior_bias)
            init.constant_(box.layers[-1].weight, 0)
            init.constant_(box.layers[-1].bias, 0)
        init.xavier_uniform_(self.enc_output.proj.weight)
        init.xavier_uniform_(self.query_pos_head.layers[0].weight)
        init.xavier_uniform_(self.query_pos_head.layers[1].weight)
        for proj in self.input_proj:
            init.xavier_uniform_(proj.conv.weight)

    def _flatten_levels(self, feats: list[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        proj = [self.input_proj[i](feat) for i, feat in enumerate(feats)]
        for i in range(len(feats), self.num_levels):
            proj.append(self.input_proj[i](feats[-1] if i == len(feats) else proj[-1]))
        shapes = [(int(p.shape[2]), int(p.shape[3])) for p in proj]
        return torch.cat([p.flatten(2).permute(0, 2, 1) for p in proj], dim=1), shapes

    def _anchors_for(self, shapes: list[tuple[int, int]], memory: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training and self._anchor_shapes == shapes:
            anchors, valid = self.anchors, self.valid_mask
        else:
            anchors, valid = generate_anchors(shapes, eps=self.eps)
        return anchors.to(device=memory.device, dtype=memory.dtype), valid.to(memory.device)

    def _select_queries(
        self, memory: Tensor, shapes: list[tuple[int, int]]
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Top-k memory positions: content, box logits, and (for the encoder loss) logits, boxes."""
        anchors, valid = self._anchors_for(shapes, memory)
        memory = valid.to(memory.dtype) * memory
        output_memory = self.enc_output(memory)
        enc_logits = self.enc_score_head(output_memory)
        enc_coords_unact = self.enc_bbox_head(output_memory) + anchors
        _, topk = torch.topk(enc_logits.max(-1).values, self.num_queries, dim=-1)

        def gather(x: Tensor) -> Tensor:
            return x.gather(1, topk.unsqueeze(-1).expand(-1, -1, x.shape[-1]))

        topk_coords = gather(enc_coords_unact)
        return gather(output_memory), topk_coords, gather(enc_logits), F.sigmoid(topk_coords)

    def forward(self, feats: list[Tensor], targets: list[dict[str, Tensor]] | None = None) -> dict[str, Any]:
        memory, shapes = self._flatten_levels(feats)
        if memory.shape[1] < self.num_queries:
            raise ConfigError(
                f"model.num_queries={self.num_queries} is larger than the {memory.shape[1]} feature positions "
                "of this input size; use a larger input or fewer queries."
            )
        dn = None
        # denoising outputs are only supervised through the auxiliary losses (official behaviour)
        if self.training and self.aux_loss and self.num_denoising > 0 and targets is not None:
            dn = build_denoising_queries(
                targets,
                self.num_classes,
                self.num_queries,
                self.denoising_class_embed,
                num_denoising=self.num_denoising,
                label_noise_ratio=self.label_noise_ratio,
                box_noise_scale=self.box_noise_scale,
            )
        content, ref_unact, enc_logits, enc_boxes = self._select_queries(memory, shapes)
        content = content.detach()
        ref_unact = ref_unact.detach()
        attn_mask = None
        if dn is not None:
            content = torch.cat([dn.content.to(content.dtype), content], dim=1)
            ref_unact = torch.cat([dn.boxes_unact.to(ref_unact.dtype), ref_unact], dim=1)
            attn_mask = dn.attn_mask

        out_boxes, out_logits = self.decoder(
            content,
            ref_unact,
            memory,
            shapes,
            self.dec_bbox_head,
            self.dec_score_head,
            self.query_pos_head,
            attn_mask=attn_mask,
        )
        if dn is not None:
            dn_boxes, out_boxes = torch.split(out_boxes, dn.meta["dn_num_split"], dim=2)
            dn_logits, out_logits = torch.split(out_logits, dn.meta["dn_num_split"], dim=2)

        out: dict[str, Any] = {"pred_logits": out_logits[-1], "pred_boxes": out_boxes[-1]}
        if self.training and self.aux_loss:
            out["aux_outputs"] = _pairs(out_logits[:-1], out_boxes[:-1])
            out["enc_aux_outputs"] = _pairs([enc_logits], [enc_boxes])
            out["enc_meta"] = {"class_agnostic": False}
            if dn is not None:
                out["dn_aux_outputs"] = _pairs(dn_logits, dn_boxes)
                out["dn_meta"] = dn.meta
        return out


def _pairs(logits: Any, boxes: Any) -> list[dict[str, Tensor]]:
    return [{"pred_logits": a, "pred_boxes": b} for a, b in zip(logits, boxes)]

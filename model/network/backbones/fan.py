"""TAO's FAN backbones (``fan_tiny/small/base/large``): hybrid Fully Attentional Networks.

TAO's RT-DETR builds its FAN backbones from the hybrid FAN variants of NVlabs/FAN
(``fan_tiny_8_p4_hybrid``, ``fan_small_12_p4_hybrid``, ``fan_base_16_p4_hybrid``,
``fan_large_16_p4_hybrid``): a ConvNeXt stem of two stages (128 channels at stride 4, 256 at
stride 8), FAN blocks on stride-16 tokens and two class-attention blocks. For detection TAO adds a
3x3 stride-2 convolution to 768 channels on the patch tokens after the class-attention blocks and a
LayerNorm on every returned map. ``model.return_interm_indices`` keeps TAO's meaning (stage ``i`` has
stride ``4 * 2**i``):

===== ====== ===================================== =====================================
stage stride taken from                            channels (tiny / small / base / large)
===== ====== ===================================== =====================================
0     4      ConvNeXt stage 0                      128
1     8      ConvNeXt stage 1                      256
2     16     FAN block ``out_index`` (7/9/15/18)   192 / 384 / 448 / 480
3     32     learnable downsample                  768
===== ====== ===================================== =====================================

As in TAO, every FAN block trains with drop path 0.3. TAO's unused classification norm is not
built (its tensors are reported as unexpected when a TAO checkpoint loads), and neither are the
parts only unreturned later stages need, so DDP sees no idle parameters. Parameter names follow
NVIDIA's checkpoints (``patch_embed.backbone.stages.*``, ``blocks.*``, ``cls_attn_blocks.*``,
``out_norm*``, ``learnable_downsample``), so TAO or NVlabs FAN weights load by
``model.pretrained_backbone_path``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from model.checkpoints.state_dict import extract_state_dict, read_checkpoint
from model.checkpoints.weights import LoadReport, load_state_into
from model.errors import CheckpointError, ConfigError
from model.network.backbones.fan_blocks import (
    ClassAttentionBlock,
    ConvNeXtStem,
    FANBlock,
    FourierPositionalEncoding,
    LayerNorm2d,
)

__all__ = ["FAN_VARIANTS", "FANBackbone", "FANHybrid", "FANVariant", "load_fan_weights"]

log = logging.getLogger(__name__)

CONVNEXT_DIMS = (128, 256)
DOWNSAMPLE_CHANNELS = 768
DROP_PATH = 0.3  # TAO's FAN backbones: every FAN block, constant rate
NUM_STAGES = 4


@dataclass(frozen=True)
class FANVariant:
    """One FAN-Hybrid size as TAO's RT-DETR builds it."""

    nvlabs_name: str
    embed_dim: int
    depth: int
    num_heads: int
    convnext_depths: tuple[int, int]
    out_index: int  # FAN block whose output is the stride-16 map


FAN_VARIANTS: dict[str, FANVariant] = {
    "fan_tiny": FANVariant("fan_tiny_8_p4_hybrid", 192, 8, 8, (3, 3), 7),
    "fan_small": FANVariant("fan_small_12_p4_hybrid", 384, 10, 8, (3, 3), 9),
    "fan_base": FANVariant("fan_base_16_p4_hybrid", 448, 16, 8, (3, 3), 15),
    "fan_large": FANVariant("fan_large_16_p4_hybrid", 480, 22, 10, (3, 5), 18),
}


def _variant(name: str) -> FANVariant:
    if name not in FAN_VARIANTS:
        raise ConfigError(
            f"model.backbone: unknown FAN backbone {name!r}; use one of {sorted(FAN_VARIANTS)}."
        )
    return FAN_VARIANTS[name]


class HybridEmbed(nn.Module):
    """ConvNeXt stem, then a 2x2 stride-2 conv from its last map to ``embed_dim`` tokens (stride 16)."""

    def __init__(self, variant: FANVariant, num_stages: int = 2, with_proj: bool = True):
        super().__init__()
        depths = variant.convnext_depths[:num_stages]
        self.backbone = ConvNeXtStem(depths, CONVNEXT_DIMS[:num_stages])
        self.proj = nn.Conv2d(CONVNEXT_DIMS[-1], variant.embed_dim, 2, stride=2) if with_proj else None

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor | None]:
        maps = self.backbone(x)
        return maps, (self.proj(maps[-1]) if self.proj is not None else None)


class FANHybrid(nn.Module):
    """The hybrid FAN network; with ``num_classes > 0`` the ImageNet classifier NVlabs published.

    Args:
        name: TAO backbone name (``fan_tiny`` ... ``fan_large``).
        num_classes: size of the classification head; 0 builds no final norm and no head.
        num_blocks: FAN blocks to build (default: the variant's depth).
        class_attention: build the class token and the class-attention blocks.
        drop_path: stochastic-depth rate of every FAN block.
    """

    def __init__(
        self,
        name: str,
        num_classes: int = 1000,
        num_blocks: int | None = None,
        class_attention: bool = True,
        drop_path: float = 0.0,
        convnext_stages: int = 2,
    ):
        super().__init__()
        self.variant = v = _variant(name)
        self.name = name
        num_blocks = v.depth if num_blocks is None else num_blocks
        self.patch_embed = HybridEmbed(v, num_stages=convnext_stages, with_proj=num_blocks > 0)
        self.pos_embed = FourierPositionalEncoding(v.embed_dim) if num_blocks > 0 else None
        self.blocks = nn.ModuleList(
            FANBlock(v.embed_dim, v.num_heads, drop_path=drop_path) for _ in range(num_blocks)
        )
        if class_attention:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, v.embed_dim))
            self.cls_attn_blocks = nn.ModuleList(
                ClassAttentionBlock(v.embed_dim, v.num_heads) for _ in range(2)
            )
        else:
            self.cls_token = None
            self.cls_attn_blocks = nn.ModuleList()
        if num_classes > 0:
            self.norm = nn.LayerNorm(v.embed_dim, eps=1e-6)
            self.head = nn.Linear(v.embed_dim, num_classes)
        self.num_classes = num_classes
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward_tokens(self, x: Tensor, keep: int = -1) -> tuple[list[Tensor], Tensor, Tensor, int, int]:
        """ConvNeXt maps, the tokens after the last FAN block and after block ``keep``, the token grid.

        Without FAN blocks (a backbone returning only ConvNeXt stages) the tokens are empty.
        """
        maps, grid = self.patch_embed(x)
        if grid is None or self.pos_embed is None:
            empty = x.new_empty(0)
            return maps, empty, empty, 0, 0
        h, w = int(grid.shape[-2]), int(grid.shape[-1])
        tokens = grid.flatten(2).transpose(1, 2) + self.pos_embed(h, w)
        kept = tokens
        keep = keep % len(self.blocks)
        for i, block in enumerate(self.blocks):
            tokens = block(tokens, h, w)
            if i == keep:
                kept = tokens
        return maps, tokens, kept, h, w

    def class_attention(self, tokens: Tensor) -> Tensor:
        """Prepend the class token and run the class-attention blocks; returns all tokens."""
        assert self.cls_token is not None
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        for block in self.cls_attn_blocks:
            x = block(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits (only for a model built with ``num_classes > 0``)."""
        if self.num_classes <= 0:
            raise RuntimeError("FANHybrid was built without a classification head (num_classes=0).")
        tokens = self.forward_tokens(x)[1]
        return self.head(self.norm(self.class_attention(tokens))[:, 0])


def _check_return_idx(return_idx: object) -> list[int]:
    valid = list(range(NUM_STAGES))
    ok = (
        isinstance(return_idx, (list, tuple))
        and len(return_idx) > 0
        and all(isinstance(i, int) and not isinstance(i, bool) and i in valid for i in return_idx)
        and list(return_idx) == sorted(set(return_idx))
    )
    if not ok:
        raise ConfigError(
            f"model.return_interm_indices: {return_idx!r} is not usable for a FAN backbone; give increasing "
            f"stage indices from {valid} (stage i has stride 4*2**i), e.g. [1, 2, 3] for strides 8/16/32"
        )
    return list(return_idx)


class FANBackbone(FANHybrid):
    """A TAO FAN backbone returning the LayerNorm-ed maps of the stages in ``return_idx``.

    Args:
        name: ``fan_tiny``, ``fan_small``, ``fan_base`` or ``fan_large``.
        return_idx: TAO stage indices (``model.return_interm_indices``), e.g. ``[1, 2, 3]``.
        pretrained_path: optional checkpoint (``model.pretrained_backbone_path``), loaded by name.
        freeze: freeze every parameter and keep BatchNorm statistics and drop path off
            (``model.train_backbone: false``).

    Raises:
        ConfigError: unknown name or unusable ``return_idx``.
        CheckpointError: ``pretrained_path`` is unreadable or shares no tensor with the backbone.
    """

    def __init__(self, name: str, return_idx: list[int], pretrained_path: str = "", freeze: bool = False):
        return_idx = _check_return_idx(return_idx)
        v = _variant(name)
        last = max(return_idx)
        num_blocks = v.depth if last == 3 else (v.out_index + 1 if last == 2 else 0)
        super().__init__(
            name,
            num_classes=0,
            num_blocks=num_blocks,
            class_attention=last == 3,
            drop_path=DROP_PATH,
            convnext_stages=2 if last >= 1 else 1,
        )
        self.return_idx = return_idx
        self.learnable_downsample = (
            nn.Conv2d(v.embed_dim, DOWNSAMPLE_CHANNELS, 3, stride=2, padding=1) if last == 3 else None
        )
        channels = [*CONVNEXT_DIMS, v.embed_dim, DOWNSAMPLE_CHANNELS]
        for i in return_idx:
            self.add_module(f"out_norm{i}", LayerNorm2d(channels[i]))
        self.out_channels: list[int] = [channels[i] for i in return_idx]
        self.out_strides: list[int] = [4 * 2**i for i in return_idx]
        self.frozen = freeze
        if pretrained_path:
            log.info("%s", load_fan_weights(self, pretrained_path).summary())
        if freeze:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> FANBackbone:
        """A frozen backbone stays in eval mode (fixed BatchNorm statistics, no drop path)."""
        return super().train(mode and not self.frozen)

    def forward(self, x: Tensor) -> list[Tensor]:
        maps, tokens, kept, h, w = self.forward_tokens(x, keep=self.variant.out_index)
        if len(self.blocks):
            b, c = tokens.shape[0], tokens.shape[-1]
            maps.append(kept.transpose(1, 2).reshape(b, c, h, w))
            if self.learnable_downsample is not None:
                patches = self.class_attention(tokens)[:, 1:]
                maps.append(self.learnable_downsample(patches.transpose(1, 2).reshape(b, c, h, w)))
        return [getattr(self, f"out_norm{i}")(maps[i]) for i in self.return_idx]


# --- pretrained weights ---------------------------------------------------------------------
def _strip_to_own(state: dict[str, Tensor], own: set[str]) -> dict[str, Tensor]:
    """Drop the key prefix (``backbone.``, ``model.model.backbone.``, ...) under which most keys match."""
    votes: dict[str, int] = {}
    for key in state:
        parts = key.split(".")
        for cut in range(len(parts)):
            if ".".join(parts[cut:]) in own:
                prefix = ".".join(parts[:cut])
                votes[prefix] = votes.get(prefix, 0) + 1
                break
    if not votes:
        return state
    best = max(votes, key=lambda p: (votes[p], -len(p)))
    if not best:
        return state
    return {k[len(best) + 1 :]: v for k, v in state.items() if k.startswith(best + ".")}


def load_fan_weights(backbone: nn.Module, path: str | Path) -> LoadReport:
    """Load FAN weights (TAO, NVlabs or our own) by name; tensors of another shape are skipped."""
    state, source = extract_state_dict(read_checkpoint(path), str(path))
    own = backbone.state_dict()
    state = _strip_to_own(state, set(own))
    # TAO and NVlabs keep the ConvNeXt MLPs as 1x1 convolutions; timm's Linear layout stores them 2-D.
    for key, value in list(state.items()):
        target = own.get(key)
        if target is not None and value.dim() == 2 and target.dim() == 4 and target.shape[2:] == (1, 1):
            state[key] = value.reshape(target.shape)
    report = load_state_into(backbone, state, str(path), source)
    if not any(not k.endswith("num_batches_tracked") for k in report.loaded):
        raise CheckpointError(
            f"model.pretrained_backbone_path: {str(path)!r} has no tensor that fits backbone "
            f"{getattr(backbone, 'name', 'fan')!r} ({len(report.skipped)} differ in shape, e.g. "
            f"{[k for k, _, _ in report.skipped[:2]]}; first names in the file: {list(state)[:3]}); "
            "give the FAN-Hybrid checkpoint of the same size (tiny/small/base/large)."
        )
    return report

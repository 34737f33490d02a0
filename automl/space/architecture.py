"""The architecture a latency sweep searches by default (``--objectives ...latency_ms`` or
``--max-latency-ms``, with no ``automl_hyperparameters`` list of the user's).

Latency depends on the network and its input size, so such a sweep adds to the schema's default
parameters the keys that set them, each around the base spec's value and within the schema:

- ``model.backbone``: ``resnet_18``, ``resnet_34``, ``efficientvit_b0`` and the spec's own;
- ``model.hidden_dim`` (the decoder width; ``automl_enabled: false`` in TAO's schema, searched here
  because latency needs it): multiples of 32 that the heads divide, in [v/2, 2v]. When the
  spec follows TAO's rule ``feat_channels == [hidden_dim] * levels`` the encoder width follows too;
- ``model.expansion`` in [v/2, 2v]; ``model.depth_mult``, ``model.enc_layers``, ``model.dec_layers``,
  ``model.num_queries`` / ``num_select`` by the schema's rules (``num_select <= num_queries``);
- ``input_size``: one square size, a multiple of 32 in [v/2, 2v], that sets
  ``dataset.augmentation.train_spatial_size``, ``eval_spatial_size`` and ``multi_scales`` (scaled
  by the same factor) together; it exists only in the search space, and the trial's spec holds the
  sizes it set (:func:`apply_architecture`).

Every combination builds: the choices are the ones the network accepts. ``--param`` ranges and
``automl_hyperparameters`` replace these defaults.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from automl.errors import SettingError
from automl.space.params import Excluded, SearchParam, SearchSpace
from automl.spec import get_dotted

__all__ = ["INPUT_SIZE", "apply_architecture", "architecture_ranges", "input_size_param", "with_input_size"]

INPUT_SIZE = "input_size"
SIZE_STEP = 32
DECODER_HEADS = 8  # the decoder's attention heads (fixed, as in the official RT-DETR)
SMALL_BACKBONES = ("resnet_18", "resnet_34", "efficientvit_b0")


def architecture_ranges(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture keys and their default ranges around ``spec``'s values (name -> range;
    None: the schema's own rule)."""
    backbone = str(get_dotted(spec, "model.backbone", "resnet_50"))
    ranges: dict[str, Any] = {
        "model.backbone": list(dict.fromkeys([*SMALL_BACKBONES, backbone])),
        "model.depth_mult": None,
        "model.enc_layers": None,
        "model.dec_layers": None,
        "model.num_queries": None,
        "model.num_select": None,
    }
    hidden = get_dotted(spec, "model.hidden_dim", 256)
    heads = int(get_dotted(spec, "model.nheads", 8) or 8)
    if isinstance(hidden, int) and hidden > 0:
        step = math.lcm(SIZE_STEP, DECODER_HEADS, heads)  # widths the heads divide, in steps of 32
        low, high = max(step, math.ceil(hidden / 2 / step) * step), hidden * 2
        choices = list(range(low, high + 1, step))
        if len(choices) > 6:  # a handful of widths, evenly spread, the spec's own among them
            choices = sorted({choices[round(i * (len(choices) - 1) / 5)] for i in range(6)} | {hidden})
        if len(choices) >= 2:
            ranges["model.hidden_dim"] = choices
    expansion = get_dotted(spec, "model.expansion", 1.0)
    if isinstance(expansion, (int, float)) and expansion > 0:
        ranges["model.expansion"] = f"{expansion / 2:g}:{expansion * 2:g}"
    return ranges


def feature_positions(spec: Mapping[str, Any], size: int) -> int:
    """The encoder's output positions at a square ``size``: the most queries the decoder can pick."""
    strides = get_dotted(spec, "model.feat_strides", [8, 16, 32]) or [8, 16, 32]
    return sum((size // int(s)) ** 2 for s in strides)


def input_size_param(
    spec: Mapping[str, Any], user_range: Any = None, queries: int | None = None
) -> SearchParam | Excluded:
    """The ``input_size`` parameter around the spec's eval size, or why it cannot be searched.
    ``queries``: the most ``num_queries`` the space holds; smaller sizes, which have fewer feature
    positions than that, are left out of the default range (and refused in a user's range)."""
    size = get_dotted(spec, "dataset.augmentation.eval_spatial_size", [640, 640])
    if not (isinstance(size, list) and len(size) == 2 and size[0] == size[1] and size[0] % SIZE_STEP == 0):
        if user_range is not None:
            raise SettingError(
                f"{INPUT_SIZE}: dataset.augmentation.eval_spatial_size is {size!r}; searching the input "
                f"size needs a square multiple of {SIZE_STEP} (e.g. [128, 128])"
            )
        return Excluded(INPUT_SIZE, f"eval_spatial_size {size!r} is not a square multiple of {SIZE_STEP}")
    value = int(size[0])
    low, high = max(SIZE_STEP, math.ceil(value / 2 / SIZE_STEP) * SIZE_STEP), value * 2
    note = f"around {value}: multiples of {SIZE_STEP} in [v/2, 2v]; sets train/eval sizes and multi_scales"
    queries = int(queries or get_dotted(spec, "model.num_queries", 300) or 300)
    smallest = next(
        (s for s in range(SIZE_STEP, 64 * SIZE_STEP, SIZE_STEP) if feature_positions(spec, s) >= queries),
        SIZE_STEP * 64,
    )
    if user_range is not None:
        low, high = _user_size_range(str(user_range))
        note = "user range; sets train/eval sizes and multi_scales"
        if low < smallest:
            raise SettingError(
                f"{INPUT_SIZE}={user_range}: at {low} px the network has {feature_positions(spec, low)} feature "
                f"positions, fewer than model.num_queries (up to {queries}); start the range at {smallest}"
            )
    elif low < smallest:
        low, note = smallest, note + f"; from {smallest}: smaller has fewer positions than {queries} queries"
    if math.floor(high / SIZE_STEP) * SIZE_STEP < low:
        return Excluded(INPUT_SIZE, f"no size in [{low}, {high}] has positions for {queries} queries")
    return SearchParam(INPUT_SIZE, "int", value, low, high, "multiple", SIZE_STEP, note=note)


def _user_size_range(text: str) -> tuple[int, int]:
    parts = text.split(":")
    try:
        low, high = int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        raise SettingError(
            f"{INPUT_SIZE}={text}: give low:high in pixels, e.g. {INPUT_SIZE}=64:192"
        ) from None
    if len(parts) != 2 or low >= high or low < SIZE_STEP or math.floor(high / SIZE_STEP) * SIZE_STEP < low:
        raise SettingError(
            f"{INPUT_SIZE}={text}: need {SIZE_STEP} <= low < high with a multiple of {SIZE_STEP} between them"
        )
    return low, high


def with_input_size(space: SearchSpace, param: SearchParam | Excluded) -> SearchSpace:
    if isinstance(param, Excluded):
        return SearchSpace(params=list(space.params), excluded=[*space.excluded, param])
    return SearchSpace(params=[*space.params, param], excluded=list(space.excluded))


def apply_architecture(
    spec: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``spec`` with a sampled ``input_size`` set (and the encoder width following a sampled
    ``hidden_dim`` where the spec ties them), and the params left to apply as spec keys."""
    out = copy.deepcopy(dict(spec))
    rest = {k: v for k, v in params.items() if k != INPUT_SIZE}
    if INPUT_SIZE in params:
        size = int(params[INPUT_SIZE])
        augmentation = out.setdefault("dataset", {}).setdefault("augmentation", {})
        old = augmentation.get("eval_spatial_size") or [size, size]
        scale = size / float(old[0])
        scales = augmentation.get("multi_scales") or []
        augmentation["train_spatial_size"] = [size, size]
        augmentation["eval_spatial_size"] = [size, size]
        if scales:
            fitted = [max(SIZE_STEP, round(s * scale / SIZE_STEP) * SIZE_STEP) for s in scales]
            augmentation["multi_scales"] = sorted(set(fitted))
    hidden = params.get("model.hidden_dim")
    model = out.get("model") or {}
    channels, old_hidden = model.get("feat_channels"), model.get("hidden_dim", 256)
    if (
        hidden is not None
        and isinstance(channels, list)
        and channels
        and all(c == old_hidden for c in channels)
    ):
        model["feat_channels"] = [int(hidden)] * len(channels)
    return out, rest

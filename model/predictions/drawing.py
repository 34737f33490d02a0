"""Boxes, class names and scores drawn on an image (Pillow), for ``rtdetr inference``.

Colours: ``inference.color_map`` maps a class name to a colour name or ``#rrggbb`` (anything
Pillow's ``ImageColor`` understands); classes it does not name get a colour from a fixed palette,
chosen by category id so a class keeps its colour from run to run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from PIL import Image, ImageColor, ImageDraw, ImageFont

from model.errors import ConfigError
from model.predictions.files import Detection

__all__ = ["PALETTE", "class_colors", "draw_detections"]

RGB = tuple[int, int, int]

PALETTE: tuple[str, ...] = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
    "#e6beff",
    "#9a6324",
    "#fffac8",
    "#800000",
    "#aaffc3",
    "#808000",
    "#ffd8b1",
    "#000075",
    "#808080",
    "#ffe119",
)


def _parse_color(value: object, key: str) -> RGB:
    try:
        rgb = ImageColor.getrgb(str(value))
    except ValueError:
        raise ConfigError(
            f"{key}: {value!r} is not a colour; use a colour name such as 'red' or a hex value such as '#ff0000'"
        ) from None
    return (int(rgb[0]), int(rgb[1]), int(rgb[2]))


def class_colors(names: Mapping[int, str], color_map: Mapping[str, object] | None) -> dict[int, RGB]:
    """The colour of every category id in ``names``: ``color_map[name]`` or the palette.

    Raises:
        ConfigError: a ``color_map`` value is not a colour Pillow knows.
    """
    chosen = {str(k): _parse_color(v, f"inference.color_map.{k}") for k, v in (color_map or {}).items()}
    colors = {}
    for category_id, name in names.items():
        colors[int(category_id)] = chosen.get(name) or _parse_color(
            PALETTE[int(category_id) % len(PALETTE)], ""
        )
    return colors


def _text_color(background: RGB) -> RGB:
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def draw_detections(
    image: Image.Image,
    detections: Sequence[Detection],
    colors: Mapping[int, RGB],
    outline_width: int = 3,
) -> Image.Image:
    """A copy of ``image`` (RGB) with each detection's box and ``name: score`` label drawn."""
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    width, height = canvas.size
    for det in sorted(detections, key=lambda d: d.score):  # the best ends on top
        color = colors.get(det.category_id) or _parse_color(PALETTE[det.category_id % len(PALETTE)], "")
        x1, y1, x2, y2 = (round(v) for v in det.box)
        draw.rectangle((x1, y1, max(x1, x2), max(y1, y2)), outline=color, width=max(1, int(outline_width)))
        text = f"{det.name}: {det.score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        text_w, text_h = right - left + 4, bottom - top + 4
        tx = min(max(0, x1), max(0, width - text_w))
        ty = y1 - text_h if y1 - text_h >= 0 else min(max(0, y1), max(0, height - text_h))
        draw.rectangle((tx, ty, tx + text_w, ty + text_h), fill=color)
        draw.text((tx + 2 - left, ty + 2 - top), text, fill=_text_color(color), font=font)
    return canvas

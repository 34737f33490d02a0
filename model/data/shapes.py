"""Drawing for the synthetic shapes dataset: shape masks, object colours and backgrounds.

Everything here is a pure function of its arguments and a ``numpy.random.Generator``, so the
images of :mod:`model.data.synthetic` are reproducible from a seed. Shapes are drawn with Pillow
at ``SUPERSAMPLE`` times the target resolution and box-filtered down, which gives crisp,
anti-aliased edges; the result is an alpha mask in ``[0, 1]`` that the caller composites onto a
background and from which it takes the tight bounding box.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "CLASS_NAMES",
    "CROSS_ARM",
    "MAX_ROTATION_DEG",
    "RING_INNER_RATIO",
    "STAR_INNER_RATIO",
    "SUPERSAMPLE",
    "background",
    "object_colour",
    "shape_mask",
]

# Class = shape. The order is the category order (category id = index + 1); the first three are
# the most distinct and form the default 3-class dataset.
CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross", "star", "hexagon", "ring")

SUPERSAMPLE = 4  # drawing resolution factor before box-filter down-sampling (anti-aliasing)
MAX_ROTATION_DEG = 10.0  # small jitter: never enough to turn a square into a diamond (45 degrees)
STAR_INNER_RATIO = 0.45  # inner / outer radius of the 5-point star (fat enough to read at 12 px)
RING_INNER_RATIO = 0.5  # hole radius / outer radius of the ring
CROSS_ARM = 1.0 / 3.0  # arm thickness of the plus sign, as a fraction of its width


def _regular_polygon(vertices: int, start_deg: float) -> list[tuple[float, float]]:
    """Vertices of a regular polygon of radius 0.5 centred on the origin."""
    return [
        (
            0.5 * math.cos(math.radians(start_deg + 360.0 * k / vertices)),
            0.5 * math.sin(math.radians(start_deg + 360.0 * k / vertices)),
        )
        for k in range(vertices)
    ]


def _outline(name: str) -> list[tuple[float, float]]:
    """The polygon of a shape, centred on the origin, y pointing down (image coordinates)."""
    if name == "square":
        return [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    if name == "triangle":  # pointing up, base as wide as it is tall
        return [(0.0, -0.5), (0.5, 0.5), (-0.5, 0.5)]
    if name == "diamond":
        return [(0.0, -0.5), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.0)]
    if name == "hexagon":
        return _regular_polygon(6, 0.0)
    if name == "cross":
        a, b = CROSS_ARM / 2.0, 0.5
        return [
            (-a, -b),
            (a, -b),
            (a, -a),
            (b, -a),
            (b, a),
            (a, a),
            (a, b),
            (-a, b),
            (-a, a),
            (-b, a),
            (-b, -a),
            (-a, -a),
        ]
    if name == "star":
        points = []
        for k in range(10):
            radius = 0.5 if k % 2 == 0 else 0.5 * STAR_INNER_RATIO
            angle = math.radians(-90.0 + 36.0 * k)
            points.append((radius * math.cos(angle), radius * math.sin(angle)))
        return points
    raise ValueError(f"no outline for shape {name!r}; known shapes: {', '.join(CLASS_NAMES)}")


def _fit(points: list[tuple[float, float]], extent: float) -> list[tuple[float, float]]:
    """Scale and shift points so that their bounding box fills ``[0, extent]`` along its longer side, centred."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    width, height = max(xs) - min(xs), max(ys) - min(ys)
    scale = extent / max(width, height)
    dx = (extent - width * scale) / 2.0 - min(xs) * scale
    dy = (extent - height * scale) / 2.0 - min(ys) * scale
    return [(x * scale + dx, y * scale + dy) for x, y in points]


def _rotate(points: list[tuple[float, float]], degrees: float) -> list[tuple[float, float]]:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def shape_mask(name: str, side: int, rng: np.random.Generator) -> np.ndarray:
    """An anti-aliased ``(side, side)`` float32 alpha mask of one shape filling the square.

    Polygons get a small random rotation (at most ``MAX_ROTATION_DEG``) and are then scaled to
    fill the square along their longer side; circles and rings fill it exactly.
    """
    big = side * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    last = big - 1  # Pillow coordinates are pixel-inclusive
    if name in ("circle", "ring"):
        draw.ellipse((0, 0, last, last), fill=255)
        if name == "ring":
            margin = last * (1.0 - RING_INNER_RATIO) / 2.0
            draw.ellipse((margin, margin, last - margin, last - margin), fill=0)
    else:
        angle = float(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
        draw.polygon(_fit(_rotate(_outline(name), angle), last), fill=255)
    small = canvas.reduce(SUPERSAMPLE)
    return np.asarray(small, dtype=np.float32) / 255.0


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32) * 255.0


def object_colour(rng: np.random.Generator) -> np.ndarray:
    """A bright RGB colour (0..255 floats): any hue, value >= 0.8, so it stands out on dark backgrounds."""
    return _hsv(float(rng.random()), float(rng.uniform(0.25, 1.0)), float(rng.uniform(0.8, 1.0)))


def background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A dark ``(size, size, 3)`` float32 background: a tinted flat colour or a two-tint gradient, plus noise.

    Brightness stays below about a third of the range, far from the objects' brightness.
    """
    hue = float(rng.random())
    first = _hsv(hue, float(rng.uniform(0.2, 1.0)), float(rng.uniform(0.05, 0.3)))
    if rng.random() < 0.35:
        second = _hsv(
            hue + float(rng.uniform(-0.3, 0.3)), float(rng.uniform(0.2, 1.0)), float(rng.uniform(0.0, 0.3))
        )
        angle = float(rng.uniform(0.0, 2.0 * math.pi))
        coords = np.arange(size, dtype=np.float32)
        ramp = np.cos(angle) * coords[None, :] + np.sin(angle) * coords[:, None]
        t = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
        image = first[None, None, :] * (1.0 - t[..., None]) + second[None, None, :] * t[..., None]
    else:
        image = np.broadcast_to(first, (size, size, 3)).astype(np.float32)
    sigma = float(rng.uniform(3.0, 14.0))
    return image + rng.normal(0.0, sigma, (size, size, 3)).astype(np.float32)

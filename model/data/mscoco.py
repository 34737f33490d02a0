"""COCO's 91 category ids and the 80 contiguous labels of ``dataset.remap_mscoco_category``.

COCO's instances json numbers its 80 categories with ids from 1 to 90 that skip 11 values
(12, 26, 29, 30, 45, 66, 68, 69, 71, 83, 91 are unused). With ``remap_mscoco_category: true``
the label of category ``MSCOCO_CATEGORY_IDS[k]`` is ``k`` (0..79), as in the official RT-DETR
and TAO loaders; evaluation maps labels back with ``label_to_category_id``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "MSCOCO_CATEGORY_IDS",
    "MSCOCO_NUM_LABELS",
    "category_id_to_label",
    "label_to_category_id",
]


def _ranges(*spans: tuple[int, int]) -> tuple[int, ...]:
    return tuple(i for first, last in spans for i in range(first, last + 1))


MSCOCO_CATEGORY_IDS: tuple[int, ...] = _ranges(
    (1, 11), (13, 25), (27, 28), (31, 44), (46, 65), (67, 67), (70, 70), (72, 82), (84, 90)
)
MSCOCO_NUM_LABELS = len(MSCOCO_CATEGORY_IDS)  # 80
_LABEL_OF = {category: label for label, category in enumerate(MSCOCO_CATEGORY_IDS)}
_CATEGORY_OF = np.asarray(MSCOCO_CATEGORY_IDS, dtype=np.int64)


def category_id_to_label(category_id: int, remap: bool) -> int | None:
    """The training label of a category id: itself, or its COCO 0..79 label (None if not one of the 80)."""
    if not remap:
        return int(category_id)
    return _LABEL_OF.get(int(category_id))


def label_to_category_id(labels: Iterable[int] | np.ndarray, remap: bool) -> np.ndarray:
    """Category ids for predicted labels (identity unless ``remap``); an int64 array.

    With ``remap``, a label outside 0..79 (a model built with more classes) maps to -1, which
    matches no ground-truth category, so evaluation ignores it.
    """
    values = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels, dtype=np.int64)
    if not remap:
        return values
    inside = (values >= 0) & (values < MSCOCO_NUM_LABELS)
    return np.where(inside, _CATEGORY_OF[np.where(inside, values, 0)], -1)

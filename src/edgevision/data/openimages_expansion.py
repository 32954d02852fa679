"""The Open Images challenge's expansion of ground truth up and down the class hierarchy.

It follows the challenge's ``oid_hierarchical_labels_expansion.py``: a box or a positive
image-level label also counts for every ancestor of its class, a negative label for every
descendant (along the ``Subcategory`` links :class:`ClassHierarchy` keeps). Where a class is
reached along two paths (a "Spoon" is a "Kitchen utensil" twice over), the reference lists the
shared ancestor twice and so writes the same box twice; here each ancestor counts once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgevision.data.openimages import BoxAnnotations, ImageLabels, string_array
from edgevision.data.openimages_hierarchy import ClassHierarchy
from edgevision.errors import DatasetError


def _expansion(
    label_names: np.ndarray, related: Sequence[tuple[str, ...]], codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows to repeat and their new labels: each row, then one copy a related class.

    ``related[c]`` is ``(own class, *classes to add)`` for code ``c``; ``codes`` is each row's code.
    """
    lengths = np.array([len(r) for r in related], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    flat = string_array([mid for r in related for mid in r])
    counts = lengths[codes]
    rows = np.repeat(np.arange(len(label_names)), counts)
    offset = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    return rows, flat[starts[codes][rows] + offset]


def expand_boxes(boxes: BoxAnnotations, hierarchy: ClassHierarchy) -> BoxAnnotations:
    """Each box, followed by a copy for every ancestor class (the challenge's ground-truth expansion).

    Raises:
        DatasetError: a box's class is not in the hierarchy.
    """
    if not len(boxes):
        return boxes
    classes, codes = np.unique(boxes.label_names, return_inverse=True)
    related = [(str(mid), *hierarchy.ancestors(str(mid))) for mid in classes]
    rows, labels = _expansion(boxes.label_names, related, codes.reshape(-1))
    out = boxes.select(rows)
    return BoxAnnotations(out.image_ids, labels, out.boxes, out.confidences, out.flags, out.sources)


def expand_image_labels(labels: ImageLabels, hierarchy: ClassHierarchy) -> ImageLabels:
    """Each label, followed by a copy for every ancestor (positive) or descendant (negative) class.

    Raises:
        DatasetError: a class is not in the hierarchy, or a confidence is neither 0 nor 1 (only
            verified labels can be expanded; the reference fails the same way).
    """
    if not len(labels):
        return labels
    unverified = (labels.confidences != 0) & (labels.confidences != 1)
    if unverified.any():
        i = int(np.flatnonzero(unverified)[0])
        raise DatasetError(
            f"hierarchy expansion needs verified labels (Confidence 0 or 1), got {labels.confidences[i]} "
            f"for {labels.label_names[i]} on image {labels.image_ids[i]}"
        )
    classes, codes = np.unique(labels.label_names, return_inverse=True)
    related = []
    for mid in classes:  # code 2c: negative (down the tree), 2c + 1: positive (up the tree)
        mid = str(mid)
        related += [(mid, *hierarchy.descendants(mid)), (mid, *hierarchy.ancestors(mid))]
    codes = 2 * codes.reshape(-1) + labels.is_positive
    rows, names = _expansion(labels.label_names, related, codes)
    out = labels.select(rows)
    return ImageLabels(out.image_ids, names, out.confidences, out.sources)

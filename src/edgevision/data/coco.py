"""COCO detection JSON (Lin et al., ECCV 2014) to and from Open Images box annotations.

A COCO file holds ``images``, ``annotations`` (``bbox`` ``[x, y, w, h]`` pixels) and
``categories``; Open Images boxes are normalised xyxy (:class:`~edgevision.data.openimages.BoxAnnotations`),
so converting needs each image's size. The Open Images fields COCO has no place for travel in extra
keys, so a round trip loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edgevision.data.io import atomic_write, read_json
from edgevision.data.openimages import (
    FLAG_COLUMNS,
    BoxAnnotations,
    check_image_size,
    default_flags,
    flag_index,
)
from edgevision.errors import DatasetError, ShapeError


def to_coco(
    boxes: BoxAnnotations,
    image_sizes: Mapping[str, tuple[int, int]],
    class_names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Convert to a COCO detection dict (``images``, ``annotations``, ``categories``).

    Args:
        boxes: the annotations (normalised xyxy).
        image_sizes: image ID -> ``(width, height)`` pixels; every image listed becomes a COCO
            image (those without boxes too), in sorted ID order, with ids from 1.
        class_names: MID -> name, e.g. from :func:`~edgevision.data.openimages.load_class_descriptions`;
            category ids follow its order from 1 (so they agree across splits). Default: the MIDs
            present, sorted, named by MID.

    Returns:
        A dict in COCO's format: ``bbox`` is ``[x, y, w, h]`` pixels, ``iscrowd`` is IsGroupOf (COCO
        also matches a crowd region by intersection over the detection's area), and each image and
        category keeps its Open Images ID (``openimages_id``, ``mid``); each annotation keeps its
        Open Images fields under ``"openimages"``.

    Raises:
        DatasetError: an annotated image has no size, or a class is not in ``class_names``.
    """
    if class_names is None:
        class_names = {str(mid): str(mid) for mid in sorted(set(boxes.label_names.tolist()))}
    category_id = {mid: k + 1 for k, mid in enumerate(class_names)}
    missing_class = next((mid for mid in boxes.label_names if mid not in category_id), None)
    if missing_class is not None:
        raise DatasetError(f"class {missing_class} is not among the COCO categories given")
    image_ids = sorted(image_sizes)
    image_index = {image: k + 1 for k, image in enumerate(image_ids)}
    missing_image = next((image for image in boxes.image_ids if image not in image_index), None)
    if missing_image is not None:
        raise DatasetError(f"no image size given for image {missing_image}")
    images = []
    for image in image_ids:
        width, height = image_sizes[image]
        check_image_size(width, height)
        images.append(
            {
                "id": image_index[image],
                "file_name": f"{image}.jpg",
                "width": int(width),
                "height": int(height),
                "openimages_id": image,
            }
        )
    annotations = []
    coords = boxes.boxes.astype(np.float64)
    group_of = boxes.is_group_of
    for k in range(len(boxes)):
        image = boxes.image_ids[k]
        width, height = image_sizes[image]
        x1, y1, x2, y2 = coords[k].tolist()
        w, h = (x2 - x1) * width, (y2 - y1) * height
        extra = {"Source": boxes.sources[k], "Confidence": float(boxes.confidences[k])}
        extra.update({name: int(v) for name, v in zip(FLAG_COLUMNS, boxes.flags[k].tolist())})
        annotations.append(
            {
                "id": k + 1,
                "image_id": image_index[image],
                "category_id": category_id[boxes.label_names[k]],
                "bbox": [x1 * width, y1 * height, w, h],
                "area": w * h,
                "iscrowd": int(group_of[k]),
                "openimages": extra,
            }
        )
    categories = [{"id": category_id[mid], "name": name, "mid": mid} for mid, name in class_names.items()]
    return {
        "info": {"description": "Open Images V4 boxes, converted by edgevision"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def from_coco(
    coco: Mapping[str, Any], box_dtype: type = np.float32
) -> tuple[BoxAnnotations, dict[str, tuple[int, int]]]:
    """Convert a COCO detection dict to annotations and image sizes.

    The inverse of :func:`to_coco`; a COCO file from elsewhere also reads: an image's ID is its
    ``openimages_id`` or else its file name's stem, a class is its category's ``mid`` or else its
    name, IsGroupOf is ``iscrowd``, and the flags not stored under ``"openimages"`` are unknown.

    Returns:
        ``(annotations, image ID -> (width, height))``.

    Raises:
        DatasetError: a key is missing, an id is unknown, or an image size is not positive.
    """
    group_of = flag_index("IsGroupOf")
    try:
        images = {}
        for image in coco["images"]:
            name = image.get("openimages_id") or PurePosixPath(image["file_name"]).stem
            width, height = int(image["width"]), int(image["height"])
            check_image_size(width, height)
            images[image["id"]] = (str(name), width, height)
        categories = {cat["id"]: str(cat.get("mid") or cat["name"]) for cat in coco["categories"]}
        n = len(coco["annotations"])
        image_ids, labels, sources = [], [], []
        coords = np.zeros((n, 4), np.float64)
        confidences = np.ones(n, np.float32)
        flags = default_flags(n)
        for k, ann in enumerate(coco["annotations"]):
            name, width, height = images[ann["image_id"]]
            x, y, w, h = (float(v) for v in ann["bbox"])
            coords[k] = (x / width, y / height, (x + w) / width, (y + h) / height)
            image_ids.append(name)
            labels.append(categories[ann["category_id"]])
            extra = ann.get("openimages") or {}
            sources.append(str(extra.get("Source", "")))
            confidences[k] = float(extra.get("Confidence", 1.0))
            flags[k, group_of] = int(bool(ann.get("iscrowd", 0)))
            for j, flag in enumerate(FLAG_COLUMNS):
                if flag in extra:
                    flags[k, j] = int(extra[flag])
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"malformed COCO annotations: {type(error).__name__} {error}") from None
    except ShapeError as error:
        raise DatasetError(f"malformed COCO annotations: {error}") from None
    boxes = BoxAnnotations(image_ids, labels, coords.astype(box_dtype), confidences, flags, sources)
    return boxes, {name: (width, height) for name, width, height in images.values()}


def write_coco_json(path: str | Path, coco: Mapping[str, Any]) -> Path:
    """Write a COCO dict as JSON, atomically; return ``path``."""
    path = Path(path)
    with atomic_write(path, "w") as handle:
        json.dump(coco, handle)
    return path


def read_coco_json(path: str | Path) -> dict[str, Any]:
    """Read a COCO JSON file.

    Raises:
        DatasetError: the file is missing or not a JSON object.
    """
    coco = read_json(path, "COCO annotation file")
    if not isinstance(coco, dict):
        raise DatasetError(f"COCO annotation file {path} is not a JSON object")
    return coco

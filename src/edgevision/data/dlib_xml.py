"""dlib's imglab XML annotations (dlib ``tools/imglab``, ``data_io/image_dataset_metadata``).

The format::

    <dataset>
      <name>...</name> <comment>...</comment>
      <images>
        <image file='photo.jpg' width='500' height='375'>
          <box top='90' left='194' width='37' height='37' ignore='1'>
            <label>face</label> <part name='0' x='200' y='110'/>
          </box>
        </image>
      </images>
    </dataset>

``top left width height`` are required on a box, ``file`` on an image; ``ignore`` (and the other
flags) are optional and default to false. ``file`` is relative to the XML file's folder, which is how
dlib resolves it. dlib's own rectangles are inclusive (``right = left + width - 1``); here boxes are
edgevision's xyxy pixels with ``x2 = left + width``, ``y2 = top + height``, the convention WIDER FACE
boxes also follow (``x2 = x1 + w``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevision.errors import DatasetError

_BOX_FIELDS = ("top", "left", "width", "height")
_TRUE, _FALSE = frozenset({"1", "true"}), frozenset({"0", "false"})


@dataclass(frozen=True)
class DlibImageRecord:
    """One annotated image of a dlib XML file.

    Attributes:
        path: the image file (the ``file`` attribute, resolved against the XML file's folder).
        boxes: ``(N, 4)`` float32 xyxy pixels.
        ignore: ``(N,)`` bool, the boxes marked ``ignore='1'`` (not to be counted as misses or
            false positives by an evaluation, nor used as positives by training).
    """

    path: Path
    boxes: np.ndarray
    ignore: np.ndarray

    @property
    def kept_boxes(self) -> np.ndarray:
        """``(M, 4)`` the boxes not marked ignore."""
        return self.boxes[~self.ignore]


def read_dlib_xml(path: str | Path) -> list[DlibImageRecord]:
    """Read a dlib imglab XML file into one record per ``<image>``, in file order.

    Raises:
        DatasetError: the file is missing, is not well-formed XML, its root is not ``<dataset>``,
            or an image or box lacks a required attribute or has a value that is not a number
            (one-line message naming the file).

    Example:
        >>> records = read_dlib_xml("training.xml")  # doctest: +SKIP
        >>> records[0].boxes.shape, records[0].ignore.dtype  # doctest: +SKIP
        ((7, 4), dtype('bool'))
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dlib XML file not found: {path}")
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise DatasetError(f"malformed dlib XML {path}: {error}") from None
    if root.tag != "dataset":
        raise DatasetError(f"malformed dlib XML {path}: the root element is <{root.tag}>, not <dataset>")
    records = []
    for image in root.iterfind("images/image"):
        name = image.get("file")
        if not name:
            raise DatasetError(f"malformed dlib XML {path}: an <image> has no 'file' attribute")
        boxes, ignore = [], []
        for box in image.iterfind("box"):
            top, left, width, height = (_number(box, key, path, name) for key in _BOX_FIELDS)
            if width < 0 or height < 0:
                raise DatasetError(f"malformed dlib XML {path}: a box of {name!r} has a negative size")
            boxes.append((left, top, left + width, top + height))
            ignore.append(_flag(box, "ignore", path, name))
        records.append(
            DlibImageRecord(
                path=path.parent / name,
                boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                ignore=np.asarray(ignore, dtype=bool),
            )
        )
    return records


def _number(box: ElementTree.Element, key: str, path: Path, name: str) -> float:
    value = box.get(key)
    if value is None:
        raise DatasetError(f"malformed dlib XML {path}: a box of {name!r} has no {key!r} attribute")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise DatasetError(f"malformed dlib XML {path}: a box of {name!r} has {key}={value!r}, not a number")
    return number


def _flag(box: ElementTree.Element, key: str, path: Path, name: str) -> bool:
    value = box.get(key, "0").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise DatasetError(f"malformed dlib XML {path}: a box of {name!r} has {key}={value!r}, not 0 or 1")

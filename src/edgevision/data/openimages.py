"""Open Images V4 (Kuznetsova et al., IJCV 2020): the official annotation files, read and written.

Files, as released (https://storage.googleapis.com/openimages/web/download_v4.html):

- ``*-annotations-bbox.csv``: one box a row, with a header
  ``ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,
  IsDepiction,IsInside``. Coordinates are normalised to ``[0, 1]`` by the image width and height;
  the flags are ``1`` (true) or ``0`` (false), ``-1`` where unknown. The training file has 14.6M rows, so
  :func:`iter_box_annotations` streams it in chunks and keeps only the rows asked for.
- ``*-annotations-human-imagelabels-boxable.csv``: ``ImageID,Source,LabelName,Confidence``, the
  human-verified image-level labels: ``Confidence`` 1 says the class is in the image, 0 that it is
  not. Both are "verified": the challenge metric evaluates a class on an image only when it is.
- ``class-descriptions-boxable.csv``: ``MID,Name`` with no header (601 classes in V4).
- A challenge submission (predictions): ``ImageID,LabelName,Score,XMin,XMax,YMin,YMax``, normalised.

A reduced variant is also read, as in the sample under ``../shared/data/openimages``:
``ImageID,LabelName,Confidence,XMin,XMax,YMin,YMax,ClassName`` with ``ImageID`` a path such as
``./images_openimages/train/<id>.jpg``. Columns are found by name, so any column order and extra
columns (``ClassName``) are accepted; ``ImageID`` is reduced to the file stem when it is a path.
A missing ``Source`` reads as ``""``, a missing ``Confidence`` as 1, a missing ``IsGroupOf`` as 0
(not a group: the TensorFlow Object Detection API's evaluator assumes the same when the flag is
absent) and the other missing flags as -1 (unknown).

Inside edgevision, boxes are ``(N, 4)`` xyxy ``(XMin, YMin, XMax, YMax)`` normalised float32
(float64 on request, as the evaluation reads them to compute overlaps in the reference's double
precision); :func:`to_pixel_boxes` converts to xyxy pixels given the image size.

The class hierarchy is in :mod:`edgevision.data.openimages_hierarchy` (below this module: the
readers filter by it), the expansion of annotations up and down it in
:mod:`edgevision.data.openimages_expansion` (above it), the COCO conversion in
:mod:`edgevision.data.coco`, the per-class counts in :mod:`edgevision.data.openimages_stats`.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edgevision.data.io import atomic_write, not_utf8_error
from edgevision.data.openimages_hierarchy import ClassHierarchy
from edgevision.errors import DatasetError, ShapeError

BOX_COLUMNS = (
    "ImageID",
    "Source",
    "LabelName",
    "Confidence",
    "XMin",
    "XMax",
    "YMin",
    "YMax",
    "IsOccluded",
    "IsTruncated",
    "IsGroupOf",
    "IsDepiction",
    "IsInside",
)
PREDICTION_COLUMNS = ("ImageID", "LabelName", "Score", "XMin", "XMax", "YMin", "YMax")
FLAG_COLUMNS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
# The value a flag takes when its column is absent (the reduced variant): see the module notes.
FLAG_DEFAULTS = {"IsOccluded": -1, "IsTruncated": -1, "IsGroupOf": 0, "IsDepiction": -1, "IsInside": -1}
CLASS_DESCRIPTIONS_FILE = "class-descriptions-boxable.csv"
BOXES_SUFFIX = "-annotations-bbox.csv"
CHUNK_ROWS = 1 << 14  # rows parsed at once: bounds the reader's memory (about 25 MB unfiltered)

_GROUP_OF = FLAG_COLUMNS.index("IsGroupOf")
_REQUIRED_BOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")


def load_class_descriptions(path: str | Path) -> dict[str, str]:
    """Read ``class-descriptions-boxable.csv`` (``MID,Name``, no header) as MID -> name, in file order.

    Raises:
        DatasetError: the file is missing, empty, or a row is not ``MID,Name``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Open Images class descriptions not found: {path}")
    names: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        try:
            rows = list(csv.reader(handle))
        except UnicodeDecodeError:
            raise not_utf8_error(path, "Open Images class descriptions") from None
        except csv.Error as error:
            raise DatasetError(f"unreadable Open Images class descriptions {path}: {error}") from None
    for line, row in enumerate(rows, start=1):
        if not row:
            continue
        if len(row) != 2 or not row[0].startswith("/m/"):
            raise DatasetError(f"malformed Open Images class description in {path} line {line}: {row}")
        names[row[0]] = row[1]
    if not names:
        raise DatasetError(f"no class in Open Images class descriptions {path}")
    return names


# --- value types -------------------------------------------------------------------------------


def string_array(values: Any, convert: bool = True) -> np.ndarray:
    """A 1-D object array of ``str`` (``convert=False``: the values are already ``str``)."""
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values.reshape(-1)
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out = np.empty(len(values), dtype=object)
    out[:] = [str(v) for v in values] if convert else values
    return out


def flag_index(name: str) -> int:
    """The column of flag ``name`` in :attr:`BoxAnnotations.flags`.

    Raises:
        DatasetError: ``name`` is not one of :data:`FLAG_COLUMNS`.
    """
    if name not in FLAG_COLUMNS:
        raise DatasetError(f"unknown Open Images flag {name!r}; expected one of {FLAG_COLUMNS}")
    return FLAG_COLUMNS.index(name)


def default_flags(n: int) -> np.ndarray:
    """``(n, 5)`` int8 flags, each column at its :data:`FLAG_DEFAULTS` value (the flags not known)."""
    row = np.array([FLAG_DEFAULTS[name] for name in FLAG_COLUMNS], dtype=np.int8)
    return np.repeat(row[None, :], n, axis=0)


def _box_array(boxes: Any) -> np.ndarray:
    boxes = np.asarray(boxes)
    if boxes.dtype not in (np.float32, np.float64):
        boxes = boxes.astype(np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ShapeError(f"boxes must be (N, 4) xyxy, got {boxes.shape}")
    return boxes


@dataclass(frozen=True, eq=False)
class BoxAnnotations:
    """Box annotations, one row a box, as columns (the internal form of ``*-annotations-bbox.csv``).

    Attributes:
        image_ids: ``(N,)`` object array of image IDs (``"000002b66c9c498e"``).
        label_names: ``(N,)`` object array of class MIDs (``"/m/01g317"``).
        boxes: ``(N, 4)`` xyxy ``(XMin, YMin, XMax, YMax)`` normalised to ``[0, 1]``, float32 (or
            float64 where read so).
        confidences: ``(N,)`` float32, 1 for every human box.
        flags: ``(N, 5)`` int8 columns :data:`FLAG_COLUMNS`, 1 / 0 / -1 (unknown).
        sources: ``(N,)`` object array (``"xclick"``, ``"activemil"``; ``""`` when unknown).
    """

    image_ids: np.ndarray
    label_names: np.ndarray
    boxes: np.ndarray
    confidences: np.ndarray
    flags: np.ndarray
    sources: np.ndarray

    def __post_init__(self) -> None:
        boxes = _box_array(self.boxes)
        n = len(boxes)
        object.__setattr__(self, "boxes", boxes)
        for name in ("image_ids", "label_names", "sources"):
            object.__setattr__(self, name, string_array(getattr(self, name)))
        object.__setattr__(self, "confidences", np.asarray(self.confidences, dtype=np.float32).reshape(-1))
        flags = np.asarray(self.flags, dtype=np.int8)
        object.__setattr__(self, "flags", flags.reshape(0, len(FLAG_COLUMNS)) if flags.size == 0 else flags)
        for name in ("image_ids", "label_names", "sources", "confidences"):
            if getattr(self, name).shape != (n,):
                raise ShapeError(f"BoxAnnotations.{name} must be ({n},), got {getattr(self, name).shape}")
        if self.flags.shape != (n, len(FLAG_COLUMNS)):
            raise ShapeError(
                f"BoxAnnotations.flags must be ({n}, {len(FLAG_COLUMNS)}), got {self.flags.shape}"
            )

    @classmethod
    def empty(cls, box_dtype: type = np.float32) -> BoxAnnotations:
        return cls(
            string_array(()),
            string_array(()),
            np.zeros((0, 4), box_dtype),
            np.zeros(0, np.float32),
            np.zeros((0, len(FLAG_COLUMNS)), np.int8),
            string_array(()),
        )

    @classmethod
    def from_arrays(
        cls,
        image_ids: Iterable[str],
        label_names: Iterable[str],
        boxes: Any,
        *,
        group_of: Any = None,
        confidences: Any = None,
        sources: Iterable[str] | None = None,
        flags: Mapping[str, Any] | None = None,
    ) -> BoxAnnotations:
        """Build from plain columns; what is not given takes the reduced variant's defaults.

        Args:
            boxes: ``(N, 4)`` xyxy normalised.
            group_of: ``(N,)`` IsGroupOf (bool or 0/1); overrides ``flags["IsGroupOf"]``.
            flags: flag name -> ``(N,)`` values, for any of :data:`FLAG_COLUMNS`.
        """
        boxes = _box_array(boxes)
        n = len(boxes)
        table = default_flags(n)
        for name, values in (flags or {}).items():
            table[:, flag_index(name)] = np.asarray(values, dtype=np.int8).reshape(-1)
        if group_of is not None:
            table[:, _GROUP_OF] = np.asarray(group_of).astype(np.int8).reshape(-1)
        return cls(
            string_array(image_ids),
            string_array(label_names),
            boxes,
            np.ones(n, np.float32) if confidences is None else confidences,
            table,
            string_array([""] * n if sources is None else sources),
        )

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, index: Any) -> BoxAnnotations:
        """The rows at ``index`` (a bool mask or integer indices)."""
        return BoxAnnotations(
            self.image_ids[index],
            self.label_names[index],
            self.boxes[index].reshape(-1, 4),
            self.confidences[index],
            self.flags[index].reshape(-1, len(FLAG_COLUMNS)),
            self.sources[index],
        )

    @classmethod
    def concatenate(cls, parts: Sequence[BoxAnnotations], box_dtype: type = np.float32) -> BoxAnnotations:
        """All rows of ``parts`` in order (an empty table of ``box_dtype`` when there is none)."""
        if not parts:
            return cls.empty(box_dtype)
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.image_ids for p in parts]),
            np.concatenate([p.label_names for p in parts]),
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.confidences for p in parts]),
            np.concatenate([p.flags for p in parts]),
            np.concatenate([p.sources for p in parts]),
        )

    def flag(self, name: str) -> np.ndarray:
        """``(N,)`` int8 values of one of :data:`FLAG_COLUMNS`."""
        return self.flags[:, flag_index(name)]

    @property
    def is_group_of(self) -> np.ndarray:
        """``(N,)`` bool: the box covers a group of objects (IsGroupOf = 1)."""
        return self.flags[:, _GROUP_OF] == 1

    def by_image(self) -> dict[str, BoxAnnotations]:
        """Image ID -> that image's rows (in file order), images in sorted ID order."""
        if not len(self):
            return {}
        keys, inverse = np.unique(self.image_ids, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(inverse, minlength=len(keys)))))
        return {str(key): self.select(order[bounds[i] : bounds[i + 1]]) for i, key in enumerate(keys)}

    def pixel_boxes(self, width: float, height: float) -> np.ndarray:
        """``(N, 4)`` float32 xyxy pixels in a ``width`` x ``height`` image (:func:`to_pixel_boxes`)."""
        return to_pixel_boxes(self.boxes, width, height)


@dataclass(frozen=True, eq=False)
class ImageLabels:
    """Human-verified image-level labels, one row a label (``*-annotations-human-imagelabels*.csv``).

    Attributes:
        image_ids: ``(N,)`` object array of image IDs.
        label_names: ``(N,)`` object array of class MIDs.
        confidences: ``(N,)`` float32: 1 the class is present (positive), 0 it is absent (negative).
        sources: ``(N,)`` object array (``"verification"``, ...; ``""`` when unknown).
    """

    image_ids: np.ndarray
    label_names: np.ndarray
    confidences: np.ndarray
    sources: np.ndarray

    def __post_init__(self) -> None:
        for name in ("image_ids", "label_names", "sources"):
            object.__setattr__(self, name, string_array(getattr(self, name)))
        object.__setattr__(self, "confidences", np.asarray(self.confidences, dtype=np.float32).reshape(-1))
        n = len(self.image_ids)
        for name in ("label_names", "sources", "confidences"):
            if getattr(self, name).shape != (n,):
                raise ShapeError(f"ImageLabels.{name} must be ({n},), got {getattr(self, name).shape}")

    @classmethod
    def empty(cls) -> ImageLabels:
        return cls(string_array(()), string_array(()), np.zeros(0, np.float32), string_array(()))

    @classmethod
    def from_arrays(
        cls,
        image_ids: Iterable[str],
        label_names: Iterable[str],
        confidences: Any,
        sources: Iterable[str] | None = None,
    ) -> ImageLabels:
        image_ids = string_array(image_ids)
        return cls(image_ids, label_names, confidences, [""] * len(image_ids) if sources is None else sources)

    def __len__(self) -> int:
        return len(self.image_ids)

    @property
    def is_positive(self) -> np.ndarray:
        """``(N,)`` bool: Confidence 1."""
        return self.confidences == 1

    def select(self, index: Any) -> ImageLabels:
        return ImageLabels(
            self.image_ids[index], self.label_names[index], self.confidences[index], self.sources[index]
        )

    @classmethod
    def concatenate(cls, parts: Sequence[ImageLabels]) -> ImageLabels:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.image_ids for p in parts]),
            np.concatenate([p.label_names for p in parts]),
            np.concatenate([p.confidences for p in parts]),
            np.concatenate([p.sources for p in parts]),
        )


@dataclass(frozen=True, eq=False)
class Predictions:
    """Detections in the challenge's submission form, one row a box.

    Attributes:
        image_ids: ``(N,)`` object array of image IDs.
        label_names: ``(N,)`` object array of class MIDs.
        scores: ``(N,)`` float64.
        boxes: ``(N, 4)`` float64 xyxy ``(XMin, YMin, XMax, YMax)`` normalised to ``[0, 1]``.
    """

    image_ids: np.ndarray
    label_names: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float64)
        boxes = boxes.reshape(0, 4) if boxes.size == 0 else boxes
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ShapeError(f"Predictions.boxes must be (N, 4) xyxy, got {boxes.shape}")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "image_ids", string_array(self.image_ids))
        object.__setattr__(self, "label_names", string_array(self.label_names))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float64).reshape(-1))
        n = len(boxes)
        for name in ("image_ids", "label_names", "scores"):
            if getattr(self, name).shape != (n,):
                raise ShapeError(f"Predictions.{name} must be ({n},), got {getattr(self, name).shape}")

    @classmethod
    def empty(cls) -> Predictions:
        return cls(string_array(()), string_array(()), np.zeros(0), np.zeros((0, 4)))

    def __len__(self) -> int:
        return len(self.boxes)

    def select(self, index: Any) -> Predictions:
        return Predictions(
            self.image_ids[index],
            self.label_names[index],
            self.scores[index],
            self.boxes[index].reshape(-1, 4),
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Predictions]) -> Predictions:
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.image_ids for p in parts]),
            np.concatenate([p.label_names for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.boxes for p in parts]),
        )


def to_pixel_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Normalised xyxy -> ``(N, 4)`` float32 xyxy pixels: ``x * width``, ``y * height``.

    Coordinates are continuous (``XMax = 1`` is the right edge, ``x2 = width``), the convention of
    edgevision's boxes (``x2 = x1 + w``).
    """
    boxes = _box_array(boxes)
    return (boxes.astype(np.float64) * _xyxy_scale(width, height)).astype(np.float32)


def to_normalised_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """xyxy pixels of a ``width`` x ``height`` image -> ``(N, 4)`` float32 normalised xyxy."""
    boxes = _box_array(boxes)
    return (boxes.astype(np.float64) / _xyxy_scale(width, height)).astype(np.float32)


def _xyxy_scale(width: float, height: float) -> np.ndarray:
    check_image_size(width, height)
    return np.array([width, height, width, height], dtype=np.float64)


def check_image_size(width: float, height: float) -> None:
    """Raise :class:`ShapeError` unless ``width`` and ``height`` are finite and positive."""
    if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        raise ShapeError(f"image size must be positive, got {width} x {height}")


# --- streaming CSV readers ---------------------------------------------------------------------


def _image_id(value: str) -> str:
    """An ImageID, or the stem of a path given as ImageID (the reduced variant)."""
    if "/" in value or "." in value:
        return PurePosixPath(value).stem
    return value


def _image_ids(values: Sequence[str]) -> np.ndarray:
    """A chunk's ImageID column (:func:`_image_id` of each), one ``str`` object per distinct ID.

    The rows of an image are contiguous in the official files, so IDs are shared within a chunk only.
    """
    seen: dict[str, str] = {}
    return string_array([seen.get(v) or seen.setdefault(v, _image_id(v)) for v in values], convert=False)


def _shared_strings(values: Sequence[str], seen: dict[str, str]) -> np.ndarray:
    """``values`` as an object array, one ``str`` object per distinct value over every call given ``seen``."""
    return string_array([seen.setdefault(v, v) for v in values], convert=False)


def _iter_csv_chunks(
    path: Path,
    required: Sequence[str],
    what: str,
    chunk_rows: int,
    classes: frozenset[str] | None = None,
) -> Iterator[tuple[dict[str, int], list[list[str]], np.ndarray]]:
    """Yield ``(column index by name, rows, (n,) line numbers)`` chunks of a CSV file.

    With ``classes``, only rows whose ``LabelName`` is one of them are parsed and yielded; a chunk
    with none is skipped. For a few classes, lines are first screened by a substring search, so
    the other rows are never split into fields (most of the time and memory of a filtered read).
    Rows are whole lines: a quoted field spanning lines (which the Open Images files never have)
    is not supported.
    """
    if int(chunk_rows) != chunk_rows or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows}")
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    line_no = 1
    with open(path, newline="", encoding="utf-8") as handle:
        try:
            header = next(csv.reader([handle.readline()]), [])
            if not header:
                raise DatasetError(f"{what} has no header line: {path}")
            header = [name.strip().lstrip("\ufeff") for name in header]
            columns = {name: i for i, name in enumerate(header)}
            missing = [name for name in required if name not in columns]
            if missing:
                raise DatasetError(f"{what} {path} lacks the column(s) {', '.join(missing)}")
            width, label_col = len(header), columns.get("LabelName")
            screen = None
            if classes is not None and len(classes) <= 64:
                screen = re.compile("|".join(re.escape(mid) for mid in sorted(classes))).search
            while True:
                lines = list(islice(handle, int(chunk_rows)))
                if not lines:
                    return
                first, line_no = line_no + 1, line_no + len(lines)
                if screen is not None:
                    index = [i for i, line in enumerate(lines) if screen(line)]
                    lines = [lines[i] for i in index]
                    numbers = first + np.asarray(index, dtype=np.int64)
                else:
                    numbers = first + np.arange(len(lines), dtype=np.int64)
                rows = list(csv.reader(lines))
                if not all(rows):  # blank lines
                    index = [i for i, row in enumerate(rows) if row]
                    rows, numbers = [rows[i] for i in index], numbers[index]
                bad = next((i for i, row in enumerate(rows) if len(row) != width), None)
                if bad is not None:
                    raise DatasetError(
                        f"malformed {what} {path} line {numbers[bad]}: "
                        f"{len(rows[bad])} fields, the header has {width}"
                    )
                if classes is not None:
                    index = [i for i, row in enumerate(rows) if row[label_col] in classes]
                    if len(index) < len(rows):
                        rows, numbers = [rows[i] for i in index], numbers[index]
                if rows:
                    yield columns, rows, numbers
        except UnicodeDecodeError:
            raise not_utf8_error(path, what) from None
        except csv.Error as error:
            raise DatasetError(f"unreadable {what} {path} after line {line_no}: {error}") from None


def _numbers(values: Sequence[str], dtype: type, path: Path, lines: np.ndarray, what: str) -> np.ndarray:
    try:
        return np.array(values, dtype=dtype)
    except ValueError:
        for i, value in enumerate(values):
            try:
                np.array([value], dtype=dtype)
            except ValueError:
                raise DatasetError(f"malformed {what} {path} line {lines[i]}: {value!r}") from None
        raise


def _xyxy_columns(
    table: Sequence[Sequence[str]], columns: Mapping[str, int], path: Path, lines: np.ndarray, what: str
) -> np.ndarray:
    """``(n, 4)`` float64 xyxy from a chunk's ``XMin``, ``YMin``, ``XMax``, ``YMax`` columns."""
    boxes = np.empty((len(lines), 4), dtype=np.float64)
    for k, name in enumerate(("XMin", "YMin", "XMax", "YMax")):
        boxes[:, k] = _numbers(table[columns[name]], np.float64, path, lines, what)
    return boxes


def _wanted_classes(classes: Iterable[str] | None, hierarchy: ClassHierarchy | None) -> frozenset[str] | None:
    if classes is None:
        return None
    classes = [classes] if isinstance(classes, str) else list(classes)
    return frozenset(hierarchy.with_descendants(classes) if hierarchy is not None else classes)


def iter_box_annotations(
    path: str | Path,
    *,
    classes: Iterable[str] | None = None,
    hierarchy: ClassHierarchy | None = None,
    flags: Mapping[str, int] | None = None,
    box_dtype: type = np.float32,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[BoxAnnotations]:
    """Stream a ``*-annotations-bbox.csv`` file (official or reduced format) in chunks.

    Memory is bounded by ``chunk_rows`` and by the rows kept, not by the file's size.

    Args:
        path: the CSV file.
        classes: keep only boxes of these MIDs (all rows when None).
        hierarchy: with ``classes``, also keep the boxes of all their sub-classes.
        flags: keep only rows whose flags have these values, e.g. ``{"IsGroupOf": 0}``.
        box_dtype: ``np.float32`` (default) or ``np.float64``.
        chunk_rows: rows parsed at a time.

    Yields:
        :class:`BoxAnnotations` of the kept rows of each chunk, in file order (none when a chunk
        keeps no row).

    Raises:
        DatasetError: the file is missing, lacks a needed column, or has a malformed row.
    """
    path = Path(path)
    if box_dtype not in (np.float32, np.float64):
        raise ValueError(f"box_dtype must be np.float32 or np.float64, got {box_dtype}")
    wanted = _wanted_classes(classes, hierarchy)
    wanted_flags = {flag_index(name): value for name, value in (flags or {}).items()}
    labels_seen: dict[str, str] = {}  # one str object per class and source across the whole file
    sources_seen: dict[str, str] = {}
    what = "Open Images box annotations"
    for columns, rows, lines in _iter_csv_chunks(path, _REQUIRED_BOX_COLUMNS, what, chunk_rows, wanted):
        table = list(zip(*rows))
        n = len(rows)
        flag_table = default_flags(n)
        for k, name in enumerate(FLAG_COLUMNS):
            if name in columns:
                flag_table[:, k] = _numbers(table[columns[name]], np.int8, path, lines, what)
        mask = None
        for k, value in wanted_flags.items():
            hit = flag_table[:, k] == value
            mask = hit if mask is None else mask & hit
        if mask is not None:
            if not mask.any():
                continue
            index = np.flatnonzero(mask)
            table = [[col[i] for i in index] for col in table]
            flag_table, lines = flag_table[index], lines[index]
            n = len(index)
        coords = _xyxy_columns(table, columns, path, lines, what)
        if "Confidence" in columns:
            confidences = _numbers(table[columns["Confidence"]], np.float32, path, lines, what)
        else:
            confidences = np.ones(n, np.float32)
        if "Source" in columns:
            sources = _shared_strings(table[columns["Source"]], sources_seen)
        else:
            sources = string_array([""] * n, convert=False)
        yield BoxAnnotations(
            _image_ids(table[columns["ImageID"]]),
            _shared_strings(table[columns["LabelName"]], labels_seen),
            coords.astype(box_dtype, copy=False),
            confidences,
            flag_table,
            sources,
        )


def read_box_annotations(
    path: str | Path,
    *,
    classes: Iterable[str] | None = None,
    hierarchy: ClassHierarchy | None = None,
    flags: Mapping[str, int] | None = None,
    box_dtype: type = np.float32,
    chunk_rows: int = CHUNK_ROWS,
) -> BoxAnnotations:
    """Read the kept rows of a ``*-annotations-bbox.csv`` file; see :func:`iter_box_annotations`."""
    parts = list(
        iter_box_annotations(
            path,
            classes=classes,
            hierarchy=hierarchy,
            flags=flags,
            box_dtype=box_dtype,
            chunk_rows=chunk_rows,
        )
    )
    return BoxAnnotations.concatenate(parts, box_dtype)


def iter_image_labels(
    path: str | Path,
    *,
    classes: Iterable[str] | None = None,
    hierarchy: ClassHierarchy | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[ImageLabels]:
    """Stream an image-level label file (``ImageID,Source,LabelName,Confidence``) in chunks.

    ``classes`` and ``hierarchy`` filter as in :func:`iter_box_annotations`.

    Raises:
        DatasetError: the file is missing, lacks a needed column, or has a malformed row.
    """
    path = Path(path)
    wanted = _wanted_classes(classes, hierarchy)
    labels_seen: dict[str, str] = {}
    what = "Open Images image-level labels"
    required = ("ImageID", "LabelName", "Confidence")
    for columns, rows, lines in _iter_csv_chunks(path, required, what, chunk_rows, wanted):
        table = list(zip(*rows))
        sources = table[columns["Source"]] if "Source" in columns else [""] * len(rows)
        yield ImageLabels(
            _image_ids(table[columns["ImageID"]]),
            _shared_strings(table[columns["LabelName"]], labels_seen),
            _numbers(table[columns["Confidence"]], np.float32, path, lines, what),
            string_array(sources, convert=False),
        )


def read_image_labels(
    path: str | Path,
    *,
    classes: Iterable[str] | None = None,
    hierarchy: ClassHierarchy | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImageLabels:
    """Read an image-level label file; see :func:`iter_image_labels`."""
    return ImageLabels.concatenate(
        list(iter_image_labels(path, classes=classes, hierarchy=hierarchy, chunk_rows=chunk_rows))
    )


def iter_predictions(
    path: str | Path, *, classes: Iterable[str] | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[Predictions]:
    """Stream a challenge prediction CSV (``ImageID,LabelName,Score,XMin,XMax,YMin,YMax``) in chunks.

    Args:
        classes: keep only detections of these MIDs (all when None).

    Raises:
        DatasetError: the file is missing, lacks a column, or has a malformed row.
    """
    path = Path(path)
    wanted = _wanted_classes(classes, None)
    labels_seen: dict[str, str] = {}
    what = "Open Images predictions"
    for columns, rows, lines in _iter_csv_chunks(path, PREDICTION_COLUMNS, what, chunk_rows, wanted):
        table = list(zip(*rows))
        boxes = _xyxy_columns(table, columns, path, lines, what)
        yield Predictions(
            _image_ids(table[columns["ImageID"]]),
            _shared_strings(table[columns["LabelName"]], labels_seen),
            _numbers(table[columns["Score"]], np.float64, path, lines, what),
            boxes,
        )


def read_predictions(
    path: str | Path, *, classes: Iterable[str] | None = None, chunk_rows: int = CHUNK_ROWS
) -> Predictions:
    """Read a challenge prediction CSV; see :func:`iter_predictions`."""
    return Predictions.concatenate(list(iter_predictions(path, classes=classes, chunk_rows=chunk_rows)))


def write_predictions(path: str | Path, predictions: Predictions) -> Path:
    """Write predictions as a challenge submission CSV, atomically; return ``path``.

    Numbers are written with ``repr`` (the shortest text that reads back to the same float64).
    """
    path = Path(path)
    with atomic_write(path, "w") as handle:
        handle.write(",".join(PREDICTION_COLUMNS) + "\n")
        for image, label, score, (x1, y1, x2, y2) in zip(
            predictions.image_ids.tolist(),
            predictions.label_names.tolist(),
            predictions.scores.tolist(),
            predictions.boxes.tolist(),
        ):
            handle.write(f"{image},{label},{score!r},{x1!r},{x2!r},{y1!r},{y2!r}\n")
    return path

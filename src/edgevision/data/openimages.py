"""Open Images V4 (Kuznetsova et al., IJCV 2020): the official annotation files and class hierarchy.

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
- ``bbox_labels_600_hierarchy.json``: the class tree ``{"LabelName", "Subcategory": [...],
  "Part": [...]}`` under the root ``/m/0bl9f`` ("Entity").
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

Hierarchy expansion follows the challenge's ``oid_hierarchical_labels_expansion.py``: a box or a
positive image-level label also counts for every ancestor of its class, a negative label for every
descendant. Only ``Subcategory`` links are followed (a ``Part``, such as a door of a building, is not
an instance of the whole) and the root is not a class. Where a class is reached along two paths (a
"Spoon" is a "Kitchen utensil" twice over), the reference lists the shared ancestor twice and so
writes the same box twice; here each ancestor counts once.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from edgevision.data.io import atomic_write
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
LABEL_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence")
PREDICTION_COLUMNS = ("ImageID", "LabelName", "Score", "XMin", "XMax", "YMin", "YMax")
FLAG_COLUMNS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
# The value a flag takes when its column is absent (the reduced variant): see the module notes.
FLAG_DEFAULTS = {"IsOccluded": -1, "IsTruncated": -1, "IsGroupOf": 0, "IsDepiction": -1, "IsInside": -1}
CLASS_DESCRIPTIONS_FILE = "class-descriptions-boxable.csv"
HIERARCHY_FILE = "bbox_labels_600_hierarchy.json"
BOXES_SUFFIX = "-annotations-bbox.csv"
SPLIT_ORDER = ("train", "validation", "test")
CHUNK_ROWS = 1 << 14  # rows parsed at once: bounds the reader's memory (about 25 MB unfiltered)

_GROUP_OF = FLAG_COLUMNS.index("IsGroupOf")
_REQUIRED_BOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")


# --- classes and hierarchy ---------------------------------------------------------------------


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
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) != 2 or not row[0].startswith("/m/"):
                raise DatasetError(f"malformed Open Images class description in {path} line {line}: {row}")
            names[row[0]] = row[1]
    if not names:
        raise DatasetError(f"no class in Open Images class descriptions {path}")
    return names


@dataclass(frozen=True)
class ClassHierarchy:
    """The Open Images class tree, as the challenge's expansion reads it.

    Attributes:
        root: the MID of the root (``/m/0bl9f``, "Entity"), not itself a class.
        parents: every class MID (the root excluded) -> its direct parents by ``Subcategory``
            links, the root excluded (so a top-level class has none). A class listed under several
            parents has them all.
    """

    root: str
    parents: Mapping[str, tuple[str, ...]]
    _ancestors: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _descendants: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parents = {mid: tuple(dict.fromkeys(ps)) for mid, ps in self.parents.items()}
        unknown = sorted({p for ps in parents.values() for p in ps} - set(parents))
        if unknown:
            raise DatasetError(f"class hierarchy names parents that are not classes, e.g. {unknown[0]!r}")
        children: dict[str, list[str]] = {mid: [] for mid in parents}
        for mid, ps in parents.items():
            for parent in ps:
                children[parent].append(mid)
        object.__setattr__(self, "parents", parents)
        object.__setattr__(self, "_ancestors", {mid: _closure(mid, parents) for mid in parents})
        object.__setattr__(self, "_descendants", {mid: _closure(mid, children) for mid in parents})

    @classmethod
    def from_json(cls, tree: Mapping[str, Any]) -> ClassHierarchy:
        """Build from the parsed ``bbox_labels_600_hierarchy.json`` (the root node).

        Raises:
            DatasetError: a node lacks ``LabelName`` or its ``Subcategory`` is not a list of nodes.
        """
        parents: dict[str, list[str]] = {}

        def walk(node: Any, parent: str | None, depth: int) -> str:
            if not isinstance(node, Mapping) or not isinstance(node.get("LabelName"), str):
                raise DatasetError(f"class hierarchy node without a LabelName: {str(node)[:80]}")
            if depth > 100:
                raise DatasetError("class hierarchy deeper than 100 levels (a cycle?)")
            mid = node["LabelName"]
            if parent is not None:
                parents.setdefault(mid, [])
                if parent != root:
                    parents[mid].append(parent)
            subcategories = node.get("Subcategory", [])
            if not isinstance(subcategories, list):
                raise DatasetError(f"class hierarchy node {mid}: Subcategory is not a list")
            for child in subcategories:  # "Part" links are not followed: see the module notes
                walk(child, mid, depth + 1)
            return mid

        if not isinstance(tree, Mapping) or not isinstance(tree.get("LabelName"), str):
            raise DatasetError("class hierarchy: the root node has no LabelName")
        root = tree["LabelName"]
        walk(tree, None, 0)
        if root in parents:
            raise DatasetError(f"class hierarchy: the root {root} is also listed below itself")
        return cls(root, {mid: tuple(ps) for mid, ps in parents.items()})

    @property
    def classes(self) -> tuple[str, ...]:
        """Every class MID under the root, in the file's depth-first order."""
        return tuple(self.parents)

    def __contains__(self, mid: object) -> bool:
        return mid in self.parents

    def __len__(self) -> int:
        return len(self.parents)

    def ancestors(self, mid: str) -> tuple[str, ...]:
        """Every class above ``mid`` (the root excluded), nearest first, each once."""
        return self._lookup(self._ancestors, mid)

    def descendants(self, mid: str) -> tuple[str, ...]:
        """Every class below ``mid``, nearest first, each once."""
        return self._lookup(self._descendants, mid)

    def with_descendants(self, mids: Iterable[str]) -> set[str]:
        """``mids`` and all their sub-classes."""
        out: set[str] = set()
        for mid in mids:
            out.add(mid)
            out.update(self.descendants(mid))
        return out

    @staticmethod
    def _lookup(table: dict[str, tuple[str, ...]], mid: str) -> tuple[str, ...]:
        try:
            return table[mid]
        except KeyError:
            raise DatasetError(f"class {mid!r} is not in the Open Images class hierarchy") from None


def _closure(start: str, links: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Every node reachable from ``start`` along ``links`` (``start`` excluded), breadth first."""
    seen: dict[str, None] = {}
    frontier = list(links[start])
    while frontier:
        nxt = []
        for node in frontier:
            if node not in seen and node != start:
                seen[node] = None
                nxt.extend(links[node])
        frontier = nxt
    return tuple(seen)


def load_hierarchy(path: str | Path) -> ClassHierarchy:
    """Read ``bbox_labels_600_hierarchy.json``.

    Raises:
        DatasetError: the file is missing, not JSON, or not a class tree.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Open Images class hierarchy not found: {path}")
    try:
        tree = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"Open Images class hierarchy {path} is not JSON: {error}") from None
    return ClassHierarchy.from_json(tree)


# --- value types -------------------------------------------------------------------------------


def _strings(values: Any, convert: bool = True) -> np.ndarray:
    """A 1-D object array of ``str`` (``convert=False``: the values are already ``str``)."""
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values.reshape(-1)
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out = np.empty(len(values), dtype=object)
    out[:] = [str(v) for v in values] if convert else values
    return out


def _box_array(boxes: Any) -> np.ndarray:
    boxes = np.asarray(boxes)
    if boxes.dtype not in (np.float32, np.float64):
        boxes = boxes.astype(np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ShapeError(f"boxes must be (N, 4) xyxy, got {boxes.shape}")
    return boxes


@dataclass(frozen=True)
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
            object.__setattr__(self, name, _strings(getattr(self, name)))
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
            _strings(()),
            _strings(()),
            np.zeros((0, 4), box_dtype),
            np.zeros(0, np.float32),
            np.zeros((0, len(FLAG_COLUMNS)), np.int8),
            _strings(()),
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
        table = np.array([FLAG_DEFAULTS[name] for name in FLAG_COLUMNS], dtype=np.int8)
        table = np.repeat(table[None, :], n, axis=0)
        for name, values in (flags or {}).items():
            if name not in FLAG_COLUMNS:
                raise DatasetError(f"unknown Open Images flag {name!r}; expected one of {FLAG_COLUMNS}")
            table[:, FLAG_COLUMNS.index(name)] = np.asarray(values, dtype=np.int8).reshape(-1)
        if group_of is not None:
            table[:, _GROUP_OF] = np.asarray(group_of).astype(np.int8).reshape(-1)
        return cls(
            _strings(image_ids),
            _strings(label_names),
            boxes,
            np.ones(n, np.float32) if confidences is None else confidences,
            table,
            _strings([""] * n if sources is None else sources),
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
        if name not in FLAG_COLUMNS:
            raise DatasetError(f"unknown Open Images flag {name!r}; expected one of {FLAG_COLUMNS}")
        return self.flags[:, FLAG_COLUMNS.index(name)]

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


@dataclass(frozen=True)
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
            object.__setattr__(self, name, _strings(getattr(self, name)))
        object.__setattr__(self, "confidences", np.asarray(self.confidences, dtype=np.float32).reshape(-1))
        n = len(self.image_ids)
        for name in ("label_names", "sources", "confidences"):
            if getattr(self, name).shape != (n,):
                raise ShapeError(f"ImageLabels.{name} must be ({n},), got {getattr(self, name).shape}")

    @classmethod
    def empty(cls) -> ImageLabels:
        return cls(_strings(()), _strings(()), np.zeros(0, np.float32), _strings(()))

    @classmethod
    def from_arrays(
        cls,
        image_ids: Iterable[str],
        label_names: Iterable[str],
        confidences: Any,
        sources: Iterable[str] | None = None,
    ) -> ImageLabels:
        image_ids = _strings(image_ids)
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


def to_pixel_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Normalised xyxy -> ``(N, 4)`` float32 xyxy pixels: ``x * width``, ``y * height``.

    Coordinates are continuous (``XMax = 1`` is the right edge, ``x2 = width``), the convention of
    edgevision's boxes (``x2 = x1 + w``).
    """
    boxes = _box_array(boxes)
    _check_size(width, height)
    scale = np.array([width, height, width, height], dtype=np.float64)
    return (boxes.astype(np.float64) * scale).astype(np.float32)


def to_normalised_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """xyxy pixels of a ``width`` x ``height`` image -> ``(N, 4)`` float32 normalised xyxy."""
    boxes = _box_array(boxes)
    _check_size(width, height)
    scale = np.array([width, height, width, height], dtype=np.float64)
    return (boxes.astype(np.float64) / scale).astype(np.float32)


def _check_size(width: float, height: float) -> None:
    if not (math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0):
        raise ShapeError(f"image size must be positive, got {width} x {height}")


# --- streaming CSV readers ---------------------------------------------------------------------


def _image_id(value: str) -> str:
    """An ImageID, or the stem of a path given as ImageID (the reduced variant)."""
    if "/" in value or "." in value:
        return PurePosixPath(value).stem
    return value


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
        except (csv.Error, UnicodeDecodeError) as error:
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
    wanted_flags = dict(flags or {})
    for name in wanted_flags:
        if name not in FLAG_COLUMNS:
            raise DatasetError(f"unknown Open Images flag {name!r}; expected one of {FLAG_COLUMNS}")
    labels_seen: dict[str, str] = {}  # one str object per class and source across the whole file
    sources_seen: dict[str, str] = {}
    what = "Open Images box annotations"
    for columns, rows, lines in _iter_csv_chunks(path, _REQUIRED_BOX_COLUMNS, what, chunk_rows, wanted):
        table = list(zip(*rows))
        n = len(rows)
        flag_table = np.empty((n, len(FLAG_COLUMNS)), dtype=np.int8)
        for k, name in enumerate(FLAG_COLUMNS):
            if name in columns:
                flag_table[:, k] = _numbers(table[columns[name]], np.int8, path, lines, what)
            else:
                flag_table[:, k] = FLAG_DEFAULTS[name]
        mask = None
        for name, value in wanted_flags.items():
            hit = flag_table[:, FLAG_COLUMNS.index(name)] == value
            mask = hit if mask is None else mask & hit
        if mask is not None:
            if not mask.any():
                continue
            index = np.flatnonzero(mask)
            table = [[col[i] for i in index] for col in table]
            flag_table, lines = flag_table[index], lines[index]
            n = len(index)
        coords = np.empty((n, 4), dtype=np.float64)
        for k, name in enumerate(("XMin", "YMin", "XMax", "YMax")):
            coords[:, k] = _numbers(table[columns[name]], np.float64, path, lines, what)
        if "Confidence" in columns:
            confidences = _numbers(table[columns["Confidence"]], np.float32, path, lines, what)
        else:
            confidences = np.ones(n, np.float32)
        ids_seen: dict[str, str] = {}  # per chunk: rows of an image are contiguous in the official files
        image_ids = [
            ids_seen.get(v) or ids_seen.setdefault(v, _image_id(v)) for v in table[columns["ImageID"]]
        ]
        label_names = [labels_seen.setdefault(v, v) for v in table[columns["LabelName"]]]
        if "Source" in columns:
            sources = [sources_seen.setdefault(v, v) for v in table[columns["Source"]]]
        else:
            sources = [""] * n
        yield BoxAnnotations(
            _strings(image_ids, convert=False),
            _strings(label_names, convert=False),
            coords.astype(box_dtype, copy=False),
            confidences,
            flag_table,
            _strings(sources, convert=False),
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
        ids_seen: dict[str, str] = {}
        image_ids = [
            ids_seen.get(v) or ids_seen.setdefault(v, _image_id(v)) for v in table[columns["ImageID"]]
        ]
        sources = table[columns["Source"]] if "Source" in columns else [""] * len(rows)
        yield ImageLabels(
            _strings(image_ids, convert=False),
            _strings([labels_seen.setdefault(v, v) for v in table[columns["LabelName"]]], convert=False),
            _numbers(table[columns["Confidence"]], np.float32, path, lines, what),
            _strings(sources, convert=False),
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


# --- predictions (the challenge's submission CSV) ------------------------------------------


@dataclass(frozen=True)
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
        object.__setattr__(self, "image_ids", _strings(self.image_ids))
        object.__setattr__(self, "label_names", _strings(self.label_names))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float64).reshape(-1))
        n = len(boxes)
        for name in ("image_ids", "label_names", "scores"):
            if getattr(self, name).shape != (n,):
                raise ShapeError(f"Predictions.{name} must be ({n},), got {getattr(self, name).shape}")

    @classmethod
    def empty(cls) -> Predictions:
        return cls(_strings(()), _strings(()), np.zeros(0), np.zeros((0, 4)))

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
    wanted = None if classes is None else frozenset([classes] if isinstance(classes, str) else classes)
    labels_seen: dict[str, str] = {}
    what = "Open Images predictions"
    for columns, rows, lines in _iter_csv_chunks(path, PREDICTION_COLUMNS, what, chunk_rows, wanted):
        table = list(zip(*rows))
        boxes = np.empty((len(rows), 4), dtype=np.float64)
        for k, name in enumerate(("XMin", "YMin", "XMax", "YMax")):
            boxes[:, k] = _numbers(table[columns[name]], np.float64, path, lines, what)
        ids_seen: dict[str, str] = {}
        image_ids = [
            ids_seen.get(v) or ids_seen.setdefault(v, _image_id(v)) for v in table[columns["ImageID"]]
        ]
        yield Predictions(
            _strings(image_ids, convert=False),
            _strings([labels_seen.setdefault(v, v) for v in table[columns["LabelName"]]], convert=False),
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


# --- hierarchy expansion -----------------------------------------------------------------------


def _expansion(
    label_names: np.ndarray, related: Sequence[tuple[str, ...]], codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows to repeat and their new labels: each row, then one copy a related class.

    ``related[c]`` is ``(own class, *classes to add)`` for code ``c``; ``codes`` is each row's code.
    """
    lengths = np.array([len(r) for r in related], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    flat = _strings([mid for r in related for mid in r])
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


# --- COCO JSON ---------------------------------------------------------------------------------


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
        class_names: MID -> name, e.g. from :func:`load_class_descriptions`; category ids follow its
            order from 1 (so they agree across splits). Default: the MIDs present, sorted, named by MID.

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
        _check_size(width, height)
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
                "iscrowd": int(boxes.flags[k, _GROUP_OF] == 1),
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
    try:
        images = {}
        for image in coco["images"]:
            name = image.get("openimages_id") or PurePosixPath(image["file_name"]).stem
            width, height = int(image["width"]), int(image["height"])
            _check_size(width, height)
            images[image["id"]] = (str(name), width, height)
        categories = {cat["id"]: str(cat.get("mid") or cat["name"]) for cat in coco["categories"]}
        n = len(coco["annotations"])
        image_ids, labels, sources = [], [], []
        coords = np.zeros((n, 4), np.float64)
        confidences = np.ones(n, np.float32)
        flags = np.repeat(np.array([[FLAG_DEFAULTS[f] for f in FLAG_COLUMNS]], np.int8), n, axis=0)
        for k, ann in enumerate(coco["annotations"]):
            name, width, height = images[ann["image_id"]]
            x, y, w, h = (float(v) for v in ann["bbox"])
            coords[k] = (x / width, y / height, (x + w) / width, (y + h) / height)
            image_ids.append(name)
            labels.append(categories[ann["category_id"]])
            extra = ann.get("openimages") or {}
            sources.append(str(extra.get("Source", "")))
            confidences[k] = float(extra.get("Confidence", 1.0))
            flags[k, _GROUP_OF] = int(bool(ann.get("iscrowd", 0)))
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
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"COCO annotation file not found: {path}")
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"COCO annotation file {path} is not JSON: {error}") from None
    if not isinstance(coco, dict):
        raise DatasetError(f"COCO annotation file {path} is not a JSON object")
    return coco


# --- statistics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassStatistics:
    """Box and image counts per class and split of an Open Images folder.

    Attributes:
        splits: split names (``"train"``, ``"validation"``, ``"test"``, then others, sorted).
        classes: the MIDs with at least one box, most boxes first (ties by name).
        names: MID -> class name.
        boxes: split -> MID -> boxes.
        images: MID -> distinct images with at least one box of the class, over all splits.
        split_images: split -> distinct images with at least one box.
    """

    splits: tuple[str, ...]
    classes: tuple[str, ...]
    names: dict[str, str]
    boxes: dict[str, dict[str, int]]
    images: dict[str, int]
    split_images: dict[str, int]

    def total(self, mid: str) -> int:
        """Boxes of class ``mid`` over all splits."""
        return sum(self.boxes[split].get(mid, 0) for split in self.splits)

    def split_total(self, split: str) -> int:
        """Boxes of every class in ``split``."""
        return sum(self.boxes[split].values())


def find_box_files(folder: str | Path) -> dict[str, Path]:
    """Split name -> its ``*-annotations-bbox.csv`` in ``folder`` (``subset-train-...`` -> ``"train"``).

    Raises:
        DatasetError: the folder is missing, has none, or two files name the same split.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"Open Images folder not found: {folder}")
    files: dict[str, Path] = {}
    for path in sorted(folder.glob(f"*{BOXES_SUFFIX}")):
        split = path.name[: -len(BOXES_SUFFIX)].rsplit("-", 1)[-1]
        if split in files:
            raise DatasetError(
                f"two box files for split {split!r} in {folder}: {files[split].name} and {path.name}"
            )
        files[split] = path
    if not files:
        raise DatasetError(f"no *{BOXES_SUFFIX} file in Open Images folder {folder}")
    order = {split: i for i, split in enumerate(SPLIT_ORDER)}
    return dict(sorted(files.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def class_statistics(folder: str | Path, chunk_rows: int = CHUNK_ROWS) -> ClassStatistics:
    """Count boxes per class and split, and images per class, of the box files in ``folder``.

    ``folder`` holds ``class-descriptions-boxable.csv`` and one or more ``*-annotations-bbox.csv``
    (official or reduced format). The files are streamed; memory grows with the distinct
    (image, class) pairs only.

    Raises:
        DatasetError: the folder or a file is missing or malformed.
    """
    folder = Path(folder)
    files = find_box_files(folder)
    names = load_class_descriptions(folder / CLASS_DESCRIPTIONS_FILE)
    boxes: dict[str, dict[str, int]] = {}
    images_of: dict[str, set[str]] = {}
    split_images: dict[str, int] = {}
    for split, path in files.items():
        counts: Counter[str] = Counter()
        seen: set[str] = set()
        for chunk in iter_box_annotations(path, chunk_rows=chunk_rows):
            counts.update(chunk.label_names.tolist())
            seen.update(chunk.image_ids.tolist())
            for image, mid in zip(chunk.image_ids.tolist(), chunk.label_names.tolist()):
                images_of.setdefault(mid, set()).add(image)
        boxes[split] = dict(counts)
        split_images[split] = len(seen)
    unknown = sorted(set(images_of) - set(names))
    if unknown:
        raise DatasetError(f"class {unknown[0]} of the boxes is not in {folder / CLASS_DESCRIPTIONS_FILE}")
    totals = {mid: sum(boxes[s].get(mid, 0) for s in files) for mid in images_of}
    classes = tuple(sorted(totals, key=lambda mid: (-totals[mid], names[mid])))
    return ClassStatistics(
        splits=tuple(files),
        classes=classes,
        names={mid: names[mid] for mid in classes},
        boxes=boxes,
        images={mid: len(images_of[mid]) for mid in classes},
        split_images=split_images,
    )


def plot_class_statistics(stats: ClassStatistics, path: str | Path, title: str, top: int | None = 50) -> Path:
    """Draw boxes per class as horizontal bars stacked by split, most frequent on top; return ``path``.

    Args:
        stats: from :func:`class_statistics`.
        path: the figure file; its suffix (``.png``, ``.pdf``, ``.svg``) sets the format.
        title: the figure title.
        top: draw only the ``top`` most frequent classes (all when None); the title says so.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from edgevision.evaluation.plots import FORMATS

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"figure format must be one of {FORMATS}, got {path.name!r}")
    classes = stats.classes if top is None else stats.classes[:top]
    if len(classes) < len(stats.classes):
        title = f"{title} (top {len(classes)} of {len(stats.classes)} classes)"
    figure = Figure(figsize=(7.5, 1.4 + 0.32 * max(len(classes), 1)))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    rows = np.arange(len(classes))[::-1]  # most frequent at the top
    left = np.zeros(len(classes))
    for split in stats.splits:
        counts = np.array([stats.boxes[split].get(mid, 0) for mid in classes], dtype=np.float64)
        axes.barh(rows, counts, left=left, height=0.7, label=split)
        left += counts
    for y, total in zip(rows, left):
        axes.text(total, y, f" {int(total):,}", va="center", fontsize=8)
    axes.set_yticks(rows, [stats.names[mid] for mid in classes], fontsize=9)
    axes.set(xlabel="Boxes", title=title)
    axes.set_xlim(0, max(left.max(initial=0.0) * 1.15, 1.0))
    axes.grid(True, axis="x", alpha=0.3)
    if classes:
        axes.legend(loc="lower right")
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format=fmt, dpi=120, bbox_inches="tight")
    return path

"""Box and image counts per class and split of an Open Images folder (``edgevision data stats``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from edgevision.data.openimages import (
    BOXES_SUFFIX,
    CHUNK_ROWS,
    CLASS_DESCRIPTIONS_FILE,
    iter_box_annotations,
    load_class_descriptions,
)
from edgevision.errors import DatasetError

SPLIT_ORDER = ("train", "validation", "test")


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
        found = "is a file, not a folder" if folder.exists() else "not found"
        raise DatasetError(f"Open Images folder {found}: {folder}")
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

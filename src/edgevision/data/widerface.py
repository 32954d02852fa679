"""WIDER FACE (Yang et al., CVPR 2016): the official layout and annotation text format.

Layout under ``root``: ``WIDER_{train,val}/images/<event>/<name>.jpg`` and
``wider_face_split/wider_face_{train,val}_bbx_gt.txt``. The text file lists, per image, its
relative name, the face count ``n``, then ``n`` lines ``x1 y1 w h blur expression illumination
invalid occlusion pose`` (an image with no face has ``n = 0`` followed by one line of zeros).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevision.data.io import not_utf8_error
from edgevision.errors import DatasetError

ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")


@dataclass(frozen=True, eq=False)
class WiderFaceRecord:
    """One annotated image.

    Attributes:
        name: path relative to the split's ``images`` folder, e.g. ``"0--Parade/0_Parade_x.jpg"``.
        boxes: ``(N, 4)`` float32 xyxy pixels (``x2 = x1 + w``).
        attributes: ``(N, 6)`` int32 columns named by :data:`ATTRIBUTES`.
    """

    name: str
    boxes: np.ndarray
    attributes: np.ndarray

    @property
    def key(self) -> str:
        """``"<event>/<stem>"``, the key the evaluation uses."""
        return self.name.rsplit(".", 1)[0]

    @property
    def valid(self) -> np.ndarray:
        """``(N,)`` bool: faces not flagged invalid and with positive width and height."""
        sizes = self.boxes[:, 2:] - self.boxes[:, :2]
        return (self.attributes[:, 3] == 0) & (sizes > 0).all(axis=1)


def parse_annotations(path: Path) -> list[WiderFaceRecord]:
    """Parse a ``wider_face_*_bbx_gt.txt`` file."""
    if not path.is_file():
        raise DatasetError(f"WIDER FACE annotation file not found: {path}")
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise not_utf8_error(path, "WIDER FACE annotations") from None
    records: list[WiderFaceRecord] = []
    i = 0
    try:
        while i < len(lines):
            name = lines[i].strip()
            count = int(lines[i + 1])
            rows = [line.split()[:10] for line in lines[i + 2 : i + 2 + max(count, 1)]]
            i += 2 + max(count, 1)
            table = np.asarray(rows[:count], dtype=np.float64).reshape(count, 10)
            boxes = table[:, :4].copy()
            boxes[:, 2:] += boxes[:, :2]
            records.append(WiderFaceRecord(name, boxes.astype(np.float32), table[:, 4:].astype(np.int32)))
    except (ValueError, IndexError) as error:
        raise DatasetError(f"malformed WIDER FACE annotations in {path} near line {i + 1}: {error}") from None
    return records


@dataclass(frozen=True)
class WiderFaceSplit:
    """One split (``"train"`` or ``"val"``) of a WIDER FACE root, restricted to images present."""

    root: Path
    split: str
    records: list[WiderFaceRecord]

    @property
    def image_dir(self) -> Path:
        return self.root / f"WIDER_{self.split}" / "images"

    def image_path(self, record: WiderFaceRecord) -> Path:
        return self.image_dir / record.name


def load_split(root: str | Path, split: str) -> WiderFaceSplit:
    """Read ``split`` of the WIDER FACE tree at ``root``, keeping the images that are present."""
    if split not in ("train", "val"):
        raise DatasetError(f"unknown WIDER FACE split {split!r}; expected 'train' or 'val'")
    root = Path(root)
    image_dir = root / f"WIDER_{split}" / "images"
    if not image_dir.is_dir():
        raise DatasetError(f"WIDER FACE images not found: {image_dir}")
    records = parse_annotations(root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt")
    present = [r for r in records if (image_dir / r.name).is_file()]
    if not present:
        raise DatasetError(f"no annotated image of WIDER FACE {split} is present under {image_dir}")
    return WiderFaceSplit(root, split, present)

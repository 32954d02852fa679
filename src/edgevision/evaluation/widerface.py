"""WIDER FACE evaluation: the official protocol of ``eval_tools/wider_eval.m`` (Yang et al., CVPR 2016).

The protocol, as the authors' MATLAB tool and its widely used Python port
(``widerface_evaluate/evaluation.py``) run it:

1. Scores are min-max normalised over every prediction of the evaluated set, and each image's
   predictions are sorted by descending score.
2. Per image, proposals are matched greedily in score order to the ground-truth face of highest
   IoU (``+1`` pixel convention, ``x2 = x + w``). A match (IoU >= 0.5) to a face outside the subset
   ("ignored") removes the proposal from the count; a first match to a counted face recalls it; any
   other proposal is a false alarm. Images with no ground-truth box or no prediction are skipped,
   but their counted faces still count.
3. For ``T = 1000`` thresholds ``1 - (t + 1) / T``, proposals and recalled faces are summed over
   images; precision = recalled / proposals, recall = recalled / counted faces, and AP is the VOC
   all-point area under the precision envelope.

The subsets "easy", "medium" and "hard" share the boxes of ``wider_face_val.mat`` and differ only in
which faces count (``wider_{easy,medium,hard}_val.mat``, ``gt_list``).

Where this module differs from the references, the official result is unchanged except in the
degenerate cases named:

- Normalisation uses the true minimum and maximum score, as ``wider_eval.m`` does; the Python port
  starts from ``max = 0, min = 1``, which differs only when every score is above 1 or below 0.
- If every score is equal (``max == min``) both references divide 0 by 0, every normalised score
  is NaN, no prediction passes any threshold and AP is 0. Here every score becomes 1.0, so all
  predictions are kept at every threshold.
- Precision is NaN where no proposal passes a threshold (0 / 0, as in both references). The
  envelope takes the NaN-ignoring maximum (MATLAB's ``max``); the Python port's ``np.maximum``
  spreads the NaN to lower indices, but those points all have recall 0 and carry no weight, so
  the AP is identical. With no counted face at all, recall and AP are NaN, as in both references.
- Predictions are sorted (stably, as ``wider_eval.m``'s ``sort(..., 'descend')``); the Python port
  does not sort and trusts the order of the prediction files. The order among equal scores cannot
  change the result: a proposal's match does not depend on earlier matches, and tied proposals
  pass every threshold together.

Only 140 of the 3,226 val images may be present locally: :func:`evaluate` takes the images to
evaluate, counts faces over those only, and its result says when it is not the full val set.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgevision.data.io import atomic_write
from edgevision.errors import DatasetError, InputFileError, ShapeError
from edgevision.evaluation.ap import voc_ap  # re-exported: widerface.voc_ap stays importable

SUBSETS = ("easy", "medium", "hard")
GT_FILES = {"face": "wider_face_val.mat", **{name: f"wider_{name}_val.mat" for name in SUBSETS}}


@dataclass(frozen=True)
class WiderFaceGroundTruth:
    """The WIDER FACE val ground truth, keyed by ``"<event>/<image stem>"``.

    Attributes:
        boxes: key -> ``(M, 4)`` float64 ``x y w h`` pixels, every annotated face of the image.
        counted: subset ("easy", "medium", "hard") -> key -> ``(K,)`` int64 0-based indices into
            ``boxes[key]`` of the faces that count in that subset; the other faces are ignored
            (a detection of one is neither a hit nor a false alarm). The ``.mat`` files store them
            1-based; :func:`load_ground_truth` converts.
    """

    boxes: dict[str, np.ndarray]
    counted: dict[str, dict[str, np.ndarray]] = field(repr=False)

    def __post_init__(self) -> None:
        boxes = {}
        for key, rows in self.boxes.items():
            rows = np.asarray(rows, dtype=np.float64)
            if rows.size == 0:
                rows = rows.reshape(0, 4)
            if rows.ndim != 2 or rows.shape[1] != 4:
                raise ShapeError(f"ground-truth boxes of {key!r} must be (M, 4) x y w h, got {rows.shape}")
            boxes[key] = rows
        if set(self.counted) != set(SUBSETS):
            raise DatasetError(f"ground truth needs the subsets {SUBSETS}, got {tuple(self.counted)}")
        counted = {}
        for subset in SUBSETS:
            per_image = self.counted[subset]
            if set(per_image) != set(boxes):
                raise DatasetError(f"subset {subset!r} does not list the same images as the boxes")
            counted[subset] = {}
            for key, index in per_image.items():
                index = np.asarray(index, dtype=np.int64).reshape(-1)
                faces = len(boxes[key])
                if index.size and (
                    index.min() < 0 or index.max() >= faces or np.unique(index).size != index.size
                ):
                    raise DatasetError(
                        f"subset {subset!r} of {key!r}: face indices must be distinct, in [0, {faces})"
                    )
                counted[subset][key] = index
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "counted", counted)

    @property
    def keys(self) -> list[str]:
        """Every image key, in the order of the ``.mat`` files (events, then files)."""
        return list(self.boxes)


@dataclass(frozen=True)
class WiderFaceResult:
    """WIDER FACE AP and PR curves of one evaluation.

    Attributes:
        ap: subset -> AP in [0, 1] (NaN when the subset has no counted face).
        curves: subset -> ``(T, 2)`` float64 columns precision, recall at thresholds
            :attr:`thresholds`; precision is NaN where no proposal passes (0 / 0).
        thresholds: ``(T,)`` normalised-score thresholds ``1 - (t + 1) / T``, descending.
        num_images: images evaluated.
        num_faces: subset -> counted faces over the images evaluated (the recall denominator).
        num_gt_images: images in the ground truth (3,226 for the full val set).
    """

    ap: dict[str, float]
    curves: dict[str, np.ndarray] = field(repr=False)
    thresholds: np.ndarray = field(repr=False)
    num_images: int
    num_faces: dict[str, int]
    num_gt_images: int

    @property
    def is_full_set(self) -> bool:
        """Whether every ground-truth image was evaluated: only then is the AP the official one."""
        return self.num_images == self.num_gt_images

    @property
    def label(self) -> str:
        """How to name these figures in a report."""
        if self.is_full_set:
            return "WIDER val"
        return f"WIDER val subset ({self.num_images} of {self.num_gt_images} images)"


def load_ground_truth(gt_dir: str | Path) -> WiderFaceGroundTruth:
    """Read ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat`` from ``gt_dir``.

    Raises:
        DatasetError: the folder or a file is missing, unreadable, or inconsistent.
    """
    from scipy.io import loadmat

    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise DatasetError(f"WIDER FACE ground-truth folder not found: {gt_dir}")
    mats = {}
    for name, filename in GT_FILES.items():
        path = gt_dir / filename
        if not path.is_file():
            raise DatasetError(f"WIDER FACE ground-truth file not found: {path}")
        needed = ["event_list", "file_list"] + (["face_bbx_list"] if name == "face" else ["gt_list"])
        try:
            mat = loadmat(path, variable_names=needed)
        except Exception as error:  # scipy raises ValueError, TypeError, OSError... on a bad file
            raise DatasetError(f"cannot read WIDER FACE ground truth {path}: {error}") from None
        missing = [variable for variable in needed if variable not in mat]
        if missing:
            raise DatasetError(f"WIDER FACE ground truth {path} lacks {', '.join(missing)}")
        mats[name] = mat

    try:
        keys_per_event = _image_keys(mats["face"])
        boxes = {}
        for event_keys, cell in zip(keys_per_event, mats["face"]["face_bbx_list"][:, 0]):
            for j, key in enumerate(event_keys):
                boxes[key] = np.asarray(cell[j, 0], dtype=np.float64).reshape(-1, 4)
        counted = {}
        for subset in SUBSETS:
            mat = mats[subset]
            if _image_keys(mat) != keys_per_event:
                raise DatasetError(
                    f"{GT_FILES[subset]} lists other images than {GT_FILES['face']} in {gt_dir}"
                )
            counted[subset] = {}
            for event_keys, cell in zip(keys_per_event, mat["gt_list"][:, 0]):
                for j, key in enumerate(event_keys):
                    # 1-based MATLAB indices, stored as uint8/uint16: widen before subtracting.
                    counted[subset][key] = np.asarray(cell[j, 0], dtype=np.int64).reshape(-1) - 1
    except (IndexError, ValueError, TypeError) as error:
        raise DatasetError(f"malformed WIDER FACE ground truth in {gt_dir}: {error}") from None
    return WiderFaceGroundTruth(boxes, counted)


def _image_keys(mat: dict) -> list[list[str]]:
    """Per event, the ``"<event>/<stem>"`` keys in file order."""
    events = mat["event_list"][:, 0]
    files = mat["file_list"][:, 0]
    if len(events) != len(files):
        raise ValueError("event_list and file_list differ in length")
    return [
        [f"{_cell_str(event)}/{_cell_str(name)}" for name in event_files[:, 0]]
        for event, event_files in zip(events, files)
    ]


def _cell_str(cell: np.ndarray) -> str:
    return str(np.asarray(cell).reshape(-1)[0])


def _split_key(key: str) -> tuple[str, str]:
    event, sep, stem = key.partition("/")
    if not sep or not event or not stem or "/" in stem or event in (".", "..") or stem in (".", ".."):
        raise DatasetError(f"image key must be '<event>/<image stem>', got {key!r}")
    return event, stem


def write_prediction_file(out_dir: str | Path, key: str, rows: np.ndarray) -> Path:
    """Write one image's predictions in the official format, atomically; return the file's path.

    The file is ``out_dir/<event>/<stem>.txt``: the stem, the count ``N``, then ``N`` lines
    ``x y w h score`` (``{:.1f}`` pixels, ``{:.3f}`` score, as FaceBoxes.PyTorch writes them).

    Args:
        out_dir: the prediction folder (one sub-folder per event).
        key: ``"<event>/<image stem>"``.
        rows: ``(N, 5)`` ``x y w h score``, pixels.
    """
    event, stem = _split_key(key)
    rows = _check_rows(rows, f"predictions of {key!r}")
    lines = [stem, str(len(rows))]
    lines += [f"{x:.1f} {y:.1f} {w:.1f} {h:.1f} {s:.3f}" for x, y, w, h, s in rows.tolist()]
    path = Path(out_dir) / event / f"{stem}.txt"
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def read_prediction_file(path: str | Path) -> np.ndarray:
    """Read one official prediction file as ``(N, 5)`` float64 ``x y w h score``.

    As ``wider_eval.m`` does, the first line (the image name) is not used and only the first
    ``N`` box lines are read, their first five numbers each.

    Raises:
        DatasetError: the file is malformed.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    try:
        count = int(lines[1])
        if count < 0:
            raise ValueError(f"negative box count {count}")
        rows = [[float(value) for value in line.split()[:5]] for line in lines[2 : 2 + count]]
        table = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        if len(table) != count:
            raise ValueError(f"{count} boxes announced, {len(table)} found")
    except (IndexError, ValueError) as error:
        raise DatasetError(f"malformed WIDER FACE prediction file {path}: {error}") from None
    return table


def read_prediction_dir(pred_dir: str | Path) -> dict[str, np.ndarray]:
    """Read every ``<event>/<stem>.txt`` under ``pred_dir`` as key -> ``(N, 5)`` ``x y w h score``.

    Raises:
        InputFileError: ``pred_dir`` is not a folder.
        DatasetError: a prediction file is malformed.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise InputFileError(f"prediction folder not found: {pred_dir}")
    return {
        f"{path.parent.name}/{path.stem}": read_prediction_file(path)
        for path in sorted(pred_dir.glob("*/*.txt"))
        if path.is_file() and not path.name.startswith(".")
    }


def _check_rows(rows: np.ndarray, what: str) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    if rows.size == 0:
        return rows.reshape(0, 5)
    if rows.ndim != 2 or rows.shape[1] != 5:
        raise ShapeError(f"{what} must be (N, 5) x y w h score, got {rows.shape}")
    if not np.isfinite(rows).all():
        raise ShapeError(f"{what} must be finite (N, 5) x y w h score, found NaN or inf")
    return rows


def evaluate(
    predictions: dict[str, np.ndarray],
    gt: WiderFaceGroundTruth,
    images: Iterable[str] | None = None,
    iou_threshold: float = 0.5,
    num_thresholds: int = 1000,
) -> WiderFaceResult:
    """Run the WIDER FACE protocol on ``images`` (default: the keys of ``predictions``).

    Args:
        predictions: key -> ``(N, 5)`` ``x y w h score``, pixels, any score scale (normalised
            here over the predictions of ``images``). Keys outside ``images`` are not used.
        gt: the ground truth, e.g. from :func:`load_ground_truth`.
        images: the image keys to evaluate; a key without predictions is an image with none.
            Faces count only in these images.
        iou_threshold: IoU at or above which a proposal matches a face (0.5 officially).
        num_thresholds: number of score thresholds of the PR curves (1000 officially).

    Raises:
        DatasetError: an image key is not in the ground truth.
        ShapeError: a prediction array is not finite ``(N, 5)``.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    if int(num_thresholds) != num_thresholds or num_thresholds < 1:
        raise ValueError(f"num_thresholds must be a positive integer, got {num_thresholds}")
    num_thresholds = int(num_thresholds)
    keys = list(dict.fromkeys(predictions if images is None else images))
    unknown = [key for key in keys if key not in gt.boxes]
    if unknown:
        raise DatasetError(f"{len(unknown)} image(s) not in the WIDER FACE ground truth, e.g. {unknown[0]!r}")

    preds = {key: _check_rows(predictions.get(key, ()), f"predictions of {key!r}") for key in keys}
    scores = [rows[:, 4] for rows in preds.values() if len(rows)]
    low = min((float(s.min()) for s in scores), default=0.0)
    high = max((float(s.max()) for s in scores), default=1.0)

    thresholds = 1.0 - (np.arange(num_thresholds) + 1) / num_thresholds
    proposals = {subset: np.zeros(num_thresholds, dtype=np.int64) for subset in SUBSETS}
    recalled = {subset: np.zeros(num_thresholds, dtype=np.int64) for subset in SUBSETS}
    num_faces = dict.fromkeys(SUBSETS, 0)

    for key in keys:
        gt_boxes = gt.boxes[key]
        for subset in SUBSETS:
            num_faces[subset] += len(gt.counted[subset][key])
        rows = preds[key]
        if len(gt_boxes) == 0 or len(rows) == 0:
            continue
        score = (rows[:, 4] - low) / (high - low) if high > low else np.ones(len(rows))
        order = np.argsort(-score, kind="stable")
        rows, score = rows[order], score[order]

        overlaps = _overlaps(rows[:, :4], gt_boxes)
        best = overlaps.argmax(axis=1)
        hit = overlaps[np.arange(len(rows)), best] >= iou_threshold
        # Predictions passing each threshold: a prefix of the sorted list, of this length.
        passing = np.searchsorted(-score, -thresholds, side="right")
        for subset in SUBSETS:
            is_counted = np.zeros(len(gt_boxes), dtype=bool)
            is_counted[gt.counted[subset][key]] = True
            kept = ~(hit & ~is_counted[best])  # a match to an ignored face is not a proposal
            hits = np.flatnonzero(hit & is_counted[best])
            _, first = np.unique(best[hits], return_index=True)
            new_face = np.zeros(len(rows), dtype=np.int64)
            new_face[hits[first]] = 1  # only a face's first match recalls it
            proposals[subset] += np.concatenate(([0], np.cumsum(kept)))[passing]
            recalled[subset] += np.concatenate(([0], np.cumsum(new_face)))[passing]

    curves, ap = {}, {}
    for subset in SUBSETS:
        tp = recalled[subset].astype(np.float64)
        precision = np.full(num_thresholds, np.nan)
        np.divide(tp, proposals[subset], out=precision, where=proposals[subset] > 0)
        recall = tp / num_faces[subset] if num_faces[subset] else np.full(num_thresholds, np.nan)
        curves[subset] = np.stack([precision, recall], axis=1)
        ap[subset] = voc_ap(recall, precision) if num_faces[subset] else math.nan
    return WiderFaceResult(ap, curves, thresholds, len(keys), num_faces, len(gt.boxes))


def _overlaps(pred_xywh: np.ndarray, gt_xywh: np.ndarray) -> np.ndarray:
    """``(N, M)`` IoU of ``(N, 4)`` and ``(M, 4)`` ``x y w h`` boxes, with the official conventions.

    Corners are ``(x, y)`` and ``(x + w, y + h)``, both inclusive pixels, so widths and
    intersections are ``x2 - x1 + 1``; boxes that do not overlap by a positive width and height
    have IoU 0.
    """
    p = np.concatenate([pred_xywh[:, :2], pred_xywh[:, :2] + pred_xywh[:, 2:4]], axis=1)[:, None, :]
    g = np.concatenate([gt_xywh[:, :2], gt_xywh[:, :2] + gt_xywh[:, 2:4]], axis=1)[None, :, :]
    iw = np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]) + 1
    ih = np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]) + 1
    inter = iw * ih
    union = (
        (p[..., 2] - p[..., 0] + 1) * (p[..., 3] - p[..., 1] + 1)
        + (g[..., 2] - g[..., 0] + 1) * (g[..., 3] - g[..., 1] + 1)
        - inter
    )
    out = np.zeros(inter.shape)
    np.divide(inter, union, out=out, where=(iw > 0) & (ih > 0))
    return out

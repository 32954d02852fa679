"""Running a detector over WIDER FACE val and scoring it with the official protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from edgevision.data.io import atomic_dir, read_image_size
from edgevision.data.widerface import load_split
from edgevision.detection.detector import Detector
from edgevision.evaluation.widerface import (
    WiderFaceGroundTruth,
    WiderFaceResult,
    evaluate,
    load_ground_truth,
    read_prediction_dir,
    write_prediction_file,
)


def predict_widerface(
    detector: Detector,
    data: str | Path,
    out_dir: str | Path,
    scale: float = 1.0,
    track: Callable[[Iterable], Iterable] = iter,
) -> list[str]:
    """Detect on every val image present under ``data`` and write the official per-image files
    ``out_dir/<event>/<stem>.txt`` (rows ``x1 y1 w h score``, ``w = x2 - x1 + 1``, as
    FaceBoxes.PyTorch writes them). Returns the image keys. ``track`` wraps the loop (progress).

    Strict, since an AP over a silently reduced set would mislead: every image's header is read
    (and its size checked against the pixel cap) before the first detection, and any image that
    then fails to decode ends the run.

    Raises:
        InputFileError: an image cannot be read (ImageDecodeError: not an image, truncated, or
            over the pixel cap).
    """
    split = load_split(data, "val")
    for record in split.records:
        read_image_size(split.image_path(record), max_pixels=detector.max_pixels)
    keys = []
    for record in track(split.records):
        detections = detector.detect(split.image_path(record), scale)
        rows = np.asarray(detections.to_xywh_rows(), dtype=np.float64).reshape(-1, 5)
        write_prediction_file(out_dir, record.key, rows)
        keys.append(record.key)
    return keys


def widerface_ground_truth(data: str | Path) -> WiderFaceGroundTruth:
    """The val ground truth of the WIDER FACE root ``data`` (``eval_tools/ground_truth``)."""
    return load_ground_truth(Path(data) / "eval_tools" / "ground_truth")


def evaluate_prediction_dir(
    pred_dir: str | Path, gt: WiderFaceGroundTruth, images: Iterable[str]
) -> WiderFaceResult:
    """Score the prediction files in ``pred_dir`` on ``images`` as the official tool reads them,
    i.e. with the values as rounded in the files."""
    return evaluate(read_prediction_dir(pred_dir), gt, images)


def run_widerface(
    detector: Detector,
    data: str | Path,
    pred_dir: str | Path,
    scale: float = 1.0,
    track: Callable[[Iterable], Iterable] = iter,
) -> WiderFaceResult:
    """The whole WIDER FACE val run: load the ground truth (so a missing one fails before the long
    part), detect on every image present, write the official files to ``pred_dir``, score them.

    ``pred_dir`` is filled as a temporary folder and renamed into place at the end (replacing an
    earlier run's): a failed run leaves no prediction file."""
    gt = widerface_ground_truth(data)
    with atomic_dir(pred_dir) as filling:
        keys = predict_widerface(detector, data, filling, scale, track)
        return evaluate_prediction_dir(filling, gt, keys)

"""Running a detector over WIDER FACE val and scoring it with the official protocol."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

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
    FaceBoxes.PyTorch writes them). Returns the image keys. ``track`` wraps the loop (progress)."""
    split = load_split(data, "val")
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
    part), detect on every image present, write the official files to ``pred_dir``, score them."""
    gt = widerface_ground_truth(data)
    keys = predict_widerface(detector, data, pred_dir, scale, track)
    return evaluate_prediction_dir(pred_dir, gt, keys)

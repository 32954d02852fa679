"""How much can a teacher add beyond the labels? Recall and precision of the distillation teachers
against the WIDER FACE ground truth of the TRAIN images (never the val images), by face height.

Each teacher runs as training runs it (:mod:`edgevision.training.teachers`: score floor 0.05, NMS
0.3), here on the images at their own size. Detections are matched greedily, best score first, to
the labelled faces at IoU >= 0.5 (:func:`edgevision.training.teacher_calibration.match_to_faces`);
a detection on a face flagged invalid counts neither way, as the WIDER protocol ignores those
faces. Recall is over the valid faces of each height bin (< 20, 20-40, 40-140, > 140 px: the Tiny
Faces paper's split); precision over the detections of each height bin. A confident detection on
no labelled face is a teacher's mistake or a face the labels leave out: their count bounds what
soft targets add there. The score bands show how the scores behave as probabilities (calibrated,
a band's fraction on a face is about its scores), before and after
:class:`~edgevision.training.teacher_calibration.ScoreCalibration` (fitted on these images, as
``train --calibrate-teachers`` fits it).

    python benchmarks/teacher_recall.py                    # YuNet-n, reference FaceBoxes, both
    python benchmarks/teacher_recall.py --max-images 100   # a quick look
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from _machine import cpu_name, set_threads  # benchmarks/_machine.py
from rich.console import Console
from rich.progress import track
from rich.table import Table

from edgevision.data.io import read_image
from edgevision.data.paths import default_data_dir
from edgevision.data.widerface import WiderFaceRecord, load_split
from edgevision.detection.detections import Detections
from edgevision.errors import EdgeVisionError
from edgevision.training.teacher_calibration import (
    UNMATCHED,
    CalibratedTeacher,
    fit_score_calibration,
    match_to_faces,
)
from edgevision.training.teachers import EnsembleTeacher, teachers_from_specs

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = default_data_dir(REPO_ROOT)
WEIGHTS = DATA_DIR / "weights"
HEIGHT_BINS = (20.0, 40.0, 140.0)  # px; Tiny Faces' small / medium / large split
BIN_NAMES = ("< 20", "20-40", "40-140", "> 140")
SCORE_BANDS = (0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0001)
IOU = 0.5


class Matched:
    """A teacher's detections on every image, matched to the labelled faces."""

    def __init__(self, records: list[WiderFaceRecord], found: list[Detections]) -> None:
        face_h, face_score, det_h, det_s, det_label = [], [], [], [], []
        for record, dets in zip(records, found):
            taken = match_to_faces(dets, record.boxes, IOU)
            score = np.zeros(len(record.boxes) + 1, np.float32)  # the last slot takes UNMATCHED
            score[taken] = dets.scores.numpy()
            valid = np.append(record.valid, True)[taken]  # 1 valid face or none, 0 an invalid face
            face_h.append((record.boxes[:, 3] - record.boxes[:, 1])[record.valid])
            face_score.append(score[:-1][record.valid])
            det_h.append((dets.boxes[:, 3] - dets.boxes[:, 1]).numpy()[valid])
            det_s.append(dets.scores.numpy()[valid])
            det_label.append(taken[valid] != UNMATCHED)
        self.face_heights, self.face_scores = np.concatenate(face_h), np.concatenate(face_score)
        self.det_heights, self.det_scores = np.concatenate(det_h), np.concatenate(det_s)
        self.det_on_face = np.concatenate(det_label)


def size_table(name: str, matched: Matched, images: int, ms: float) -> Table:
    """Recall and precision at score 0.5 by height, and recall at the floor."""
    table = Table(title=f"{name}: {images} WIDER train images, {ms:.0f} ms/image")
    for header in ("face height px", "faces", "recall@0.5", "recall@0.05", "dets@0.5", "precision@0.5"):
        table.add_column(header, justify="right")
    confident = matched.det_scores >= 0.5
    face_bins = np.digitize(matched.face_heights, HEIGHT_BINS)
    det_bins = np.digitize(matched.det_heights, HEIGHT_BINS)
    for b, label in [*enumerate(BIN_NAMES), (None, "all")]:
        faces = np.ones_like(face_bins, bool) if b is None else face_bins == b
        dets = confident & (True if b is None else det_bins == b)
        n_faces, n_dets = int(faces.sum()), int(dets.sum())
        table.add_row(
            label,
            str(n_faces),
            f"{(matched.face_scores[faces] >= 0.5).mean():.3f}" if n_faces else "-",
            f"{(matched.face_scores[faces] > 0).mean():.3f}" if n_faces else "-",
            str(n_dets),
            f"{matched.det_on_face[dets].mean():.3f}" if n_dets else "-",
        )
    off_face = int((confident & ~matched.det_on_face).sum())
    soft = int((~confident).sum())
    table.caption = (
        f"confident (>= 0.5) detections on no labelled face: {off_face} ({off_face / images:.2f} per "
        f"image); below 0.5 (soft): {soft / images:.1f} per image"
    )
    return table


def bands_table(title: str, matched: dict[str, Matched]) -> Table:
    """Per score band: detections, and the fraction of them on a labelled face."""
    table = Table(title=title)
    table.add_column("score")
    for name in matched:
        table.add_column(name, justify="right")
    for low, high in zip(SCORE_BANDS[:-1], SCORE_BANDS[1:]):
        cells = []
        for m in matched.values():
            band = (m.det_scores >= low) & (m.det_scores < high)
            cells.append(f"{band.sum()} ({m.det_on_face[band].mean():.2f})" if band.any() else "0")
        table.add_row(f"[{low:.2f}, {min(high, 1.0):.2f}{')' if high < 1 else ']'}", *cells)
    return table


def merged(found: dict[str, list[Detections]]) -> list[Detections]:
    """Per image, the teachers' detections merged as :class:`EnsembleTeacher` merges them."""
    image = np.zeros((1, 1, 3), np.uint8)  # unused: the detections are given
    per_image = zip(*found.values())
    return [EnsembleTeacher([lambda _, d=d: d for d in dets])(image) for dets in per_image]


def main(
    data: Annotated[Path, typer.Option(help="WIDER FACE root.")] = DATA_DIR / "widerface",
    yunet: Annotated[Path, typer.Option(help="YuNet ONNX file.")] = WEIGHTS
    / "yunet"
    / "yunet_n_dynamic.onnx",
    faceboxes: Annotated[Path, typer.Option(help="FaceBoxes weights for the detector teacher.")] = (
        WEIGHTS / "faceboxes_reference" / "FaceBoxesProd.pth"
    ),
    max_images: Annotated[int | None, typer.Option(min=1, help="The first N train images only.")] = None,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for torch and OpenCV.")] = 1,
) -> None:
    console = Console()
    if not console.is_terminal:
        console.width = 120
    set_threads(threads)
    names = (yunet.stem, f"FaceBoxes {faceboxes.stem}")
    try:
        split = load_split(data, "train")
        teachers = dict(zip(names, teachers_from_specs([f"yunet={yunet}", f"faceboxes={faceboxes}"])))
    except EdgeVisionError as error:
        console.print(f"error: {error}")
        raise typer.Exit(2) from error
    records = split.records[:max_images]
    found: dict[str, list[Detections]] = {name: [] for name in teachers}
    seconds = dict.fromkeys(teachers, 0.0)
    for record in track(records, description="teachers on WIDER train", console=console, transient=True):
        image = read_image(split.image_path(record))
        for name, teacher in teachers.items():
            start = time.perf_counter()
            found[name].append(teacher(image))
            seconds[name] += time.perf_counter() - start
    calibrated = {}
    for name in teachers:
        m = Matched(records, found[name])
        calibration = fit_score_calibration(m.det_scores, m.det_on_face)
        knots = ", ".join(f"{x:.2f}->{y:.3f}" for x, y in zip(calibration.scores, calibration.probabilities))
        console.print(f"{name} calibration, score->probability: {knots}")
        rescore = CalibratedTeacher(lambda d: d, calibration)  # maps the scores of given detections
        calibrated[f"{name}, calibrated"] = [rescore(d) for d in found[name]]
    ensemble = " + ".join(teachers)
    found[ensemble] = merged({name: found[name] for name in teachers})
    found[f"{ensemble}, calibrated"] = merged(calibrated)
    seconds[ensemble] = seconds[f"{ensemble}, calibrated"] = sum(seconds.values())
    matched = {name: Matched(records, dets) for name, dets in (found | calibrated).items()}

    console.print(f"{cpu_name()}, {os.cpu_count()} logical CPUs, {threads} thread(s); IoU {IOU}")
    for name in found:
        console.print(size_table(name, matched[name], len(records), 1e3 * seconds[name] / len(records)))
    raw = {name: matched[name] for name in teachers}
    console.print(bands_table("Score bands: detections (fraction on a labelled face)", raw))
    fitted = {name: matched[name] for name in [*calibrated, f"{ensemble}, calibrated"]}
    console.print(bands_table("Calibrated scores (fitted on these images)", fitted))


if __name__ == "__main__":
    typer.run(main)

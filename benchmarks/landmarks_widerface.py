"""The landmark error of a detector with landmarks against its teacher, YuNet (OpenCV's
``FaceDetectorYN``), on the WIDER FACE dev-val faces (the val images present).

    python benchmarks/landmarks_widerface.py [--detector NAME[=WEIGHTS]] [--layout-images 300]
        [--max-images N] [--out out/landmarks.json]

For each labelled (valid) face that both find (each pairs its detections scoring 0.5 or more
with the labelled faces greedily at IoU >= 0.5, as the training targets were made), the NME: the
mean distance of the five points from YuNet's, divided by YuNet's inter-ocular distance (the two
eye centres). Reported overall, by the labelled face's height, and as the share of faces over
0.1 (a common failure threshold). The baseline is a detector that knows only the box: the mean
layout of YuNet's points in the labelled box (from ``--layout-images`` WIDER *train* images)
placed in our detector's box; the gap between the two is what the landmark head adds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from _machine import cpu_name, set_threads  # benchmarks/_machine.py
from rich.console import Console
from rich.table import Table

from edgevision import load_detector
from edgevision.data.io import atomic_write, read_image
from edgevision.data.paths import default_data_dir
from edgevision.data.widerface import load_split
from edgevision.detection.detections import Detections
from edgevision.detection.matcher import BACKGROUND, match_greedy
from edgevision.training.landmark_targets import MATCH_IOU, MIN_SCORE, matched_landmarks
from edgevision.training.teachers import YuNetTeacher

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = default_data_dir(REPO_ROOT)
YUNET = DATA / "weights" / "yunet" / "yunet_n_dynamic.onnx"
HEIGHT_BINS = ((0, 32), (32, 64), (64, 128), (128, 100_000))  # labelled face height, px
FAILURE_NME = 0.1


def relative_layout(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(N, 5, 2)`` pixel points as fractions of their ``(N, 4)`` xyxy boxes."""
    return (points - boxes[:, None, :2]) / (boxes[:, None, 2:] - boxes[:, None, :2])


def mean_layout(teacher: YuNetTeacher, root: Path, images: int) -> np.ndarray:
    """The mean ``(5, 2)`` layout of the teacher's points in the labelled boxes of the first
    ``images`` WIDER train images."""
    split = load_split(root, "train")
    layouts = []
    for record in split.records[:images]:
        boxes = record.boxes[record.valid]
        points = matched_landmarks(boxes, teacher(read_image(split.image_path(record))))
        found = np.isfinite(points).all(axis=(1, 2))
        layouts.append(relative_layout(points[found], boxes[found]))
    return np.concatenate(layouts).mean(axis=0)


def nme(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``(N,)`` mean point distance over the reference's inter-ocular distance."""
    distance = np.linalg.norm(points - reference, axis=2).mean(axis=1)
    return distance / np.linalg.norm(reference[:, 0] - reference[:, 1], axis=1)


def paired(found: Detections, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our ``(N, 5, 2)`` landmarks and ``(N, 4)`` boxes for the labelled ``boxes`` (NaN where we
    miss a face), paired as :func:`matched_landmarks` pairs the teacher's."""
    found = found.above(MIN_SCORE)
    match = match_greedy(torch.from_numpy(boxes), found.boxes, MATCH_IOU)
    points = np.full((len(boxes), 5, 2), np.nan, np.float32)
    our_boxes = np.full((len(boxes), 4), np.nan, np.float32)
    hit = (match != BACKGROUND).numpy()
    points[hit] = found.landmarks[match[hit]].numpy()
    our_boxes[hit] = found.boxes[match[hit]].numpy()
    return points, our_boxes


def summary(errors: np.ndarray) -> dict[str, float]:
    return {
        "faces": int(len(errors)),
        "nme": float(errors.mean()) if len(errors) else float("nan"),
        "median": float(np.median(errors)) if len(errors) else float("nan"),
        f"over_{FAILURE_NME}": float((errors > FAILURE_NME).mean()) if len(errors) else float("nan"),
    }


def main(
    detector: Annotated[str, typer.Option(help="NAME[=WEIGHTS] of a detector with landmarks")] = "faceboxes",
    data: Annotated[Path, typer.Option(help="WIDER FACE root")] = DATA / "widerface",
    yunet: Annotated[Path, typer.Option(help="YuNet ONNX file (the teacher)")] = YUNET,
    layout_images: Annotated[int, typer.Option(min=1, help="train images for the baseline layout")] = 300,
    max_images: Annotated[int | None, typer.Option(min=1, help="the first N val images only")] = None,
    out: Annotated[Path | None, typer.Option(help="also write the figures as JSON")] = None,
) -> None:
    set_threads(2)
    name, _, weights = detector.partition("=")
    ours = load_detector(name, weights=weights or None, device="cpu")
    teacher = YuNetTeacher(yunet)
    layout = mean_layout(teacher, data, layout_images)
    split = load_split(data, "val")
    ours_all, base_all, heights, labelled = [], [], [], 0
    records = split.records[:max_images]
    for record in records:
        image = read_image(split.image_path(record))
        boxes = record.boxes[record.valid]
        labelled += len(boxes)
        found = ours.detect(image)
        if found.landmarks is None:
            raise typer.BadParameter(f"{detector} gives no landmarks")
        reference = matched_landmarks(boxes, teacher(image))
        points, our_boxes = paired(found, boxes)
        both = np.isfinite(reference).all(axis=(1, 2)) & np.isfinite(points).all(axis=(1, 2))
        baseline = our_boxes[both, None, :2] + layout[None] * (
            our_boxes[both, None, 2:] - our_boxes[both, None, :2]
        )
        ours_all.append(nme(points[both], reference[both]))
        base_all.append(nme(baseline, reference[both]))
        heights.append(boxes[both, 3] - boxes[both, 1])
    errors, base, height = (np.concatenate(x) for x in (ours_all, base_all, heights))
    rows: list[dict[str, Any]] = [{"faces": "all", "ours": summary(errors), "baseline": summary(base)}]
    for low, high in HEIGHT_BINS:
        inside = (height >= low) & (height < high)
        label = f"{low}-{high} px" if high < 100_000 else f">= {low} px"
        rows.append({"faces": label, "ours": summary(errors[inside]), "baseline": summary(base[inside])})

    table = Table(title=f"Landmark NME vs YuNet, WIDER dev-val ({len(records)} images, {labelled} faces)")
    for column in (
        "faces (height)",
        "n",
        "ours NME",
        "median",
        f"> {FAILURE_NME}",
        "box-layout NME",
        f"> {FAILURE_NME} ",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        o, b = row["ours"], row["baseline"]
        table.add_row(
            row["faces"], str(o["faces"]), f"{o['nme']:.4f}", f"{o['median']:.4f}",
            f"{o[f'over_{FAILURE_NME}']:.1%}", f"{b['nme']:.4f}", f"{b[f'over_{FAILURE_NME}']:.1%}",
        )  # fmt: skip
    Console().print(table)
    print(f"CPU: {cpu_name()}; mean layout from {layout_images} train images: {np.round(layout, 3).tolist()}")
    if out is not None:
        report = {"detector": detector, "labelled_faces": labelled, "rows": rows, "layout": layout.tolist()}
        with atomic_write(out, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    typer.run(main)

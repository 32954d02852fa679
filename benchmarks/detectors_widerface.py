"""Every shipped detector beside its peers on the WIDER FACE dev-val (the val images present, the
official protocol): easy / medium / hard AP, the recall of the small faces (under 20 px tall, at
score 0.5, IoU 0.5), and the CPU time of one detection on one thread (median, end to end: image
in, faces out) at 640x480 and 1280x720.

    python benchmarks/detectors_widerface.py [--detector NAME[=WEIGHTS][@SCALES]]... [--yunet]
        [--reference] [--int8] [--repeats 20] [--no-accuracy | --no-timing] [--out out/detectors.json]

Without ``--detector``, every registered detector with bundled weights. ``NAME`` is a registered
detector (or a plan file), ``WEIGHTS`` its weights (default: bundled),
``SCALES`` its pyramid as ``0.5,1,2`` (default: the model's), e.g. ``tinyfaces=w.pth@1,0.5`` for
Tiny Faces without the 2x upsampling. ``--reference`` adds FaceBoxes with the FaceBoxes.PyTorch
weights, ``--yunet`` YuNet-n through OpenCV (the peers of issue 11). ``--int8`` adds, for each
registered detector, its int8 plan (pixel input, entropy calibration on 64 WIDER *train* images),
run by ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import cv2
import numpy as np
import torch
import typer
from _machine import cpu_name, set_threads  # benchmarks/_machine.py
from rich.console import Console
from rich.table import Table
from torchvision.ops import box_iou

from edgevision import load_detector
from edgevision.api import PLAN_SUFFIX
from edgevision.data.io import atomic_write, read_image
from edgevision.data.paths import default_data_dir
from edgevision.data.widerface import load_split
from edgevision.detection.detections import Detections
from edgevision.detection.detector import parse_scales
from edgevision.evaluation.widerface import write_prediction_file
from edgevision.evaluation.widerface_predict import evaluate_prediction_dir, widerface_ground_truth
from edgevision.models import DETECTION, list_models, model_info

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = default_data_dir(REPO_ROOT)
SIZES = {"640x480": (480, 640), "1280x720": (720, 1280)}
SMALL_PX = 20  # "faces under 20 px" (issue 11's ablation)


@dataclass
class Entry:
    label: str
    detect: Callable[[np.ndarray], Detections]


class YuNetPeer:
    """YuNet through OpenCV at the image's own size, as the teachers run it, to score."""

    def __init__(self, weights: Path) -> None:
        from edgevision.training.teachers import YuNetTeacher

        self.teacher = YuNetTeacher(weights)

    def __call__(self, image: np.ndarray) -> Detections:
        return self.teacher(image)


def parse_detector(spec: str, label: str | None = None) -> Entry:
    """``NAME[=WEIGHTS][@SCALES]`` (NAME a registered detector or a plan file) -> an entry running
    that detector on the CPU, labelled ``label`` (default: the spec's name and weights file)."""
    name, _, scales = spec.partition("@")
    name, _, weights = name.partition("=")
    pyramid = parse_scales(scales, "@SCALES") if scales else None
    device = None if name.endswith(PLAN_SUFFIX) else "cpu"  # a plan runs on its backend
    detector = load_detector(name, weights=weights or None, device=device, scales=pyramid)
    label = label or (name + (f" ({Path(weights).name})" if weights else ""))
    return Entry(f"{label} @ {','.join(f'{s:g}' for s in detector.scales)}", detector.detect)


def int8_plan(spec: str, folder: Path) -> Entry:
    """The int8 plan of ``NAME[=WEIGHTS][@SCALES]`` (pixel input, entropy calibration on 64 WIDER
    train images; its pyramid kept), as an entry."""
    from edgevision.deploy.builder import BuildOptions, build_engine

    model, _, scales = spec.partition("@")
    name, _, weights = model.partition("=")
    plan = folder / f"{name}_{hashlib.sha256(model.encode()).hexdigest()[:8]}.plan"
    if not plan.exists():  # one build serves every pyramid of the same weights
        calibration = DATA / "widerface" / "WIDER_train" / "images"
        options = BuildOptions(precision="int8", calibration_dir=calibration, pixel_input=True)
        build_engine(name, plan, options, weights=weights or None)
    return parse_detector(f"{plan}{'@' + scales if scales else ''}", f"{name} int8 plan")


def evaluate(entry: Entry, root: Path) -> dict[str, Any]:
    """AP per subset and the recall of faces under SMALL_PX on the val images present."""
    split = load_split(root, "val")
    gt = widerface_ground_truth(root)
    small_found = small_total = 0
    with tempfile.TemporaryDirectory() as folder:
        keys = []
        for record in split.records:
            detections = entry.detect(read_image(split.image_path(record)))
            rows = np.asarray(detections.to_xywh_rows(), dtype=np.float64).reshape(-1, 5)
            write_prediction_file(folder, record.key, rows)
            keys.append(record.key)
            faces = torch.from_numpy(record.boxes[record.valid]).float()
            small = faces[(faces[:, 3] - faces[:, 1]) < SMALL_PX]
            confident = detections.above(0.5).boxes
            small_total += len(small)
            if len(small) and len(confident):
                small_found += int((box_iou(small, confident).max(dim=1).values >= 0.5).sum())
        result = evaluate_prediction_dir(folder, gt, keys)
    return {
        "set": result.label,
        "ap": result.ap,
        f"recall_under_{SMALL_PX}px": small_found / max(small_total, 1),
        f"faces_under_{SMALL_PX}px": small_total,
    }


def time_ms(entry: Entry, photo: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms of one detection on one thread at each of SIZES."""
    set_threads(1)
    times = {}
    for name, (height, width) in SIZES.items():
        image = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
        entry.detect(image)  # warm-up
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            entry.detect(image)
            samples.append((time.perf_counter() - start) * 1e3)
        times[name] = float(np.median(samples))
    return times


def main(
    detector: Annotated[list[str] | None, typer.Option(help="NAME[=WEIGHTS][@SCALES]; repeat it")] = None,
    reference: Annotated[bool, typer.Option(help="add FaceBoxes with the FaceBoxes.PyTorch weights")] = False,
    yunet: Annotated[bool, typer.Option(help="add YuNet-n through OpenCV")] = False,
    data: Annotated[Path, typer.Option(help="WIDER FACE root")] = DATA / "widerface",
    repeats: Annotated[int, typer.Option(min=1, help="timed detections per size")] = 20,
    int8: Annotated[bool, typer.Option(help="add each registered detector's int8 plan")] = False,
    out: Annotated[Path | None, typer.Option(help="also write the figures as JSON")] = None,
    accuracy: Annotated[bool, typer.Option(help="measure dev-val AP and small-face recall")] = True,
    timing: Annotated[bool, typer.Option(help="measure the 1-thread CPU time")] = True,
) -> None:
    # Default: every registered detector with bundled weights.
    specs = detector or [name for name in list_models(DETECTION) if model_info(name).weights is not None]
    entries = [parse_detector(spec) for spec in specs]
    plans = tempfile.TemporaryDirectory()
    if int8:
        entries += [
            int8_plan(spec, Path(plans.name))
            for spec in specs
            if not spec.partition("@")[0].endswith(".plan")
        ]
    if reference:
        path = DATA / "weights" / "faceboxes_reference" / "FaceBoxesProd.pth"
        entries.append(parse_detector(f"faceboxes={path}"))
    if yunet:
        entries.append(
            Entry("yunet-n (OpenCV)", YuNetPeer(DATA / "weights" / "yunet" / "yunet_n_dynamic.onnx"))
        )
    photo = read_image(REPO_ROOT / "src" / "edgevision" / "assets" / "astronaut.png")
    rows = []
    for entry in entries:
        set_threads(2)
        figures = evaluate(entry, data) if accuracy else {}
        if timing:
            figures["ms"] = time_ms(entry, photo, repeats)
        rows.append({"detector": entry.label, **figures})
        Console().print(f"{entry.label}: {json.dumps(figures)}")
    dev_val = rows[0].get("set", "AP not measured")
    table = Table(title=f"WIDER FACE dev-val ({dev_val}); CPU ms, 1 thread, {cpu_name()}")
    for column in ("detector", "easy", "medium", "hard", f"recall <{SMALL_PX}px", *SIZES):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for row in rows:
        ap = [f"{row['ap'][s]:.3f}" if accuracy else "-" for s in ("easy", "medium", "hard")]
        recall = f"{row[f'recall_under_{SMALL_PX}px']:.3f}" if accuracy else "-"
        ms = [f"{row['ms'][s]:.1f}" if timing else "-" for s in SIZES]
        table.add_row(row["detector"], *ap, recall, *ms)
    Console(width=140).print(table)
    if out is not None:
        with atomic_write(out, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    typer.run(main)

"""How fast is our FaceBoxes on the CPU, eager and under ONNX Runtime, against the paper and YuNet?

Times, on one photo resized to 640x480 (VGA), the network forward alone and the end-to-end detect
(preprocess + forward + decode/NMS) at each thread count: median and p90 over ``--repeats`` runs
after ``--warmup`` runs. The paper's figure: 20 FPS (50 ms) on one E5-2660v3 @2.60GHz core at VGA
(FaceBoxes, IJCB 2017, abstract). YuNet-n, the peer to beat, runs end to end through
``cv2.FaceDetectorYN`` (its own pre- and post-processing, score threshold 0.9, where ours keeps
boxes above 0.05 for NMS).

    python benchmarks/detect_speed.py --weights ../shared/data/weights/faceboxes_reference/FaceBoxesProd.pth
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import torch
import typer
from _machine import cpu_name, set_threads  # benchmarks/_machine.py
from rich.console import Console
from rich.table import Table

from edgevision import load_detector
from edgevision.data.io import read_image
from edgevision.data.paths import default_data_dir
from edgevision.deploy.export import OnnxNetwork, export_onnx
from edgevision.detection.detector import Detector
from edgevision.errors import EdgeVisionError

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = default_data_dir(REPO_ROOT)
VGA = (480, 640)  # (H, W)
# The paper's figure (abstract): 20 FPS on one E5-2660v3 @2.60GHz core at VGA, in Caffe.
PAPER = ("FaceBoxes (paper)", "Caffe, E5-2660v3", "detect", 1, 50.0, None)

Case = tuple[str, str, str, Callable[[], object]]  # (model, runtime, stage, the call to time)


@dataclass(frozen=True)
class Row:
    model: str
    runtime: str
    stage: str
    threads: int
    median_ms: float
    p90_ms: float | None  # None: a published figure


def time_ms(fn: Callable[[], object], repeats: int, warmup: int) -> tuple[float, float]:
    """Median and p90 wall time of ``fn()`` in ms, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples)), float(np.percentile(samples, 90))


def faceboxes_cases(detector: Detector, onnx_path: Path, image: np.ndarray, threads: int) -> list[Case]:
    """FaceBoxes in torch eager and in ONNX Runtime, forward only and end to end."""
    model = detector.model
    x = torch.from_numpy(model.input_preprocessing.network_input(image))[None]
    runtime = OnnxNetwork(onnx_path, model, intra_op_num_threads=threads)
    onnx_detector = Detector(model, detector.postprocess, torch.device("cpu"), network=runtime)

    def eager_forward() -> object:
        with torch.inference_mode():
            return model(x)

    return [
        ("FaceBoxes", "torch eager", "forward", eager_forward),
        ("FaceBoxes", "torch eager", "detect", lambda: detector.detect(image)),
        ("FaceBoxes", "ONNX Runtime", "forward", lambda: runtime(x)),
        ("FaceBoxes", "ONNX Runtime", "detect", lambda: onnx_detector.detect(image)),
    ]


def yunet_case(path: Path, image: np.ndarray) -> Case:
    """YuNet through OpenCV, whose detect is end to end."""
    yunet = cv2.FaceDetectorYN.create(str(path), "", (image.shape[1], image.shape[0]))
    return (path.stem, "OpenCV DNN", "detect", lambda: yunet.detect(image))


def measure(
    cases_for: Callable[[int], list[Case]], threads: list[int], repeats: int, warmup: int
) -> list[Row]:
    """A row per case and thread count."""
    rows = []
    for n in threads:
        set_threads(n)
        rows += [Row(*case[:3], n, *time_ms(case[3], repeats, warmup)) for case in cases_for(n)]
    return rows


def render(rows: list[Row], title: str, caption: str) -> Table:
    table = Table(title=title, caption=caption)
    for header in ("model", "runtime", "stage", "threads"):
        table.add_column(header)
    for header in ("median ms", "p90 ms", "FPS"):
        table.add_column(header, justify="right")
    for row in sorted(rows, key=lambda row: (row.model, row.runtime, row.stage, row.threads)):
        p90 = "-" if row.p90_ms is None else f"{row.p90_ms:.1f}"
        fps = f"{1e3 / row.median_ms:.0f}"
        median = f"{row.median_ms:.1f}"
        table.add_row(row.model, row.runtime, row.stage, str(row.threads), median, p90, fps)
    return table


def main(
    weights: Annotated[
        Path | None, typer.Option(help="FaceBoxes weights; default: the bundled ones.")
    ] = None,
    image: Annotated[Path, typer.Option(help="A photo, resized to 640x480.")] = (
        REPO_ROOT / "src" / "edgevision" / "assets" / "astronaut.png"
    ),
    yunet: Annotated[Path, typer.Option(help="YuNet ONNX file for the peer row (skipped if absent).")] = (
        DATA_DIR / "weights" / "yunet" / "yunet_n_dynamic.onnx"
    ),
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per row.")] = 50,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs before them.")] = 5,
    threads: Annotated[list[int] | None, typer.Option(help="Thread counts; repeat the option.")] = None,
) -> None:
    console = Console()
    if not console.is_terminal:
        console.width = 110  # rich's 80 columns for a pipe or file would wrap the table
    try:
        detector = load_detector("faceboxes", weights=weights, device="cpu")
        photo = cv2.resize(read_image(image), (VGA[1], VGA[0]), interpolation=cv2.INTER_AREA)
    except EdgeVisionError as error:
        console.print(f"error: {error}")
        raise typer.Exit(2) from error
    if not yunet.is_file():
        console.print(f"YuNet row skipped: no file at {yunet}")

    with tempfile.TemporaryDirectory() as folder:
        onnx_path = export_onnx(detector.model, Path(folder) / "faceboxes.onnx", input_size=VGA)

        def cases_for(n: int) -> list[Case]:
            cases = faceboxes_cases(detector, onnx_path, photo, n)
            return cases + [yunet_case(yunet, photo)] if yunet.is_file() else cases

        rows = measure(cases_for, threads or [1, 2], repeats, warmup)
    rows.append(Row(*PAPER))
    caption = (
        f"{cpu_name()}, {os.cpu_count()} logical CPUs; {image.name} resized to 640x480; "
        f"{repeats} timed runs after {warmup} warm-up; weights: {weights or 'bundled'}"
    )
    console.print(render(rows, "Face detection latency at VGA 640x480 on the CPU", caption))


if __name__ == "__main__":
    typer.run(main)

"""Our TensorRT-style INT8 calibration against ONNX Runtime's ``quantize_static``, on FaceBoxes.

Calibrates the exported FaceBoxes on ``--count`` WIDER FACE train images at 640x480 (spread evenly
over the events) with our entropy calibrator, TensorRT's histograms (ReLU zeros kept) and with the
zeros skipped, and with ``quantize_static(calibrate_method=Entropy)``, both with U8 activations and
S8 per-channel weights, and once more with all of ``quantize_static``'s defaults (S8 activations,
per-tensor weights). Prints the amax each method gives a few tensors, then per model the one-thread
median latency of ``session.run`` and its fidelity to fp32 on ``--held-out`` other images.

    python benchmarks/calibration_vs_ort.py --count 32
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import onnxruntime as ort
import typer
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantType, quantize_static
from onnxruntime.quantization.calibrate import load_tensors_data
from rich.console import Console
from rich.table import Table

from edgevision import load_detector
from edgevision.data.paths import default_data_dir
from edgevision.data.preprocessing import Preprocessing, model_preprocessing
from edgevision.deploy.calibration import (
    ImageFolderBatches,
    TensorStats,
    calibrate,
    collect_activation_histograms,
    mse_amax,
    percentile_amax,
)
from edgevision.deploy.export import INPUT_NAME, export_onnx
from edgevision.deploy.quantize import quantize_qdq
from edgevision.errors import EdgeVisionError

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = default_data_dir(REPO_ROOT)
VGA = (480, 640)  # (H, W)
TABLE_ROWS = 10  # tensors shown in the amax table

Batches = list[dict[str, np.ndarray]]


class ListReader(CalibrationDataReader):
    """ORT's calibration reader over a list of batches."""

    def __init__(self, batches: Batches) -> None:
        self.batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def split(folder: Path, preprocessing: Preprocessing, count: int, held_out: int) -> tuple[Batches, Batches]:
    """``count`` calibration images spread over ``folder`` and ``held_out`` others, as batches of 1."""
    calibration = ImageFolderBatches(folder, INPUT_NAME, VGA, preprocessing, limit=count)
    pool = ImageFolderBatches(folder, INPUT_NAME, VGA, preprocessing)
    taken = set(calibration.paths)
    others = [path for path in pool.paths if path not in taken]
    chosen = [others[int(k)] for k in np.linspace(0, len(others) - 1, held_out).round()]
    return list(calibration), [{INPUT_NAME: pool.load(path)[None]} for path in chosen]


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def latencies_ms(
    sessions: dict[str, ort.InferenceSession], feed: dict[str, np.ndarray], repeats: int, warmup: int
) -> dict[str, float]:
    """Median ms of ``session.run`` per session, timed round-robin so that load from other processes
    on the machine falls on every model alike."""
    for session in sessions.values():
        for _ in range(warmup):
            session.run(None, feed)
    samples: dict[str, list[float]] = {label: [] for label in sessions}
    for _ in range(repeats):
        for label, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feed)
            samples[label].append((time.perf_counter() - start) * 1e3)
    return {label: float(np.median(values)) for label, values in samples.items()}


def one_thread_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fidelity(outputs: list[list[np.ndarray]], reference: list[list[np.ndarray]]) -> tuple[float, float, int]:
    """Mean relative L2 error of ``loc`` and of ``conf``, and the anchors with face probability > 0.5."""
    loc = np.mean([np.linalg.norm(o[0] - r[0]) / np.linalg.norm(r[0]) for o, r in zip(outputs, reference)])
    conf = np.mean([np.linalg.norm(o[1] - r[1]) / np.linalg.norm(r[1]) for o, r in zip(outputs, reference)])
    faces = sum(int((np.diff(o[1], axis=-1) > 0).sum()) for o in outputs)  # softmax > 0.5 <=> logit gap > 0
    return float(loc), float(conf), faces


def amax_table(
    stats: dict[str, TensorStats], ours: dict[str, dict], ort_ranges: dict, rows: list[str]
) -> Table:
    table = Table(title="Per-tensor amax (symmetric threshold) on the calibration set")
    table.add_column("tensor")
    methods = ["max |x|", *ours, "percentile 99.99", "mse (int8)", "ORT Entropy (min, max)"]
    for header in methods:
        table.add_column(header, justify="right")
    for name in rows:
        s = stats[name]
        low, high = (float(np.ravel(v)[0]) for v in ort_ranges[name].range_value)
        table.add_row(
            name,
            f"{s.amax:.3f}",
            *(f"{ranges[name].amax:.3f}" for ranges in ours.values()),
            f"{percentile_amax(s.hist, s.edges, 99.99):.3f}",
            f"{mse_amax(s.hist, s.edges):.3f}",
            f"({low:.3f}, {high:.3f})",
        )
    return table


def main(
    weights: Annotated[
        Path | None, typer.Option(help="FaceBoxes weights; default: the bundled ones.")
    ] = None,
    images: Annotated[Path, typer.Option(help="Calibration image folder.")] = (
        DATA_DIR / "widerface" / "WIDER_train" / "images"
    ),
    count: Annotated[int, typer.Option(min=1, help="Calibration images.")] = 32,
    held_out: Annotated[int, typer.Option(min=1, help="Other images for the fidelity columns.")] = 8,
    repeats: Annotated[int, typer.Option(min=1, help="Timed runs per model.")] = 50,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs before them.")] = 10,
) -> None:
    console = Console(width=150)
    try:
        detector = load_detector("faceboxes", weights=weights, device="cpu")
        calibration, test = split(images, model_preprocessing(detector.model), count, held_out)
    except EdgeVisionError as error:
        console.print(f"error: {error}")
        raise typer.Exit(2) from error

    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        fp32 = export_onnx(detector.model, folder / "fp32.onnx", input_size=VGA)
        stats, collect_s = timed(lambda: collect_activation_histograms(fp32, calibration))
        ours = {}
        seconds = {}
        for label, skip_zeros in (("ours: TensorRT entropy", False), ("ours: entropy, zeros skipped", True)):
            ours[label], seconds[label] = timed(
                lambda z=skip_zeros: calibrate(stats, "entropy", skip_zeros=z)
            )
        cache = folder / "ort_ranges.json"
        models = {"fp32": fp32}
        for label, ranges in ours.items():
            models[label] = quantize_qdq(fp32, ranges, folder / f"{len(models)}.onnx")
        models["ORT quantize_static Entropy"] = folder / "ort.onnx"
        _, ort_s = timed(
            lambda: quantize_static(
                fp32,
                models["ORT quantize_static Entropy"],
                ListReader(calibration),
                calibrate_method=CalibrationMethod.Entropy,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibration_cache_path=cache,
            )
        )
        models["ORT quantize_static, all defaults"] = folder / "ort_defaults.onnx"
        quantize_static(  # the same Entropy ranges, read back from the cache
            fp32,
            models["ORT quantize_static, all defaults"],
            None,
            calibrate_method=CalibrationMethod.Entropy,
            calibration_cache_path=cache,
        )
        ort_ranges = load_tensors_data(cache)

        names = [name for name in stats if name in ort_ranges]
        rows = [names[int(k)] for k in np.linspace(0, len(names) - 1, TABLE_ROWS).round()]
        console.print(amax_table(stats, ours, ort_ranges, rows))
        console.print(
            f"{len(stats)} tensors; our two-pass collection {collect_s:.1f} s, entropy search "
            + ", ".join(f"{label} {s:.1f} s" for label, s in seconds.items())
            + f"; ORT quantize_static (collection + calibration + rewrite) {ort_s:.1f} s"
        )
        minmax = sum(float(np.ravel(ort_ranges[name].range_value[1])[0]) == stats[name].max for name in names)
        console.print(f"ORT Entropy's upper bound is the observed max for {minmax} of {len(names)} tensors")

        sessions = {label: one_thread_session(path) for label, path in models.items()}
        outputs = {label: [session.run(None, feed) for feed in test] for label, session in sessions.items()}
        medians = latencies_ms(sessions, test[0], repeats, warmup)
        table = Table(
            title=f"FaceBoxes 640x480, ONNX Runtime {ort.__version__}, 1 thread, {len(test)} held-out images"
        )
        for header in ("model", "median ms", "vs fp32", "rel L2 loc", "rel L2 conf", "anchors > 0.5"):
            table.add_column(header, justify="left" if header == "model" else "right")
        for label, median in medians.items():
            loc, conf, faces = fidelity(outputs[label], outputs["fp32"])
            speedup = medians["fp32"] / median
            table.add_row(label, f"{median:.2f}", f"{speedup:.2f}x", f"{loc:.4f}", f"{conf:.4f}", str(faces))
        console.print(table)


if __name__ == "__main__":
    typer.run(main)

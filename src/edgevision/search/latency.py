"""A child network's CPU latency: measured with our deployment engine, or predicted by a linear
model fitted to such measurements (MnasNet, Tan et al. CVPR 2019, Sec. 3, measures each model on
the target device; a fitted predictor, as in ProxylessNAS / FBNet's lookup tables, makes a search
step cost nothing).

:func:`measure_latency_ms` builds the child (N = 1, F = 8, two classes, untrained: latency does
not depend on the weights) into an int8 plan with :func:`~edgevision.deploy.builder.build_engine`
(ONNX Runtime backend, entropy calibration), loads it with
:func:`~edgevision.deploy.runtime.load_engine` on one thread, and times it.

What is timed: a batch of :data:`TIMING_BATCH` 32x32 patches, the resolution the patches are
cut at and the deployed patch classifier's input. NASNet-A's child takes about 2.5 ms a patch
(int8, one thread), but cells of pooling and identity ops take a fraction of that, where the
session's fixed cost and the timer's resolution weigh; a batch of 4 keeps every child above a
millisecond, with a repeat-to-repeat spread of a few percent (docs/benchmarks.md). A batch keeps
the network what is searched, where a larger single image would time the cells at resolutions
the search never trains at.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgevision.data.io import atomic_write, read_json
from edgevision.deploy.builder import build_engine
from edgevision.deploy.builder.options import BuildOptions
from edgevision.deploy.export import export_onnx
from edgevision.deploy.runtime import load_engine
from edgevision.errors import ConfigError, DatasetError, InputFileError
from edgevision.layers.nas_ops import OPS, Genotype
from edgevision.search.proxy_task import build_child
from edgevision.validation import check_integer

TIMING_BATCH = 4  # 32x32 patches per timed run
PATCH_SIZE = 32
STEADY_SPREAD = 0.05  # a round of repeats is kept when its IQR is within 5 % of its median
MAX_ROUNDS = 5  # else it is timed again, at most this many times
CALIBRATION_IMAGES = 8  # the ranges do not change the plan's structure, so its speed: a few do


def measure_latency_ms(genotype: Genotype, **options: Any) -> float:
    """Median milliseconds of :func:`measure_latency_times` (same keyword options)."""
    return float(np.median(measure_latency_times(genotype, **options)))


def measure_latency_times(
    genotype: Genotype,
    *,
    input_size: int = PATCH_SIZE,
    batch: int = TIMING_BATCH,
    threads: int = 1,
    repeats: int = 30,
    warmup: int = 5,
    clock: str = "cpu",
    calibration: np.ndarray | None = None,
) -> np.ndarray:
    """Milliseconds of each of ``repeats`` runs (after ``warmup`` untimed ones) of ``genotype``'s
    child on ``batch`` images of ``input_size x input_size`` through an int8 plan on ``threads``
    threads; ``(repeats,)`` float64. A round of repeats whose :func:`relative_spread` exceeds
    :data:`STEADY_SPREAD` is repeated, up to :data:`MAX_ROUNDS` rounds, and the steadiest returned.

    ``clock``: ``"cpu"`` (one thread only) times each run by the calling thread's CPU time
    (``time.thread_time``): with one thread ONNX Runtime runs the whole graph on it, so this is the
    run's latency on an idle core, and other processes on the machine do not stretch it (measured
    at load 8.8 on 2 cores, NASNet-A's child: wall median 50.6 ms with a 43 % spread, CPU 10.3 ms
    with 4 %). ``"wall"``: ``time.perf_counter``, what a user waits, load included.

    ``calibration``: ``(n, H, W, 3)`` uint8 RGB images to calibrate on (e.g. face patches);
    ``None``: :data:`CALIBRATION_IMAGES` fixed noise images.
    """
    for name, value, low in (
        ("input_size", input_size, 8),
        ("batch", batch, 1),
        ("threads", threads, 1),
        ("repeats", repeats, 1),
        ("warmup", warmup, 0),
    ):
        check_integer(name, value, low)
    if clock not in ("cpu", "wall") or (clock == "cpu" and threads != 1):
        raise ConfigError(f"clock must be 'wall', or 'cpu' with one thread; got {clock!r} with {threads}")
    if calibration is None:
        calibration = np.random.default_rng(0).integers(
            0, 256, (CALIBRATION_IMAGES, input_size, input_size, 3)
        )
    calibration = np.asarray(calibration)
    if calibration.ndim != 4 or calibration.shape[3] != 3 or len(calibration) == 0:
        raise ConfigError(f"calibration must be (n, H, W, 3) images, got shape {calibration.shape}")
    model = build_child(genotype).eval()
    with tempfile.TemporaryDirectory(prefix="latency_") as folder:
        folder = Path(folder)
        images = folder / "calibration"
        images.mkdir()
        for i, image in enumerate(calibration.astype(np.uint8)):
            cv2.imwrite(str(images / f"{i:03d}.png"), image[:, :, ::-1])
        onnx_path = export_onnx(
            model,
            folder / "child.onnx",
            (input_size, input_size),
            dynamic=False,
            optimize=False,
            dynamic_batch=True,
        )
        options = BuildOptions(
            precision="int8",
            calibrator="minmax",  # the ranges do not change the plan's speed; entropy costs ~10 s
            calibration_dir=images,
            calibration_images=len(calibration),
            timing_cache=None,
            input_size=(input_size, input_size),
        )
        build_engine(onnx_path, folder / "child.plan", options)
        engine = load_engine(folder / "child.plan", threads=threads)
    x = np.random.default_rng(1).standard_normal((batch, 3, input_size, input_size)).astype(np.float32)
    for _ in range(warmup):
        engine.run(x)
    # Other processes on the machine stretch some runs: a round whose spread says it was
    # disturbed is timed again (timing costs milliseconds, the build seconds), the steadiest kept.
    best = None
    for _ in range(MAX_ROUNDS):
        wall, cpu = np.empty(repeats), np.empty(repeats)
        process_start = time.process_time()
        for i in range(repeats):
            start, start_cpu = time.perf_counter(), time.thread_time()
            engine.run(x)
            cpu[i], wall[i] = time.thread_time() - start_cpu, time.perf_counter() - start
        # The process's CPU time counts every thread's; if the runtime computed on other threads,
        # this thread's share would be small, and its CPU time not the latency.
        if clock == "cpu" and cpu.sum() < 0.5 * (time.process_time() - process_start):
            raise ConfigError(
                "the runtime did not run the plan on the calling thread, so its CPU time is not the "
                "latency; time with clock='wall'"
            )
        times = (cpu if clock == "cpu" else wall) * 1e3
        spread = relative_spread(times)
        if best is None or spread < relative_spread(best):
            best = times
        if spread <= STEADY_SPREAD:
            break
    return best


def relative_spread(times_ms: np.ndarray) -> float:
    """Interquartile range over median: how much the repeats of one timing disagree."""
    q1, median, q3 = np.percentile(times_ms, [25, 50, 75])
    return float((q3 - q1) / median)


# ------------------------------------------------------------------------------------------------
# The predictor
# ------------------------------------------------------------------------------------------------

CELL_TYPES = ("normal", "reduction")


# Every cell has 2 x B ops, so the op counts of a cell sum to a constant: counting every op would
# make the features collinear with the constant term. Identity is the reference op, its cost in
# the constant, and each other op's coefficient is its cost over identity's.
REFERENCE_OP = "identity"
COUNTED_OPS = tuple(name for name in OPS if name != REFERENCE_OP)


def feature_names() -> list[str]:
    """The predictor's inputs: a constant, then per cell type the count of each op but identity
    and the number of concatenated states (it sets the next cell's input channels)."""
    return ["constant"] + [f"{cell}:{name}" for cell in CELL_TYPES for name in (*COUNTED_OPS, "concat")]


def latency_features(genotype: Genotype) -> np.ndarray:
    """``(len(feature_names()),)`` float64 counts of ``genotype`` (see :func:`feature_names`)."""
    values = [1.0]
    for cell in (genotype.normal, genotype.reduction):
        ops = [op for block in cell.blocks for op in block.ops]
        values += [float(ops.count(name)) for name in COUNTED_OPS] + [float(len(cell.concat))]
    return np.asarray(values)


class LatencyModel:
    """``ms = coefficients . latency_features(genotype)``, fitted by ridge least squares.

    Args:
        coefficients: one per :func:`feature_names` entry (milliseconds per count).
        meta: what it was fitted to (input size, batch, threads, machine, held-out error...).
    """

    def __init__(self, coefficients: Sequence[float], meta: dict | None = None) -> None:
        coefficients = np.asarray(coefficients, np.float64)
        if coefficients.shape != (len(feature_names()),) or not np.isfinite(coefficients).all():
            raise ConfigError(f"a latency model needs {len(feature_names())} finite coefficients")
        self.coefficients = coefficients
        self.meta = dict(meta or {})

    @classmethod
    def fit(
        cls,
        genotypes: Sequence[Genotype],
        latencies_ms: Sequence[float],
        *,
        ridge: float = 1e-3,
        meta: dict | None = None,
    ) -> LatencyModel:
        """Least squares with an L2 penalty ``ridge`` on every coefficient but the constant (a
        feature few of the genotypes vary leaves its coefficient near 0 rather than wild)."""
        y = np.asarray(latencies_ms, np.float64)
        if len(genotypes) != len(y) or len(y) < 2:
            raise ConfigError(
                f"fit needs matching genotypes and latencies, at least 2; got {len(genotypes)}, {len(y)}"
            )
        if not (np.isfinite(y).all() and (y > 0).all()):
            raise ConfigError("latencies must be finite and positive")
        if not (math.isfinite(ridge) and ridge >= 0):
            raise ConfigError(f"ridge must be a finite number >= 0, got {ridge}")
        x = np.stack([latency_features(g) for g in genotypes])
        penalty = np.full(x.shape[1], ridge)
        penalty[0] = 0.0
        coefficients = (
            np.linalg.solve(x.T @ x + np.diag(penalty) * len(y), x.T @ y)
            if ridge
            else np.linalg.lstsq(x, y, rcond=None)[0]
        )
        return cls(coefficients, meta)

    def predict(self, genotype: Genotype) -> float:
        """Predicted milliseconds."""
        return float(latency_features(genotype) @ self.coefficients)

    def to_dict(self) -> dict:
        return {
            "features": feature_names(),
            "coefficients": dict(zip(feature_names(), self.coefficients.tolist(), strict=True)),
            "meta": self.meta,
        }

    def save(self, path: str | Path) -> None:
        with atomic_write(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=1)
            handle.write("\n")

    @classmethod
    def load(cls, path: str | Path) -> LatencyModel:
        """Read a model written by :meth:`save`.

        Raises:
            InputFileError: not a latency model file, or one for another op vocabulary.
        """
        try:
            data = read_json(path, "latency model")
        except DatasetError as error:
            raise InputFileError(str(error)) from None
        try:
            coefficients = data["coefficients"]
            if sorted(coefficients) != sorted(feature_names()):
                raise InputFileError(f"{path} is a latency model for other features than this version's ops")
            return cls([coefficients[name] for name in feature_names()], data.get("meta"))
        except (TypeError, KeyError, ValueError) as error:  # ConfigError is a ValueError
            raise InputFileError(f"{path} is not a latency model file: {error}") from None

"""Does the engine's INT8 plan keep the accuracy, and how much faster is it than fp32?

The acceptance questions of the INT8 engine, in one run (about 4 minutes on 2 cores):

1. FaceBoxes accuracy: fp32 and int8 plans from :func:`edgevision.deploy.builder.build_engine` (int8:
   entropy calibration on ``--calibration-images`` WIDER FACE *train* images, never val, and uint8
   pixel input unless ``--no-pixel-input``: the deployment build), and the
   torch network, each scored on the WIDER val subset with the official protocol as
   ``edgevision eval widerface`` runs it (native resolution, the default post-processing). Acceptance:
   int8 loses at most 1 AP point on easy and on medium.
2. MobileNetV2 top-1 agreement: fp32 and int8 plans at 224x224 (calibrated on the same train images),
   top-1 against torch fp32 on other real photos: every WIDER train image not used for calibration
   and every WIDER val image (``--agreement-images`` takes fewer), resized to 224x224 with the model's
   preprocessing, also on the photos where torch is confident, and for int8 plans calibrated otherwise
   (``--compare-calibrators``, default percentile). Acceptance: at least 97 % agreement.
3. Speed: median ms of the network forward for FaceBoxes at 640x480 and MobileNetV2 at 224x224, batch
   1 and 8, 1 and 2 threads, in torch eager, ONNX Runtime fp32 (``export_onnx(optimize=True)``), the
   fp32 plan and the int8 plan (``load_engine(path, threads=t)``). The four runtimes of a row are
   timed in rotation (one call each per round, the starting one rotating), so that load from other
   processes falls on all of them alike. Targets: int8 <= 0.5x ONNX Runtime fp32 and <= 0.2x torch
   at 640x480, 1 thread, batch 1. Every runtime gets the same photos: the int8 plan as uint8 pixels,
   the others as float network input. The plans and torch take a batch of 8 at once; the ONNX Runtime
   export has a fixed batch of 1 and runs it as 8 runs.
4. Where the time goes: ONNX Runtime's per-node profile (``SessionOptions.enable_profiling``) of the
   three ONNX Runtime models of FaceBoxes at 640x480, 1 thread.

Torch and OpenCV run on one thread for parts 1 and 2 (the plans' detectors on ONNX Runtime's
default). Markdown tables are printed and written, with the figures as JSON, to ``--out``.

    python benchmarks/engine_int8.py --out /tmp/engine_bench
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import onnxruntime as ort
import torch
import typer
from _machine import cpu_name, set_threads  # benchmarks/_machine.py
from torch import nn

from edgevision import load_detector
from edgevision.data.io import read_image
from edgevision.data.paths import default_data_dir
from edgevision.data.preprocessing import Preprocessing, model_preprocessing
from edgevision.deploy.builder import BuildOptions, build_engine
from edgevision.deploy.calibration import ImageFolderBatches
from edgevision.deploy.export import INPUT_NAME, export_onnx
from edgevision.deploy.runtime import Engine, load_engine
from edgevision.errors import EdgeVisionError
from edgevision.evaluation.widerface_predict import run_widerface
from edgevision.models import create_model, model_info

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = default_data_dir(REPO_ROOT)
VGA = (480, 640)  # (H, W)
IMAGENET = (224, 224)
SUBSETS = ("easy", "medium", "hard")
RUNTIMES = ("torch eager", "ORT fp32", "engine fp32", "engine int8")
MAX_AP_LOSS = 0.01  # acceptance: int8 loses at most 1 AP point on easy and medium
MIN_AGREEMENT = 0.97  # acceptance: int8 top-1 agrees with torch fp32 on at least 97 % of photos
TARGETS = {"ORT fp32": 0.5, "torch eager": 0.2}  # int8 time / runtime time at VGA, 1 thread, batch 1
CHUNK = 32  # images per chunk in the agreement part
CONFIDENT = 0.5  # the agreement part's extra row: photos where torch's top-1 softmax is at least this
PROFILE_TOP = 8  # nodes per model in the profile table

START = time.perf_counter()


def say(message: str) -> None:
    """A progress line with the seconds since the start."""
    print(f"[{time.perf_counter() - START:6.1f} s] {message}", flush=True)


def markdown(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


class Report:
    """What the run prints as its result: tables and conclusions, kept for the text file."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        print("\n" + text + "\n", flush=True)
        self.parts.append(text)

    def text(self) -> str:
        return "\n\n".join(self.parts) + "\n"


def torch_network(name: str, weights: Path | None) -> nn.Module:
    # create_model builds what the weights hold (FaceBoxes' landmark head).
    return create_model(
        name, weights=weights if weights is not None else model_info(name).weights_path
    ).eval()


def build_plans(
    name: str,
    weights: Path | None,
    size: tuple[int, int],
    calibration: Path,
    count: int,
    folder: Path,
    builds: Mapping[str, tuple[str, str, bool]],
) -> tuple[dict[str, Path], dict[str, Any]]:
    """Plans of ``name`` at ``size`` by label: ``builds`` maps each to (precision, calibrator, pixel
    input); int8 plans calibrate on ``count`` images of ``calibration``."""
    paths, info = {}, {}
    for label, (precision, calibrator, pixels) in builds.items():
        options = BuildOptions(
            precision=precision,
            calibration_dir=calibration if precision == "int8" else None,
            calibration_images=count,
            calibrator=calibrator,
            tune=False,
            input_size=size,
            pixel_input=pixels,
        )
        start = time.perf_counter()
        result = build_engine(
            name,
            folder / f"{name}_{label.replace(',', '').replace(' ', '_')}.plan",
            options,
            weights=weights,
            progress=lambda message, label=label: say(f"  build {name} {label}: {message}"),
        )
        seconds = time.perf_counter() - start
        paths[label] = result.path
        info[label] = {"path": str(result.path), "seconds": round(seconds, 1), "log": result.logs}
        say(f"  built {result.path.name} in {seconds:.1f} s {' '.join(result.logs.get('calibrate', ()))}")
    return paths, info


# --- 1. FaceBoxes on the WIDER val subset ---------------------------------------------------------


def faceboxes_accuracy(
    weights: Path | None, plans: dict[str, Path], data: Path, folder: Path, report: Report
) -> dict[str, Any]:
    detectors = {
        "torch eager": lambda: load_detector("faceboxes", weights=weights, device="cpu"),
        "engine fp32": lambda: load_detector(str(plans["fp32"])),
        "engine int8": lambda: load_detector(str(plans["int8"])),
    }
    results: dict[str, dict[str, float]] = {}
    label, seconds = "", {}
    for runtime, make in detectors.items():
        say(f"  WIDER val: {runtime}")
        start = time.perf_counter()
        result = run_widerface(make(), data, folder / runtime.replace(" ", "_") / "predictions")
        seconds[runtime] = time.perf_counter() - start
        results[runtime] = {subset: float(result.ap[subset]) for subset in SUBSETS}
        label = result.label
        say(
            f"  {runtime}: "
            + "  ".join(f"{s} {results[runtime][s]:.4f}" for s in SUBSETS)
            + f"  ({seconds[runtime]:.1f} s)"
        )
    losses = {
        f"int8 vs {reference}": {
            s: 100 * (results[reference][s] - results["engine int8"][s]) for s in SUBSETS
        }
        for reference in ("torch eager", "engine fp32")
    }
    worst = {s: max(loss[s] for loss in losses.values()) for s in SUBSETS}
    passed = all(worst[s] <= 100 * MAX_AP_LOSS for s in ("easy", "medium"))
    rows = [
        [runtime, *(f"{aps[s]:.4f}" for s in SUBSETS), f"{seconds[runtime]:.1f}"]
        for runtime, aps in results.items()
    ]
    rows += [
        [f"AP points lost, {name}", *(f"{loss[s]:+.2f}" for s in SUBSETS), ""]
        for name, loss in losses.items()
    ]
    report.add(
        f"### 1. FaceBoxes (bundled weights) on the {label}, official protocol\n\n"
        + markdown(["model", "easy AP", "medium AP", "hard AP", "eval s"], rows)
        + f"\n\nAcceptance (int8 loses <= {100 * MAX_AP_LOSS:.0f} AP point on easy and medium, against "
        f"both fp32 references): {'PASS' if passed else 'MISS'} (worst loss easy {worst['easy']:+.2f}, "
        f"medium {worst['medium']:+.2f}, hard {worst['hard']:+.2f} points)"
    )
    return {"set": label, "ap": results, "ap_points_lost": losses, "eval_seconds": seconds, "pass": passed}


# --- 2. MobileNetV2 top-1 agreement ----------------------------------------------------------------


def held_out_images(train: Path, val: Path, count: int, limit: int | None) -> dict[str, list[Path]]:
    """The train images the builder did not calibrate on (its own choice of ``count``, spread over the
    sorted list) and the val images; ``limit`` of them in all, spread evenly, when given."""
    prep = Preprocessing()  # only the paths are read
    taken = set(ImageFolderBatches(train, INPUT_NAME, IMAGENET, prep, limit=count).paths)
    pools = {
        "WIDER train, not calibration": [
            p for p in ImageFolderBatches(train, INPUT_NAME, IMAGENET, prep).paths if p not in taken
        ],
        "WIDER val": ImageFolderBatches(val, INPUT_NAME, IMAGENET, prep).paths,
    }
    total = sum(len(paths) for paths in pools.values())
    if limit is None or limit >= total:
        return pools
    flat = [(source, path) for source, paths in pools.items() for path in paths]
    chosen = [flat[int(k)] for k in np.linspace(0, total - 1, limit).round()]
    return {source: [path for s, path in chosen if s == source] for source in pools}


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson 95 % interval of a proportion ``hits / n``."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def mobilenet_agreement(
    model: nn.Module, plans: dict[str, Path], images: dict[str, list[Path]], report: Report
) -> dict[str, Any]:
    """Top-1 of every plan against torch fp32 on ``images`` (by source), and on the photos where
    torch's top-1 softmax probability is at least ``CONFIDENT``."""
    prep = model_preprocessing(model)
    engines = {label: load_engine(path, threads=1) for label, path in plans.items()}
    preps = {label: engine.preprocessing for label, engine in engines.items()}
    top5, confidence = [], []
    top1: dict[str, list[np.ndarray]] = {label: [] for label in engines}
    sources: list[str] = []
    paths = [(source, path) for source, group in images.items() for path in group]
    for start in range(0, len(paths), CHUNK):
        chunk = paths[start : start + CHUNK]
        x = np.stack([prep.apply(read_image(path), IMAGENET) for _, path in chunk])
        with torch.inference_mode():
            logits = model(torch.from_numpy(x))
        top5.append(np.argsort(-logits.numpy(), axis=1)[:, :5])
        confidence.append(torch.softmax(logits, dim=1).amax(dim=1).numpy())
        for label, engine in engines.items():
            feed = np.stack([preps[label].apply(read_image(path), IMAGENET) for _, path in chunk])
            top1[label].append(next(iter(engine.run(feed).values())).argmax(axis=1))
        sources += [source for source, _ in chunk]
        if (start // CHUNK) % 10 == 0 or start + CHUNK >= len(paths):
            say(f"  agreement: {min(start + CHUNK, len(paths))} of {len(paths)} images")
    reference, probability = np.concatenate(top5), np.concatenate(confidence)
    predicted = {label: np.concatenate(values) for label, values in top1.items()}
    source_of = np.array(sources)
    subsets = {source: source_of == source for source in images}
    subsets["all"] = np.ones(len(source_of), bool)
    subsets[f"all, torch top-1 p >= {CONFIDENT}"] = probability >= CONFIDENT
    names = {label: "fp32 plan" if label == "fp32" else label for label in predicted}
    rows, figures = [], {}
    for subset, mask in subsets.items():
        n = int(mask.sum())
        if n == 0:
            continue
        hits = {
            f"{names[label]} vs torch": int((top[mask] == reference[mask, 0]).sum())
            for label, top in predicted.items()
        }
        hits["int8 vs fp32 plan"] = int((predicted["int8"][mask] == predicted["fp32"][mask]).sum())
        hits["int8 in torch top-5"] = int(
            (predicted["int8"][mask, None] == reference[mask]).any(axis=1).sum()
        )
        low, high = wilson(hits["int8 vs torch"], n)
        figures[subset] = {"images": n, **{key: value / n for key, value in hits.items()}}
        figures[subset]["int8 vs torch, wilson 95 %"] = [low, high]
        rows.append(
            [subset, n, *(f"{100 * v / n:.2f}" for v in hits.values()), f"{100 * low:.1f}-{100 * high:.1f}"]
        )
    agreement = figures["all"]["int8 vs torch"]
    passed = agreement >= MIN_AGREEMENT
    headers = ["photos", "n", *hits, "int8 vs torch, 95 % CI"]
    others = "; ".join(
        f"{label}: {100 * figures['all'][f'{label} vs torch']:.2f} %"
        for label in plans
        if label.startswith("int8 ")
    )
    report.add(
        "### 2. MobileNetV2 (torchvision ImageNet weights) at 224x224: top-1 agreement with torch fp32, %\n\n"
        + markdown(headers, rows)
        + f"\n\nint8 is the entropy plan (the build asked for); torch's median top-1 probability on these "
        f"photos is {np.median(probability):.2f}. Acceptance (int8 top-1 = torch fp32 top-1 on >= "
        f"{100 * MIN_AGREEMENT:.0f} %): {'PASS' if passed else 'MISS'} ({100 * agreement:.2f} %"
        + (f"; {others}" if others else "")
        + ")"
    )
    return {
        "by_subset": figures,
        "median_torch_top1_probability": float(np.median(probability)),
        "pass": passed,
    }


# --- 3. Speed ---------------------------------------------------------------------------------------


def timed_rotation(
    cases: dict[str, Callable[[], object]], repeats: int, warmup: int
) -> dict[str, dict[str, float]]:
    """Median and p90 ms per case: ``warmup`` untimed calls each, then ``repeats`` rounds of one timed
    call per case, each round starting one case later than the one before."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    labels = list(cases)
    samples: dict[str, list[float]] = {label: [] for label in labels}
    for round_index in range(repeats):
        shift = round_index % len(labels)
        for label in labels[shift:] + labels[:shift]:
            start = time.perf_counter()
            cases[label]()
            samples[label].append((time.perf_counter() - start) * 1e3)
    return {
        label: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90))}
        for label, v in samples.items()
    }


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def speed_cases(
    model: nn.Module, onnx_path: Path, plans: dict[str, Path], x: np.ndarray, pixels: np.ndarray, threads: int
) -> dict[str, Callable[[], object]]:
    """The four runtimes on the batch ``x`` (``pixels`` for a pixel-input plan, the same photos); the
    fixed-batch ONNX Runtime export runs it item by item."""
    session = ort_session(onnx_path, threads)
    engines = {precision: load_engine(plans[precision], threads=threads) for precision in ("fp32", "int8")}
    feeds = {precision: plan_feed(engine, x, pixels) for precision, engine in engines.items()}
    x_torch = torch.from_numpy(x)
    items = [{INPUT_NAME: x[i : i + 1]} for i in range(len(x))]

    def eager() -> object:
        with torch.inference_mode():
            return model(x_torch)

    return {
        "torch eager": eager,
        "ORT fp32": lambda: [session.run(None, feed) for feed in items],
        "engine fp32": lambda: engines["fp32"].run(feeds["fp32"]),
        "engine int8": lambda: engines["int8"].run(feeds["int8"]),
    }


def speed(
    models: dict[str, dict[str, Any]],
    threads: Sequence[int],
    batches: Sequence[int],
    repeats: int,
    warmup: int,
    report: Report,
) -> list[dict[str, Any]]:
    rows, table = [], []
    for name, spec in models.items():
        for n_threads in threads:
            set_threads(n_threads)
            for batch in batches:
                x, pixels = spec["inputs"][:batch], spec["pixels"][:batch]
                load_before = os.getloadavg()[0]
                cases = speed_cases(spec["model"], spec["onnx"], spec["plans"], x, pixels, n_threads)
                times = timed_rotation(cases, repeats, warmup)
                del cases
                load_after = os.getloadavg()[0]
                int8 = times["engine int8"]["median_ms"]
                ratios = {
                    runtime: int8 / times[runtime]["median_ms"] for runtime in ("ORT fp32", "torch eager")
                }
                rows.append(
                    {
                        "model": name,
                        "size": list(spec["size"]),
                        "batch": batch,
                        "threads": n_threads,
                        "times": times,
                        "int8_ratio": ratios,
                        "loadavg_1min": [load_before, load_after],
                    }
                )
                size = f"{spec['size'][1]}x{spec['size'][0]}"
                table.append(
                    [
                        f"{name} {size}",
                        batch,
                        n_threads,
                        *(f"{times[runtime]['median_ms']:.2f}" for runtime in RUNTIMES),
                        f"{int8 / batch:.2f}",
                        f"{ratios['ORT fp32']:.2f}x",
                        f"{ratios['torch eager']:.2f}x",
                        f"{load_before:.1f}/{load_after:.1f}",
                    ]
                )
                say(f"  {table[-1]}")
    headers = ["model", "batch", "threads", *(f"{r} ms" for r in RUNTIMES)]
    headers += ["int8 ms/image", "int8 / ORT fp32", "int8 / torch", "load avg"]
    head = rows[0]  # FaceBoxes at VGA, the first thread count and batch: 1 and 1 by default
    verdict = "; ".join(
        f"int8 / {runtime} = {head['int8_ratio'][runtime]:.2f}x (target <= {target}x: "
        + (
            "PASS"
            if head["int8_ratio"][runtime] <= target
            else f"MISS by {head['int8_ratio'][runtime] / target:.2f}x"
        )
        + ")"
        for runtime, target in TARGETS.items()
    )
    report.add(
        f"### 3. Forward latency, median ms over {repeats} interleaved rounds after {warmup} warm-up "
        "calls\n\n"
        + markdown(headers, table)
        + f"\n\nAt {head['model']} {head['size'][1]}x{head['size'][0]}, batch {head['batch']}, "
        f"{head['threads']} thread: {verdict}. Batch 8: the plans and torch run the 8 at once, the ORT "
        "export (fixed batch 1) as 8 runs. load avg: the 1-minute load average before/after "
        "the row."
    )
    return rows


# --- 4. Profile -------------------------------------------------------------------------------------


def profile(
    label: str, model: bytes | str, options: ort.SessionOptions, feed: dict, runs: int, folder: Path
) -> dict:
    """Per-node and per-op-type mean kernel time (us per run) over ``runs`` profiled runs, after 3
    warm-up runs whose events are dropped."""
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / label.replace(" ", "_"))
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    for _ in range(3 + runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    model_runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    events = [e for e in events if e.get("ts", 0) >= model_runs[3]["ts"]]
    runs_us = [e["dur"] for e in events if e.get("name") == "model_run"]
    nodes: dict[str, list[float]] = defaultdict(list)
    kinds: dict[str, tuple[str, list]] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            name = event["name"].removesuffix("_kernel_time")
            nodes[name].append(event["dur"])
            shapes = [next(iter(value.values())) for value in event["args"].get("output_type_shape", [])]
            kinds[name] = (event["args"]["op_name"], shapes[:1])
    per_node = {name: sum(durations) / len(runs_us) for name, durations in nodes.items()}
    per_op: dict[str, float] = defaultdict(float)
    for name, us in per_node.items():
        per_op[kinds[name][0]] += us
    return {
        "run_median_us": float(np.median(runs_us)),
        "kernel_us_per_run": sum(per_node.values()),
        "per_op_type_us": dict(sorted(per_op.items(), key=lambda kv: -kv[1])),
        "nodes": sorted(
            ({"node": n, "op": kinds[n][0], "output": kinds[n][1], "us": us} for n, us in per_node.items()),
            key=lambda row: -row["us"],
        ),
    }


def profiles(
    onnx_path: Path,
    plans: dict[str, Path],
    x: np.ndarray,
    pixels: np.ndarray,
    runs: int,
    folder: Path,
    report: Report,
) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    found = {"ORT fp32": profile("ORT fp32", str(onnx_path), options, {INPUT_NAME: x[:1]}, runs, folder)}
    for precision in ("fp32", "int8"):
        engine = load_engine(plans[precision], threads=1)  # the session options the engine itself uses
        feed = {engine.inputs[0].name: plan_feed(engine, x, pixels)[:1]}
        found[f"engine {precision}"] = profile(
            f"engine {precision}", engine.plan.model, engine.tactic.session_options(), feed, runs, folder
        )
    int8 = found["engine int8"]
    total = int8["kernel_us_per_run"]
    op_rows = [
        [
            op,
            f"{us / 1e3:.3f}",
            f"{100 * us / total:.1f}",
            sum(1 for node in int8["nodes"] if node["op"] == op),
        ]
        for op, us in int8["per_op_type_us"].items()
    ]
    node_rows = [
        [
            label,
            node["node"],
            node["op"],
            "x".join(str(d) for d in node["output"][0]) if node["output"] else "",
            f"{node['us'] / 1e3:.3f}",
        ]
        for label, found_one in found.items()
        for node in found_one["nodes"][:PROFILE_TOP]
    ]
    summary = ", ".join(
        f"{label} {one['run_median_us'] / 1e3:.2f} ms a run "
        f"({one['kernel_us_per_run'] / 1e3:.2f} ms in kernels)"
        for label, one in found.items()
    )
    report.add(
        f"### 4. Where the time goes: FaceBoxes 640x480, 1 thread, ONNX Runtime profile over {runs} runs\n\n"
        f"{summary}\n\nengine int8 by op type:\n\n"
        + markdown(["op type", "ms per run", "% of kernel time", "nodes"], op_rows)
        + f"\n\nThe {PROFILE_TOP} slowest nodes of each:\n\n"
        + markdown(["model", "node", "op", "output", "ms per run"], node_rows)
    )
    return found


# --- The run ----------------------------------------------------------------------------------------


def photos(folder: Path, count: int, size: tuple[int, int], prep: Preprocessing) -> np.ndarray:
    """``(count, 3, *size)`` float inputs (``(count, *size, 3)`` uint8 when ``prep.pixels``) from the
    first ``count`` images of ``folder``."""
    paths = ImageFolderBatches(folder, INPUT_NAME, size, prep).paths[:count]
    return np.stack([prep.apply(read_image(path), size) for path in paths])


def plan_feed(engine: Engine, x: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``pixels`` for a pixel-input plan, else ``x`` (the same photos as float network input)."""
    return pixels if engine.preprocessing.pixels else x


def main(
    data: Annotated[Path, typer.Option(help="Data root (WIDER FACE under widerface/).")] = DATA_DIR,
    faceboxes_weights: Annotated[
        Path | None, typer.Option(help="FaceBoxes weights; default: the bundled ones.")
    ] = None,
    mobilenet_weights: Annotated[Path, typer.Option(help="MobileNetV2 ImageNet weights.")] = (
        DATA_DIR / "weights" / "mobilenet_v2_imagenet" / "mobilenet_v2-b0353104.pth"
    ),
    calibration_images: Annotated[int, typer.Option(min=1, help="WIDER train images to calibrate on.")] = 64,
    agreement_images: Annotated[
        int | None, typer.Option(min=1, help="Held-out photos for part 2; default: all of them.")
    ] = None,
    compare_calibrators: Annotated[
        list[str] | None,
        typer.Option(help="More MobileNetV2 int8 plans, by calibrator, for part 2; repeat the option."),
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed rounds per speed row.")] = 20,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls per runtime before them.")] = 3,
    threads: Annotated[list[int] | None, typer.Option(help="Thread counts; repeat the option.")] = None,
    batches: Annotated[list[int] | None, typer.Option(help="Batch sizes; repeat the option.")] = None,
    profile_runs: Annotated[int, typer.Option(min=1, help="Profiled runs per model in part 4.")] = 20,
    pixel_input: Annotated[
        bool, typer.Option(help="int8 plans take uint8 pixels (--no-pixel-input: float input)")
    ] = True,
    out: Annotated[Path, typer.Option(help="Folder for the plans, predictions, results.")] = Path(
        "out/engine_int8"
    ),
) -> None:
    threads, batches = threads or [1, 2], batches or [1, 8]
    widerface = data / "widerface"
    train, val = widerface / "WIDER_train" / "images", widerface / "WIDER_val" / "images"
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "cpu": cpu_name(),
            "logical_cpus": os.cpu_count(),
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
        },
        "calibration": {"folder": str(train), "images": calibration_images, "calibrator": "entropy"},
    }
    try:
        set_threads(1)
        say("building plans")
        builds = {"fp32": ("fp32", "entropy", False), "int8": ("int8", "entropy", pixel_input)}
        fb_plans, results["builds_faceboxes"] = build_plans(
            "faceboxes", faceboxes_weights, VGA, train, calibration_images, out / "plans", builds
        )
        extra = ["percentile"] if compare_calibrators is None else compare_calibrators
        builds |= {f"int8 {calibrator}": ("int8", calibrator, pixel_input) for calibrator in extra}
        mn_plans, results["builds_mobilenet_v2"] = build_plans(
            "mobilenet_v2", mobilenet_weights, IMAGENET, train, calibration_images, out / "plans", builds
        )

        say("1. FaceBoxes on the WIDER val subset")
        results["faceboxes_widerface"] = faceboxes_accuracy(
            faceboxes_weights, fb_plans, widerface, out / "widerface", report
        )

        say("2. MobileNetV2 top-1 agreement")
        set_threads(1)
        mobilenet = torch_network("mobilenet_v2", mobilenet_weights)
        images = held_out_images(train, val, calibration_images, agreement_images)
        if sum(len(paths) for paths in images.values()) < 300:
            say("  warning: fewer than 300 held-out photos")
        results["mobilenet_agreement"] = mobilenet_agreement(mobilenet, mn_plans, images, report)

        say("3. speed")
        faceboxes = torch_network("faceboxes", faceboxes_weights)
        models = {
            "FaceBoxes": {"model": faceboxes, "size": VGA, "plans": fb_plans},
            "MobileNetV2": {"model": mobilenet, "size": IMAGENET, "plans": mn_plans},
        }
        for name, spec in models.items():
            spec["onnx"] = export_onnx(
                spec["model"], out / f"{name}_ort_fp32.onnx", spec["size"], optimize=True
            )
            prep = model_preprocessing(spec["model"])
            spec["inputs"] = photos(val, max(batches), spec["size"], prep)
            spec["pixels"] = photos(val, max(batches), spec["size"], replace(prep, pixels=True))
        results["speed"] = speed(models, threads, batches, repeats, warmup, report)

        say("4. profile")
        results["profile_faceboxes_vga_1_thread"] = profiles(
            models["FaceBoxes"]["onnx"],
            fb_plans,
            models["FaceBoxes"]["inputs"],
            models["FaceBoxes"]["pixels"],
            profile_runs,
            out / "profiles",
            report,
        )
    except EdgeVisionError as error:
        say(f"error: {error}")
        raise typer.Exit(2) from error

    results["seconds"] = round(time.perf_counter() - START, 1)
    (out / "engine_int8.json").write_text(json.dumps(results, indent=1))
    (out / "engine_int8.md").write_text(report.text())
    say(f"done: {out / 'engine_int8.json'}, {out / 'engine_int8.md'}")


if __name__ == "__main__":
    typer.run(main)

"""The ``edgevision`` command."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edgevision.errors import ConfigError, EdgeVisionError

# Module level stays cheap (typer, rich, errors: no torch), so that `edgevision --help` starts
# at once; each command imports what it needs. tests/test_startup.py holds this.
if TYPE_CHECKING:
    from edgevision.deploy.runtime import Engine
    from edgevision.detection.detections import Detections
    from edgevision.detection.detector import Detector

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Efficient vision on CPUs.")
err_console = Console(stderr=True)
# A plan's signing key: edgevision.deploy.plan_signing (its KEY_ENV names the variable)
PlanKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--plan-key",
        help="key file: sign the plan (build) or require its signature (run, detect); "
        "default: the file EDGEVISION_PLAN_KEY names",
    ),
]


@app.callback()
def _root() -> None:
    """edgevision: fast face detection and efficient vision on CPUs and embedded devices."""


def _data_root(given: Path | None, name: str) -> Path:
    """The data set folder given on the command line, else ``name`` in the default data folder."""
    from edgevision.data.paths import default_data_dir

    return given if given is not None else default_data_dir() / name


def _parse_milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(m) for m in text.split(",") if m.strip())
    except ValueError:
        raise ConfigError(
            f"--milestones must be comma-separated epochs, e.g. 200,250; got {text!r}"
        ) from None


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="model to train (faceboxes)")],
    data: Annotated[Path | None, typer.Option(help="WIDER FACE root [default: DATA/widerface]")] = None,
    out: Annotated[Path, typer.Option(help="folder for checkpoints and the loss log")] = Path(
        "runs/faceboxes"
    ),
    image_size: Annotated[
        int, typer.Option(help="square training input, px: a multiple of 128 for FaceBoxes (paper: 1024)")
    ] = 1024,
    # Ranges are TrainConfig's to check (one-line errors, NaN and inf included), not typer's.
    batch_size: Annotated[int, typer.Option(help="images per step and process")] = 32,
    epochs: int = 300,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 1e-3,
    warmup_epochs: Annotated[float, typer.Option(help="linear warm-up from lr/10, in epochs")] = 5.0,
    milestones: Annotated[
        str, typer.Option(help="epochs where the lr drops 10x, comma-separated")
    ] = "200,250",
    workers: Annotated[int, typer.Option(help="data-loading processes")] = 2,
    seed: int = 0,
    log_every: Annotated[int, typer.Option(help="log the losses every N steps")] = 10,
    teacher: Annotated[Path | None, typer.Option(help="FaceBoxes weights to distil from")] = None,
    max_images: Annotated[int | None, typer.Option(min=1, help="train on the first N images only")] = None,
    resume: Annotated[bool, typer.Option(help="continue from OUT/last.pth")] = False,
) -> None:
    """Train a detector; a checkpoint is written every epoch. Use torchrun for several processes."""
    from edgevision.training.config import TrainConfig
    from edgevision.training.faceboxes_recipe import train_faceboxes_on_widerface

    if model != "faceboxes":
        raise ConfigError(f"training is available for 'faceboxes' only, not {model!r}")
    data = _data_root(data, "widerface")
    config = TrainConfig(
        out_dir=out,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        lr=lr,
        warmup_epochs=warmup_epochs,
        milestones=_parse_milestones(milestones),
        workers=workers,
        seed=seed,
        log_every=log_every,
        extra={"data": str(data), "teacher": str(teacher) if teacher else None},
    )
    final = train_faceboxes_on_widerface(data, config, teacher, max_images, resume)
    typer.echo(f"weights: {final}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


@app.command()
def detect(
    paths: Annotated[list[Path], typer.Argument(help="images, folders of images, or videos")],
    model: Annotated[str, typer.Option(help="detector name")] = "faceboxes",
    weights: Annotated[Path | None, typer.Option(help="weights file (default: the bundled model)")] = None,
    out: Annotated[Path | None, typer.Option(help="folder for annotated images and videos")] = None,
    json_lines: Annotated[bool, typer.Option("--json", help="print one JSON line per image/frame")] = False,
    threshold: Annotated[float, typer.Option(help="minimum score to report")] = 0.5,
    scale: Annotated[float, typer.Option(help="resize factor applied before the network")] = 1.0,
    plan_key: PlanKeyOption = None,
) -> None:
    """Detect faces; print the boxes (xyxy pixels) and optionally write annotated copies."""
    from edgevision.api import PLAN_SUFFIX, detector_from_engine, load_detector
    from edgevision.data.media import collect_media

    if scale <= 0:
        raise ConfigError(f"--scale must be positive, got {scale}")
    if plan_key is not None and not model.endswith(PLAN_SUFFIX):
        raise ConfigError(f"--plan-key is for a plan (--model FILE{PLAN_SUFFIX}), not {model!r}")
    media = collect_media(paths)
    if model.endswith(PLAN_SUFFIX):
        detector = detector_from_engine(_load_engine(Path(model), None, plan_key))
    else:
        detector = load_detector(model, weights=weights)
    _detect_media(media, detector, out, json_lines, threshold, scale)


def _load_engine(plan: Path, threads: int | None, plan_key: Path | None) -> Engine:
    """The plan file ``plan`` loaded (:func:`edgevision.deploy.runtime.load_engine`) with the key of
    ``--plan-key`` or EDGEVISION_PLAN_KEY, if any; the engine's notes go to stderr."""
    from edgevision.deploy.plan_signing import key_from
    from edgevision.deploy.runtime import load_engine

    engine = load_engine(plan, threads, key=key_from(plan_key))
    for note in engine.notes:
        err_console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    return engine


def _detect_media(
    media: list[Path], detector: Detector, out: Path | None, json_lines: bool, threshold: float, scale: float
) -> None:
    """Detect on every image and video of ``media`` (``collect_media``'s list): print the faces,
    write annotated copies to ``out``. Shared by ``detect`` and ``run`` (detector plans)."""
    from edgevision.data.io import read_image, write_image
    from edgevision.data.media import annotated_output_names, is_video
    from edgevision.visualize import draw_detections

    outputs = annotated_output_names(media)  # fails on two inputs that would share an output

    def report(path: Path, detections: Detections, frame: int | None = None) -> None:
        if json_lines:
            record = {"path": str(path), **({"frame": frame} if frame is not None else {})}
            typer.echo(json.dumps({**record, "faces": detections.to_json()}))
        elif frame is None:
            typer.echo(f"{path}: {len(detections)} face(s)")
            for face in detections.to_json():
                typer.echo(f"  box={face['box']} score={face['score']}")

    with _progress() as progress:
        for path in progress.track(media, description="images"):
            target = out / outputs[path] if out is not None else None
            if is_video(path):
                frames, faces = _detect_video(path, detector, threshold, scale, target, report, progress)
                if not json_lines:
                    typer.echo(f"{path}: {frames} frame(s), {faces} face(s) in all")
                continue
            image = read_image(path)
            detections = detector.detect(image, scale).above(threshold)
            report(path, detections)
            if target is not None:
                write_image(target, draw_detections(image, detections))


def _detect_video(
    path: Path,
    detector: Detector,
    threshold: float,
    scale: float,
    target: Path | None,
    report: Callable[[Path, Detections, int], None],
    progress: Progress,
) -> tuple[int, int]:
    """Detect on every frame of a video, reporting each; write the annotated video to ``target``
    (all or nothing). Returns the number of frames and of faces."""
    from edgevision.data.media import AtomicVideoWriter, VideoFrames
    from edgevision.visualize import draw_detections

    frames = VideoFrames(path)
    writer, count, faces = None, 0, 0
    task = progress.add_task(path.name, total=frames.frame_count or None)
    try:
        for count, frame in enumerate(frames, start=1):
            detections = detector.detect(frame, scale).above(threshold)
            report(path, detections, count - 1)
            faces += len(detections)
            if target is not None:
                if writer is None:
                    writer = AtomicVideoWriter(target, frames.fps, (frame.shape[1], frame.shape[0]))
                writer.write(draw_detections(frame, detections))
            progress.advance(task)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    progress.remove_task(task)
    if writer is not None:
        writer.commit()
    return count, faces


eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a model with a benchmark's official protocol.")
app.add_typer(eval_app, name="eval")


@eval_app.command("widerface")
def eval_widerface(
    model: Annotated[str, typer.Option(help="detector name")] = "faceboxes",
    weights: Annotated[Path | None, typer.Option(help="weights file (default: the bundled model)")] = None,
    data: Annotated[Path | None, typer.Option(help="WIDER FACE root [default: DATA/widerface]")] = None,
    out: Annotated[Path, typer.Option(help="folder for prediction files, PR curves, results")] = Path(
        "out/widerface"
    ),
    scale: Annotated[float, typer.Option(help="resize factor (1.0: native resolution)")] = 1.0,
) -> None:
    """WIDER FACE val easy/medium/hard AP with the official protocol, on the val images present."""
    from edgevision.api import load_detector
    from edgevision.data.io import atomic_write
    from edgevision.evaluation.plots import plot_pr_curves
    from edgevision.evaluation.widerface_predict import run_widerface

    if scale <= 0:
        raise ConfigError(f"--scale must be positive, got {scale}")
    data = _data_root(data, "widerface")
    detector = load_detector(model, weights=weights)
    predictions = out / "predictions"
    with _progress() as progress:
        result = run_widerface(
            detector, data, predictions, scale, lambda items: progress.track(items, description="WIDER val")
        )
    plot_pr_curves(result.curves, out / "pr_curves.png", f"{model}, {result.label}", result.ap)
    summary = {
        "model": model,
        "weights": str(weights or "bundled"),
        "scale": scale,
        "set": result.label,
        "ap": {k: (None if math.isnan(v) else v) for k, v in result.ap.items()},  # JSON has no NaN
        "faces": result.num_faces,
    }
    with atomic_write(out / "results.json", "w") as handle:
        json.dump(summary, handle, indent=2)
    typer.echo(f"{result.label}: " + "  ".join(f"{k} {v:.3f}" for k, v in result.ap.items()))
    typer.echo(f"prediction files: {predictions}  PR curves: {out / 'pr_curves.png'}")


data_app = typer.Typer(no_args_is_help=True, help="Inspect data sets in their official formats.")
app.add_typer(data_app, name="data")


@data_app.command("stats")
def data_stats(
    dataset: Annotated[str, typer.Argument(help="data set (openimages)")],
    data: Annotated[
        Path | None,
        typer.Option(help="folder with the class list and *-annotations-bbox.csv [default: DATA/openimages]"),
    ] = None,
    out: Annotated[Path, typer.Option(help="class-frequency bar chart (.png, .pdf or .svg)")] = Path(
        "out/openimages_stats.png"
    ),
    top: Annotated[int, typer.Option(help="classes drawn in the chart, most frequent first")] = 50,
) -> None:
    """Boxes per class and split, and images per class; a class-frequency bar chart."""
    from rich.table import Table

    from edgevision.data.openimages_stats import class_statistics
    from edgevision.evaluation.plots import FORMATS, plot_class_statistics

    if dataset != "openimages":
        raise ConfigError(f"statistics are available for 'openimages' only, not {dataset!r}")
    if top < 1:
        raise ConfigError(f"--top must be positive, got {top}")
    if out.suffix.lower().lstrip(".") not in FORMATS:
        raise ConfigError(f"--out must end in one of .{', .'.join(FORMATS)}, got {out.name!r}")
    data = _data_root(data, "openimages")
    stats = class_statistics(data)
    table = Table(title=f"Open Images boxes per class ({data})")
    for column in ("class", "MID", *stats.splits, "boxes", "images"):
        table.add_column(column, justify="left" if column in ("class", "MID") else "right")
    for mid in stats.classes:
        counts = [f"{stats.boxes[split].get(mid, 0):,}" for split in stats.splits]
        table.add_row(stats.names[mid], mid, *counts, f"{stats.total(mid):,}", f"{stats.images[mid]:,}")
    split_totals = [f"{stats.split_total(split):,}" for split in stats.splits]
    all_boxes = sum(stats.split_total(split) for split in stats.splits)
    table.add_row("all", "", *split_totals, f"{all_boxes:,}", f"{sum(stats.split_images.values()):,}")
    Console().print(table)
    plot_class_statistics(stats, out, f"Open Images V4 boxes per class ({data})", top)
    typer.echo(f"chart: {out}")


@app.command("models")
def models_table(
    pattern: Annotated[str, typer.Argument(help="names to list, a shell pattern (e.g. 'mobile*')")] = "*",
    madds: Annotated[bool, typer.Option("--madds", help="also count multiply-adds (a forward each)")] = False,
    latency: Annotated[
        bool, typer.Option("--latency", help="also time each model: torch eager, 1 CPU thread (slow)")
    ] = False,
    repeats: Annotated[int, typer.Option(min=1, help="timed forward passes per model, with --latency")] = 20,
) -> None:
    """Registered models with their parameters at the default input size; MAdds and CPU latency
    (batch 1) on request. Rows appear as they are measured."""
    import fnmatch

    import torch
    from rich.live import Live
    from rich.table import Table

    from edgevision.models import create_model, list_models
    from edgevision.models.complexity import count_madds, count_params, median_latency_ms

    names = fnmatch.filter(list_models(), pattern)
    if not names:
        raise ConfigError(f"no registered model matches {pattern!r}; models: {', '.join(list_models())}")
    columns = ["model", "input (HxW)", "parameters", *(["MAdds"] if madds else [])]
    columns += ["latency ms"] if latency else []
    title = "edgevision models" + (" (latency: torch eager, 1 CPU thread, batch 1)" if latency else "")
    rows: list[list[str]] = []

    def view(measuring: str | None) -> Table:
        caption = f"measuring {measuring} ({len(rows) + 1}/{len(names)})" if measuring else None
        table = Table(title=title, caption=caption)
        for column in columns:
            table.add_column(column, justify="left" if column == "model" else "right")
        for row in rows:
            table.add_row(*row)
        return table

    threads = torch.get_num_threads()
    try:
        with Live(view(names[0]), console=Console(), refresh_per_second=4) as live:
            for name in names:
                live.update(view(name))
                model = create_model(name).eval()
                size = model.default_input_size
                row = [name, f"{size[0]}x{size[1]}", f"{count_params(model):,}"]
                if madds:
                    row.append(f"{count_madds(model, size) / 1e6:,.1f}M")
                if latency:
                    torch.set_num_threads(1)
                    row.append(f"{median_latency_ms(model, size, repeats):.1f}")
                    torch.set_num_threads(threads)
                rows.append(row)
            live.update(view(None))
    finally:
        torch.set_num_threads(threads)


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise ConfigError(f"--input-size must be HxW, e.g. 480x640, got {text!r}")
    return int(parts[0]), int(parts[1])


@app.command()
def build(
    model: Annotated[str, typer.Argument(help="registry name, checkpoint (.pth) or ONNX file")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the plan file to write")],
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8")] = "fp32",
    calib: Annotated[Path | None, typer.Option(help="folder of representative images (int8)")] = None,
    calibrator: Annotated[str, typer.Option(help="entropy, minmax, percentile or mse")] = "entropy",
    calib_images: Annotated[int, typer.Option(min=1, help="calibration images used at most")] = 64,
    calib_cache: Annotated[
        Path | None, typer.Option(help="calibration cache: read if it exists, else written")
    ] = None,
    fp32_fallback: Annotated[
        float | None, typer.Option(help="keep in fp32 the int8 layers adding more relative error than this")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="runtime: ort (ONNX Runtime) or openvino on the CPU, tensorrt on a GPU")
    ] = "ort",
    tune: Annotated[bool, typer.Option(help="time candidate tactics, keep the fastest accurate one")] = False,
    tune_backend: Annotated[
        list[str] | None, typer.Option(help="a CPU backend --tune tries (repeat it; default: --backend)")
    ] = None,
    weights: Annotated[Path | None, typer.Option(help="weights for a registry model")] = None,
    arch: Annotated[str | None, typer.Option(help="architecture of a .pth checkpoint")] = None,
    input_size: Annotated[str | None, typer.Option(help="HxW to build for (default: the model's)")] = None,
    pixel_input: Annotated[
        bool, typer.Option(help="the plan takes (N, H, W, 3) uint8 pixels and normalises them itself")
    ] = False,
    bias_correction: Annotated[
        bool, typer.Option(help="fold each int8 conv's mean weight-rounding error into its bias")
    ] = False,
    report: Annotated[
        bool, typer.Option(help="print the builder log (layers before/after each pass)")
    ] = False,
    plan_key: PlanKeyOption = None,
) -> None:
    """Build an optimised engine plan: passes, INT8 calibration, tuning, memory plan."""
    from edgevision.deploy.builder import BuildOptions, build_engine
    from edgevision.deploy.plan_signing import key_from

    key = key_from(plan_key)  # a bad key file fails before the build

    options = BuildOptions(
        precision=precision,
        calibration_dir=calib,
        calibrator=calibrator,
        calibration_images=calib_images,
        calibration_cache=calib_cache,
        fp32_fallback=fp32_fallback,
        backend=backend,
        tune=tune,
        tune_backends=tuple(tune_backend or ()),
        input_size=_parse_size(input_size),
        pixel_input=pixel_input,
        bias_correction=bias_correction,
    )
    with _progress() as progress:
        task = progress.add_task("building", total=None)
        result = build_engine(
            model,
            output,
            options,
            weights=weights,
            arch=arch,
            progress=lambda step: progress.update(task, description=step),
            key=key,
        )
    if report:
        typer.echo(result.log())
    first, last = result.passes[0], result.passes[-1]
    typer.echo(
        f"{result.path}: {precision} plan, layers {first.layers_before} -> {last.layers_after}, "
        f"activation arena {result.memory.arena_bytes / 2**20:.2f} MiB"
    )


@app.command("run")
def run_plan(
    plan: Annotated[Path, typer.Argument(help="a plan file from `edgevision build`")],
    inputs: Annotated[list[Path], typer.Argument(help="images or folders of images")],
    threads: Annotated[int | None, typer.Option(min=1, help="threads per operator")] = None,
    top: Annotated[int, typer.Option(min=1, help="classes printed per image for a classifier")] = 5,
    plan_key: PlanKeyOption = None,
) -> None:
    """Run a plan on images: faces for a detector plan, top classes for a classifier, else the
    output shapes."""
    from edgevision.api import DETECTORS, detector_from_engine
    from edgevision.data.io import read_image
    from edgevision.data.media import collect_media, is_video

    engine = _load_engine(plan, threads, plan_key)
    if engine.plan.source.get("model") in DETECTORS:
        _detect_media(collect_media(inputs), detector_from_engine(engine), None, False, 0.5, 1.0)
        return
    binding, preprocessing = engine.inputs[0], engine.preprocessing
    spatial = binding.shape[1:3] if preprocessing.pixels else binding.shape[2:]
    size = tuple(engine.plan.source.get("input_size") or spatial)
    for path in collect_media(inputs):
        if is_video(path):
            raise ConfigError(f"`edgevision run` takes images; {path} is a video")
        outputs = engine.run(preprocessing.apply(read_image(path), size)[None])
        for name, value in outputs.items():
            if value.ndim == 2 and value.shape[0] == 1:
                best = value[0].argsort()[::-1][:top]
                typer.echo(f"{path}: {name} top-{top} " + " ".join(f"{i}:{value[0, i]:.3f}" for i in best))
            else:
                typer.echo(f"{path}: {name} {tuple(value.shape)} {value.dtype}")


def main() -> None:
    """Entry point: runs the app, turning edgevision's errors into one line and exit code 2."""
    try:
        app()
    except EdgeVisionError as error:
        # escaped: a message may hold brackets, e.g. "pip install edgevision[openvino]"
        err_console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

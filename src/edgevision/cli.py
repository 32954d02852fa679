"""The ``edgevision`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from edgevision.detection.detections import Detections
from edgevision.errors import EdgeVisionError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Efficient vision on CPUs.")
err_console = Console(stderr=True)

DEFAULT_DATA = Path("../shared/data")


@app.callback()
def _root() -> None:
    """edgevision: fast face detection and efficient vision on CPUs and embedded devices."""


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="model to train (faceboxes)")],
    data: Annotated[Path, typer.Option(help="WIDER FACE root")] = DEFAULT_DATA / "widerface",
    out: Annotated[Path, typer.Option(help="folder for checkpoints and the loss log")] = Path(
        "runs/faceboxes"
    ),
    image_size: Annotated[int, typer.Option(help="square training input, px (paper: 1024)")] = 1024,
    batch_size: int = 32,
    epochs: int = 300,
    lr: float = 1e-3,
    warmup_epochs: float = 5.0,
    milestones: Annotated[
        str, typer.Option(help="epochs where the lr drops 10x, comma-separated")
    ] = "200,250",
    workers: int = 2,
    seed: int = 0,
    log_every: Annotated[int, typer.Option(help="log the losses every N steps")] = 10,
    teacher: Annotated[Path | None, typer.Option(help="FaceBoxes weights to distil from")] = None,
    max_images: Annotated[int | None, typer.Option(help="train on the first N images only")] = None,
    resume: Annotated[bool, typer.Option(help="continue from OUT/last.pth")] = False,
) -> None:
    """Train a detector; a checkpoint is written every epoch. Use torchrun for several processes."""
    from edgevision.training.faceboxes_recipe import train_faceboxes_on_widerface
    from edgevision.training.trainer import TrainConfig

    if model != "faceboxes":
        fail(f"training is available for 'faceboxes' only, not {model!r}")
    config = TrainConfig(
        out_dir=out,
        image_size=image_size,
        batch_size=batch_size,
        epochs=epochs,
        lr=lr,
        warmup_epochs=warmup_epochs,
        milestones=tuple(int(m) for m in milestones.split(",") if m),
        workers=workers,
        seed=seed,
        log_every=log_every,
        extra={"data": str(data), "teacher": str(teacher)},
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
) -> None:
    """Detect faces; print the boxes (xyxy pixels) and optionally write annotated copies."""
    from edgevision.api import load_detector
    from edgevision.data.io import read_image, write_image
    from edgevision.data.media import AtomicVideoWriter, VideoFrames, collect_media, is_video
    from edgevision.visualize import draw_detections

    if scale <= 0:
        fail(f"--scale must be positive, got {scale}")
    media = collect_media(paths)
    detector = load_detector(model, weights)

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
            if is_video(path):
                frames = VideoFrames(path)
                writer = None
                try:
                    task = progress.add_task(path.name, total=frames.frame_count or None)
                    for index, frame in enumerate(frames):
                        detections = detector.detect(frame, scale).above(threshold)
                        report(path, detections, index)
                        if out is not None:
                            if writer is None:
                                size = (frame.shape[1], frame.shape[0])
                                writer = AtomicVideoWriter(out / f"{path.stem}.mp4", frames.fps, size)
                            writer.write(draw_detections(frame, detections))
                        progress.advance(task)
                    progress.remove_task(task)
                except BaseException:
                    if writer is not None:
                        writer.abort()
                    raise
                if writer is not None:
                    writer.commit()
                continue
            image = read_image(path)
            detections = detector.detect(image, scale).above(threshold)
            report(path, detections)
            if out is not None:
                write_image(out / f"{path.stem}.jpg", draw_detections(image, detections))


eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a model with a benchmark's official protocol.")
app.add_typer(eval_app, name="eval")


@eval_app.command("widerface")
def eval_widerface(
    model: Annotated[str, typer.Option(help="detector name")] = "faceboxes",
    weights: Annotated[Path | None, typer.Option(help="weights file (default: the bundled model)")] = None,
    data: Annotated[Path, typer.Option(help="WIDER FACE root")] = DEFAULT_DATA / "widerface",
    out: Annotated[Path, typer.Option(help="folder for prediction files, PR curves, results")] = Path(
        "out/widerface"
    ),
    scale: Annotated[float, typer.Option(help="resize factor (1.0: native resolution)")] = 1.0,
) -> None:
    """WIDER FACE val easy/medium/hard AP with the official protocol, on the val images present."""
    from edgevision.api import load_detector
    from edgevision.data.io import atomic_write
    from edgevision.evaluation.plots import plot_pr_curves
    from edgevision.evaluation.widerface_predict import evaluate_prediction_dir, predict_widerface

    detector = load_detector(model, weights)
    predictions = out / "predictions"
    with _progress() as progress:
        keys = predict_widerface(
            detector, data, predictions, scale, lambda items: progress.track(items, description="WIDER val")
        )
    result = evaluate_prediction_dir(predictions, data, keys)
    plot_pr_curves(result.curves, out / "pr_curves.png", f"{model}, {result.label}", result.ap)
    summary = {
        "model": model,
        "weights": str(weights or "bundled"),
        "scale": scale,
        "set": result.label,
        "ap": result.ap,
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
        Path, typer.Option(help="folder with class-descriptions-boxable.csv and *-annotations-bbox.csv")
    ] = DEFAULT_DATA / "openimages",
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
        fail(f"statistics are available for 'openimages' only, not {dataset!r}")
    if top < 1:
        fail(f"--top must be positive, got {top}")
    if out.suffix.lower().lstrip(".") not in FORMATS:
        fail(f"--out must end in one of .{', .'.join(FORMATS)}, got {out.name!r}")
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


def main() -> None:
    """Entry point: runs the app, turning edgevision's errors into one line and exit code 2."""
    try:
        app()
    except EdgeVisionError as error:
        err_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()

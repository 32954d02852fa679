"""Running ``edgevision detect`` and ``run`` over images and videos: one report per input (and
per frame), the skip-or-stop policy for unreadable inputs, timing, and the closing summary.

The policy: an input that fails (an :class:`EdgeVisionError`: unreadable, over the pixel cap, a
damaged video) is one ``warning: skipped PATH: reason`` line on stderr and the run goes on; the
summary counts it and the command exits with 2. ``strict`` stops at the first one instead (the
usual ``error:`` line). Outputs of the inputs that succeeded are kept, each whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from edgevision.errors import EdgeVisionError

if TYPE_CHECKING:
    import numpy as np
    from rich.progress import Progress

    from edgevision.deploy.runtime import Engine
    from edgevision.detection.detections import Detections
    from edgevision.detection.detector import Detector
    from edgevision.detection.postprocess import PostProcess


def progress_bar(console: Console) -> Progress:
    """The commands' progress bar (description, bar, done / total, time left) on ``console``,
    cleared when done."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


@dataclass(frozen=True)
class DetectSettings:
    """What ``detect`` and ``run`` do with each input: their shared options, checked when made
    (before any work), each message naming its option.

    Attributes:
        out: folder for annotated copies (``None``: none written); it must be writable.
        json_lines: print one JSON object per image or frame instead of text.
        threshold: minimum score reported, in [0, 1].
        scale: resize factor before the network, in (0, MAX_SCALE].
        scales: the image pyramid, comma-separated (``None``: the model's); see ``pyramid``.
        nms_iou, top_k, keep: the post-processing's (``None``: :class:`PostProcess`'s default).
        max_pixels: the pixel cap of the images read and of the network input (``None``: the
            default, see :func:`edgevision.data.io.max_pixels_limit`).
        strict: stop at the first input that fails instead of skipping it.

    Raises:
        EdgeVisionError: an option is out of range, or ``out`` cannot be written.
    """

    out: Path | None = None
    json_lines: bool = False
    threshold: float = 0.5
    scale: float = 1.0
    scales: str | None = None
    nms_iou: float | None = None
    top_k: int | None = None
    keep: int | None = None
    max_pixels: int | None = None
    strict: bool = False

    def __post_init__(self) -> None:
        from edgevision.data.io import check_output_dir, max_pixels_limit
        from edgevision.detection.detector import check_scale
        from edgevision.validation import check_number

        check_number("--threshold", self.threshold, 0.0, 1.0)
        check_scale(self.scale, "--scale")
        self.pyramid  # noqa: B018 (checked now, before any work)
        if self.nms_iou is not None:
            check_number("--nms-iou", self.nms_iou, 0.0, 1.0)
        max_pixels_limit(self.max_pixels, "--max-pixels")  # a bad EDGEVISION_MAX_PIXELS too
        if self.out is not None:
            check_output_dir(self.out, "--out")

    @property
    def pyramid(self) -> tuple[float, ...] | None:
        """``scales`` parsed and checked (``None``: the model's own pyramid)."""
        from edgevision.detection.detector import parse_scales

        return parse_scales(self.scales, "--scales") if self.scales is not None else None

    def postprocess(self) -> PostProcess:
        """The detector's post-processing: :class:`PostProcess` with the NMS options given."""
        from edgevision.detection.postprocess import PostProcess

        given = {"nms_iou": self.nms_iou, "top_k": self.top_k, "keep": self.keep}
        return PostProcess(**{name: value for name, value in given.items() if value is not None})


class InputRun:
    """Goes over a command's inputs under the module's skip-or-stop policy and keeps the counts
    and times its summary reports (call :meth:`finish` once the progress bar is gone)."""

    def __init__(self, strict: bool, console: Console, out: Path | None = None) -> None:
        self.strict = strict
        self.console = console
        self.out = out
        self.counts = ""
        self.started = time.perf_counter()
        self.done = 0
        self.skipped = 0
        self.timed_ms = 0.0
        self.timed_calls = 0

    @contextmanager
    def input(self, path: Path) -> Iterator[None]:
        """The work on one input: its EdgeVisionError is a warning and is swallowed (``strict``:
        re-raised)."""
        try:
            yield
        except EdgeVisionError as error:
            if self.strict:
                raise
            self.skipped += 1
            self.console.print(
                f"[yellow]warning:[/yellow] skipped {escape(str(path))}: {escape(str(error))}",
                highlight=False,
                soft_wrap=True,
            )
        else:
            self.done += 1

    def timed(self, work: Callable[..., Any], *args: Any) -> tuple[Any, float]:
        """``work(*args)`` and its wall time in milliseconds (counted for the mean)."""
        start = time.perf_counter()
        result = work(*args)
        ms = (time.perf_counter() - start) * 1e3
        self.timed_ms += ms
        self.timed_calls += 1
        return result, ms

    def finish(self) -> None:
        """Print the summary on stderr: :attr:`counts` (what was processed, set by the loop), the
        time, :attr:`out`, the skipped inputs; exit with 2 if an input was skipped."""
        total = time.perf_counter() - self.started
        mean = self.timed_ms / self.timed_calls if self.timed_calls else 0.0
        parts = [self.counts, f"{total:.1f} s in all, {mean:.1f} ms per inference on average"]
        if self.out is not None:
            parts.append(f"outputs in {self.out}")
        if self.skipped:
            parts.append(f"{self.skipped} input(s) skipped (see the warnings above)")
        self.console.print(escape("summary: " + "; ".join(parts)), highlight=False, soft_wrap=True)
        if self.skipped:
            raise typer.Exit(2)


def detect_media(
    media: list[Path], detector: Detector, settings: DetectSettings, progress: Progress, console: Console
) -> InputRun:
    """Detect on every image and video of ``media`` (``collect_media``'s list): print the faces
    (with the milliseconds each detection took) and write annotated copies to ``settings.out``.
    Returns the run, to :meth:`~InputRun.finish`."""
    from edgevision.data.io import read_image, write_image
    from edgevision.data.media import annotated_output_names, is_video
    from edgevision.visualize import draw_detections

    outputs = annotated_output_names(media)  # fails on two inputs that would share an output
    run = InputRun(settings.strict, console, settings.out)
    images = videos = frames = faces = 0
    for path in progress.track(media, description="inputs"):
        target = settings.out / outputs[path] if settings.out is not None else None
        with run.input(path):
            if is_video(path):
                count, found = _detect_video(path, detector, settings, target, run, progress)
                videos, frames, faces = videos + 1, frames + count, faces + found
                continue
            image = read_image(path, max_pixels=settings.max_pixels)
            detections, ms = run.timed(_detect_one, detector, image, settings)
            _report(settings, path, detections, ms)
            if target is not None:
                write_image(target, draw_detections(image, detections))
            images, faces = images + 1, faces + len(detections)
    videos_read = f", {videos} video(s) of {frames} frame(s)" if videos else ""
    run.counts = f"{images} image(s){videos_read}: {faces} face(s)"
    return run


def _report(
    settings: DetectSettings, path: Path, detections: Detections, ms: float, frame: int | None = None
) -> None:
    if settings.json_lines:
        record = {"path": str(path), **({"frame": frame} if frame is not None else {})}
        typer.echo(json.dumps({**record, "faces": detections.to_json(), "ms": round(ms, 2)}))
    elif frame is None:
        typer.echo(f"{path}: {len(detections)} face(s) in {ms:.1f} ms")
        for face in detections.to_json():
            typer.echo(f"  box={face['box']} score={face['score']}")


def _detect_video(
    path: Path,
    detector: Detector,
    settings: DetectSettings,
    target: Path | None,
    run: InputRun,
    progress: Progress,
) -> tuple[int, int]:
    """Detect on every frame of a video, reporting each; write the annotated video to ``target``
    (all or nothing: a damaged video, or an interrupted run, writes none). Returns the number of
    frames and of faces."""
    from edgevision.data.media import AtomicVideoWriter, VideoFrames
    from edgevision.visualize import draw_detections

    frames = VideoFrames(path)
    writer, faces, spent_ms = None, 0, 0.0
    task = progress.add_task(path.name, total=frames.frame_count or None)
    try:
        for index, frame in enumerate(frames):
            detections, ms = run.timed(_detect_one, detector, frame, settings)
            spent_ms += ms
            _report(settings, path, detections, ms, index)
            faces += len(detections)
            if target is not None:
                if writer is None:
                    writer = AtomicVideoWriter(target, frames.fps, (frame.shape[1], frame.shape[0]))
                writer.write(draw_detections(frame, detections))
            progress.advance(task)
        frames.check_complete()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        progress.remove_task(task)
    if writer is not None:
        writer.commit()
    if not settings.json_lines:
        mean = spent_ms / frames.decoded if frames.decoded else 0.0
        typer.echo(f"{path}: {frames.decoded} frame(s), {faces} face(s) in all, {mean:.1f} ms a frame")
    return frames.decoded, faces


def _detect_one(detector: Detector, image: np.ndarray, settings: DetectSettings) -> Detections:
    return detector.detect(image, settings.scale).above(settings.threshold)


def run_plan_outputs(
    engine: Engine,
    media: list[Path],
    settings: DetectSettings,
    top: int,
    progress: Progress,
    console: Console,
) -> InputRun:
    """Run a plan that is not a detector on each image of ``media``: print the ``top`` classes of
    a ``(1, C)`` output (with the source model's class names when it has ``C`` of them), else each
    output's shape. Returns the run, whose ``finish`` prints the summary (and exits 2 if an input
    was skipped)."""
    from edgevision.data.io import read_image
    from edgevision.data.media import is_video
    from edgevision.errors import InputFileError

    binding, preprocessing = engine.inputs[0], engine.preprocessing
    spatial = binding.shape[1:3] if preprocessing.pixels else binding.shape[2:]
    size = tuple(engine.plan.source.get("input_size") or spatial)
    names: tuple[str, ...] | None = None
    run = InputRun(settings.strict, console)
    for path in progress.track(media, description="inputs"):
        with run.input(path):
            if is_video(path):
                raise InputFileError(f"a plan that is not a detector runs on images; {path} is a video")
            batch = preprocessing.apply(read_image(path, max_pixels=settings.max_pixels), size)[None]
            outputs, ms = run.timed(engine.run, batch)
            for output, value in outputs.items():
                if value.ndim == 2 and value.shape[0] == 1:
                    names = names if names is not None else source_class_names(engine)
                    labels = names if len(names) == value.shape[1] else None
                    _report_classes(settings, path, output, value[0], top, labels, ms)
                elif settings.json_lines:
                    record = {"path": str(path), "output": output, "shape": list(value.shape)}
                    typer.echo(json.dumps({**record, "dtype": str(value.dtype), "ms": round(ms, 2)}))
                else:
                    typer.echo(f"{path}: {output} {tuple(value.shape)} {value.dtype} in {ms:.1f} ms")
    run.counts = f"{run.done} image(s)"
    return run


def _report_classes(
    settings: DetectSettings,
    path: Path,
    output: str,
    scores: np.ndarray,
    top: int,
    labels: tuple[str, ...] | None,
    ms: float,
) -> None:
    best = scores.argsort()[::-1][:top].tolist()
    if settings.json_lines:
        classes = [
            {"index": i, **({"label": labels[i]} if labels else {}), "score": round(float(scores[i]), 6)}
            for i in best
        ]
        typer.echo(json.dumps({"path": str(path), "output": output, "top": classes, "ms": round(ms, 2)}))
    else:
        shown = [f"{i} {labels[i]} {scores[i]:.3f}" if labels else f"{i} {scores[i]:.3f}" for i in best]
        typer.echo(f"{path}: {output} top-{top} in {ms:.1f} ms: " + ", ".join(shown))


def source_class_names(engine: Engine) -> tuple[str, ...]:
    """The class names of the registered model a plan was built from (its ``class_names``), or
    an empty tuple when it has none or is not a registered model."""
    from edgevision.models import create_model, list_models

    source = engine.plan.source.get("model")
    if source not in list_models():
        return ()
    return tuple(getattr(create_model(source), "class_names", None) or ())

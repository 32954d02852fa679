"""The ``edgevision`` command."""

from __future__ import annotations

import functools
import inspect
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from edgevision.cli_gallery import gallery_app  # import-cheap: typer and rich only
from edgevision.cli_media import DetectSettings, progress_bar  # import-cheap: typer and rich only
from edgevision.cli_search import search, search_report, search_train  # import-cheap: typer and rich only
from edgevision.errors import ConfigError, DatasetError, EdgeVisionError, EdgeVisionWarning

# Module level stays cheap (typer, rich, errors: no torch), so that `edgevision --help` starts
# at once; each command imports what it needs. tests/test_startup.py holds this.
if TYPE_CHECKING:
    from edgevision.deploy.runtime import Engine
    from edgevision.detection.detector import Detector
    from edgevision.recognition.recognizer import FaceEmbedding, Recognizer

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


# The training options whose defaults are the model's recipe's (TrainConfig's unless the recipe
# sets its own, edgevision.training.recipes): None here means "not given".
RECIPE_DEFAULT = "[default: the model's recipe's: detectors 1024, mobilefacenet 112]"


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="registered model with a training recipe, e.g. faceboxes")],
    data: Annotated[
        Path | None,
        typer.Option(
            help="detectors: WIDER FACE root [default: DATA/widerface]; mobilefacenet: identity folders"
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="folder for checkpoints and the loss log [default: runs/MODEL]"),
    ] = None,
    image_size: Annotated[
        int | None,
        typer.Option(
            help=f"square training input, px: a multiple of a detector's coarsest stride {RECIPE_DEFAULT}"
        ),
    ] = None,
    # Ranges are TrainConfig's to check (one-line errors, NaN and inf included), not typer's.
    batch_size: Annotated[
        int | None, typer.Option(help="images per step and process [default: 32; mobilefacenet 64]")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="[default: 300; mobilefacenet 30]")] = None,
    lr: Annotated[
        float | None, typer.Option(help="peak learning rate [default: 1e-3; mobilefacenet 0.1]")
    ] = None,
    warmup_epochs: Annotated[
        float | None, typer.Option(help="linear warm-up from lr/10, in epochs [default: 5; mobilefacenet 1]")
    ] = None,
    milestones: Annotated[
        str | None,
        typer.Option(
            help="epochs where the lr drops 10x, comma-separated [default: 200,250; mobilefacenet 20,26]"
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="data-loading processes")] = 2,
    seed: int = 0,
    log_every: Annotated[int, typer.Option(help="log the losses every N steps")] = 10,
    teacher: Annotated[Path | None, typer.Option(help="weights of the same model to distil from")] = None,
    soft_teacher: Annotated[
        list[str] | None,
        typer.Option(
            help="a detector whose detections on each augmented image are soft targets: "
            "yunet=FILE.onnx, NAME=WEIGHTS or NAME (a registered detector); repeat to ensemble"
        ),
    ] = None,
    augment: Annotated[
        str, typer.Option(help="faceboxes (FaceBoxes' crops) or small_faces (mosaics and zoom-out first)")
    ] = "faceboxes",
    calibrate_teachers: Annotated[
        bool,
        typer.Option(help="map each soft teacher's scores to how often they are labelled training faces"),
    ] = False,
    max_images: Annotated[int | None, typer.Option(min=1, help="train on the first N images only")] = None,
    resume: Annotated[bool, typer.Option(help="continue from OUT/last.pth")] = False,
    init_weights: Annotated[
        Path | None,
        typer.Option(
            "--init-weights",
            "--init",
            help="weights of this model to start from (fine-tuning), e.g. its bundled ones",
        ),
    ] = None,
    backbone_weights: Annotated[
        Path | None,
        typer.Option(
            help="ImageNet weights the model's body starts from (models with a backbone, e.g. tinyfaces)"
        ),
    ] = None,
    people: Annotated[
        str | None,
        typer.Option(
            help="embeddings: the identity folders to train on, 1-based in natural order (1-30) or names"
        ),
    ] = None,
    crops: Annotated[
        bool,
        typer.Option(
            help="embeddings: the identity images are face crops (e.g. ORL), not aligned 112x112 faces"
        ),
    ] = False,
    distill: Annotated[
        Path | None, typer.Option(help="embeddings: a teacher set (.npz) whose embeddings the network learns")
    ] = None,
    distill_weight: Annotated[
        float, typer.Option(help="embeddings: the weight of the distillation term, 1 - cosine to the teacher")
    ] = 20.0,
    loss: Annotated[
        str, typer.Option(help="embeddings: the identity head: arcface, cosface or softmax")
    ] = "arcface",
    margin: Annotated[
        float | None, typer.Option(help="embeddings: the head's margin [default: arcface 0.5, cosface 0.35]")
    ] = None,
    scale: Annotated[float | None, typer.Option(help="embeddings: the head's scale s [default: 64]")] = None,
    landmark_teacher: Annotated[
        Path | None,
        typer.Option(help="a YuNet ONNX file whose 5 landmarks per face train a landmark head (added)"),
    ] = None,
    landmarks_only: Annotated[
        bool, typer.Option(help="train the landmark head only; every other weight stays bit for bit")
    ] = False,
) -> None:
    """Train a detector or a face embedding network; a checkpoint is written every epoch. Use
    torchrun for several processes."""
    from edgevision.training.config import TrainConfig
    from edgevision.training.recipes import recipe_info, train_model

    recipe = recipe_info(model)  # an unknown or untrainable model fails before anything else
    if data is None and recipe.data_folder is not None:
        data = _data_root(data, recipe.data_folder)
    given = {
        "image_size": image_size,
        "batch_size": batch_size,
        "epochs": epochs,
        "lr": lr,
        "warmup_epochs": warmup_epochs,
        "milestones": None if milestones is None else _parse_milestones(milestones),
    }
    config = TrainConfig(
        out_dir=out if out is not None else Path("runs") / model,
        **{**recipe.config_defaults, **{k: v for k, v in given.items() if v is not None}},
        workers=workers,
        seed=seed,
        log_every=log_every,
        teachers=tuple(soft_teacher or ()),
        calibrate_teachers=calibrate_teachers,
        augment=augment,
        margin_loss=loss,
        margin=margin,
        scale=scale,
        distill_weight=distill_weight,
        landmark_teacher=str(landmark_teacher) if landmark_teacher else None,
        landmarks_only=landmarks_only,
        extra={
            "init_weights": str(init_weights) if init_weights else None,
            "backbone_weights": str(backbone_weights) if backbone_weights else None,
            "data": str(data) if data else None,
            "teacher": str(teacher) if teacher else None,
            "distill": str(distill) if distill else None,
            "people": people,
            "crops": crops,
        },
    )
    options = {"backbone_weights": str(backbone_weights)} if backbone_weights is not None else {}
    if init_weights is not None:
        options["weights"] = str(init_weights)
    final = train_model(
        model,
        data,
        config,
        resume=resume,
        model_options=options,
        teacher=teacher,
        max_images=max_images,
        distill=distill,
        people=people,
        crops=crops,
    )
    typer.echo(f"weights: {final}")


def _progress() -> Progress:
    return progress_bar(err_console)


SCALES_HELP = "image pyramid: comma-separated scales in (0, 8], e.g. 0.5,1,2 (default: the model's)"

# The options `detect` and `run` share (a detector plan takes them as `detect` does): each is
# declared once here and added to both commands by `_with_detect_options`; the names are the
# fields of `DetectSettings`, which checks them.
DETECT_OPTIONS: dict[str, tuple[Any, Any]] = {
    "out": (
        Annotated[Path | None, typer.Option(help="folder for annotated images and videos (checked first)")],
        None,
    ),
    "json_lines": (
        Annotated[
            bool, typer.Option("--json", help="print one JSON line per image/frame, with faces and ms")
        ],
        False,
    ),
    "threshold": (Annotated[float, typer.Option(help="minimum score to report, in [0, 1]")], 0.5),
    "scale": (
        Annotated[float, typer.Option(help="resize factor applied before the network, in (0, 8]")],
        1.0,
    ),
    "scales": (Annotated[str | None, typer.Option(help=SCALES_HELP)], None),
    "nms_iou": (
        Annotated[
            float | None, typer.Option(help="IoU above which NMS drops a box, in [0, 1] (default 0.3)")
        ],
        None,
    ),
    "top_k": (
        Annotated[int | None, typer.Option(min=1, help="best boxes kept before NMS (default 5000)")],
        None,
    ),
    "keep": (Annotated[int | None, typer.Option(min=1, help="boxes kept after NMS (default 750)")], None),
    "max_pixels": (
        Annotated[
            int | None,
            typer.Option(
                help="refuse images over this many pixels (default: $EDGEVISION_MAX_PIXELS, else 5e7)"
            ),
        ],
        None,
    ),
    "strict": (
        Annotated[bool, typer.Option(help="stop at the first unreadable input instead of skipping it")],
        False,
    ),
}
INPUTS_POLICY = (
    "An input that cannot be read (or a damaged video) is skipped with a one-line warning; the "
    "run goes on and exits with 2 at the end. --strict stops at the first one."
)


def _with_detect_options(command: Callable[..., None]) -> Callable[..., None]:
    """Append :data:`DETECT_OPTIONS` to ``command``'s own parameters (Typer reads the signature);
    the command receives them checked, before any work, as one ``settings`` argument."""
    own = inspect.signature(command, eval_str=True)
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
        for name, (annotation, default) in DETECT_OPTIONS.items()
    ]

    @functools.wraps(command)
    def with_settings(**given: Any) -> None:
        settings = DetectSettings(**{name: given.pop(name) for name in DETECT_OPTIONS})
        command(**given, settings=settings)

    parameters = [p for p in own.parameters.values() if p.name != "settings"]
    with_settings.__signature__ = own.replace(parameters=parameters + shared)  # type: ignore[attr-defined]
    return with_settings


@app.command(
    help=f"Detect faces; print the boxes (xyxy pixels) and optionally write annotated copies. {INPUTS_POLICY}"
)
@_with_detect_options
def detect(
    paths: Annotated[list[Path], typer.Argument(help="images, folders of images, or videos")],
    model: Annotated[
        str | None,
        typer.Option(help="registered detector, or a detector plan file [default: the best we ship]"),
    ] = None,
    weights: Annotated[Path | None, typer.Option(help="weights file (default: the bundled model)")] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda when available)")
    ] = None,
    plan_key: PlanKeyOption = None,
    *,
    settings: DetectSettings,
) -> None:
    from edgevision.api import torch_device
    from edgevision.data.media import collect_media

    torch_device(device)  # checked before the inputs are looked at
    media = collect_media(paths)
    detector = _load_detector(model, weights, device, plan_key, settings.postprocess(), settings.pyramid)
    _detect_media(media, detector, settings)


def _load_detector(
    model: str | None,
    weights: Path | None,
    device: str | None,
    plan_key: Path | None,
    postprocess: Any = None,
    scales: tuple[float, ...] | None = None,
) -> Detector:
    """:func:`edgevision.api.load_detector` for a command: a plan's notes (e.g. threads clamped to
    this machine's cores) go to stderr."""
    from edgevision.api import load_detector

    detector = load_detector(
        model, weights=weights, postprocess=postprocess, device=device, plan_key=plan_key, scales=scales
    )
    _print_notes(getattr(detector.network, "engine", None))
    return detector


def _load_engine(plan: Path, threads: int | None, plan_key: Path | None) -> Engine:
    """The plan file ``plan`` loaded (:func:`edgevision.deploy.runtime.load_engine`) with the key of
    ``--plan-key`` or EDGEVISION_PLAN_KEY, if any; the engine's notes go to stderr."""
    from edgevision.deploy.plan_signing import key_from
    from edgevision.deploy.runtime import load_engine

    engine = load_engine(plan, threads, key=key_from(plan_key))
    _print_notes(engine)
    return engine


def _print_notes(engine: Engine | None) -> None:
    for note in engine.notes if engine is not None else ():
        err_console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)


def _detect_media(media: list[Path], detector: Detector, settings: DetectSettings) -> None:
    """``cli_media.detect_media`` under the progress bar: shared by ``detect`` and ``run``."""
    from edgevision.cli_media import detect_media

    detector.max_pixels = settings.max_pixels
    with _progress() as progress:
        run = detect_media(media, detector, settings, progress, err_console)
    run.finish()


RecognizerOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="registered recognition model, a weights file of the default one, or a plan of one "
        "[default: the model we ship]",
    ),
]
CropOption = Annotated[
    bool, typer.Option("--crop", help="the images are face crops (e.g. ORL's): no detection, no alignment")
]
EMBED_SUFFIXES = (".npy", ".json")


def _load_recognizer(
    model: str | None, device: str | None, plan_key: Path | None, threshold: float | None = None
) -> Recognizer:
    """:func:`edgevision.recognition.recognizer.load_recognizer` for ``--model``: a plan file, a
    registered name, else a weights file of the default recognition model; a plan's notes go to
    stderr."""
    from edgevision.models import list_models
    from edgevision.recognition.recognizer import PLAN_SUFFIX, load_recognizer

    named = model is None or model.endswith(PLAN_SUFFIX) or model in list_models()
    recognizer = load_recognizer(
        model if named else None,
        None if named else Path(model),
        device=device,
        plan_key=plan_key,
        threshold=threshold,
    )
    _print_notes(getattr(recognizer.network, "engine", None))
    return recognizer


@app.command(
    help="Embed the face of each image as a unit vector (the largest face scoring 0.5, whose box is "
    "printed; --crop: the whole image): one JSON line per image, or all of them in -o FILE. An image "
    "that cannot be read or has no face is skipped with a one-line warning; the run goes on and "
    "exits with 2 at the end. --strict stops at the first one."
)
def embed(
    paths: Annotated[list[Path], typer.Argument(help="images, or folders of images")],
    crop: CropOption = False,
    model: RecognizerOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="write the embeddings here (checked first): .npy, (N, D) float32 rows in the order "
            "printed, or .json, with each image's path",
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (not for a plan)")] = None,
    plan_key: PlanKeyOption = None,
    strict: Annotated[
        bool, typer.Option(help="stop at the first image that fails instead of skipping it")
    ] = False,
) -> None:
    from edgevision.api import torch_device
    from edgevision.cli_media import InputRun
    from edgevision.data.io import check_output_file
    from edgevision.data.media import collect_media, is_video
    from edgevision.errors import InputFileError

    if output is not None:
        check_output_file(output, "-o/--output")
        if output.suffix.lower() not in EMBED_SUFFIXES:
            raise ConfigError(f"-o/--output must end in .npy or .json, got {output.name!r}")
    torch_device(device)
    media = collect_media(paths)
    recognizer = _load_recognizer(model, device, plan_key)
    if not crop:
        recognizer.detector  # noqa: B018 (loaded now, so that the first image's time is its own)
    run = InputRun(strict, err_console, output)
    embedded: list[tuple[Path, FaceEmbedding]] = []
    with _progress() as progress:
        for path in progress.track(media, description="images"):
            with run.input(path):
                if is_video(path):
                    raise InputFileError(f"embed takes images; {path} is a video")
                face, ms = run.timed(lambda image: recognizer.embed_face(image, crop=crop), path)
                if output is None:
                    values = [round(v, 6) for v in face.embedding.tolist()]
                    record = {"path": str(path), **_face_record(face)}
                    typer.echo(json.dumps({**record, "embedding": values, "ms": round(ms, 2)}))
                else:
                    typer.echo(f"{path}: row {len(embedded)}, {_face_text(face)}, {ms:.1f} ms")
                embedded.append((path, face))
    run.counts = (
        f"{len(embedded)} image(s) embedded by {recognizer.model_name} ({recognizer.embedding_size}-d)"
    )
    if output is not None and embedded:
        _write_embeddings(output, embedded, recognizer)
    run.finish()


def _face_record(face: FaceEmbedding) -> dict[str, Any]:
    """Which face of an image was embedded, as JSON: its box (xyxy px) and score, and how many
    faces the image holds (``box`` null for a face crop)."""
    box = None if face.box is None else [round(v, 2) for v in face.box.tolist()]
    score = None if face.score is None else round(face.score, 4)
    return {"box": box, "score": score, "faces": face.faces_found}


def _face_text(face: FaceEmbedding) -> str:
    if face.box is None:
        return "the whole image (--crop)"
    box = ", ".join(f"{v:.0f}" for v in face.box.tolist())
    return f"the largest of {face.faces_found} face(s), box [{box}] score {face.score:.3f}"


def _write_embeddings(path: Path, embedded: list[tuple[Path, FaceEmbedding]], recognizer: Recognizer) -> None:
    """``.npy``: the ``(N, D)`` float32 rows; ``.json``: the model (name and weights' sha256) and
    each path with its face and vector. Written atomically."""
    import numpy as np

    from edgevision.data.io import atomic_write

    with atomic_write(path, "wb" if path.suffix.lower() == ".npy" else "w") as handle:
        if path.suffix.lower() == ".npy":
            np.save(handle, np.stack([face.embedding for _, face in embedded]).astype(np.float32))
        else:
            rows = [
                {"path": str(p), **_face_record(face), "embedding": face.embedding.tolist()}
                for p, face in embedded
            ]
            record = {"model": recognizer.model_name, "weights_sha256": recognizer.weights_sha256}
            json.dump({**record, "distance": "cosine", "embeddings": rows}, handle)


@app.command(
    help="Whether the faces of two images are one person: 'same person' or 'not the same person', "
    "with their cosine distance and the threshold (exit 0 either way). Each image's largest face is "
    "compared (--crop: the whole images)."
)
def verify(
    first: Annotated[Path, typer.Argument(help="an image")],
    second: Annotated[Path, typer.Argument(help="another image")],
    crop: CropOption = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="cosine distance in [0, 2] at or under which the faces are one person "
            "[default: the weights' model card]"
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    model: RecognizerOption = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (not for a plan)")] = None,
    plan_key: PlanKeyOption = None,
) -> None:
    from edgevision.api import torch_device
    from edgevision.data.io import read_image_size
    from edgevision.validation import check_number

    if threshold is not None:
        check_number("--threshold", threshold, 0.0, 2.0)
    torch_device(device)
    for path in (first, second):
        read_image_size(path)  # a missing file, a folder, a non-image: before the model loads
    recognizer = _load_recognizer(model, device, plan_key, threshold)
    result = recognizer.verify(first, second, crop=crop)
    if json_output:
        record = {"first": str(first), "second": str(second), "model": recognizer.model_name}
        typer.echo(
            json.dumps(
                {
                    **record,
                    "same": result.same,
                    "distance": round(result.distance, 6),
                    "threshold": result.threshold,
                }
            )
        )
        return
    verdict = "same person" if result.same else "not the same person"
    sign = "<=" if result.same else ">"
    typer.echo(f"{verdict}: cosine distance {result.distance:.4f} {sign} threshold {result.threshold:.4f}")


eval_app = typer.Typer(no_args_is_help=True, help="Evaluate a model with a benchmark's official protocol.")
app.add_typer(eval_app, name="eval")


@eval_app.command("widerface")
def eval_widerface(
    model: Annotated[
        str | None,
        typer.Option(help="registered detector, or a detector plan file [default: the best we ship]"),
    ] = None,
    weights: Annotated[Path | None, typer.Option(help="weights file (default: the bundled model)")] = None,
    data: Annotated[Path | None, typer.Option(help="WIDER FACE root (default: DATA/widerface)")] = None,
    out: Annotated[Path, typer.Option(help="folder for prediction files, PR curves, results")] = Path(
        "out/widerface"
    ),
    scale: Annotated[float, typer.Option(help="resize factor in (0, 8] (1.0: native resolution)")] = 1.0,
    scales: Annotated[str | None, typer.Option(help=SCALES_HELP)] = None,
    plan_key: PlanKeyOption = None,
) -> None:
    """WIDER FACE val easy/medium/hard AP with the official protocol, on the val images present.

    Strict: an AP over a silently reduced set would mislead, so every val image's header is read
    before the run and any unreadable image ends it; the prediction folder is written whole or
    not at all."""
    from edgevision.api import DETECTION
    from edgevision.data.io import atomic_write, check_output_dir
    from edgevision.detection.detector import check_scale, parse_scales
    from edgevision.evaluation.plots import plot_pr_curves
    from edgevision.evaluation.widerface_predict import run_widerface
    from edgevision.models import default_model

    check_scale(scale, "--scale")
    pyramid = parse_scales(scales) if scales is not None else None
    check_output_dir(out, "--out")
    data = _data_root(data, "widerface")
    if not data.is_dir():
        raise DatasetError(f"WIDER FACE root {'is not a folder' if data.exists() else 'not found'}: {data}")
    model = model or default_model(DETECTION)
    detector = _load_detector(model, weights, None, plan_key, scales=pyramid)
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
        "scales": list(detector.scales),
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
app.add_typer(gallery_app, name="gallery")
app.command("search")(search)
app.command("search-report")(search_report)
app.command("search-train")(search_train)


@data_app.command("stats")
def data_stats(
    dataset: Annotated[str, typer.Argument(help="data set (openimages)")],
    data: Annotated[
        Path | None,
        typer.Option(help="folder with the class list and *-annotations-bbox.csv (default: DATA/openimages)"),
    ] = None,
    out: Annotated[Path, typer.Option(help="class-frequency bar chart (.png, .pdf or .svg)")] = Path(
        "out/openimages_stats.png"
    ),
    top: Annotated[int, typer.Option(help="classes drawn in the chart, most frequent first")] = 50,
) -> None:
    """Boxes per class and split, and images per class; a class-frequency bar chart."""
    from rich.table import Table

    from edgevision.data.io import check_output_file
    from edgevision.data.openimages_stats import class_statistics
    from edgevision.evaluation.plots import FORMATS, plot_class_statistics

    if dataset != "openimages":
        raise ConfigError(f"statistics are available for 'openimages' only, not {dataset!r}")
    if top < 1:
        raise ConfigError(f"--top must be positive, got {top}")
    if out.suffix.lower().lstrip(".") not in FORMATS:
        raise ConfigError(f"--out must end in one of .{', .'.join(FORMATS)}, got {out.name!r}")
    check_output_file(out, "--out")
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


@data_app.command("teacher-set")
def data_teacher_set(
    out: Annotated[Path, typer.Option("--out", "-o", help="the set to write (.npz, checked first)")],
    data: Annotated[Path | None, typer.Option(help="WIDER FACE root (default: DATA/widerface)")] = None,
    yunet: Annotated[
        Path | None,
        typer.Option(help="YuNet ONNX for the landmarks (default: DATA/weights/yunet/yunet_n_dynamic.onnx)"),
    ] = None,
    split: Annotated[str, typer.Option(help="WIDER FACE split: train (never val: it measures)")] = "train",
    min_face: Annotated[int, typer.Option(help="shortest face side kept, px")] = 40,
) -> None:
    """Align WIDER FACE's labelled faces with YuNet's landmarks and embed each (and its mirror)
    with dlib: the distillation set of `train mobilefacenet --distill` (needs edgevision[dlib])."""
    from edgevision.data.io import check_output_file
    from edgevision.recognition.dlib_peer import DlibEmbedder
    from edgevision.recognition.teacher_set import build_teacher_set, save_teacher_set

    if out.suffix != ".npz":
        raise ConfigError(f"--out must end in .npz, got {out.name!r}")
    if not 8 <= min_face <= 4096:
        raise ConfigError(f"--min-face must be in [8, 4096] px, got {min_face}")
    check_output_file(out, "--out")
    data = _data_root(data, "widerface")
    yunet = yunet or _data_root(None, "weights") / "yunet" / "yunet_n_dynamic.onnx"
    DlibEmbedder()  # a missing extra fails now, not after the first image
    with _progress() as progress:
        task = progress.add_task(f"WIDER {split} faces", total=None)
        teacher_set = build_teacher_set(
            data,
            yunet,
            split=split,
            min_face=min_face,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    save_teacher_set(teacher_set, out)
    typer.echo(f"{len(teacher_set)} faces: {out}")


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
    from edgevision.data.io import check_output_file
    from edgevision.deploy.builder import BuildOptions, build_engine
    from edgevision.deploy.plan_signing import key_from

    key = key_from(plan_key)  # a bad key file fails before the build
    check_output_file(output, "-o/--output")  # before the build, not after it
    if calib_cache is not None and not calib_cache.is_file():  # written at the end of calibration
        check_output_file(calib_cache, "--calib-cache")
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
        # The plan's precision and backend: --tune may have chosen others than those asked for.
        f"{result.path}: {result.plan.precision} plan for {result.plan.backend}, "
        f"layers {first.layers_before} -> {last.layers_after}, "
        f"activation arena {result.memory.arena_bytes / 2**20:.2f} MiB"
    )


@app.command(
    "run",
    help="Run a plan on images: faces for a detector plan (with detect's options), the top classes "
    f"for a classifier, else the output shapes. {INPUTS_POLICY}",
)
@_with_detect_options
def run_plan(
    plan: Annotated[Path, typer.Argument(help="a plan file from `edgevision build`")],
    inputs: Annotated[
        list[Path], typer.Argument(help="images, folders of images, or videos (detector plans)")
    ],
    threads: Annotated[int | None, typer.Option(min=1, help="threads per operator")] = None,
    top: Annotated[int, typer.Option(min=1, help="classes printed per image for a classifier")] = 5,
    plan_key: PlanKeyOption = None,
    *,
    settings: DetectSettings,
) -> None:
    from edgevision.api import detector_from_engine, is_detector_plan
    from edgevision.cli_media import run_plan_outputs
    from edgevision.data.media import collect_media

    engine = _load_engine(plan, threads, plan_key)
    media = collect_media(inputs)
    if is_detector_plan(engine):
        _detect_media(media, detector_from_engine(engine, settings.postprocess(), settings.pyramid), settings)
        return
    if settings.out is not None:
        source = engine.plan.source.get("model")
        raise ConfigError(
            f"--out writes annotated copies for a detector plan; this plan's model is {source!r}"
        )
    with _progress() as progress:
        run = run_plan_outputs(engine, media, settings, top, progress, err_console)
    run.finish()


def _on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM as an exit through Python, so every abort path runs (a half-written video or file
    is deleted) as it does for Ctrl-C; 128 + 15 is the shell's status for a terminated process."""
    raise SystemExit(128 + signum)


def _one_line_warnings(show_python: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints edgevision's warnings as one ``warning:`` line and
    hands the others to ``show_python``."""

    def show(message: Warning | str, category: type[Warning], *where: object) -> None:
        if issubclass(category, EdgeVisionWarning):
            text = escape(str(message))
            err_console.print(f"[yellow]warning:[/yellow] {text}", highlight=False, soft_wrap=True)
        else:
            show_python(message, category, *where)

    return show


def main() -> None:
    """Entry point: runs the app, turning edgevision's errors into one line and exit code 2, and
    its warnings into one line each."""
    import signal
    import threading
    import warnings

    show_python = warnings.showwarning
    warnings.showwarning = _one_line_warnings(show_python)

    in_main_thread = threading.current_thread() is threading.main_thread()  # signal() needs it
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main_thread else None
    try:
        app()
    except EdgeVisionError as error:
        # escaped: a message may hold brackets, e.g. "pip install edgevision[openvino]"
        err_console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    finally:
        warnings.showwarning = show_python
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()

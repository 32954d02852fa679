"""Face recognition on ORL people 31-40 (never trained on): 10-fold verification accuracy, TAR at
FAR 1e-3 and rank-1 identification (images 1-5 of each person the gallery, 6-10 the probes), for
our weights and the dlib peer, and the CPU time per face on one thread.

    python benchmarks/recognition_orl.py [--weights NAME=PATH]... [--no-int8] [--no-dlib]
        [--no-accuracy | --no-timing] [--repeats 20] [--json out/recognition_orl.json]

Without ``--weights``, the bundled weights of the default recognition model. ``NAME`` labels the
weights file ``PATH`` (of the default recognition model), e.g. ``ours=runs/mfn/last.pth``.
Every model embeds the crops the same way (ORL images are face crops: crop mode, no detection),
as the LFW protocol does: the image plus its mirror, compared by cosine similarity; dlib's
descriptors too (its own detector finds the face in the crop, :meth:`DlibEmbedder.embed_crop`).

The threshold a model card holds (``threshold``: the cosine distance at or under which ``verify``
says "same") is chosen on the pairs of people 1-30 (the training people), and its accuracy on
people 31-40 printed beside the 10-fold figure.

``--int8`` (default on) adds, for each weights file, its int8 plan built by our engine (entropy
calibration on the crops of ORL people 1-30, never 31-40), run by ONNX Runtime.

Timing (median of ``--repeats``, one thread: torch, OpenCV and the plans' ONNX Runtime):
``detect + align + embed`` is :meth:`Recognizer.embed` on the bundled photo (the default detector
in torch, then the face's crop and its mirror through the embedding network); ``embed`` is the
embedding of one aligned crop alone (crop + mirror, two forwards); dlib's ``embed`` is its
5-point shape and ResNet descriptor of one face given its box (one forward; its ``detect +
align + embed`` adds its HOG detector on the photo).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from _machine import cpu_name, set_threads  # benchmarks/_machine.py
from rich.console import Console
from rich.table import Table

from edgevision.data.io import atomic_write, read_image, write_image
from edgevision.data.paths import default_data_dir
from edgevision.evaluation.verification import (
    Pairs,
    best_threshold,
    cosine_similarities,
    orl_identification_split,
    orl_pairs,
    rank1,
    ten_fold,
)
from edgevision.models import RECOGNITION, default_model, model_info
from edgevision.recognition.alignment import face_crop_input
from edgevision.recognition.recognizer import Recognizer, default_detector, load_recognizer

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = default_data_dir(REPO_ROOT)
PHOTO = REPO_ROOT / "src" / "edgevision" / "assets" / "astronaut.png"
TEST_PEOPLE = range(31, 41)  # never trained on
# The training people: the int8 plans' calibration crops, the card threshold's pairs.
TRAINING_PEOPLE = range(1, 31)


@dataclass
class Entry:
    """A model measured: ``embed_crop`` (a face-crop image -> embedding, image plus mirror) and,
    for timing, ``embed_photo`` (detect + align + embed) and ``embed_aligned`` (one aligned crop)."""

    label: str
    embed_crop: Callable[[np.ndarray], np.ndarray]
    embed_photo: Callable[[np.ndarray], np.ndarray]
    embed_aligned: Callable[[np.ndarray], np.ndarray]


def ours(label: str, recognizer: Recognizer) -> Entry:
    return Entry(
        label,
        lambda image: recognizer.embed(image, crop=True),
        recognizer.embed,
        lambda crop: recognizer.embed_crops(crop[None])[0],
    )


def dlib_peer() -> Entry | None:
    """dlib's ResNet descriptor, or None (with a note) when the optional extra is absent."""
    from edgevision.recognition.dlib_peer import DlibEmbedder, dlib_available

    if not dlib_available():
        Console(stderr=True).print(
            "note: dlib is not installed (pip install 'edgevision[dlib]'): no dlib peer"
        )
        return None
    dlib = DlibEmbedder()
    box: list[np.ndarray] = []

    def with_mirror(image: np.ndarray) -> np.ndarray:
        return dlib.embed_crop(image) + dlib.embed_crop(np.ascontiguousarray(image[:, ::-1]))

    def one_face(photo: np.ndarray) -> np.ndarray:
        if not box:  # the photo's face box, found once by our detector (dlib's embed takes a box)
            box.append(default_detector(torch.device("cpu")).detect(photo).above(0.5).boxes[0].numpy())
        return dlib.embed(photo, box[0])

    return Entry("dlib ResNet (peer)", with_mirror, dlib.embed_crop, one_face)


def calibration_folder(folder: Path) -> Path:
    """The face-crop inputs of ORL people 1-30 as PNG files: the int8 calibration images."""
    for person in TRAINING_PEOPLE:
        for number in range(1, 11):
            crop = face_crop_input(read_image(DATA / "orl_faces" / f"s{person}" / f"{number}.pgm"))
            write_image(folder / f"s{person}_{number}.png", crop)
    return folder


def int8_plan(label: str, weights: Path, folder: Path, calibration: Path) -> Entry:
    from edgevision.deploy.builder import BuildOptions, build_engine

    options = BuildOptions(precision="int8", calibration_dir=calibration, calibration_images=300)
    plan = build_engine(default_model(RECOGNITION), folder / f"{label}.plan", options, weights=weights).path
    return ours(f"{label} int8 plan", load_recognizer(plan, threads=1))


def embed_paths(entry: Entry, paths: Sequence[str], cache: dict[str, np.ndarray]) -> np.ndarray:
    """``(N, D)`` embeddings of ORL images (``s31/1.pgm``), each image embedded once."""
    for path in set(paths) - set(cache):
        cache[path] = entry.embed_crop(read_image(DATA / "orl_faces" / path))
    return np.stack([cache[path] for path in paths])


def pair_similarities(entry: Entry, pairs: Pairs, cache: dict[str, np.ndarray]) -> np.ndarray:
    return cosine_similarities(
        embed_paths(entry, pairs.first, cache), embed_paths(entry, pairs.second, cache)
    )


def accuracy(entry: Entry) -> dict[str, Any]:
    """10-fold verification and rank-1 on ORL people 31-40; the verification threshold a model
    card would hold, chosen on the pairs of people 1-30 (the training people), as a cosine
    distance, and the accuracy it gives on people 31-40 (what ``verify`` does there)."""
    cache: dict[str, np.ndarray] = {}
    pairs = orl_pairs(TEST_PEOPLE)
    similarities = pair_similarities(entry, pairs, cache)
    result = ten_fold(similarities, pairs.same, pairs.folds)
    gallery, gallery_ids, probes, probe_ids = orl_identification_split(TEST_PEOPLE)
    identified = rank1(
        embed_paths(entry, gallery, cache), gallery_ids, embed_paths(entry, probes, cache), probe_ids
    )
    training = orl_pairs(TRAINING_PEOPLE)
    similarity_threshold, _ = best_threshold(pair_similarities(entry, training, cache), training.same)
    threshold = 1.0 - similarity_threshold  # verify: same when the distance is at most this
    at_threshold = float(np.mean((1.0 - similarities <= threshold) == pairs.same))
    return {
        "verification": result.to_json(),
        "summary": result.summary(),
        "rank1": identified,
        "card_threshold": threshold,
        "accuracy_at_card_threshold": at_threshold,
    }


def median_ms(work: Callable[[np.ndarray], Any], item: np.ndarray, repeats: int) -> float:
    work(item)  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        work(item)
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples))


def timing(entry: Entry, photo: np.ndarray, aligned: np.ndarray, repeats: int) -> dict[str, float]:
    set_threads(1)
    return {
        "detect_align_embed": median_ms(entry.embed_photo, photo, repeats),
        "embed": median_ms(entry.embed_aligned, aligned, repeats),
    }


def main(
    weights: Annotated[
        list[str] | None, typer.Option(help="NAME=PATH: weights of the default recognition model; repeat it")
    ] = None,
    int8: Annotated[bool, typer.Option(help="add each weights file's int8 plan")] = True,
    dlib: Annotated[bool, typer.Option(help="add the dlib peer (if installed)")] = True,
    accuracy_: Annotated[bool, typer.Option("--accuracy/--no-accuracy", help="measure ORL 31-40")] = True,
    timing_: Annotated[bool, typer.Option("--timing/--no-timing", help="measure 1-thread CPU time")] = True,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs per figure")] = 20,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the figures as JSON")] = None,
) -> None:
    specs = [spec.partition("=") for spec in weights or []]
    named = {name: Path(path) for name, _, path in specs if name and path}
    if len(named) != len(specs):
        raise typer.BadParameter("--weights takes NAME=PATH")
    if not named:
        named = {"bundled": model_info(default_model(RECOGNITION)).weights_path}
    entries = [
        ours(name, load_recognizer(weights=path, device="cpu", threads=1)) for name, path in named.items()
    ]
    plans = tempfile.TemporaryDirectory()
    if int8:
        calibration = calibration_folder(Path(plans.name) / "calibration")
        entries += [int8_plan(name, path, Path(plans.name), calibration) for name, path in named.items()]
    peer = dlib_peer() if dlib else None
    entries += [peer] if peer is not None else []

    photo = read_image(PHOTO)
    aligned = load_recognizer(weights=next(iter(named.values()))).aligned_face(photo)  # timed alone
    rows = []
    for entry in entries:
        set_threads(2)
        figures: dict[str, Any] = {"model": entry.label}
        if accuracy_:
            figures |= accuracy(entry)
        if timing_:
            figures["ms"] = timing(entry, photo, aligned, repeats)
        rows.append(figures)
        Console().print(
            f"{entry.label}: {json.dumps({k: v for k, v in figures.items() if k != 'verification'})}"
        )

    table = Table(title=f"ORL people 31-40 (crops + mirror, cosine); CPU ms per face, 1 thread, {cpu_name()}")
    for column in (
        "model",
        "verification (10-fold)",
        "TAR @ FAR 1e-3",
        "rank-1",
        "card threshold (1-30)",
        "accuracy at it",
        "detect+align+embed ms",
        "embed ms",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in rows:
        check = row.get("verification")
        table.add_row(
            row["model"],
            f"{100 * check['accuracy']:.2f}% ± {100 * check['accuracy_std']:.2f}" if check else "-",
            f"{100 * check['tar']:.2f}%" if check else "-",
            f"{100 * row['rank1']:.1f}%" if check else "-",
            f"{row['card_threshold']:.4f}" if check else "-",
            f"{100 * row['accuracy_at_card_threshold']:.2f}%" if check else "-",
            *(f"{row['ms'][key]:.1f}" if "ms" in row else "-" for key in ("detect_align_embed", "embed")),
        )
    Console(width=160).print(table)
    if json_out is not None:
        record = {"command": " ".join(["python", *sys.argv]), "cpu": cpu_name(), "rows": rows}
        with atomic_write(json_out, "w") as handle:
            json.dump(record, handle, indent=2)
    plans.cleanup()


if __name__ == "__main__":
    typer.run(main)

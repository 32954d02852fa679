"""The face sizes each training augmentation produces from the WIDER FACE train boxes, beside the
pictures' own (what a 1x test scale sees): median output face height and the share under 32 and
64 px. Geometry only: the pictures are blank arrays of the real sizes, so a run takes a minute.

    python benchmarks/augmentation_face_sizes.py [--data ../shared/data/widerface] [--size 1024]
        [--draws 1000]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from edgevision.data.io import read_image_size
from edgevision.data.paths import default_data_dir
from edgevision.data.transforms import Sample, faceboxes_train_transform, small_face_train_transform
from edgevision.data.widerface import load_split

REPO_ROOT = Path(__file__).resolve().parents[1]
MEAN_BGR = (104.0, 117.0, 123.0)  # FaceBoxes' (the fill colour does not change the geometry)


def main(
    data: Annotated[Path | None, typer.Option(help="WIDER FACE root")] = None,
    size: Annotated[int, typer.Option(help="training input, px")] = 1024,
    draws: Annotated[int, typer.Option(help="augmented samples per transform")] = 1000,
) -> None:
    split = load_split(data or default_data_dir(REPO_ROOT) / "widerface", "train")
    records = [r for r in split.records if r.valid.any()]
    shapes = {r.name: read_image_size(split.image_path(r))[::-1] for r in records}  # (H, W)

    def picture(rng: np.random.Generator) -> Sample:
        record = records[int(rng.integers(len(records)))]
        return Sample(np.zeros((*shapes[record.name], 3), np.uint8), record.boxes[record.valid])

    def report(name: str, heights: np.ndarray, empty: int) -> None:
        shares = f"{np.mean(heights < 32):.1%} | {np.mean(heights < 64):.1%}"
        print(f"| {name} | {np.median(heights):.0f} | {shares} | {empty}/{draws} |")

    print("| faces | median height px | under 32 px | under 64 px | samples with no face |")
    print("|---|---:|---:|---:|---:|")
    boxes = np.concatenate([r.boxes[r.valid] for r in records])
    learnable = boxes[(boxes[:, 2:] - boxes[:, :2]).min(axis=1) > 16]  # what the crops keep (> 16 px)
    report("the pictures at 1x (faces over 16 px)", learnable[:, 3] - learnable[:, 1], 0)
    for name, transform in (
        ("`faceboxes` (FaceBoxes' crop)", faceboxes_train_transform(size, MEAN_BGR)),
        ("`small_faces` without mosaics", small_face_train_transform(size, MEAN_BGR)),
        ("`small_faces` (mosaics of the set)", small_face_train_transform(size, MEAN_BGR, picture)),
    ):
        heights, empty = [], 0
        for k in range(draws):
            out = transform(picture(np.random.default_rng([0, k])), np.random.default_rng([1, k]))
            heights.append(out.boxes[:, 3] - out.boxes[:, 1])
            empty += len(out.boxes) == 0
        report(name, np.concatenate(heights), empty)


if __name__ == "__main__":
    typer.run(main)

"""Where five facial landmarks sit in the default detector's face boxes: the recognizer's alignment
for detectors without landmarks (``recognition.recognizer.BOX_LANDMARKS``).

    python benchmarks/box_landmarks.py [--images 700] [--min-width 40]

YuNet-n (``cv2.FaceDetectorYN``, score 0.8) finds faces and their landmarks in WIDER val images;
each face the default detector also finds (score 0.5, IoU 0.5 with YuNet's box, at least
``--min-width`` px wide) gives its five points as fractions of the detector's box. Printed: the
medians, then the same made mirror-symmetric (a point and its mirror partner averaged, the nose
and the mouth centred), which is what ``BOX_LANDMARKS`` holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
import torch
import typer
from _machine import set_threads  # benchmarks/_machine.py
from torchvision.ops import box_iou

from edgevision.data.io import read_image
from edgevision.data.paths import default_data_dir
from edgevision.recognition.recognizer import default_detector

DATA = default_data_dir(Path(__file__).resolve().parents[1])
# Each point's mirror partner in the landmark order (eyes, nose, mouth corners).
MIRROR = [1, 0, 2, 4, 3]


def main(
    images: Annotated[int, typer.Option(min=1, help="WIDER val images, every second one")] = 700,
    min_width: Annotated[float, typer.Option(help="smallest face box width, px")] = 40.0,
) -> None:
    set_threads(1)
    detector = default_detector(torch.device("cpu"))
    weights = str(DATA / "weights" / "yunet" / "yunet_n_dynamic.onnx")
    files = sorted((DATA / "widerface" / "WIDER_val" / "images").glob("*/*.jpg"))[::2][:images]
    fractions = []
    for path in files:
        image = read_image(path)
        height, width = image.shape[:2]
        _, found = cv2.FaceDetectorYN.create(weights, "", (width, height), 0.8).detect(image)
        faces = detector.detect(image).above(0.5)
        if found is None or not len(faces):
            continue
        xywh = torch.from_numpy(found[:, :4])
        overlaps = box_iou(faces.boxes, torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1))
        for i, (x1, y1, x2, y2) in enumerate(faces.boxes.tolist()):
            j = int(overlaps[i].argmax())
            if overlaps[i, j] >= 0.5 and x2 - x1 >= min_width:
                points = found[j, 4:14].reshape(5, 2)  # YuNet's order is the recognizer's
                fractions.append((points - [x1, y1]) / [x2 - x1, y2 - y1])
    median = np.median(np.array(fractions), axis=0)
    mirrored = median[MIRROR] * [-1, 1] + [1, 0]
    symmetric = (median + mirrored) / 2
    print(f"{len(fractions)} faces from {len(files)} images")
    print("medians (x, y as fractions of the box):", np.round(median, 3).tolist())
    print("mirror-symmetric:", np.round(symmetric, 3).tolist())


if __name__ == "__main__":
    typer.run(main)

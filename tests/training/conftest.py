"""Synthetic face images for training tests: cartoon faces (a skin-coloured oval, two dark eyes,
a mouth) on blurred colour noise, so a few seconds of training can be asked to find them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.data.transforms import Compose, Resize
from edgevision.models import create_model
from edgevision.training.detection_dataset import FaceTrainingSet

FacesFactory = Callable[..., tuple[list[Path], list[np.ndarray]]]


def draw_face(image: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> None:
    """A cartoon face filling the square ``box`` (xyxy px) of a BGR image, in place."""
    x1, y1, x2, _ = box
    side = x2 - x1
    cx, cy = int(x1 + side / 2), int(y1 + side / 2)
    skin = tuple(int(v) for v in rng.integers([90, 120, 170], [140, 170, 230]))
    cv2.ellipse(image, (cx, cy), (int(side * 0.42), int(side * 0.5)), 0, 0, 360, skin, -1)
    eye_axes = (max(1, int(side * 0.08)), max(1, int(side * 0.05)))
    for dx in (-0.18, 0.18):
        eye = (int(cx + dx * side), int(cy - 0.1 * side))
        cv2.ellipse(image, eye, eye_axes, 0, 0, 360, (30, 30, 30), -1)
    mouth = (int(side * 0.15), max(1, int(side * 0.04)))
    cv2.ellipse(image, (cx, int(cy + 0.22 * side)), mouth, 0, 0, 360, (40, 40, 120), -1)


def synthetic_faces(
    folder: Path, images: int, size: int = 256, face_px: tuple[int, int] = (40, 90), seed: int = 0
) -> tuple[list[Path], list[np.ndarray]]:
    """``images`` PNGs of ``size`` px with up to 3 separate square faces of ``face_px`` sides each,
    and their ``(N, 4)`` float32 xyxy boxes."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths, boxes = [], []
    for index in range(images):
        noise = rng.integers(0, 256, (size // 8, size // 8, 3)).astype(np.uint8)
        image = cv2.resize(noise, (size, size), interpolation=cv2.INTER_LINEAR)
        faces: list[np.ndarray] = []
        for _ in range(100):  # tries at placing a face apart from the others
            if len(faces) == 3:
                break
            side = int(rng.integers(*face_px))
            x, y = (int(v) for v in rng.integers(0, size - side, 2))
            box = np.array([x, y, x + side, y + side], dtype=np.float32)
            apart = all(
                box[0] >= o[2] + 4 or box[2] + 4 <= o[0] or box[1] >= o[3] + 4 or box[3] + 4 <= o[1]
                for o in faces
            )
            if apart:
                faces.append(box)
        for box in faces:
            draw_face(image, box, rng)
        path = folder / f"{index}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
        boxes.append(np.stack(faces))
    return paths, boxes


@pytest.fixture()
def synthetic_training_set(tmp_path: Path) -> Callable[..., FaceTrainingSet]:
    """``synthetic_training_set(images, size=256, face_px=(40, 90))``: a training set of
    synthetic faces, resized (no other augmentation) to ``size`` px squares."""

    def build(images: int, size: int = 256, face_px: tuple[int, int] = (40, 90)) -> FaceTrainingSet:
        paths, boxes = synthetic_faces(tmp_path / "faces", images, size, face_px)
        preprocessing = create_model("faceboxes").input_preprocessing
        transform = Compose([Resize(size, random_interpolation=False)])
        return FaceTrainingSet(paths, boxes, transform, preprocessing)

    return build

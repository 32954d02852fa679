"""The models shipped inside the package: each loads by name alone and finds the astronaut; the
default one keeps the dev-val AP written in its model card (a regression guard, not a tuning
target)."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.ops import box_iou

from edgevision import load_detector
from edgevision.data.io import read_image
from edgevision.evaluation.widerface_predict import run_widerface
from edgevision.models import DETECTION, list_models, model_info
from edgevision.weights import WEIGHTS_DIR


@pytest.fixture(scope="module")
def card() -> dict:
    """The model card, measured with `edgevision eval widerface` (docs/benchmarks.md)."""
    return json.loads((WEIGHTS_DIR / "faceboxes_widerface.json").read_text())


@pytest.mark.parametrize("name", [n for n in list_models(DETECTION) if model_info(n).weights is not None])
def test_bundled_detector_finds_the_astronaut(astronaut_path, name):
    image = read_image(astronaut_path)
    faces = load_detector(name, device="cpu").detect(image).above(0.5)
    assert len(faces) >= 1
    # Her face, by hand: x 180-270, y 65-175 px.
    assert box_iou(faces.boxes[:1], torch.tensor([[180.0, 65.0, 270.0, 175.0]])).item() > 0.5


@pytest.mark.slow
def test_bundled_detector_keeps_its_dev_val_ap(card, data_dir, tmp_path):
    root = data_dir / "widerface"
    result = run_widerface(load_detector("faceboxes", device="cpu"), root, tmp_path / "pred")
    for subset in ("easy", "medium", "hard"):
        assert result.ap[subset] == pytest.approx(card["dev_val_ap"][subset], abs=0.002), subset

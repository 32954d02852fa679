"""The reference FaceBoxes weights, run through our model, detector and the official protocol,
score what FaceBoxes.PyTorch itself scores on the WIDER val images present (dev-val)."""

from __future__ import annotations

import pytest

from edgevision import load_detector
from edgevision.evaluation.widerface_predict import run_widerface

# FaceBoxes.PyTorch's own test code on these 140 images, official protocol (issue 2).
REFERENCE_AP = {"easy": 0.947, "medium": 0.894, "hard": 0.777}


@pytest.mark.slow
def test_reference_weights_reproduce_reference_ap(data_dir, reference_weights, tmp_path):
    detector = load_detector("faceboxes", weights=reference_weights, device="cpu")
    root = data_dir / "widerface"
    result = run_widerface(detector, root, tmp_path / "predictions", scale=1.0)

    assert result.num_images == 140
    assert result.num_faces == {"easy": 345, "medium": 612, "hard": 785}
    for subset, expected in REFERENCE_AP.items():
        assert result.ap[subset] == pytest.approx(expected, abs=0.005), subset

"""FaceBoxes with its landmark head deployed: the ONNX file and a built plan have the third
output, the plan records that its weights hold the head, and ``load_detector(plan)`` gives the
landmarks torch gives."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgevision.api import load_detector
from edgevision.data.io import read_image
from edgevision.deploy.export import OnnxNetwork, export_onnx
from edgevision.detection.detector import Detector
from edgevision.models import create_model, model_info
from edgevision.models.checkpoint import save_checkpoint
from edgevision.models.weights import load_weights


@pytest.fixture(scope="module")
def head_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FaceBoxes' bundled detector with a landmark head (seeded, untrained: its points are
    arbitrary but fixed, which is all an equality test needs)."""
    torch.manual_seed(0)
    model = create_model("faceboxes", landmarks=True)
    with torch.no_grad():  # points spread over the face, not all on the anchor centres
        for conv in model.landm:
            conv.weight.mul_(20)
    plain = model_info("faceboxes").weights_path
    if any(key.startswith("landm.") for key in torch.load(plain, weights_only=True)):
        return plain  # the bundled weights hold a (trained) head already
    load_weights(model, plain, "faceboxes", ("landm",))
    path = tmp_path_factory.mktemp("weights") / "faceboxes_landmarks.pth"
    save_checkpoint(path, model.state_dict())
    return path


@pytest.fixture(scope="module")
def photo(astronaut_path: Path) -> np.ndarray:
    return cv2.resize(read_image(astronaut_path), (320, 240), interpolation=cv2.INTER_AREA)


def test_onnx_runtime_gives_torchs_landmarks(head_weights, photo, tmp_path):
    model = create_model("faceboxes", weights=head_weights).eval()
    path = export_onnx(model, tmp_path / "faceboxes.onnx")
    torch_found = Detector(model, device=torch.device("cpu")).detect(photo)
    onnx_found = Detector(model, device=torch.device("cpu"), network=OnnxNetwork(path, model)).detect(photo)
    assert len(torch_found) > 0 and len(onnx_found) == len(torch_found)
    torch.testing.assert_close(onnx_found.landmarks, torch_found.landmarks, rtol=0, atol=1e-2)


def test_a_plan_keeps_the_head_and_its_landmarks_equal_torchs(head_weights, photo, tmp_path):
    from edgevision.deploy.builder import BuildOptions, build_engine

    plan = build_engine(
        "faceboxes", tmp_path / "lm.plan", BuildOptions(input_size=(240, 320)), weights=head_weights
    )
    detector = load_detector(str(plan.path))
    assert detector.model.onnx_output_names == ("loc", "conf", "landmarks")
    planned = detector.detect(photo)
    expected = load_detector(weights=head_weights, device="cpu").detect(photo)
    assert len(expected) > 0 and len(planned) == len(expected)
    torch.testing.assert_close(planned.boxes, expected.boxes, rtol=0, atol=1e-2)
    torch.testing.assert_close(planned.landmarks, expected.landmarks, rtol=0, atol=1e-2)
    # The landmarks are not the boxes' corners or centres: the points say something of their own.
    spread = planned.landmarks[:, :, 0].std(dim=1)
    assert (spread > 1.0).all()

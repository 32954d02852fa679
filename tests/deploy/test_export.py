"""ONNX export of FaceBoxes with the reference weights: the file is valid, its H and W are really
dynamic, and ONNX Runtime reproduces torch eager."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from edgevision.data.io import read_image
from edgevision.deploy.export import OnnxNetwork, export_onnx
from edgevision.detection.detector import Detector
from edgevision.errors import InputFileError, ShapeError
from edgevision.models import create_model
from edgevision.models.faceboxes import FaceBoxes
from edgevision.models.weights import load_weights

# Not multiples of the 128 px largest stride, and not of each other: A differs per size.
SIZES = [(480, 640), (333, 517)]


@pytest.fixture(scope="module")
def faceboxes(reference_weights: Path) -> FaceBoxes:
    model = create_model("faceboxes")
    load_weights(model, reference_weights, "faceboxes")
    return model.eval()


@pytest.fixture(scope="module")
def photo(astronaut_path: Path) -> np.ndarray:
    return read_image(astronaut_path)


@pytest.fixture(scope="module")
def onnx_path(faceboxes: FaceBoxes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(faceboxes, tmp_path_factory.mktemp("onnx") / "faceboxes.onnx")


def network_input(photo: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    resized = cv2.resize(photo, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    # FaceBoxes' input, written out: BGR minus the mean, channels first.
    chw = (resized.astype(np.float32) - np.float32([104.0, 117.0, 123.0])).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(chw))[None]


def test_exported_file_passes_the_onnx_checker(onnx_path: Path) -> None:
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)
    height, width = model.graph.input[0].type.tensor_type.shape.dim[2:]
    assert (height.dim_param, width.dim_param) == ("height", "width")
    assert not list(onnx_path.parent.glob(".*.tmp")), "the atomic write left a temporary file"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_onnx_runtime_matches_torch_eager(
    faceboxes: FaceBoxes, onnx_path: Path, photo: np.ndarray, size: tuple[int, int]
) -> None:
    x = network_input(photo, size)
    with torch.inference_mode():
        loc, conf = faceboxes(x)
    onnx_loc, onnx_conf = OnnxNetwork(onnx_path, faceboxes, intra_op_num_threads=1)(x)
    assert onnx_loc.shape == (1, len(faceboxes.anchors(size)), 4)
    torch.testing.assert_close(onnx_loc, loc, rtol=0, atol=1e-4)
    torch.testing.assert_close(onnx_conf, conf, rtol=0, atol=1e-4)


def test_detector_runs_the_onnx_runtime_like_the_torch_network(
    faceboxes: FaceBoxes, onnx_path: Path, photo: np.ndarray
) -> None:
    cpu = torch.device("cpu")
    expected = Detector(faceboxes, device=cpu).detect(photo)
    got = Detector(faceboxes, device=cpu, network=OnnxNetwork(onnx_path, faceboxes)).detect(photo)
    assert len(got.boxes) == len(expected.boxes) > 0
    torch.testing.assert_close(got.boxes, expected.boxes, rtol=0, atol=1e-3)
    torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=1e-5)


def test_runtime_rejects_a_batch(faceboxes: FaceBoxes, onnx_path: Path) -> None:
    with pytest.raises(ShapeError, match=r"expected one image, a \(1, ...\) 4-D input, got \(2, 3, 64, 64\)"):
        OnnxNetwork(onnx_path, faceboxes)(torch.zeros(2, 3, 64, 64))


def test_runtime_rejects_a_missing_or_broken_file(faceboxes: FaceBoxes, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such ONNX file"):
        OnnxNetwork(tmp_path / "absent.onnx", faceboxes)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(InputFileError, match="not a loadable ONNX model"):
        OnnxNetwork(broken, faceboxes)

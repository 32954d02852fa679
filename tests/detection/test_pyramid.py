"""The pyramid in :class:`Detector`: each scale's boxes (and landmarks) come back in the original
image's pixels, one NMS runs across the scales, and the model learns which scale it decodes
(hand-computed)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from edgevision.data.preprocessing import Preprocessing
from edgevision.detection.detector import Detector
from edgevision.errors import ConfigError, EdgeVisionWarning, ImageDecodeError


class StubDetector:
    """A detector whose 'network' output is ignored: at every scale it reports the centre quarter
    of its input (score by scale) and one box only that scale sees, 10 x 10 px at the input's
    top-left corner."""

    input_preprocessing = Preprocessing()
    test_scales = (0.5, 1.0, 2.0)
    min_input_size = 8
    onnx_output_names = ("x",)
    scores = {0.5: 0.7, 1.0: 0.9, 2.0: 0.8}

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[int, int], float, tuple[float, ...]]] = []

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (x,)

    def decode(
        self,
        outputs: Sequence[torch.Tensor],
        input_size: tuple[int, int],
        *,
        scale: float = 1.0,
        scales: Sequence[float] = (1.0,),
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen.append((input_size, scale, tuple(scales)))
        height, width = input_size
        centre = [width / 4, height / 4, 3 * width / 4, 3 * height / 4]
        corner = [0.0, 0.0, 10.0, 10.0]
        return torch.tensor([centre, corner]), torch.tensor([self.scores[scale], 0.5 + scale / 10])


def test_each_scale_is_rescaled_to_the_image_and_one_nms_merges_them() -> None:
    stub = StubDetector()
    image = np.zeros((200, 400, 3), np.uint8)
    found = Detector(stub, device=torch.device("cpu"), network=stub).detect(image)
    assert stub.seen == [((100, 200), 0.5, (0.5, 1.0, 2.0)), ((200, 400), 1.0, (0.5, 1.0, 2.0)),
                         ((400, 800), 2.0, (0.5, 1.0, 2.0))]  # fmt: skip
    # The three centre boxes are one face in the image (100, 50, 300, 150): the best (1x) is kept.
    # The corner boxes are 20, 10 and 5 px in the image; 5 px sits inside 10 inside 20, but with
    # IoU 0.25 each: NMS at 0.3 keeps all three.
    expected = [
        ([100, 50, 300, 150], 0.9),
        ([0, 0, 5, 5], 0.7),
        ([0, 0, 10, 10], 0.6),
        ([0, 0, 20, 20], 0.55),
    ]
    torch.testing.assert_close(found.boxes, torch.tensor([box for box, _ in expected], dtype=torch.float32))
    torch.testing.assert_close(found.scores, torch.tensor([score for _, score in expected]))


class LandmarkStub(StubDetector):
    """The stub's boxes, each with five points at fixed fractions of itself."""

    fractions = torch.tensor([[0.3, 0.35], [0.68, 0.38], [0.42, 0.55], [0.33, 0.75], [0.62, 0.78]])

    def decode(self, outputs, input_size, *, scale=1.0, scales=(1.0,)):
        boxes, scores = super().decode(outputs, input_size, scale=scale, scales=scales)
        return boxes, scores, points_in(boxes, self.fractions)


def points_in(boxes: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    return boxes[:, None, :2] + fractions[None] * (boxes[:, None, 2:] - boxes[:, None, :2])


def test_each_scales_landmarks_come_back_to_the_image_with_their_box() -> None:
    stub = LandmarkStub()
    found = Detector(stub, device=torch.device("cpu"), network=stub).detect(
        np.zeros((200, 400, 3), np.uint8), scale=1.5
    )
    # Every scale's boxes (the same as in the test above, x 1.5 on top), each with its own points.
    assert len(found) == 4 and found.landmarks is not None
    torch.testing.assert_close(found.boxes[0], torch.tensor([100.0, 50.0, 300.0, 150.0]))
    torch.testing.assert_close(found.landmarks, points_in(found.boxes, stub.fractions), rtol=0, atol=1e-4)
    assert (
        Detector(StubDetector(), device=torch.device("cpu")).detect(np.zeros((32, 32, 3), np.uint8)).landmarks
        is None
    )


def test_the_callers_scale_multiplies_every_pyramid_scale() -> None:
    stub = StubDetector()
    found = Detector(stub, device=torch.device("cpu"), network=stub, scales=(1.0, 2.0)).detect(
        np.zeros((200, 400, 3), np.uint8), scale=0.5
    )
    assert [size for size, _, _ in stub.seen] == [(100, 200), (200, 400)]
    torch.testing.assert_close(found.boxes[0], torch.tensor([100.0, 50.0, 300.0, 150.0]))


@pytest.mark.parametrize("scales", [(0.0,), (-1.0, 1.0), (float("nan"),), ()])
def test_a_bad_scale_list_is_refused(scales: tuple[float, ...]) -> None:
    stub = StubDetector()
    with pytest.raises(ConfigError, match="pyramid scale"):
        Detector(stub, device=torch.device("cpu"), network=stub, scales=scales)


def test_an_image_smaller_than_the_detectors_input_at_every_scale_is_refused() -> None:
    stub = StubDetector()
    detector = Detector(stub, device=torch.device("cpu"), network=stub)
    with pytest.raises(
        ConfigError, match=r"scaled by 0.5 is 2x2, smaller than the detector's smallest input, 8 px"
    ):
        detector.detect(np.zeros((3, 3, 3), np.uint8))  # 1.5, 3 and 6 px: under 8 at every scale
    assert stub.seen == []


def test_a_scale_the_image_does_not_fit_is_skipped_with_a_warning() -> None:
    """A 12x10 thumbnail is 6x5 at 0.5x (under the 8 px input): 1x and 2x still run, and the model
    decodes with the pyramid that ran, so it can hand 0.5x's faces to 1x. A 2x pass over the pixel
    cap is skipped the same way, and the 2x scale's corner box (5 px in the image) is gone."""
    stub = StubDetector()
    detector = Detector(stub, device=torch.device("cpu"), network=stub)
    with pytest.warns(
        EdgeVisionWarning, match="pyramid scale 0.5 skipped: the 12x10 image scaled by 0.5 is 6x5"
    ):
        detector.detect(np.zeros((10, 12, 3), np.uint8))
    assert stub.seen == [((10, 12), 1.0, (1.0, 2.0)), ((20, 24), 2.0, (1.0, 2.0))]

    stub.seen.clear()
    detector.max_pixels = 200 * 400
    with pytest.warns(EdgeVisionWarning, match="pyramid scale 2 skipped: the image scaled by 2 is 800x400"):
        found = detector.detect(np.zeros((200, 400, 3), np.uint8))
    assert [scale for _, scale, _ in stub.seen] == [0.5, 1.0]
    assert sorted(found.boxes[:, 2].tolist()) == [10.0, 20.0, 300.0]


def test_a_single_scale_that_does_not_fit_is_an_error_not_a_warning() -> None:
    stub = StubDetector()
    detector = Detector(stub, device=torch.device("cpu"), network=stub, scales=(2.0,), max_pixels=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageDecodeError, match="the image scaled by 2 is 40x40 = 1,600 pixels"):
            detector.detect(np.zeros((20, 20, 3), np.uint8))

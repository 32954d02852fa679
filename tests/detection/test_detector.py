"""Detector: image in, Detections out, in the original image's pixels whatever the scale."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.ops import box_iou

from edgevision import load_detector
from edgevision.data.io import read_image

torch.set_num_threads(1)


def test_boxes_at_half_scale_are_in_original_pixels(reference_weights: Path, astronaut_path: Path) -> None:
    detector = load_detector("faceboxes", weights=reference_weights, device="cpu")
    image = read_image(astronaut_path)
    full = detector.detect(image).above(0.5)
    half = detector.detect(image, scale=0.5).above(0.5)
    assert len(full) >= 1 and len(half) >= 1
    # At scale 0.5 the network sees a 256 px image; unscaled boxes would sit at half the size.
    assert box_iou(half.boxes[:1], full.boxes[:1]).item() > 0.7


def test_scale_and_network_input_are_checked(astronaut_path: Path) -> None:
    import numpy as np
    import pytest

    from edgevision.errors import ConfigError, ImageDecodeError

    detector = load_detector("faceboxes", device="cpu")
    image = read_image(astronaut_path)  # 512x512
    for scale in (float("nan"), float("inf"), 1e6, 0.0, -1.0, 8.5):
        with pytest.raises(ConfigError, match=r"scale must be a finite number in \(0, 8\]"):
            detector.detect(image, scale)
    with pytest.raises(
        ConfigError, match="scaled by 0.06 is 31x31, smaller than the detector's smallest input, 32 px"
    ):
        detector.detect(image, 0.06)
    assert len(detector.detect(image, 0.0625).boxes) >= 0  # 32x32: FaceBoxes' finest stride runs
    detector.max_pixels = 1_000_000
    with pytest.raises(ImageDecodeError, match="the image scaled by 2 is 1024x1024 = 1,048,576 pixels"):
        detector.detect(image, 2.0)
    assert len(detector.detect(np.ascontiguousarray(image[:300]), 2.0).above(0.5)) == 1  # 600x1024


def test_post_processing_settings_are_checked() -> None:
    import pytest

    from edgevision.detection.postprocess import PostProcess
    from edgevision.errors import ConfigError

    for bad in (
        {"nms_iou": float("nan")},
        {"nms_iou": 1.5},
        {"confidence": -0.1},
        {"top_k": 0},
        {"keep": 2.5},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            PostProcess(**bad)

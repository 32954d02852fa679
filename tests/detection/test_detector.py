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

"""The SSD box coder: hand-computed values, a round trip, and FaceBoxes.PyTorch's encode/decode."""

from __future__ import annotations

import math

import torch

from edgevision.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from edgevision.detection.coder import SSDBoxCoder


def test_encode_hand_computed() -> None:
    # Box centre (20, 20), size 20 x 16 on a 32 px anchor at (16, 16).
    boxes = torch.tensor([[10.0, 12.0, 30.0, 28.0]])
    anchors = torch.tensor([[16.0, 16.0, 32.0, 32.0]])
    offsets = SSDBoxCoder().encode(boxes, anchors)
    expected = torch.tensor(
        [[4 / (0.1 * 32), 4 / (0.1 * 32), math.log(20 / 32) / 0.2, math.log(16 / 32) / 0.2]]
    )
    torch.testing.assert_close(offsets, expected)
    torch.testing.assert_close(offsets, torch.tensor([[1.25, 1.25, -2.3500181, -3.4657359]]))


def test_encode_identity_is_zero_and_decode_zero_is_anchor() -> None:
    anchors = torch.tensor([[16.0, 16.0, 32.0, 32.0], [100.0, 50.0, 256.0, 256.0]])
    coder = SSDBoxCoder()
    torch.testing.assert_close(coder.encode(cxcywh_to_xyxy(anchors), anchors), torch.zeros(2, 4))
    torch.testing.assert_close(coder.decode(torch.zeros(2, 4), anchors), cxcywh_to_xyxy(anchors))


def test_decode_hand_computed_with_other_variances() -> None:
    coder = SSDBoxCoder(center_variance=0.5, size_variance=1.0)
    anchors = torch.tensor([[10.0, 20.0, 4.0, 8.0]])
    # centre (10 + 1 * 0.5 * 4, 20 - 2 * 0.5 * 8) = (12, 12); size (4 e^0, 8 e^ln 2) = (4, 16).
    decoded = coder.decode(torch.tensor([[1.0, -2.0, 0.0, math.log(2.0)]]), anchors)
    torch.testing.assert_close(decoded, torch.tensor([[10.0, 4.0, 14.0, 20.0]]))


def test_round_trip_random_boxes() -> None:
    generator = torch.Generator().manual_seed(0)
    anchors = torch.cat(
        [torch.rand(500, 2, generator=generator) * 600, 16 + torch.rand(500, 2, generator=generator) * 300], 1
    )
    centres = torch.rand(500, 2, generator=generator) * 600
    sizes = 4 + torch.rand(500, 2, generator=generator) * 400
    boxes = cxcywh_to_xyxy(torch.cat([centres, sizes], 1))
    coder = SSDBoxCoder()
    torch.testing.assert_close(coder.decode(coder.encode(boxes, anchors), anchors), boxes, rtol=0, atol=1e-3)
    offsets = torch.randn(3, 500, 4, generator=generator)  # batched decode
    decoded = coder.decode(offsets, anchors)
    assert decoded.shape == (3, 500, 4)
    torch.testing.assert_close(coder.encode(decoded[1], anchors), offsets[1], rtol=0, atol=1e-4)


def test_matches_faceboxes_pytorch_normalised_coder() -> None:
    """FaceBoxes.PyTorch codes in image-normalised units; offsets are scale-free, so ours in pixels
    must give the same offsets and the same boxes times the image size."""
    generator = torch.Generator().manual_seed(1)
    width, height = 640.0, 480.0
    scale = torch.tensor([width, height, width, height], dtype=torch.float64)
    priors = torch.rand(200, 4, generator=generator, dtype=torch.float64) * 0.5 + 0.05
    matched = cxcywh_to_xyxy(torch.rand(200, 4, generator=generator, dtype=torch.float64) * 0.5 + 0.05)

    # utils/box_utils.py encode / decode, variances [0.1, 0.2].
    g_cxcy = ((matched[:, :2] + matched[:, 2:]) / 2 - priors[:, :2]) / (0.1 * priors[:, 2:])
    g_wh = torch.log((matched[:, 2:] - matched[:, :2]) / priors[:, 2:]) / 0.2
    ref_offsets = torch.cat([g_cxcy, g_wh], 1)
    loc = torch.randn(200, 4, generator=generator, dtype=torch.float64)
    ref_boxes = torch.cat(
        [priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:], priors[:, 2:] * torch.exp(loc[:, 2:] * 0.2)], 1
    )
    ref_boxes[:, :2] -= ref_boxes[:, 2:] / 2
    ref_boxes[:, 2:] += ref_boxes[:, :2]

    coder = SSDBoxCoder()
    torch.testing.assert_close(coder.encode(matched * scale, priors * scale), ref_offsets)
    torch.testing.assert_close(coder.decode(loc, priors * scale), ref_boxes * scale)


def test_box_conversions() -> None:
    xyxy = torch.tensor([[1.0, 2.0, 5.0, 10.0]])
    torch.testing.assert_close(xyxy_to_cxcywh(xyxy), torch.tensor([[3.0, 6.0, 4.0, 8.0]]))
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(xyxy)), xyxy)

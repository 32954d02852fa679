"""Tiny Faces: the paper's scale assignment, template selection per pyramid scale, the decode of
a hand-set output, template clustering, the hypercolumn ablation, and the ImageNet body."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgevision.detection.detector import Detector
from edgevision.models import create_model, list_models, model_info
from edgevision.models.tinyfaces import assigned_scale, cluster_templates, responsible

PAPER = (0.5, 1.0, 2.0)


@pytest.mark.parametrize(
    ("height", "scale"),
    [
        (5, 2.0),
        (20, 2.0),
        (39.9, 2.0),
        (40, 1.0),
        (100, 1.0),
        (140, 1.0),
        (140.1, 0.5),
        (280, 0.5),
        (900, 0.5),
    ],
)
def test_the_papers_rule_small_on_2x_large_on_half(height: float, scale: float) -> None:
    """Sec. 4: faces under 40 px are found on the 2x image, over 140 px on the 0.5x image."""
    assert assigned_scale(height, PAPER) == scale


def test_without_upsampling_small_faces_fall_to_the_native_scale() -> None:
    assert assigned_scale(10, (1.0, 0.5)) == 1.0
    assert assigned_scale(300, (1.0, 0.5)) == 0.5
    assert assigned_scale(300, (1.0,)) == 1.0


def test_each_scale_keeps_the_boxes_it_is_responsible_for() -> None:
    """Boxes of 20, 60 and 200 px at the input: at 2x they are faces of 10, 30, 100 px (the first
    two are 2x's); at 1x faces of 20, 60, 200 (only 60 is 1x's); at 0.5x of 40, 120, 400 (400)."""
    heights = torch.tensor([20.0, 60.0, 200.0])
    assert responsible(heights, 2.0, PAPER).tolist() == [True, True, False]
    assert responsible(heights, 1.0, PAPER).tolist() == [False, True, False]
    assert responsible(heights, 0.5, PAPER).tolist() == [False, False, True]
    assert responsible(heights, 1.0, (1.0,)).tolist() == [True, True, True]


@pytest.mark.parametrize("scales", [PAPER, (1.0, 0.5), (2.0, 1.0), (0.25, 0.5, 1.0, 2.0)])
def test_the_vectorised_rule_equals_the_scalar_one(scales: tuple[float, ...]) -> None:
    heights = torch.exp(torch.linspace(np.log(2.0), np.log(2000.0), 400))
    for scale in scales:
        expected = [assigned_scale(float(h) / scale, scales) == scale for h in heights]
        assert responsible(heights, scale, scales).tolist() == expected


def test_decode_of_a_hand_set_output() -> None:
    """A 16 x 24 input: 2 x 3 cells of 8 px, 8 templates each. Zero offsets put each template at
    its cell centre; a face logit of 10 on cell (1, 2)'s template 3 (52 x 64 px) makes it the one
    face. At 1x in the paper's pyramid, the boxes 40-140 px tall are kept: templates 2-6 (48-128
    px), so 5 per cell."""
    model = create_model("tinyfaces").eval()
    cells, count = 6, len(model.config.templates)
    loc = torch.zeros(1, cells * count, 4)
    conf = torch.zeros(1, cells * count, 2)
    face = (1 * 3 + 2) * count + 3
    conf[0, face, 1] = 10.0
    boxes, scores = model.decode((loc, conf), (16, 24), scale=1.0, scales=PAPER)
    assert len(boxes) == cells * 5
    best = int(scores.argmax())
    torch.testing.assert_close(boxes[best], torch.tensor([20.0 - 26, 12.0 - 32, 20.0 + 26, 12.0 + 32]))
    assert scores[best] == pytest.approx(1 / (1 + np.exp(-10.0)))
    assert (scores[torch.arange(len(scores)) != best] == 0.5).all()


def test_cluster_templates_finds_two_groups() -> None:
    rng = np.random.default_rng(0)
    small = np.array([20.0, 25.0]) + rng.normal(0, 1, (50, 2))
    large = np.array([100.0, 130.0]) + rng.normal(0, 3, (50, 2))
    centres = cluster_templates(np.concatenate([large, small]), 2)
    np.testing.assert_allclose(centres, [np.median(small, axis=0), np.median(large, axis=0)])


def test_context_off_reads_the_stride_8_map_only() -> None:
    with_context, without = create_model("tinyfaces"), create_model("tinyfaces", context=False)
    assert without.coarse is None and with_context.coarse is not None
    assert len(without.body) == without.fine_index + 1 < len(with_context.body)  # no unused layers
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for model in (with_context.eval(), without.eval()):
            loc, conf = model(x)
            assert loc.shape == (1, 8 * 12 * 8, 4) and conf.shape == (1, 8 * 12 * 8, 2)


def test_the_body_starts_from_torchvisions_imagenet_weights(shared_weights) -> None:
    path = shared_weights("mobilenet_v2_imagenet/mobilenet_v2-b0353104.pth")
    model = create_model("tinyfaces", backbone_weights=str(path))
    imagenet = torch.load(path, weights_only=True)
    ours = model.body.state_dict()
    assert len(ours) > 100
    for key, value in ours.items():
        torch.testing.assert_close(value, imagenet[f"features.{key}"], rtol=0, atol=0)


def test_tinyfaces_is_a_registered_detector_with_its_pyramid(astronaut_path: Path) -> None:
    assert "tinyfaces" in list_models("detection")
    assert model_info("tinyfaces").recipe == "single_shot_faces"
    model = create_model("tinyfaces").eval()
    detector = Detector(model, device=torch.device("cpu"))
    assert detector.scales == PAPER
    assert len(detector.detect(astronaut_path)) > 0  # untrained, but it runs all three scales

"""MobileNetV2: the paper's size and cost, the multi-scale features, and equality with
torchvision's implementation on its ImageNet weights."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision

from edgevision.data.io import read_image
from edgevision.models import create_model
from edgevision.models.complexity import count_madds, count_params
from edgevision.models.weights import load_weights

torch.set_num_threads(1)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(scope="module")
def imagenet_weights(shared_weights) -> Path:
    return shared_weights("mobilenet_v2_imagenet/mobilenet_v2-b0353104.pth")


def _imagenet_input(path: Path) -> torch.Tensor:
    """``(1, 3, 224, 224)`` RGB, ImageNet mean/std normalised."""
    rgb = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    return torch.from_numpy((rgb - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1)[None]


def test_size_and_cost_match_the_paper():
    model = create_model("mobilenet_v2")
    # Paper Table 4 / torchvision metadata: 3,504,872 parameters, 300M MAdds (0.301 GFLOPS).
    assert count_params(model) == 3_504_872
    assert count_madds(model, (224, 224)) == pytest.approx(300e6, rel=0.03)


@pytest.mark.parametrize(("width", "params"), [(0.5, 1_968_680), (1.4, 6_108_776)])
def test_width_multipliers_build(width, params):
    model = create_model("mobilenet_v2", width_mult=width).eval()
    # torchvision's mobilenet_v2(width_mult=...) sizes, from the same channel rounding.
    assert count_params(model) == params
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


def test_multi_scale_features_at_strides_8_16_32():
    model = create_model("mobilenet_v2").eval()
    maps = model.forward_features(torch.zeros(1, 3, 96, 128), multi_scale=True)
    assert [tuple(m.shape) for m in maps] == [(1, 32, 12, 16), (1, 96, 6, 8), (1, 1280, 3, 4)]
    assert model.feature_channels == (32, 96, 1280)


def test_imagenet_weights_give_torchvision_logits(imagenet_weights, astronaut_path, data_dir):
    wider_val = sorted((data_dir / "widerface" / "WIDER_val" / "images").glob("*/*.jpg"))
    if not wider_val:
        pytest.skip(f"no WIDER FACE val images under {data_dir}")
    images = torch.cat([_imagenet_input(astronaut_path), _imagenet_input(wider_val[0])])
    ours = load_weights(create_model("mobilenet_v2"), imagenet_weights, "mobilenet_v2").eval()
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(torch.load(imagenet_weights, map_location="cpu", weights_only=True))
    reference.eval()
    with torch.no_grad():
        logits, expected = ours(images), reference(images)
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)
    # The weights are the trained ones (not a vacuous match of two untrained nets): confident.
    assert logits.softmax(1).max(1).values.min() > 0.1


def test_class_names_are_imagenet_labels_in_index_order():
    names = create_model("mobilenet_v2").class_names
    # Class 0, 1 and 999 of ImageNet-1k (synsets n01440764, n01443537, n15075141).
    assert len(names) == 1000 and names[:2] == ("tench", "goldfish") and names[999] == "toilet tissue"
    assert create_model("mobilenet_v2", num_classes=10).class_names is None

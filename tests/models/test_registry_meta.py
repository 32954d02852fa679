"""Registry metadata: bundled weights that exist with their cards, one default per task, a
detector check, and config overrides the model does not have refused in one line."""

from __future__ import annotations

import hashlib

import pytest
from torch import nn

from edgevision.errors import ConfigError, UnknownModelError
from edgevision.models import (
    DETECTION,
    check_task,
    create_model,
    default_model,
    list_models,
    model_info,
    register_model,
    unregister_model,
)


@pytest.mark.parametrize("name", [n for n in list_models() if model_info(n).weights is not None])
def test_every_bundled_weights_file_is_shipped_with_its_card(name: str) -> None:
    info = model_info(name)
    assert info.weights_path.is_file()
    assert info.weights_meta["model"] == name
    assert hashlib.sha256(info.weights_path.read_bytes()).hexdigest() == info.weights_meta["sha256"]
    model = create_model(name, weights=info.weights_path)  # and it loads
    assert sum(p.numel() for p in model.parameters()) == info.weights_meta["parameters"]


def test_the_default_detector_and_the_detectors() -> None:
    assert default_model(DETECTION) == "faceboxes"
    assert {"faceboxes", "tinyfaces"} <= set(list_models(DETECTION))
    assert "mobilenet_v2" not in list_models(DETECTION)
    with pytest.raises(
        UnknownModelError, match="'mobilenet_v2'; it is a registered model, not a detection model"
    ):
        check_task("mobilenet_v2", DETECTION)


def test_a_second_default_or_an_unknown_task_is_refused() -> None:
    with pytest.raises(ValueError, match="'faceboxes' is already the default detection model"):
        register_model("another", task=DETECTION, default=True)(lambda: nn.Identity())
    with pytest.raises(ValueError, match="unknown task 'segmentation'"):
        register_model("another", task="segmentation")
    unregister_model("another")
    assert "another" not in list_models()


def test_an_option_the_model_does_not_have_is_one_line() -> None:
    with pytest.raises(
        ConfigError, match=r"^'faceboxes' has no option 'backbone_weights': \['backbone_weights'\]$"
    ):
        create_model("faceboxes", backbone_weights="x.pth")

"""Weights files: ``create_model(name, weights=PATH)``, one-line errors for files that are not
weights, and NaN/inf refused on reading and on writing."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from edgevision.api import load_detector
from edgevision.errors import WeightsError
from edgevision.models import create_model, model_info, weights_options
from edgevision.models.checkpoint import load_checkpoint, save_checkpoint
from edgevision.models.weights import load_weights


def one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


def test_create_model_loads_weights_as_torchvision_and_timm_users_expect() -> None:
    bundled = model_info("faceboxes").weights_path
    built = create_model("faceboxes", **weights_options("faceboxes", bundled))  # e.g. a landmark head
    expected = load_weights(built, bundled, "faceboxes").state_dict()
    model = create_model("faceboxes", weights=bundled)
    assert model.state_dict().keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key
    torch.manual_seed(0)
    untrained = create_model("faceboxes")
    assert not torch.equal(untrained.state_dict()["conv1.conv.weight"], expected["conv1.conv.weight"])


def test_create_model_weights_go_through_the_checked_loader(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not fit the 'mobilenet_v2' architecture"):
        create_model("mobilenet_v2", weights=model_info("faceboxes").weights_path)
    # a config override changes the heads, so the bundled weights no longer fit
    with pytest.raises(WeightsError, match="of the wrong shape"):
        create_model("faceboxes", weights=model_info("faceboxes").weights_path, num_classes=3)
    with pytest.raises(WeightsError, match="not found"):
        create_model("faceboxes", weights=tmp_path / "absent.pth")


def not_weights(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Files that are not weights, each with the words its one-line message must hold."""
    text = tmp_path / "notes.pth"
    text.write_text("epoch 3: loss 0.42\n")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    folder = tmp_path / "weights_folder"
    folder.mkdir()
    other_zip = tmp_path / "archive.pth"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(model_info("faceboxes").weights_path.read_bytes()[:100_000])
    return {
        "text": (text, "not a PyTorch weights file"),
        "empty": (empty, "weights file is empty"),
        "folder": (folder, "is a folder, not a file"),
        "zip": (other_zip, "cannot read weights"),
        "truncated": (truncated, "cannot read weights"),
        "missing": (tmp_path / "absent.pth", "weights file not found"),
    }


@pytest.mark.parametrize("kind", ["text", "empty", "folder", "zip", "truncated", "missing"])
def test_files_that_are_not_weights_get_a_one_line_message(tmp_path: Path, kind: str) -> None:
    path, words = not_weights(tmp_path)[kind]
    with pytest.raises(WeightsError) as info:
        load_checkpoint(path)
    message = one_line(info)
    assert words in message and str(path) in message, message
    assert "101" not in message and "EOFError" not in message


def nan_weights(tmp_path: Path) -> Path:
    """FaceBoxes weights with two tensors poisoned: 3 NaN in conv1, 1 inf in a head."""
    state = create_model("faceboxes").state_dict()
    state["conv1.conv.weight"].view(-1)[:3] = float("nan")
    state["conf.2.bias"][0] = float("inf")
    path = tmp_path / "nan.pth"
    torch.save(state, path)
    return path


def test_weights_holding_nan_or_inf_are_refused_on_loading(tmp_path: Path) -> None:
    path = nan_weights(tmp_path)
    with pytest.raises(WeightsError) as info:
        create_model("faceboxes", weights=path)
    message = one_line(info)
    assert "4 non-finite" in message and "2 tensor(s)" in message and "'conv1.conv.weight'" in message
    # `detect --weights nan.pth` used to say "0 face(s)"
    with pytest.raises(WeightsError, match="non-finite"):
        load_detector("faceboxes", weights=path)


def test_a_training_checkpoint_holding_nan_names_the_nested_tensor(tmp_path: Path) -> None:
    state = create_model("faceboxes").state_dict()
    state["loc.1.weight"][0, 0, 0, 0] = float("-inf")
    path = tmp_path / "last.pth"
    torch.save({"model": state, "epoch": 4}, path)
    with pytest.raises(WeightsError, match=r"1 non-finite .* 'model\.loc\.1\.weight'"):
        load_checkpoint(path)


def test_non_finite_checkpoints_are_never_written(tmp_path: Path) -> None:
    state = create_model("faceboxes").state_dict()
    state["conv2.conv.weight"][0] = float("nan")
    target = tmp_path / "run" / "last.pth"
    with pytest.raises(WeightsError, match="refusing to write .*'model.conv2.conv.weight'"):
        save_checkpoint(target, {"model": state, "epoch": 0})
    assert not target.exists() and not any(tmp_path.rglob("*.pth*"))
    save_checkpoint(target, {"model": create_model("faceboxes").state_dict(), "epoch": 0})
    assert load_checkpoint(target)["epoch"] == 0

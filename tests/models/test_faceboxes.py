"""FaceBoxes: size, shapes, the reference checkpoint, and equality with an independent functional
re-implementation of FaceBoxes.PyTorch's forward (``models/faceboxes.py``) run on its weights."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgevision.errors import ShapeError, UnknownModelError, WeightsError
from edgevision.models import create_model, list_models, register_model
from edgevision.models.faceboxes import FaceBoxes
from edgevision.models.weights import load_weights, state_dict_from_file

torch.set_num_threads(1)

# ---- the reference forward, written on the state dict with torch.nn.functional only ----


def _bn(x: torch.Tensor, sd: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.batch_norm(
        x,
        sd[f"{name}.running_mean"],
        sd[f"{name}.running_var"],
        sd[f"{name}.weight"],
        sd[f"{name}.bias"],
        training=False,
        eps=1e-5,
    )


def _basic_conv(x: torch.Tensor, sd: dict, name: str, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """BasicConv2d: conv (no bias) -> BN -> ReLU."""
    y = F.conv2d(x, sd[f"{name}.conv.weight"], stride=stride, padding=padding)
    return F.relu(_bn(y, sd, f"{name}.bn"))


def _crelu(x: torch.Tensor, sd: dict, name: str, stride: int, padding: int) -> torch.Tensor:
    """CRelu: conv (no bias) -> BN -> relu(cat(x, -x))."""
    y = _bn(F.conv2d(x, sd[f"{name}.conv.weight"], stride=stride, padding=padding), sd, f"{name}.bn")
    return F.relu(torch.cat([y, -y], dim=1))


def _inception(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    branch1x1 = _basic_conv(x, sd, f"{name}.branch1x1")
    pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
    branch1x1_2 = _basic_conv(pooled, sd, f"{name}.branch1x1_2")
    branch3x3 = _basic_conv(
        _basic_conv(x, sd, f"{name}.branch3x3_reduce"), sd, f"{name}.branch3x3", padding=1
    )
    y = _basic_conv(x, sd, f"{name}.branch3x3_reduce_2")
    y = _basic_conv(y, sd, f"{name}.branch3x3_2", padding=1)
    branch3x3_3 = _basic_conv(y, sd, f"{name}.branch3x3_3", padding=1)
    return torch.cat([branch1x1, branch1x1_2, branch3x3, branch3x3_3], dim=1)


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """FaceBoxes.forward in 'train' phase (raw logits): ``(B, A, 4)`` loc, ``(B, A, 2)`` conf."""
    x = _crelu(x, sd, "conv1", stride=4, padding=3)
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    x = _crelu(x, sd, "conv2", stride=2, padding=2)
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    x = _inception(_inception(_inception(x, sd, "inception1"), sd, "inception2"), sd, "inception3")
    sources = [x]
    x = _basic_conv(_basic_conv(x, sd, "conv3_1"), sd, "conv3_2", stride=2, padding=1)
    sources.append(x)
    x = _basic_conv(_basic_conv(x, sd, "conv4_1"), sd, "conv4_2", stride=2, padding=1)
    sources.append(x)
    loc, conf = [], []
    for k, source in enumerate(sources):
        loc.append(
            F.conv2d(source, sd[f"loc.{k}.weight"], sd[f"loc.{k}.bias"], padding=1).permute(0, 2, 3, 1)
        )
        conf.append(
            F.conv2d(source, sd[f"conf.{k}.weight"], sd[f"conf.{k}.bias"], padding=1).permute(0, 2, 3, 1)
        )
    batch = x.shape[0]
    loc_flat = torch.cat([o.reshape(batch, -1) for o in loc], dim=1)
    conf_flat = torch.cat([o.reshape(batch, -1) for o in conf], dim=1)
    return loc_flat.view(batch, -1, 4), conf_flat.view(batch, -1, 2)


# ---- tests ----


def test_parameter_count() -> None:
    model = create_model("faceboxes")
    assert isinstance(model, FaceBoxes)
    assert sum(p.numel() for p in model.parameters()) == 1_007_330


def test_output_shapes_match_anchors() -> None:
    model = create_model("faceboxes").eval()
    with torch.no_grad():
        loc, conf = model(torch.zeros(1, 3, 480, 640))
    num_anchors = len(model.anchors((480, 640)))
    assert num_anchors == 6400
    assert loc.shape == (1, num_anchors, 4)
    assert conf.shape == (1, num_anchors, 2)
    sources = model.forward_features(torch.zeros(2, 3, 333, 517))
    assert [tuple(s.shape) for s in sources] == [(2, 128, 11, 17), (2, 256, 6, 9), (2, 256, 3, 5)]


@pytest.fixture(scope="module")
def astronaut(astronaut_path: Path) -> np.ndarray:
    return cv2.imread(str(astronaut_path), cv2.IMREAD_COLOR)


def test_reference_checkpoint_loads_strictly(reference_weights: Path) -> None:
    model = load_weights(create_model("faceboxes"), reference_weights, "faceboxes")
    state = torch.load(reference_weights, map_location="cpu", weights_only=True)
    assert set(model.state_dict()) == {k.removeprefix("module.") for k in state}
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key.removeprefix("module.")], value), key


def test_forward_equals_functional_reference(reference_weights: Path, astronaut: np.ndarray) -> None:
    model = load_weights(create_model("faceboxes"), reference_weights, "faceboxes").eval()
    state = torch.load(reference_weights, map_location="cpu", weights_only=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    # test.py's input: float32 BGR minus (104, 117, 123), CHW. A non-square crop tests the layout.
    image = np.float32(astronaut[:448, :480]) - np.array([104, 117, 123], dtype=np.float32)
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        loc, conf = model(x)
        ref_loc, ref_conf = reference_forward(state, x)
    assert loc.shape == ref_loc.shape == (1, len(model.anchors((448, 480))), 4)
    torch.testing.assert_close(loc, ref_loc, rtol=0, atol=1e-4)
    torch.testing.assert_close(conf, ref_conf, rtol=0, atol=1e-4)
    # The trained weights see the astronaut's face: a confident face score exists.
    assert torch.softmax(conf[0], dim=1)[:, 1].max() > 0.9


def test_wrong_architecture_weights_raise(tmp_path: Path) -> None:
    model = create_model("faceboxes")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["loc.0.weight"] = torch.zeros(4, 128, 3, 3)  # one anchor per cell instead of 21
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"1 of the wrong shape") as info:
        load_weights(create_model("faceboxes"), path, "faceboxes")
    assert "\n" not in str(info.value)

    del state["loc.0.weight"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"1 missing .* 1 unexpected"):
        load_weights(create_model("faceboxes"), path, "faceboxes")


def test_unreadable_weights_raise(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        load_weights(create_model("faceboxes"), tmp_path / "absent.pth", "faceboxes")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="garbage.pth"):
        state_dict_from_file(garbage)


def test_training_checkpoint_and_module_prefix_are_accepted(tmp_path: Path) -> None:
    model = create_model("faceboxes")
    prefixed = {f"module.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "ckpt.pth"
    torch.save({"model": prefixed, "epoch": 3}, path)
    loaded = load_weights(create_model("faceboxes"), path, "faceboxes")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_registry() -> None:
    assert "faceboxes" in list_models()
    assert list_models() == sorted(list_models())
    with pytest.raises(UnknownModelError, match="no-such-net"):
        create_model("no-such-net")
    with pytest.raises(ValueError, match="already registered"):
        register_model("faceboxes")(lambda **_: torch.nn.Identity())
    # The failed registration left the original builder in place.
    assert isinstance(create_model("faceboxes"), FaceBoxes)


def test_config_override() -> None:
    model = create_model("faceboxes", num_classes=3)
    with torch.no_grad():
        _, conf = model.eval()(torch.zeros(1, 3, 128, 128))
    assert conf.shape == (1, len(model.anchors((128, 128))), 3)


def test_decode_of_a_hand_set_output() -> None:
    """A 32 x 32 input: one stride-32 cell (21 anchors), one stride-64, one stride-128. Offsets of
    zero decode to the anchors themselves; offset (1, 0, 0, log 2 / 0.2) on the first anchor (32 px
    at (0, 0)) moves it 0.1 x 32 = 3.2 px right and doubles its height; logits (0, 3) give
    sigmoid(3)."""
    import math

    model = create_model("faceboxes")
    loc = torch.zeros(1, 23, 4)
    conf = torch.zeros(1, 23, 2)
    loc[0, 0] = torch.tensor([1.0, 0.0, 0.0, math.log(2) / 0.2])
    conf[0, 0, 1] = 3.0
    boxes, scores = model.decode((loc, conf), (32, 32))
    torch.testing.assert_close(boxes[0], torch.tensor([3.2 - 16, -32.0, 3.2 + 16, 32.0]))
    # The 512 px anchor sits at its stride-128 cell's centre, (64, 64).
    torch.testing.assert_close(boxes[22], torch.tensor([64.0 - 256, 64.0 - 256, 64.0 + 256, 64.0 + 256]))
    assert scores[0].item() == pytest.approx(1 / (1 + math.exp(-3.0)))
    assert torch.all(scores[1:] == 0.5)
    with pytest.raises(ShapeError, match="gave 23 boxes for a 64x32 input, but FaceBoxes has 44 anchors"):
        model.decode((loc, conf), (32, 64))

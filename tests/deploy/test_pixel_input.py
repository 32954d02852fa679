"""Pixel-input plans: the preprocessing folded into the first convolutions is exact away from the
zero padding (and everywhere when every channel mean is the zero point), the quantised plan reads the
uint8 pixels with no quantiser of its own, and a detector runs from such a plan like any other."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from torchvision.ops import box_iou

from edgevision.api import load_detector
from edgevision.data.io import read_image
from edgevision.data.preprocessing import Preprocessing
from edgevision.deploy.builder import BuildOptions, build_engine
from edgevision.deploy.calibration import TensorRange
from edgevision.deploy.export import export_onnx
from edgevision.deploy.passes.pixel_input import PIXELS, read_pixels_quantized, take_pixels
from edgevision.deploy.quantize import quantize_qdq
from edgevision.deploy.runtime import load_engine
from edgevision.errors import ConfigError
from edgevision.models import create_model

SIZE = (240, 320)


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def conv_net(reader: str = "Conv") -> onnx.ModelProto:
    """image (1, 3, 7, 9) -> Conv 3x3 pad 1 (4 filters) -> Relu; or the image read by ``reader``."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    if reader == "Conv":
        first = helper.make_node("Conv", ["image", "w", "b"], ["y"], pads=[1, 1, 1, 1])
    else:
        first = helper.make_node(reader, ["image", "image"], ["y"])
    graph = helper.make_graph(
        [first, helper.make_node("Relu", ["y"], ["out"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 7, 9])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def pixels_and_image(preprocessing: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(1, 7, 9, 3)`` uint8 pixels and their ``(1, 3, 7, 9)`` float network input."""
    pixels = np.random.default_rng(1).integers(0, 256, (1, 7, 9, 3), dtype=np.uint8)
    mean, std = np.array(preprocessing.mean), np.array(preprocessing.std)
    image = ((pixels - mean) / std).astype(np.float32).transpose(0, 3, 1, 2)
    return pixels, np.ascontiguousarray(image)


def test_folded_preprocessing_is_exact_away_from_the_padding() -> None:
    preprocessing = Preprocessing("RGB", (124.0, 116.0, 104.0), (58.4, 57.1, 57.4))  # ImageNet's
    model = conv_net()
    taken = take_pixels(model, preprocessing)
    assert taken.zero_point == 115  # round(mean of the means)
    assert [v.name for v in taken.model.graph.input] == [PIXELS]
    assert [n.op_type for n in taken.model.graph.node] == ["Transpose", "Cast", "Sub", "Conv", "Relu"]
    pixels, image = pixels_and_image(preprocessing)
    (want,) = run(model, {"image": image})
    (got,) = run(taken.model, {PIXELS: pixels})
    np.testing.assert_allclose(got[:, :, 1:-1, 1:-1], want[:, :, 1:-1, 1:-1], rtol=1e-5, atol=1e-5)
    # The border differs: the padding is the pixel z there, not the channel mean.
    assert np.abs(got - want).max() > 1e-3


def test_folded_preprocessing_is_exact_everywhere_when_the_means_are_the_zero_point() -> None:
    preprocessing = Preprocessing("BGR", (115.0, 115.0, 115.0), (2.0, 4.0, 8.0))
    model = conv_net()
    taken = take_pixels(model, preprocessing)
    pixels, image = pixels_and_image(preprocessing)
    np.testing.assert_allclose(
        run(taken.model, {PIXELS: pixels})[0], run(model, {"image": image})[0], rtol=1e-5, atol=1e-5
    )


def test_quantised_pixels_are_read_without_a_quantiser(tmp_path: Path) -> None:
    preprocessing = Preprocessing("BGR", (104.0, 117.0, 123.0))
    taken = take_pixels(conv_net(), preprocessing)
    ranges = {name: TensorRange(max(-low, high), low, high) for name, (low, high) in taken.ranges().items()}
    ranges |= {name: TensorRange(30.0, -30.0, 30.0) for name in ("y", "out")}
    quantized = onnx.load(quantize_qdq(taken.model, ranges, tmp_path / "q.onnx"))
    direct = read_pixels_quantized(quantized, taken)
    ops = [n.op_type for n in direct.graph.node]
    assert ops[:2] == ["Transpose", "DequantizeLinear"] and "Cast" not in ops and "Sub" not in ops
    pixels, _ = pixels_and_image(preprocessing)
    # Quantising p - z with scale 1 and zero point z gives p back: the two graphs agree exactly.
    np.testing.assert_array_equal(run(direct, {PIXELS: pixels})[0], run(quantized, {PIXELS: pixels})[0])
    # A range other than [-z, 255 - z] quantises the pixels with another scale: refused.
    ranges[taken.centred] = TensorRange(200.0, -200.0, 200.0)
    skewed = onnx.load(quantize_qdq(taken.model, ranges, tmp_path / "skewed.onnx"))
    with pytest.raises(ConfigError, match="scale .* not 1 and 115"):
        read_pixels_quantized(skewed, taken)


def test_only_images_read_by_convolutions_can_take_pixels() -> None:
    with pytest.raises(ConfigError, match="Add '' reads the image"):
        take_pixels(conv_net("Add"), Preprocessing())


@pytest.fixture(scope="module")
def pixel_plans(calibration_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pixel_plans")
    plans = {}
    for precision in ("fp32", "int8"):
        for pixels in (False, True):
            options = BuildOptions(
                precision=precision,
                calibration_dir=calibration_dir if precision == "int8" else None,
                input_size=SIZE,
                pixel_input=pixels,
            )
            label = f"{precision}{' pixels' if pixels else ''}"
            plans[label] = build_engine("faceboxes", folder / f"{label}.plan", options).path
    return plans


def test_pixel_plans_take_uint8_pixels_and_find_the_same_face(pixel_plans, astronaut_path: Path) -> None:
    engine = load_engine(pixel_plans["int8 pixels"], threads=1)
    binding = engine.inputs[0]
    assert (binding.name, binding.dtype, binding.shape[1:]) == (PIXELS, "uint8", ("height", "width", 3))
    assert binding.preprocessing["pixels"] is True
    ops = [n.op_type for n in onnx.load_from_string(engine.plan.model).graph.node]
    assert ops[0] == "Transpose" and "Cast" not in ops and "Neg" not in ops
    photo = read_image(astronaut_path)
    reference = load_detector(str(pixel_plans["fp32"])).detect(photo).above(0.5)
    assert len(reference) == 1
    for label in ("fp32 pixels", "int8", "int8 pixels"):
        found = load_detector(str(pixel_plans[label])).detect(photo).above(0.5)
        assert len(found) == 1, label
        assert float(box_iou(found.boxes, reference.boxes)[0, 0]) > 0.9, label
        assert abs(float(found.scores[0] - reference.scores[0])) < 0.05, label


def test_the_calibration_record_holds_the_exact_pixel_ranges(calibration_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "pixels.calib.json"
    options = BuildOptions(
        precision="int8",
        calibration_dir=calibration_dir,
        calibration_images=2,
        calibration_cache=cache,
        input_size=(64, 96),
        pixel_input=True,
    )
    first = build_engine("faceboxes", tmp_path / "first.plan", options)
    tensors = json.loads(first.plan.calibration)["tensors"]
    # FaceBoxes' means (104, 117, 123) centre the pixels on z = round(114.67) = 115.
    assert tensors["pixels_float"] == {"amax": 255.0, "min": 0.0, "max": 255.0}
    assert tensors["pixels_centred"] == {"amax": 140.0, "min": -115.0, "max": 140.0}
    assert json.loads(cache.read_bytes()) == json.loads(first.plan.calibration)
    cached = dataclasses.replace(options, calibration_dir=None)
    again = build_engine("faceboxes", tmp_path / "again.plan", cached)
    assert again.plan.model == first.plan.model and again.plan.calibration == first.plan.calibration


def test_pixel_input_needs_the_model_preprocessing(tmp_path: Path) -> None:
    path = export_onnx(create_model("faceboxes"), tmp_path / "f.onnx", input_size=SIZE)
    with pytest.raises(ConfigError, match="an ONNX file has no preprocessing"):
        build_engine(path, tmp_path / "f.plan", BuildOptions(pixel_input=True, input_size=SIZE))
    assert not (tmp_path / "f.plan").exists()


def test_preprocessing_gives_pixels_in_the_network_channel_order() -> None:
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0] = 7  # blue
    pixels = Preprocessing("RGB", (1.0, 2.0, 3.0), pixels=True).apply(image, (4, 6))
    assert pixels.shape == (4, 6, 3) and pixels.dtype == np.uint8
    assert pixels[0, 0].tolist() == [0, 0, 7]
    assert Preprocessing.from_dict({"channel_order": "BGR", "mean": [0] * 3, "std": [1] * 3}).pixels is False


def test_gated_pixel_plan_keeps_the_first_conv_on_float_pixels(
    calibration_dir: Path, astronaut_path: Path, tmp_path: Path
) -> None:
    options = BuildOptions(
        precision="int8",
        calibration_dir=calibration_dir,
        input_size=SIZE,
        pixel_input=True,
        fp32_fallback=0.008,
    )
    result = build_engine("faceboxes", tmp_path / "gated.plan", options)
    assert result.plan.tactics["fp32_layers"][0] == "node_conv2d"
    ops = [n.op_type for n in onnx.load_from_string(result.plan.model).graph.node]
    assert ops[:3] == ["Transpose", "Cast", "Sub"]  # the fp32 conv reads the centred float pixels
    found = load_detector(str(result.path)).detect(read_image(astronaut_path)).above(0.5)
    assert len(found) == 1 and float(found.scores[0]) > 0.95


def test_every_conv_and_shape_reader_of_the_image_takes_the_pixels() -> None:
    rng = np.random.default_rng(3)
    weights = {
        "w3": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        "w1": rng.standard_normal((2, 3, 1, 1)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["image", "w3"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["image", "w1"], ["b"]),
        helper.make_node("Shape", ["image"], ["shape"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 7, 9])],
        [
            helper.make_tensor_value_info(name, dtype, None)
            for name, dtype in (
                ("a", TensorProto.FLOAT),
                ("b", TensorProto.FLOAT),
                ("shape", TensorProto.INT64),
            )
        ],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    preprocessing = Preprocessing("BGR", (104.0, 117.0, 123.0), (1.0, 2.0, 4.0))
    taken = take_pixels(model, preprocessing)
    pixels, image = pixels_and_image(preprocessing)
    want, got = run(model, {"image": image}), run(taken.model, {PIXELS: pixels})
    np.testing.assert_allclose(got[0][:, :, 1:-1, 1:-1], want[0][:, :, 1:-1, 1:-1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)  # 1x1: no padding, exact
    np.testing.assert_array_equal(got[2], [1, 3, 7, 9])  # the NCHW shape, read after the transpose
    clash = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["image"], [PIXELS])],
            "g",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 7, 9])],
            [helper.make_tensor_value_info(PIXELS, TensorProto.FLOAT, None)],
        )
    )
    with pytest.raises(ConfigError, match="already uses"):
        take_pixels(clash, preprocessing)

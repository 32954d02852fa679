"""The builder on small hand-made ONNX models: what it takes from the model's input (the channel
count, a fixed batch), what it refuses before any work (input sizes, calibration folders), that
each stage logs into the result, and that the Q/DQ format comes from the target backends'
capabilities, not from their names."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgevision.deploy.backends import capabilities
from edgevision.deploy.builder import BuildOptions, build_engine, build_model, stages
from edgevision.deploy.runtime import load_engine
from edgevision.errors import ConfigError, ImageDecodeError, InputFileError

SIDE = 8


def one_conv(path: Path, channels: int, batch: int | str = "N") -> Path:
    """x (batch, channels, 8, 8) -> 1x1 Conv, weights [2, -1] per input channel, bias [1, 0] -> y,
    as an ONNX file."""
    weight = np.repeat(np.array([2.0, -1.0], np.float32).reshape(2, 1, 1, 1), channels, axis=1)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")],
        "one_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, channels, SIDE, SIDE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 2, SIDE, SIDE])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.array([1, 0], np.float32), "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def grey_images(folder: Path, levels: list[int]) -> Path:
    """One uniform grey 8x8 PNG per level."""
    folder.mkdir()
    for index, level in enumerate(levels):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((SIDE, SIDE, 3), level, np.uint8))
    return folder


def refuse(step: str) -> Callable[..., None]:
    def fail(*_args: object, **_kwargs: object) -> None:
        raise AssertionError(f"the build got to {step}")

    return fail


@pytest.fixture
def no_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the builder gets as far as its graph passes."""
    monkeypatch.setattr(stages, "run_passes", refuse("its graph passes"))


@pytest.fixture
def no_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the builder gets as far as importing the model."""
    monkeypatch.setattr(stages, "import_model", refuse("importing the model"))


def test_a_one_channel_model_calibrates_on_grey_levels(tmp_path: Path) -> None:
    images = grey_images(tmp_path / "images", [40, 200])
    options = BuildOptions(precision="int8", calibration_dir=images, calibrator="minmax")
    result = build_engine(one_conv(tmp_path / "grey.onnx", 1), tmp_path / "grey.plan", options)
    assert result.plan.inputs[0].shape == ("N", 1, SIDE, SIDE)
    tensors = json.loads(result.plan.calibration)["tensors"]
    assert (tensors["x"]["min"], tensors["x"]["max"]) == (40.0, 200.0)  # the grey levels, one channel
    # y = [2 * 200 + 1, -200] on a grey image of 200, within half an output step (range 401 + 200).
    (y,) = load_engine(result.path, threads=1).run(np.full((1, 1, SIDE, SIDE), 200, np.float32)).values()
    np.testing.assert_allclose(y[0, :, 0, 0], [401.0, -200.0], atol=601 / 255 / 2 + 1e-3)


def test_a_fixed_batch_is_built_calibrated_and_tuned_for(tmp_path: Path) -> None:
    images = grey_images(tmp_path / "images", [40, 120, 200])
    options = BuildOptions(
        precision="int8",
        calibration_dir=images,
        fp32_fallback=1.0,
        bias_correction=True,
        tune=True,
        threads=(1,),
    )
    result = build_engine(one_conv(tmp_path / "batch2.onnx", 3, batch=2), tmp_path / "b.plan", options)
    assert result.plan.inputs[0].shape == (2, 3, SIDE, SIDE)
    # Batches of 2 images only: the third image would be a batch of 1, which the model does not take.
    assert result.logs["calibrate"] == ("entropy over 2 images: 2 activation ranges",)
    assert "bias correction: 1 convs over 2 images" in result.logs["qdq_policy"]
    outputs = load_engine(result.path, threads=1).run(np.full((2, 3, SIDE, SIDE), 100, np.float32))
    np.testing.assert_allclose(outputs["y"][:, :, 0, 0], [[601.0, -300.0]] * 2, rtol=0.02)
    assert result.memory.arena_bytes >= 2 * 2 * SIDE * SIDE * 4  # planned for the batch of 2


@pytest.mark.parametrize(
    ("channels", "batch", "levels", "message"),
    [
        (4, "N", [40], "images make 3-channel inputs, or 1-channel grey ones .* the model takes 4 channels"),
        (3, 4, [40, 120, 200], "the model takes batches of 4 images; 3 calibration images"),
    ],
    ids=["4-channels", "too-few-for-the-batch"],
)
def test_what_the_images_cannot_feed_is_refused_before_the_passes(
    channels: int, batch: int | str, levels: list[int], message: str, tmp_path: Path, no_passes: None
) -> None:
    images = grey_images(tmp_path / "images", levels)
    source = one_conv(tmp_path / "model.onnx", channels, batch)
    with pytest.raises(ConfigError, match=message):
        build_engine(source, tmp_path / "m.plan", BuildOptions(precision="int8", calibration_dir=images))
    assert not (tmp_path / "m.plan").exists()


def test_a_four_channel_model_builds_in_fp32(tmp_path: Path) -> None:
    result = build_engine(one_conv(tmp_path / "four.onnx", 4), tmp_path / "four.plan")
    (y,) = load_engine(result.path, threads=1).run(np.ones((1, 4, SIDE, SIDE), np.float32)).values()
    np.testing.assert_allclose(y[0, :, 0, 0], [9.0, -4.0])


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ((20000, 20000), r"--input-size 20000x20000: each side must be 1 to 8192 pixels"),
        ((8192, 4097), r"--input-size 8192x4097 is 33,562,624 pixels, more than the 16,777,216"),
        ((0, 64), "each side must be 1 to 8192"),
        ((64.5, 64), "must be two whole numbers"),
        ((64,), "must be two whole numbers"),
    ],
)
def test_input_sizes_past_the_documented_bounds_are_refused(size: tuple, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BuildOptions(input_size=size)


def test_the_largest_input_sizes_are_taken() -> None:
    assert BuildOptions(input_size=(4096, 4096)).input_size == (4096, 4096)
    assert BuildOptions(input_size=(2048, 8192)).input_size == (2048, 8192)


def test_an_onnx_model_declaring_a_huge_input_is_refused_before_the_passes(
    tmp_path: Path, no_passes: None
) -> None:
    model = onnx.load(one_conv(tmp_path / "small.onnx", 3))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_value = 20000
    onnx.save(model, tmp_path / "huge.onnx")
    with pytest.raises(ConfigError, match="the input size of huge.onnx 20000x20000: each side"):
        build_engine(tmp_path / "huge.onnx", tmp_path / "huge.plan")
    assert not (tmp_path / "huge.plan").exists()


def calibration_folder(folder: Path, files: dict[str, bytes | None]) -> Path:
    """``folder`` with the named files: ``None`` is a grey 8x8 PNG, bytes are written as they are."""
    folder.mkdir()
    for name, data in files.items():
        if data is None:
            cv2.imwrite(str(folder / name), np.full((SIDE, SIDE, 3), 128, np.uint8))
        else:
            (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize(
    ("files", "error", "message"),
    [
        ({}, InputFileError, "no images in folder"),
        ({"notes.txt": b"calibration set of 2026"}, InputFileError, "no images in folder"),
        (
            {"good.png": None, "text.jpg": b"not a jpeg"},
            ImageDecodeError,
            r"^1 of 2 calibration images cannot be read, e.g. not a readable image: .*text.jpg$",
        ),
        (
            {"a.png": None, "cut.jpg": b"\xff\xd8\xff\xe0", "empty.png": b""},
            ImageDecodeError,
            r"^2 of 3 calibration images cannot be read, e.g. truncated JPEG",
        ),
    ],
    ids=["empty", "no-images", "not-an-image", "truncated-and-empty"],
)
def test_a_bad_calibration_folder_fails_before_the_import(
    files: dict[str, bytes | None], error: type, message: str, tmp_path: Path, no_import: None
) -> None:
    folder = calibration_folder(tmp_path / "images", files)
    options = BuildOptions(precision="int8", calibration_dir=folder)
    with pytest.raises(error, match=message):
        build_engine("faceboxes", tmp_path / "f.plan", options)
    assert not (tmp_path / "f.plan").exists()


def test_a_file_as_the_calibration_folder_fails_before_the_import(tmp_path: Path, no_import: None) -> None:
    image = calibration_folder(tmp_path / "images", {"a.png": None}) / "a.png"
    with pytest.raises(InputFileError, match="not a folder of calibration images: .*a.png"):
        build_engine("faceboxes", tmp_path / "f.plan", BuildOptions(precision="int8", calibration_dir=image))


def test_every_stage_logs_into_the_result(tmp_path: Path) -> None:
    images = grey_images(tmp_path / "images", [40, 200])
    source = one_conv(tmp_path / "m.onnx", 3)
    int8 = build_engine(source, tmp_path / "i.plan", BuildOptions(precision="int8", calibration_dir=images))
    assert list(int8.logs) == ["import", "optimise", "calibrate", "qdq_policy", "select", "finalise"]
    assert int8.logs["import"] == ("m.onnx: input (N, 3, 8, 8)", "2 calibration images, each read")
    assert int8.logs["qdq_policy"] == ("ort: activations uint8, weights int8, biases int32",)
    assert int8.logs["finalise"][-1] == f"wrote {int8.path}"
    assert "calibrate:\n  entropy over 2 images" in int8.log()
    fp32 = build_engine(source, tmp_path / "f.plan")
    assert list(fp32.logs) == ["import", "optimise", "select", "finalise"]  # nothing to calibrate


def test_the_qdq_format_is_the_target_backends_capability(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dequantized_types
) -> None:
    # A CPU backend that, like TensorRT, takes symmetric int8 and float biases only.
    strict = replace(capabilities.BACKENDS["ort"], symmetric_int8=True, quantize_bias=False)
    monkeypatch.setitem(capabilities.BACKENDS, "ort", strict)
    images = grey_images(tmp_path / "images", [40, 200])
    options = BuildOptions(precision="int8", calibration_dir=images)
    model = onnx.load_from_string(build_model(one_conv(tmp_path / "m.onnx", 3), options).selection.model)
    assert set(dequantized_types(model)) == {np.dtype(np.int8)}
    quantizers = [node for node in model.graph.node if node.op_type == "QuantizeLinear"]
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    assert quantizers and all(values[q.input[2]].dtype == np.int8 for q in quantizers)
    # One int8 model serves every tuned backend: backends that need different ones are refused.
    with pytest.raises(ConfigError, match="the backends ort, openvino need different int8 models"):
        BuildOptions(tune=True, tune_backends=("ort", "openvino"))

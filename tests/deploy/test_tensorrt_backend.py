"""The TensorRT backend: where ``tensorrt`` and a CUDA GPU are present, fp32, fp16 and int8 plans
build into engines and agree with ONNX Runtime (the int8 plan still finds the face); elsewhere the
backend fails with one line. The profile arithmetic is checked everywhere."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torchvision.ops import box_iou

from edgevision.api import load_detector
from edgevision.data.io import read_image
from edgevision.data.preprocessing import model_preprocessing
from edgevision.deploy.backends import _built_shapes
from edgevision.deploy.backends.profiles import profile_shapes
from edgevision.deploy.builder import BuildOptions, build_engine, build_model
from edgevision.deploy.plan import read_plan
from edgevision.deploy.runtime import Engine, load_engine
from edgevision.errors import ConfigError
from edgevision.models import create_model

SIZE = (240, 320)
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
needs_tensorrt_and_gpu = pytest.mark.skipif(
    not (HAS_TENSORRT and torch.cuda.is_available()),
    reason="the tensorrt backend needs `pip install edgevision[tensorrt]` and a CUDA GPU; "
    f"here tensorrt is {'installed' if HAS_TENSORRT else 'missing'} and CUDA "
    f"{'is' if torch.cuda.is_available() else 'is not'} available",
)


@pytest.mark.skipif(HAS_TENSORRT, reason="checks the message given when tensorrt is missing")
def test_missing_tensorrt_fails_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"^the tensorrt backend needs `pip install edgevision\[tensorrt\]`"
    ):
        build_engine("faceboxes", tmp_path / "t.plan", BuildOptions(input_size=SIZE, backend="tensorrt"))
    assert not (tmp_path / "t.plan").exists()


def test_a_tensorrt_int8_model_is_what_its_parser_takes(
    calibration_dir: Path, dequantized_types: Callable[[onnx.ModelProto], list[np.dtype]]
) -> None:
    # Made without TensorRT (stages 1-5 need no backend package), so checked on every machine:
    # TensorRT's ONNX parser takes Q/DQ of int8 with zero point 0, and DequantizeLinear of int8 only.
    options = BuildOptions(
        precision="int8",
        backend="tensorrt",
        calibration_dir=calibration_dir,
        calibration_images=2,
        input_size=(64, 96),
    )
    built = build_model("faceboxes", options)
    model = onnx.load_from_string(built.selection.model)
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    types = dequantized_types(model)
    assert len(types) > 2 * 26 and set(types) == {np.dtype(np.int8)}  # weights and activations
    zero_points = [values[node.input[2]] for node in model.graph.node if node.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    biases = [node.input[2] for node in model.graph.node if node.op_type == "Conv" and len(node.input) > 2]
    assert len(biases) > 20 and all(values[name].dtype == np.float32 for name in biases)
    assert "biases float" in built.logs()["qdq_policy"][0]


def test_profile_spans_batch_and_sides_around_the_built_shape(tmp_path: Path) -> None:
    plan = read_plan(build_engine("faceboxes", tmp_path / "f.plan", BuildOptions(input_size=SIZE)).path)
    assert _built_shapes(plan) == {"image": (1, 3, 240, 320)}
    pixels = replace(plan, inputs=(replace(plan.inputs[0], shape=("N", "height", "width", 3)),))
    assert _built_shapes(pixels) == {"image": (1, 240, 320, 3)}
    low, best, high = profile_shapes((-1, 3, -1, -1), (1, 3, 240, 320))
    assert (low, best, high) == ((1, 3, 32, 32), (1, 3, 240, 320), (8, 3, 2048, 2048))
    # A fixed dimension stays fixed; a built size beyond the default range widens it.
    assert profile_shapes((1, -1, -1, 3), (1, 4000, 64, 3)) == (
        (1, 32, 32, 3),
        (1, 4000, 64, 3),
        (1, 4000, 2048, 3),
    )


@pytest.fixture(scope="module")
def plans(calibration_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tensorrt_plans")
    built = {}
    for precision in ("fp32", "fp16", "int8"):
        options = BuildOptions(
            precision=precision,
            calibration_dir=calibration_dir if precision == "int8" else None,
            input_size=SIZE,
            backend="tensorrt",
        )
        built[precision] = build_engine("faceboxes", folder / f"{precision}.plan", options).path
    return built


@needs_tensorrt_and_gpu
@pytest.mark.parametrize(("precision", "tolerance"), [("fp32", 1e-3), ("fp16", 2e-2)])
def test_engine_agrees_with_onnx_runtime(
    plans, astronaut_path: Path, precision: str, tolerance: float
) -> None:
    engine = load_engine(plans[precision])
    assert engine.plan.backend == "tensorrt"
    reference = Engine(replace(engine.plan, backend="onnxruntime"), threads=1)
    prep = model_preprocessing(create_model("faceboxes"))
    for size in (SIZE, (200, 296)):  # the built size and another: the profile is dynamic
        image = prep.apply(read_image(astronaut_path), size)[None]
        got, want = engine.run(image), reference.run(image)
        for name, value in want.items():
            assert np.abs(got[name] - value).max() <= tolerance * np.abs(value).max(), (precision, name)


@needs_tensorrt_and_gpu
def test_int8_engine_finds_the_face(plans, astronaut_path: Path) -> None:
    photo = read_image(astronaut_path)
    ours = load_detector(str(plans["int8"])).detect(photo).above(0.5)
    reference = load_detector("faceboxes", device="cpu").detect(photo).above(0.5)
    assert len(ours) == len(reference) == 1
    assert float(box_iou(ours.boxes, reference.boxes)[0, 0]) > 0.9

"""The engine end to end: build a plan from a registry model, load it, and run it; the fp32 plan
reproduces torch eager, the int8 plan is Q/DQ and still finds the face, a detector runs from a
plan like a registry model, and bad inputs fail with one line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torchvision.ops import box_iou

from edgevision.api import load_detector
from edgevision.data.io import read_image
from edgevision.data.preprocessing import model_preprocessing
from edgevision.deploy.builder import BuildOptions, build_engine
from edgevision.deploy.runtime import load_engine
from edgevision.errors import ConfigError, ShapeError
from edgevision.models import create_model, model_info

SIZE = (240, 320)  # small, for CPU time; not a multiple of the 128 px largest stride in W


@pytest.fixture(scope="module")
def fp32_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plans") / "faceboxes_fp32.plan"
    return build_engine("faceboxes", out, BuildOptions(input_size=SIZE)).path


@pytest.fixture(scope="module")
def int8_plan(calibration_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plans") / "faceboxes_int8.plan"
    options = BuildOptions(precision="int8", calibration_dir=calibration_dir, input_size=SIZE)
    return build_engine("faceboxes", out, options).path


def test_fp32_plan_reproduces_torch_eager(fp32_plan: Path, astronaut_path: Path) -> None:
    model = create_model("faceboxes", weights=model_info("faceboxes").weights_path).eval()
    image = model_preprocessing(model).apply(read_image(astronaut_path), SIZE)[None]
    with torch.no_grad():
        loc, conf, *_ = model(torch.from_numpy(image))
    engine = load_engine(fp32_plan, threads=1)
    outputs = engine.run(image)
    assert [b.name for b in engine.outputs] == list(model.onnx_output_names)
    np.testing.assert_allclose(outputs["loc"], loc.numpy(), atol=1e-4)
    np.testing.assert_allclose(outputs["conf"], conf.numpy(), atol=1e-4)
    assert engine.plan.source["model"] == "faceboxes"
    assert engine.plan.inputs[0].preprocessing == {
        "channel_order": "BGR",
        "mean": [104.0, 117.0, 123.0],
        "std": [1.0, 1.0, 1.0],
        "pixels": False,
    }


def test_int8_plan_is_qdq_and_finds_the_face(int8_plan: Path, fp32_plan: Path, astronaut_path: Path) -> None:
    engine = load_engine(int8_plan)
    graph = onnx.load_from_string(engine.plan.model).graph
    ops = Counter(node.op_type for node in graph.node)
    # Shape readers take the float image, not a full-size dequantised copy of it.
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    shape_readers = [node.input[0] for node in graph.node if node.op_type == "Shape"]
    assert "image" in shape_readers and not set(shape_readers) & dequantized
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["Conv"] > 0
    assert engine.plan.precision == "int8" and engine.plan.calibration_method == "entropy"
    assert engine.plan.calibration is not None
    photo = read_image(astronaut_path)
    ours = load_detector(str(int8_plan)).detect(photo).above(0.5)
    reference = load_detector(str(fp32_plan)).detect(photo).above(0.5)
    assert len(ours) == len(reference) == 1
    assert float(box_iou(ours.boxes, reference.boxes)[0, 0]) > 0.9


def test_layer_gate_keeps_the_failing_layer_in_fp32(calibration_dir: Path, tmp_path: Path) -> None:
    # At 0.8% added error the first conv (7x7/4 on raw pixels, 24 filters) fails first; then the
    # C.ReLU 1x1 conv reading it is kept in fp32 too, so that its output is not quantised either.
    options = BuildOptions(
        precision="int8", calibration_dir=calibration_dir, input_size=SIZE, fp32_fallback=0.008
    )
    result = build_engine("faceboxes", tmp_path / "gated.plan", options)
    kept = result.plan.tactics["fp32_layers"]
    assert kept[:2] == ["node_conv2d", "node_conv2d_crelu"]
    graph = onnx.load_from_string(result.plan.model).graph
    conv = next(node for node in graph.node if node.name == "node_conv2d")
    floats = {init.name for init in graph.initializer if init.data_type == onnx.TensorProto.FLOAT}
    assert conv.input[1] in floats  # its weights stay fp32, not a DequantizeLinear of int8
    assert any("layer gate" in line and "node_conv2d" in line for line in result.logs["qdq_policy"])


def test_calibration_cache_is_written_then_reused_without_images(
    calibration_dir: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "faceboxes.calib.json"
    first = build_engine(
        "faceboxes",
        tmp_path / "first.plan",
        BuildOptions(
            precision="int8", calibration_dir=calibration_dir, calibration_cache=cache, input_size=SIZE
        ),
    )
    assert cache.is_file() and json.loads(cache.read_bytes()) == json.loads(first.plan.calibration)
    again = build_engine(
        "faceboxes",
        tmp_path / "again.plan",
        BuildOptions(precision="int8", calibration_cache=cache, input_size=SIZE),
    )
    assert again.plan.calibration == first.plan.calibration
    assert again.plan.model == first.plan.model
    with pytest.raises(ConfigError, match="made by entropy, not minmax"):
        options = BuildOptions(
            precision="int8", calibration_cache=cache, calibrator="minmax", input_size=SIZE
        )
        build_engine("faceboxes", tmp_path / "other.plan", options)


def test_engine_checks_inputs_and_runs_a_batch(fp32_plan: Path) -> None:
    engine = load_engine(fp32_plan, threads=1)
    assert engine.inputs[0].shape == ("batch", 3, "height", "width")
    batch = np.random.default_rng(0).standard_normal((2, 3, *SIZE)).astype(np.float32)
    together = engine.run(batch)
    apart = [engine.run(batch[i : i + 1]) for i in range(2)]
    for name in together:
        np.testing.assert_array_equal(together[name], np.concatenate([a[name] for a in apart]))
    with pytest.raises(ShapeError, match=r"must be of shape \(batch, 3, height, width\)"):
        engine.run(batch[:, :2])
    with pytest.raises(ShapeError, match="must be float32"):
        engine.run(batch.astype(np.float64))
    with pytest.raises(ShapeError, match="missing"):
        engine.run({"other": batch})


def test_tuned_plan_records_the_chosen_tactic(tmp_path: Path) -> None:
    options = BuildOptions(input_size=(64, 96), tune=True, threads=(1,))
    result = build_engine("faceboxes", tmp_path / "tuned.plan", options)
    assert result.tuning is not None and len(result.tuning.rows) == 2  # two graph optimisation levels
    session = load_engine(result.path).plan.tactics["session"]
    assert session == result.tuning.tactic.as_dict() and session["threads"] == 1


def test_tuning_spans_backends_and_the_precisions_int8_allows(calibration_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino", reason="the openvino backend is an optional extra")
    options = BuildOptions(
        precision="int8",
        calibration_dir=calibration_dir,
        input_size=(64, 96),
        tune=True,
        threads=(1,),
        tune_backends=("ort", "openvino"),
    )
    result = build_engine("faceboxes", tmp_path / "tuned.plan", options)
    rows = result.tuning.rows
    # ONNX Runtime: int8 (per-channel, per-tensor) and fp32, at two optimisation levels each; OpenVINO:
    # the same precisions at its one level.
    assert Counter((row.tactic.backend, row.tactic.precision) for row in rows) == {
        ("ort", "int8"): 4,
        ("ort", "fp32"): 2,
        ("openvino", "int8"): 2,
        ("openvino", "fp32"): 1,
    }
    chosen = result.tuning.tactic
    plan = load_engine(result.path).plan
    assert (plan.backend, plan.precision) == (
        {"ort": "onnxruntime", "openvino": "openvino"}[chosen.backend],
        chosen.precision,
    )
    assert (plan.calibration is not None) == (chosen.precision == "int8")


def test_bad_options_fail_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calibration images"):
        BuildOptions(precision="int8")
    with pytest.raises(ConfigError, match="precision"):
        BuildOptions(precision="int4")
    with pytest.raises(ConfigError, match="unknown calibrator 'kl'"):
        BuildOptions(calibrator="kl")
    with pytest.raises(ConfigError, match="tolerance >= 0"):
        BuildOptions(fp32_fallback=float("nan"))
    with pytest.raises(ConfigError, match="must be a file"):
        BuildOptions(precision="int8", calibration_dir=tmp_path, calibration_cache=tmp_path)
    with pytest.raises(ConfigError, match="tensorrt times its own kernels"):
        BuildOptions(tune=True, backend="tensorrt")
    with pytest.raises(ConfigError, match="add --tune"):
        BuildOptions(tune_backends=("openvino",))
    with pytest.raises(ConfigError, match="the tensorrt backend takes no uint8 pixel input"):
        BuildOptions(backend="tensorrt", pixel_input=True)
    with pytest.raises(ConfigError, match="takes more than an image"):
        build_engine("rfcn_resnet50_dcn", tmp_path / "rfcn.plan")
    with pytest.raises(ConfigError, match="only takes 112x112 inputs, not 224x224"):
        build_engine(
            "mobilefacenet",
            tmp_path / "m.plan",
            BuildOptions(input_size=(224, 224)),
            weights=tmp_path / "w.pth",
        )
    assert not list(tmp_path.iterdir())


def test_fp16_plan_holds_float16_weights_and_finds_the_face(
    fp32_plan: Path, astronaut_path: Path, tmp_path: Path
) -> None:
    result = build_engine(
        "faceboxes", tmp_path / "half.plan", BuildOptions(precision="fp16", input_size=SIZE)
    )
    graph = onnx.load_from_string(result.plan.model).graph
    weights = Counter(init.data_type for init in graph.initializer if len(init.dims) == 4)
    assert set(weights) == {onnx.TensorProto.FLOAT16}
    # float32 bindings (the model casts after the input and before each output).
    assert [(b.name, b.dtype) for b in result.plan.inputs] == [("image", "float32")]
    assert result.path.stat().st_size < 0.55 * fp32_plan.stat().st_size
    image = model_preprocessing(create_model("faceboxes")).apply(read_image(astronaut_path), SIZE)[None]
    half, full = load_engine(result.path, threads=1).run(image), load_engine(fp32_plan, threads=1).run(image)
    for name in ("loc", "conf"):
        scale = float(np.abs(full[name]).max())
        np.testing.assert_allclose(half[name], full[name], atol=5e-3 * scale)
    photo = read_image(astronaut_path)
    ours = load_detector(str(result.path)).detect(photo).above(0.5)
    reference = load_detector(str(fp32_plan)).detect(photo).above(0.5)
    assert len(ours) == len(reference) == 1
    assert float(box_iou(ours.boxes, reference.boxes)[0, 0]) > 0.95

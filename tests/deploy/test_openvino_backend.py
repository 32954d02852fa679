"""The OpenVINO backend: a plan built for it runs the builder's standard ONNX model in OpenVINO's
CPU plugin with the precision hint pinned to f32, so its fp32 outputs are ONNX Runtime's; an int8
(Q/DQ) plan runs OpenVINO's int8 kernels and still finds the face; without the package, or with
plugins, it fails with one line."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from torchvision.ops import box_iou

from edgevision.api import load_detector
from edgevision.data.io import read_image
from edgevision.data.preprocessing import model_preprocessing
from edgevision.deploy.builder import BuildOptions, build_engine
from edgevision.deploy.plan import Plan, Plugin, read_plan
from edgevision.deploy.runtime import Engine, load_engine
from edgevision.deploy.tuning import Tactic
from edgevision.errors import ConfigError
from edgevision.models import create_model

SIZE = (240, 320)  # small, for CPU time; not a multiple of the 128 px largest stride in W
needs_openvino = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None,
    reason="the openvino backend is an optional extra: pip install edgevision[openvino]",
)


@pytest.fixture(scope="module")
def fp32_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plans") / "faceboxes_fp32_openvino.plan"
    return build_engine("faceboxes", out, BuildOptions(input_size=SIZE, backend="openvino")).path


@pytest.fixture(scope="module")
def int8_plan(calibration_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plans") / "faceboxes_int8_openvino.plan"
    options = BuildOptions(
        precision="int8", calibration_dir=calibration_dir, input_size=SIZE, backend="openvino"
    )
    return build_engine("faceboxes", out, options).path


def _image(astronaut_path: Path, size: tuple[int, int]) -> np.ndarray:
    return model_preprocessing(create_model("faceboxes")).apply(read_image(astronaut_path), size)[None]


def _relative_error(outputs: dict[str, np.ndarray], references: dict[str, np.ndarray]) -> float:
    """The largest ``max |output - reference| / max |reference|`` over the outputs."""
    return max(
        float(np.abs(outputs[name] - reference).max() / np.abs(reference).max())
        for name, reference in references.items()
    )


def _ort_engine(path: Path) -> Engine:
    """The same plan's model run by ONNX Runtime: the builder writes one model for every backend."""
    return Engine(replace(read_plan(path), backend="onnxruntime"), threads=1)


@needs_openvino
def test_fp32_plan_matches_onnx_runtime_with_the_f32_hint(fp32_plan: Path, astronaut_path: Path) -> None:
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    from edgevision.deploy.backends.openvino import OpenVinoSession

    engine = load_engine(fp32_plan, threads=1)
    assert isinstance(engine.session, OpenVinoSession)
    assert (engine.plan.backend, engine.plan.backend_version) == ("openvino", ov.__version__)
    assert engine.tactic.backend == "openvino"
    assert engine.session.compiled.get_property(hints.inference_precision) == ov.Type.f32
    assert engine.session.compiled.get_property(props.inference_num_threads) == 1
    assert [(info.name, info.shape) for info in engine.session.get_inputs()] == [
        ("image", (None, 3, None, None))
    ]
    reference = _ort_engine(fp32_plan)
    # The built size, and another one: H and W stay dynamic in the plan; each size seen is
    # compiled once, statically, with the same pinned hint.
    compiled = {}
    for size in (SIZE, (200, 296), SIZE):
        image = _image(astronaut_path, size)
        assert _relative_error(engine.run(image), reference.run(image)) <= 1e-4
        static = engine.session.compiled_for({"image": image})
        assert compiled.setdefault(size, static) is static
        assert static.get_property(hints.inference_precision) == ov.Type.f32
        assert [tuple(port.get_shape()) for port in static.inputs] == [(1, 3, *size)]
    assert compiled[SIZE] is not compiled[(200, 296)]


@needs_openvino
def test_fp16_plan_binds_its_declared_names_and_matches_onnx_runtime(
    astronaut_path: Path, tmp_path: Path
) -> None:
    # The fp16 model casts its float32 input: OpenVINO merges the cast's tensor name into the input
    # port's names, and the session must still bind (and reshape) the input by the name "image".
    options = BuildOptions(precision="fp16", input_size=SIZE, backend="openvino")
    path = build_engine("faceboxes", tmp_path / "half.plan", options).path
    engine = load_engine(path, threads=1)
    assert [info.name for info in engine.session.get_inputs()] == ["image"]
    # FaceBoxes' outputs, with "landmarks" when the bundled weights hold the landmark head.
    expected = list(load_detector(str(path)).model.onnx_output_names)
    assert [info.name for info in engine.session.get_outputs()] == expected
    image = _image(astronaut_path, (200, 296))  # not the built size: compiled for it on the fly
    assert _relative_error(engine.run(image), _ort_engine(path).run(image)) <= 1e-3


@needs_openvino
def test_default_precision_hint_runs_bf16_where_the_cpu_has_it(fp32_plan: Path, astronaut_path: Path) -> None:
    """Why the hint is pinned: OpenVINO's CPU plugin defaults to bf16 on a CPU with avx512_bf16 or
    AMX, and bf16 moves the outputs far more than f32 (here 5e-3 against 1e-6 of their scale)."""
    import openvino as ov
    import openvino.properties.hint as hints

    core = ov.Core()
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU has no bf16 (avx512_bf16/AMX): OpenVINO's default is already f32 here")
    engine = load_engine(fp32_plan, threads=1)
    default = core.compile_model(core.read_model(engine.plan.model), "CPU")
    assert default.get_property(hints.inference_precision) == ov.Type.bf16
    image = _image(astronaut_path, SIZE)
    results = default.create_infer_request().infer({"image": image})
    unpinned = {binding.name: results[binding.name] for binding in engine.outputs}
    reference = _ort_engine(fp32_plan).run(image)
    pinned_error, default_error = (
        _relative_error(engine.run(image), reference),
        _relative_error(unpinned, reference),
    )
    assert default_error > 1e-3 and default_error > 100 * pinned_error


@needs_openvino
def test_int8_plan_runs_int8_kernels_and_finds_the_face(
    int8_plan: Path, fp32_plan: Path, astronaut_path: Path
) -> None:
    import openvino as ov
    import openvino.properties.hint as hints

    engine = load_engine(int8_plan)
    assert (engine.plan.backend, engine.plan.precision) == ("openvino", "int8")
    assert engine.session.compiled.get_property(hints.inference_precision) == ov.Type.f32
    runtime = Counter(
        (info["layerType"].astype(str), info["runtimePrecision"].astype(str))
        for info in (node.get_rt_info() for node in engine.session.compiled.get_runtime_model().get_ops())
    )
    conv_precisions = {precision for (layer, precision) in runtime if layer == "Convolution"}
    # Q/DQ became FakeQuantize and int8 convolutions.
    assert conv_precisions and conv_precisions <= {"u8", "i8"}, runtime
    assert not any(precision == "bf16" for _, precision in runtime), runtime
    photo = read_image(astronaut_path)
    ours = load_detector(str(int8_plan)).detect(photo).above(0.5)
    reference = load_detector(str(fp32_plan)).detect(photo).above(0.5)
    assert len(ours) == len(reference) == 1
    assert float(box_iou(ours.boxes, reference.boxes)[0, 0]) > 0.9


def test_missing_openvino_fails_with_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now fails
    monkeypatch.delitem(sys.modules, "edgevision.deploy.backends.openvino", raising=False)
    message = r"^the openvino backend needs `pip install edgevision\[openvino\]`$"
    with pytest.raises(ConfigError, match=message):
        Engine(Plan(model=b"", precision="fp32", inputs=(), outputs=(), backend="openvino"))
    with pytest.raises(ConfigError, match=message):  # before any work, and nothing is written
        build_engine("faceboxes", tmp_path / "x.plan", BuildOptions(backend="openvino"))
    assert not list(tmp_path.iterdir())


def test_openvino_options_and_limits() -> None:
    plugin = Plugin("edgevision", "DeformRoIPool", 1)
    plan = Plan(model=b"", precision="fp32", inputs=(), outputs=(), plugins=(plugin,), backend="openvino")
    with pytest.raises(
        ConfigError, match="openvino backend runs no plugins; the model needs edgevision::DeformRoIPool"
    ):
        Engine(plan)
    tactic = Tactic(backend="openvino", precision="int8", threads=2, graph_optimization_level="all")
    with pytest.raises(ConfigError, match="ONNX Runtime's"):
        tactic.session_options()
    with pytest.raises(ConfigError, match="'coreml' runtime"):
        Engine(replace(plan, backend="coreml", plugins=()))

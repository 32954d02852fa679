"""Plugins (custom ONNX operators): the registry's errors, and deformable (PS) RoI pooling exported
from PyTorch to an ``edgevision`` node, run by the ONNX reference runtime and ONNX Runtime as
PyTorch runs it, with its output shapes inferred."""

from __future__ import annotations

import dataclasses
import functools
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchvision
from onnx import TensorProto, helper
from torch import nn

from edgevision.deploy.plugins import (
    PluginSpec,
    get_plugin,
    infer_shapes,
    list_plugins,
    make_session,
    reference_evaluator,
    register_plugin,
    torch_op,
    translation_table,
)
from edgevision.deploy.plugins.deform_roi_pool import DEFORM_PS_ROI_POOL, DEFORM_ROI_POOL
from edgevision.errors import ConfigError, ShapeError, UnknownPluginError
from edgevision.layers.deform_roi_pool import deform_ps_roi_pool, deform_roi_pool

OUTPUT_SIZE = (2, 3)  # not square: a swapped k_h, k_w shows
SCALE = 0.25
SAMPLES = 2
CHANNELS = 3 * 2 * 3  # 3 position-sensitive output channels


class PSRoIPoolHead(nn.Module):
    """``features -> deform_ps_roi_pool(relu(features), rois, offset)`` through the plugin's torch op.

    The ReLU is there because the exporter converts opset 18 down to 17 (export_onnx's default) only
    for a graph that has an op of ONNX's own domain."""

    def forward(self, features: torch.Tensor, rois: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        return torch.ops.edgevision.deform_ps_roi_pool(
            features.relu(), rois, offset, OUTPUT_SIZE, SCALE, SAMPLES, 0.1, "mxnet"
        )


def make_inputs(num_rois: int, seed: int) -> dict[str, np.ndarray]:
    """Features (2, 18, 12, 14) and RoIs in 48 x 56 image pixels, some partly outside the image."""
    generator = np.random.default_rng(seed)
    corners = generator.uniform(-8, 60, size=(num_rois, 2, 2))
    rois = np.concatenate(
        [generator.integers(0, 2, size=(num_rois, 1)), corners.min(axis=1), corners.max(axis=1)], axis=1
    )
    return {
        "features": generator.standard_normal((2, CHANNELS, 12, 14)).astype(np.float32),
        "rois": rois.astype(np.float32),
        "offset": (0.3 * generator.standard_normal((num_rois, 2, *OUTPUT_SIZE))).astype(np.float32),
    }


@pytest.fixture(scope="module")
def exported() -> onnx.ModelProto:
    example = [torch.from_numpy(array) for array in make_inputs(num_rois=3, seed=0).values()]
    num_rois = torch.export.Dim("num_rois")
    with warnings.catch_warnings():  # that rois and offset share num_rois, which is intended
        warnings.filterwarnings("ignore", "# The axis name: num_rois will not be used")
        program = torch.onnx.export(
            PSRoIPoolHead().eval(),
            tuple(example),
            dynamo=True,
            opset_version=17,
            input_names=["features", "rois", "offset"],
            dynamic_shapes=({}, {0: num_rois}, {0: num_rois}),
            custom_translation_table=translation_table(),
            verbose=False,
        )
    return program.model_proto


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return make_inputs(num_rois=5, seed=1)  # another K than the example's: K is dynamic


@pytest.fixture(scope="module")
def expected(inputs: dict[str, np.ndarray]) -> np.ndarray:
    features, rois, offset = (torch.from_numpy(array) for array in inputs.values())
    return deform_ps_roi_pool(features.relu(), rois, offset, OUTPUT_SIZE, SCALE, SAMPLES).numpy()


def plugin_model(
    op_type: str,
    inputs: list[str],
    attributes: dict[str, object],
    features_shape: tuple[int | str, ...] = ("batch", CHANNELS, "height", "width"),
) -> onnx.ModelProto:
    """A hand-made model ``features, rois[, offset] -> edgevision::op_type -> Relu -> output``, its
    output without a shape."""
    shapes = {"features": features_shape, "rois": ("num_rois", 5), "offset": ("num_rois", 2, *OUTPUT_SIZE)}
    graph = helper.make_graph(
        [
            helper.make_node(op_type, inputs, ["pooled"], domain="edgevision", **attributes),
            helper.make_node("Relu", ["pooled"], ["output"]),
        ],
        "plugin",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shapes[name]) for name in inputs if name],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("edgevision", 1)]
    return helper.make_model(graph, opset_imports=opsets)


def dims(tensor_type: onnx.TypeProto.Tensor) -> list[int | str | None]:
    return [
        dim.dim_value if dim.HasField("dim_value") else dim.dim_param if dim.HasField("dim_param") else None
        for dim in tensor_type.shape.dim
    ]


def test_the_registry_lists_the_builtin_plugins() -> None:
    keys = [spec.key for spec in list_plugins()]
    assert keys == sorted(keys)
    assert {("edgevision", "DeformPSRoIPool", 1), ("edgevision", "DeformRoIPool", 1)} <= set(keys)
    assert get_plugin("edgevision", "DeformPSRoIPool", 1) is DEFORM_PS_ROI_POOL


@pytest.mark.parametrize(
    "spec, message",
    [
        (DEFORM_PS_ROI_POOL, "plugin edgevision::DeformPSRoIPool version 1 is already registered"),
        (dataclasses.replace(DEFORM_PS_ROI_POOL, torch_name="edgevision::other"), "is already registered"),
        (dataclasses.replace(DEFORM_PS_ROI_POOL, op_type="Other"), "torch op edgevision::deform_ps_roi_pool"),
    ],
    ids=["same", "same-key", "same-torch-op"],
)
def test_registering_a_duplicate_raises(spec: PluginSpec, message: str) -> None:
    before = list_plugins()
    with pytest.raises(ConfigError, match=message):
        register_plugin(spec)
    assert list_plugins() == before


@pytest.mark.parametrize("op_type, version", [("NoSuchOp", 1), ("DeformPSRoIPool", 2)])
def test_an_unknown_plugin_raises_a_one_line_error(op_type: str, version: int) -> None:
    with pytest.raises(UnknownPluginError) as error:
        get_plugin("edgevision", op_type, version)
    assert f"edgevision::{op_type} version {version}" in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("spec", "torchvision_op"),
    [
        (DEFORM_ROI_POOL, functools.partial(torchvision.ops.roi_align, aligned=True)),
        (DEFORM_PS_ROI_POOL, torchvision.ops.ps_roi_align),  # always aligned (-0.5)
    ],
    ids=lambda value: getattr(value, "op_type", ""),
)
def test_the_torch_op_at_zero_offsets_is_torchvisions_roi_align(spec: PluginSpec, torchvision_op) -> None:
    arrays = make_inputs(num_rois=4, seed=2)  # some RoIs partly outside the feature map
    features, rois, _ = (torch.from_numpy(array) for array in arrays.values())
    offset = torch.zeros(len(rois), 2, *OUTPUT_SIZE)
    args = (features, rois, offset, list(OUTPUT_SIZE), SCALE, SAMPLES, 0.1, "align")
    torch.library.opcheck(torch_op(spec), args)  # schema, fake kernel (shapes, strides), tracing
    want = torchvision_op(features, rois, OUTPUT_SIZE, SCALE, SAMPLES)
    torch.testing.assert_close(torch_op(spec)(*args), want, rtol=0, atol=1e-5)


def test_the_torch_op_in_mxnet_mode_by_hand() -> None:
    # f(y, x) = x on an 8x8 map; RoI (1, 1)-(6, 6) at scale 1 spans [0.5, 6.5] (whole-pixel corners,
    # -0.5; +1 at the end); two bins 3 wide, two samples each from the bin's start: x = 0.5, 2 and
    # 3.5, 5, means 1.25 and 4.25. An offset of 1 on the second bin moves it by 0.1 * 1 * 6 = 0.6.
    features = torch.arange(8.0).repeat(8, 1)[None, None].repeat(1, 2, 1, 1)
    rois = torch.tensor([[0.0, 1.0, 1.0, 6.0, 6.0]])
    offset = torch.zeros(1, 2, 1, 2)
    offset[0, 0, 0, 1] = 1.0
    op = torch_op(DEFORM_ROI_POOL)
    plain = op(features, rois, None, [1, 2], 1.0, 2, 0.1, "mxnet")
    moved = op(features, rois, offset, [1, 2], 1.0, 2, 0.1, "mxnet")
    torch.testing.assert_close(plain, torch.tensor([1.25, 4.25]).expand(1, 2, 1, 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(moved, torch.tensor([1.25, 4.85]).expand(1, 2, 1, 2), rtol=0, atol=1e-6)


def test_export_emits_one_plugin_node(exported: onnx.ModelProto) -> None:
    onnx.checker.check_model(exported, full_check=True)
    plugin_nodes = [node for node in exported.graph.node if node.domain == "edgevision"]
    assert [node.op_type for node in plugin_nodes] == ["DeformPSRoIPool"]
    attributes = {
        attribute.name: helper.get_attribute_value(attribute) for attribute in plugin_nodes[0].attribute
    }
    assert attributes == {
        "output_size": list(OUTPUT_SIZE),
        "spatial_scale": SCALE,
        "sampling_ratio": SAMPLES,
        "gamma": pytest.approx(0.1),
        "mode": b"mxnet",
    }
    assert {(entry.domain, entry.version) for entry in exported.opset_import} == {("", 17), ("edgevision", 1)}
    (output,) = exported.graph.output
    assert dims(output.type.tensor_type) == ["num_rois", 3, *OUTPUT_SIZE]


def test_the_reference_runtime_matches_pytorch(
    exported: onnx.ModelProto, inputs: dict[str, np.ndarray], expected: np.ndarray
) -> None:
    (output,) = reference_evaluator(exported).run(None, inputs)
    np.testing.assert_allclose(output, expected, rtol=0, atol=1e-5)


def test_onnx_runtime_matches_pytorch(
    exported: onnx.ModelProto, inputs: dict[str, np.ndarray], expected: np.ndarray
) -> None:
    (output,) = make_session(exported).run(None, inputs)
    assert output.dtype == np.float32
    np.testing.assert_allclose(output, expected, rtol=0, atol=1e-5)


def test_sessions_can_share_options(exported: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    first, second = make_session(exported, options), make_session(exported, options)
    np.testing.assert_array_equal(first.run(None, inputs)[0], second.run(None, inputs)[0])


def test_a_plugin_without_its_optional_input_and_defaults_runs_in_both_runtimes() -> None:
    # No offset ("" input) and no gamma (default 0.1): plain RoIAlign-style pooling of every channel.
    attributes = {
        "output_size": list(OUTPUT_SIZE),
        "spatial_scale": SCALE,
        "sampling_ratio": 3,
        "mode": "align",
    }
    model = plugin_model("DeformRoIPool", ["features", "rois", ""], attributes)
    arrays = make_inputs(num_rois=4, seed=3)
    feeds = {"features": arrays["features"], "rois": arrays["rois"]}
    features, rois = (torch.from_numpy(array) for array in feeds.values())
    expected = deform_roi_pool(features, rois, None, OUTPUT_SIZE, SCALE, 3, mode="align").relu().numpy()
    (reference,) = reference_evaluator(model).run(None, feeds)
    (runtime,) = make_session(model).run(None, feeds)
    np.testing.assert_allclose(reference, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(runtime, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "channels, pooled_channels, relu_channels",
    [(CHANNELS, 3, 3), ("channels", None, "unk__0")],  # ONNX names the dims it cannot infer
    ids=["known-C", "symbolic-C"],
)
def test_shape_inference_fills_plugin_outputs_and_those_downstream(
    channels: int | str, pooled_channels: int | None, relu_channels: int | str
) -> None:
    attributes = {"output_size": list(OUTPUT_SIZE), "spatial_scale": SCALE, "sampling_ratio": SAMPLES}
    model = plugin_model(
        "DeformPSRoIPool", ["features", "rois", "offset"], attributes, ("batch", channels, 12, 14)
    )
    inferred = infer_shapes(model).graph
    types = {value.name: value.type.tensor_type for value in (*inferred.value_info, *inferred.output)}
    assert types["pooled"].elem_type == types["output"].elem_type == TensorProto.FLOAT
    assert dims(types["pooled"]) == ["num_rois", pooled_channels, *OUTPUT_SIZE]
    assert dims(types["output"]) == ["num_rois", relu_channels, *OUTPUT_SIZE]  # the Relu needs the plugin's


def test_shape_inference_rejects_shapes_the_plugin_does_not_take() -> None:
    attributes = {"output_size": list(OUTPUT_SIZE), "spatial_scale": SCALE, "sampling_ratio": SAMPLES}
    model = plugin_model("DeformPSRoIPool", ["features", "rois"], attributes, ("batch", 20, 12, 14))
    with pytest.raises(ShapeError, match="multiple of k_h \\* k_w = 6"):
        infer_shapes(model)


@pytest.mark.parametrize(
    "run",
    [make_session, reference_evaluator, infer_shapes],
    ids=["onnxruntime", "reference", "shape-inference"],
)
def test_a_model_with_an_unregistered_plugin_raises_a_one_line_error(run) -> None:
    model = plugin_model("NoSuchOp", ["features", "rois"], {})
    with pytest.raises(UnknownPluginError) as error:
        run(model)
    message = str(error.value)
    assert "edgevision::NoSuchOp" in message and "version <= 1" in message and "\n" not in message


@pytest.mark.parametrize(
    "attributes, message",
    [
        ({"output_size": [2, 3], "sampling_ratio": 2}, "lacks the attribute 'spatial_scale'"),
        ({"output_size": [2, 3], "spatial_scale": 1, "sampling_ratio": 2}, "'spatial_scale' must be float"),
        ({"output_size": [2, 3], "spatial_scale": 0.5, "sampling_ratio": 2, "pad": 1}, "unknown attributes"),
    ],
    ids=["missing", "wrong-kind", "unknown"],
)
def test_a_plugin_node_with_bad_attributes_raises(attributes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_session(plugin_model("DeformPSRoIPool", ["features", "rois"], attributes))

"""Builder passes: each keeps the fp32 outputs of the unoptimised graph (1e-5 relative) on
FaceBoxes (our bundled weights) and MobileNetV2 (ImageNet weights) on real photos, the builder
log shows the layer counts, and each rewrite rule is checked on a hand-built graph, including the
cases it must leave alone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgevision.data.io import read_image
from edgevision.deploy.export import export_onnx
from edgevision.deploy.passes import (
    DEFAULT_PASSES,
    INT8_PASSES,
    crelu_as_conv1x1,
    format_reports,
    fuse_crelu,
    run_passes,
    space_to_depth_stem,
)
from edgevision.deploy.passes.avgpool_conv import fold_avgpool_into_conv
from edgevision.deploy.passes.concat_elimination import in_place_concats
from edgevision.deploy.passes.dead_layers import eliminate_dead_layers
from edgevision.deploy.passes.fold_bias import fold_bias
from edgevision.deploy.passes.fold_constants import fold_constants
from edgevision.deploy.passes.fuse_horizontal import fuse_horizontal
from edgevision.deploy.passes.fusion_groups import fusion_groups
from edgevision.models import create_model, model_info
from edgevision.models.weights import load_weights, state_dict_from_file

# Every pass: the int8 list (a superset of the fp32 one) and the optional C.ReLU fusion and
# space-to-depth stem. The int8 list's C.ReLU rewrite runs first, so fuse_crelu finds none left.
ALL_PASSES = (*INT8_PASSES, fuse_crelu, space_to_depth_stem)


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, feeds
    )


def assert_same_outputs(expected: list[np.ndarray], actual: list[np.ndarray], what: str) -> None:
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual, strict=True):
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale, err_msg=what)


@pytest.fixture(scope="module")
def faceboxes_raw(tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    # FaceBoxes' own graph (the bundled body and box heads; the optional landmark head's graph is
    # tests/deploy/test_landmark_plan.py's), so the counts below are the paper network's.
    model = create_model("faceboxes")
    state = state_dict_from_file(model_info("faceboxes").weights_path)
    model.load_state_dict({key: value for key, value in state.items() if not key.startswith("landm.")})
    path = export_onnx(model, tmp_path_factory.mktemp("raw") / "faceboxes.onnx", optimize=False)
    return onnx.load(path)


@pytest.fixture(scope="module")
def mobilenet_raw(shared_weights, tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    weights = shared_weights("mobilenet_v2_imagenet/mobilenet_v2-b0353104.pth")
    model = create_model("mobilenet_v2")
    load_weights(model, weights, "mobilenet_v2")
    path = export_onnx(
        model, tmp_path_factory.mktemp("raw") / "mobilenet_v2.onnx", input_size=(224, 224), optimize=False
    )
    return onnx.load(path)


def photo_input(path: Path, size: tuple[int, int], mean: tuple[float, ...], std: float) -> np.ndarray:
    image = cv2.resize(read_image(path), (size[1], size[0])).astype(np.float32)
    return ((image - np.array(mean, np.float32)) / std).transpose(2, 0, 1)[None].copy()


@pytest.mark.parametrize("size", [(480, 640), (333, 517)], ids=["480x640", "333x517"])
def test_every_pass_keeps_faceboxes_outputs(faceboxes_raw, astronaut_path, size):
    feeds = {"image": photo_input(astronaut_path, size, (104.0, 117.0, 123.0), 1.0)}
    expected = run(faceboxes_raw, feeds)
    # The int8 list rewrites C.ReLU before fuse_crelu could; the fp32 list leaves it for fuse_crelu.
    for passes in (ALL_PASSES, (*DEFAULT_PASSES, fuse_crelu)):
        model = faceboxes_raw
        for builder_pass in passes:
            model, report = builder_pass(model)
            onnx.checker.check_model(model)
            assert_same_outputs(expected, run(model, feeds), report.name)


def test_every_pass_keeps_mobilenet_v2_outputs(mobilenet_raw, astronaut_path):
    # torchvision's ImageNet pre-processing, on RGB (read_image gives BGR).
    image = photo_input(astronaut_path, (224, 224), (0.0, 0.0, 0.0), 255.0)[:, ::-1]
    image = (image - np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)) / np.array(
        [0.229, 0.224, 0.225], np.float32
    ).reshape(1, 3, 1, 1)
    feeds = {"image": np.ascontiguousarray(image, dtype=np.float32)}
    expected = run(mobilenet_raw, feeds)
    model = mobilenet_raw
    for builder_pass in ALL_PASSES:
        model, report = builder_pass(model)
        assert_same_outputs(expected, run(model, feeds), report.name)
    assert np.argmax(expected[0]) == np.argmax(run(model, feeds)[0])


def test_builder_log_counts_faceboxes_layers(faceboxes_raw):
    model, reports = run_passes(faceboxes_raw)
    log = format_reports(reports)
    by_name = {report.name: report for report in reports}
    # The exporter's raw graph: 311 nodes, 27 of them BN; 112 once built for fp32.
    assert (reports[0].layers_before, reports[-1].layers_after) == (311, 112)
    assert by_name["Conv+BN folding"].op_changes() == {"BatchNormalization": -27}
    # Three Inception modules of three 1x1s each, and three head levels of (loc, conf).
    assert by_name["horizontal fusion"].op_changes() == {"Conv": -9, "Relu": -6, "Split": 6}
    assert Counter(n.op_type for n in model.graph.node)["Conv"] == 33 - 9
    assert "[Conv+BN folding] layers 148 -> 121 (BatchNormalization -27)" in log
    # Channel concats at batch 1, each input written by a node and read by no other concat,
    # including C.ReLU's two (conv output and its negation).
    assert "7 of 7 concats can be written in place" in log
    # The optional C.ReLU fusion takes RDCL's two Neg + Concat pairs.
    _, crelu = fuse_crelu(model)
    assert crelu.op_changes() == {"Concat": -2, "Neg": -2}
    # int8: each Inception's avg_pool 3x3 -> conv 1x1 branch becomes one 3x3 conv, and C.ReLU's
    # Neg + Concat a 1x1 conv.
    _, reports = run_passes(faceboxes_raw, INT8_PASSES)
    by_name = {report.name: report for report in reports}
    assert reports[-1].layers_after == 112 - 3 - 2
    assert by_name["AvgPool+Conv folding"].op_changes() == {"AveragePool": -3}
    assert by_name["C.ReLU as 1x1 conv"].op_changes() == {"Concat": -2, "Conv": 2, "Neg": -2}
    assert "5 of 5 concats can be written in place" in format_reports(reports)


def test_fusion_groups_are_what_onnx_runtime_fuses(faceboxes_raw, tmp_path):
    model, _ = run_passes(faceboxes_raw)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "ort.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    fused = Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)
    groups = fusion_groups(model)
    # 21 convs + ReLU, less RDCL's two whose ReLU comes after the C.ReLU concat.
    assert len(groups) == fused["FusedConv"] == 19
    assert set(groups) == {("Conv", "Relu")}


# --- rules on hand-built graphs -------------------------------------------------------------


def conv_model(extra_nodes, outputs, channels=4, extra_inits=(), group=1, inputs=None) -> onnx.ModelProto:
    """x (1, 2*group... ) -> Conv "y" (channels filters, 3x3, pad 1) -> extra nodes."""
    rng = np.random.default_rng(0)
    in_channels = 2 * group
    weight = rng.standard_normal((channels, in_channels // group, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(channels).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1], group=group)
    graph = helper.make_graph(
        [conv, *extra_nodes],
        "g",
        inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_channels, 5, 6])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b"), *extra_inits],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def feeds_for(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return {"x": np.random.default_rng(1).standard_normal(dims).astype(np.float32)}


@pytest.mark.parametrize(
    ("shape", "folds"),
    [((1, 6, 1, 1), True), ((6, 1, 1), True), ((1,), True), ((6,), False), ((1, 6, 5, 1), False)],
)
def test_bias_folding_takes_only_per_channel_constants(shape, folds):
    # 6 channels and 6 columns: a (6,) constant is legal but broadcasts along W, not C.
    value = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1
    add = helper.make_node("Add", ["y", "c"], ["z"])
    model = conv_model([add], ["z"], channels=6, extra_inits=[numpy_helper.from_array(value, "c")])
    folded, _ = fold_bias(model)
    assert Counter(n.op_type for n in folded.graph.node)["Add"] == (0 if folds else 1)
    assert_same_outputs(run(model, feeds_for(model)), run(folded, feeds_for(model)), "bias folding")


def test_crelu_becomes_one_conv_and_leaves_grouped_convs_alone():
    nodes = [helper.make_node("Neg", ["y"], ["n"]), helper.make_node("Concat", ["y", "n"], ["z"], axis=1)]
    model = conv_model(nodes, ["z"])
    fused, _ = fuse_crelu(model)
    assert [n.op_type for n in fused.graph.node] == ["Conv"]
    assert_same_outputs(run(model, feeds_for(model)), run(fused, feeds_for(model)), "C.ReLU")
    grouped = conv_model(nodes, ["z"], group=2)
    assert [n.op_type for n in fuse_crelu(grouped)[0].graph.node] == ["Conv", "Neg", "Concat"]
    # The concat in the other order is not C.ReLU's [x, -x] layout.
    swapped = conv_model([nodes[0], helper.make_node("Concat", ["n", "y"], ["z"], axis=1)], ["z"])
    assert len(fuse_crelu(swapped)[0].graph.node) == 3


def test_crelu_as_1x1_conv_keeps_the_conv_and_writes_y_and_minus_y():
    nodes = [helper.make_node("Neg", ["y"], ["n"]), helper.make_node("Concat", ["y", "n"], ["z"], axis=1)]
    model = conv_model(nodes, ["z"])
    rewritten, report = crelu_as_conv1x1(model)
    assert [n.op_type for n in rewritten.graph.node] == ["Conv", "Conv"]
    assert report.op_changes() == {"Concat": -1, "Conv": 1, "Neg": -1}
    weight = numpy_helper.to_array(rewritten.graph.initializer[-1])
    np.testing.assert_array_equal(weight[:, :, 0, 0], np.concatenate([np.eye(4), -np.eye(4)]))
    assert_same_outputs(run(model, feeds_for(model)), run(rewritten, feeds_for(model)), "C.ReLU 1x1")
    swapped = conv_model([nodes[0], helper.make_node("Concat", ["n", "y"], ["z"], axis=1)], ["z"])
    assert len(crelu_as_conv1x1(swapped)[0].graph.node) == 3


def test_dead_layers_and_no_ops_go_but_named_outputs_stay():
    nodes = [
        helper.make_node("Identity", ["y"], ["i"]),
        helper.make_node("Relu", ["i"], ["z"]),
        helper.make_node("Sigmoid", ["y"], ["unused"]),
        helper.make_node("Identity", ["z"], ["out"]),
    ]
    model = conv_model(nodes, ["out"])
    cleaned, report = eliminate_dead_layers(model)
    assert [n.op_type for n in cleaned.graph.node] == ["Conv", "Relu", "Identity"]
    assert report.op_changes() == {"Identity": -1, "Sigmoid": -1}
    assert_same_outputs(run(model, feeds_for(model)), run(cleaned, feeds_for(model)), "dead layers")


def test_constant_folding_evaluates_weight_arithmetic_but_not_random_ops():
    nodes = [
        helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(np.float32(2.0))),
        helper.make_node("Mul", ["b", "two"], ["b2"]),
        helper.make_node("Reshape", ["b2", "shape"], ["b2r"]),
        helper.make_node("Add", ["y", "b2r"], ["z"]),
        helper.make_node("RandomNormalLike", ["b"], ["noise"]),
        helper.make_node("Identity", ["noise"], ["n_out"]),
    ]
    shape = numpy_helper.from_array(np.array([1, 4, 1, 1], np.int64), "shape")
    model = conv_model(nodes, ["z", "n_out"], extra_inits=[shape])
    folded, report = fold_constants(model)
    assert [n.op_type for n in folded.graph.node] == ["Conv", "Add", "RandomNormalLike", "Identity"]
    values = {init.name: numpy_helper.to_array(init) for init in folded.graph.initializer}
    bias = numpy_helper.to_array(model.graph.initializer[1])
    np.testing.assert_array_equal(values["b2r"], (2 * bias).reshape(1, 4, 1, 1))


def test_concat_of_a_graph_input_needs_a_copy():
    x2 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 6])
    model = conv_model([helper.make_node("Concat", ["y", "x"], ["z"], axis=1)], ["z"], inputs=[x2])
    assert in_place_concats(model) == {"z": "copy: x is a graph input or a constant"}
    batch2 = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2, 5, 6])
    relu = helper.make_node("Relu", ["y"], ["r"])
    model = conv_model([relu, helper.make_node("Concat", ["y", "r"], ["z"], axis=1)], ["z"], inputs=[batch2])
    assert in_place_concats(model)["z"].startswith("copy: the inputs are not contiguous")
    # A symbolic batch (a dynamic-batch plan) is one block per image: still in place.
    dynamic = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 6])
    model = conv_model([relu, helper.make_node("Concat", ["y", "r"], ["z"], axis=1)], ["z"], inputs=[dynamic])
    assert in_place_concats(model)["z"] == "in place"


def test_avgpool_folds_into_the_pointwise_conv_only_when_exact():
    def model_with(count_include_pad: int, kernel: int = 1) -> onnx.ModelProto:
        pool = helper.make_node(
            "AveragePool",
            ["y"],
            ["p"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            count_include_pad=count_include_pad,
        )
        weight = numpy_helper.from_array(
            np.random.default_rng(2).standard_normal((5, 4, kernel, kernel)).astype(np.float32), "w2"
        )
        conv = helper.make_node("Conv", ["p", "w2"], ["z"], name="pointwise")
        return conv_model([pool, conv], ["z"], extra_inits=[weight])

    exact = model_with(1)
    folded, report = fold_avgpool_into_conv(exact)
    assert [n.op_type for n in folded.graph.node] == ["Conv", "Conv"]
    assert_same_outputs(run(exact, feeds_for(exact)), run(folded, feeds_for(exact)), "avgpool fold")
    # Without the padding counted the border windows average fewer values: not a conv.
    assert len(fold_avgpool_into_conv(model_with(0))[0].graph.node) == 3
    # A 3x3 conv after the pool is no per-pixel map: left alone.
    assert len(fold_avgpool_into_conv(model_with(1, kernel=3))[0].graph.node) == 3


@pytest.mark.parametrize("size", [(20, 28), (17, 23)], ids=["multiple of 4", "not a multiple"])
def test_space_to_depth_stem_is_exact_at_any_size(size):
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((6, 3, 7, 7)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="stem", pads=[3, 3, 3, 3], strides=[4, 4])
    graph = helper.make_graph(
        [conv],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    rewritten, report = space_to_depth_stem(model)
    assert Counter(n.op_type for n in rewritten.graph.node)["SpaceToDepth"] == 1
    feeds = {"x": rng.standard_normal((1, 3, *size)).astype(np.float32)}
    expected = run(model, feeds)
    assert expected[0].shape[2:] == (-(-size[0] // 4), -(-size[1] // 4))
    assert_same_outputs(expected, run(rewritten, feeds), "space-to-depth")


def test_horizontal_fusion_leaves_graphs_below_opset_13_alone():
    twin = helper.make_node("Conv", ["x", "w", "b"], ["y2"], name="twin", pads=[1, 1, 1, 1])
    model = conv_model([twin], ["y", "y2"])
    assert len(fuse_horizontal(model)[0].graph.node) == 2  # Conv + Split at opset 18
    model.opset_import[0].version = 12  # Split's sizes were an attribute then, not an input
    fused, report = fuse_horizontal(model)
    assert len(fused.graph.node) == 2 and [n.op_type for n in fused.graph.node] == ["Conv", "Conv"]
    assert report.details == ("skipped: opset 12 < 13",)

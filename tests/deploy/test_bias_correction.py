"""Bias correction: the weights it assumes are exactly the quantiser's, the shift it subtracts is the
int8 conv's exact mean output error on an input of those channel means (plain and depthwise), and
the builder applies it on request."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

from edgevision.deploy.bias_correction import conv_input_means, correct_biases, output_shift, quantized_weight
from edgevision.deploy.builder import BuildOptions, build_engine
from edgevision.deploy.calibration import TensorRange
from edgevision.deploy.graph import dequantized_names
from edgevision.deploy.passes.conv import constant_convs
from edgevision.deploy.quantize import quantize_qdq


def conv_model(weight: np.ndarray, group: int = 1) -> onnx.ModelProto:
    """x (N, C_in, 6, 7) -> Conv (weight, zero bias, no padding) -> y."""
    in_channels = weight.shape[1] * group
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=group)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", in_channels, 6, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(weight, "w"),
            numpy_helper.from_array(np.zeros(len(weight), np.float32), "b"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize("per_channel", [True, False])
def test_quantized_weight_is_what_the_quantizer_writes(per_channel: bool, tmp_path: Path) -> None:
    weight = np.random.default_rng(0).standard_normal((6, 4, 3, 3)).astype(np.float32)
    weight[2] *= 20  # one channel with a much larger range: per-tensor scales differ from per-channel
    model = conv_model(weight)
    ranges = {name: TensorRange(5.0, -5.0, 5.0) for name in ("x", "y")}
    quantized = onnx.load(quantize_qdq(model, ranges, tmp_path / "q.onnx", per_channel=per_channel))
    values = {init.name: numpy_helper.to_array(init) for init in quantized.graph.initializer}
    dequantize = next(
        n
        for n in quantized.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in values and values[n.input[0]].ndim == 4
    )
    scale = values[dequantize.input[1]].reshape(-1, 1, 1, 1)
    stored = values[dequantize.input[0]].astype(np.float64) * scale
    np.testing.assert_allclose(quantized_weight(weight.astype(np.float64), per_channel), stored, rtol=1e-6)
    assert dequantized_names(quantized)  # the activations are Q/DQ too: a real QDQ model


@pytest.mark.parametrize(("shape", "group"), [((5, 4, 3, 3), 1), ((4, 1, 3, 3), 4), ((6, 2, 3, 3), 2)])
def test_shift_is_the_mean_output_error_of_the_int8_weights(shape: tuple[int, ...], group: int) -> None:
    rng = np.random.default_rng(1)
    weight = rng.standard_normal(shape)
    means = rng.uniform(0.5, 3.0, shape[1] * group)
    x = torch.from_numpy(np.broadcast_to(means[None, :, None, None], (1, len(means), 6, 7)).copy())
    exact = F.conv2d(x, torch.from_numpy(quantized_weight(weight, True)), groups=group) - F.conv2d(
        x, torch.from_numpy(weight), groups=group
    )
    conv = next(iter(constant_convs(conv_model(weight.astype(np.float32), group)).values()))
    shift = output_shift(conv, means, per_channel=True)
    # A constant input of the channel means: the error is the same at every output position.
    np.testing.assert_allclose(exact[0, :, 0, 0].numpy(), shift, rtol=1e-4, atol=1e-6)


def test_corrected_biases_remove_the_mean_error_on_the_measured_images() -> None:
    rng = np.random.default_rng(2)
    # 1x1 filters see every input position once, so the input means are exactly the conv's.
    weight = rng.standard_normal((8, 3, 1, 1)).astype(np.float32)
    model = conv_model(weight)
    batches = [{"x": rng.uniform(0, 4, (4, 3, 6, 7)).astype(np.float32)} for _ in range(3)]
    means = conv_input_means(model, batches)
    corrected, report = correct_biases(model, means)
    assert report.name == "bias correction" and len(report.details) == 1
    bias = next(numpy_helper.to_array(i) for i in corrected.graph.initializer if i.dims == [8])
    x = torch.from_numpy(np.concatenate([b["x"] for b in batches]).astype(np.float64))
    int8 = F.conv2d(x, torch.from_numpy(quantized_weight(weight.astype(np.float64), True)))
    fp32 = F.conv2d(x, torch.from_numpy(weight.astype(np.float64)))
    before = (int8 - fp32).mean(dim=(0, 2, 3)).numpy()
    after = before + bias  # the corrected int8 conv minus the fp32 one, on average
    assert np.abs(after).max() < 1e-6 < np.abs(before).max()


# Two 1x1 convs, x (B, G, R) -> a (3 channels) -> b (1): each first row has the weights
# [1.27, 0.503, -0.206], which per-channel int8 (scale 1.27 / 127 = 0.01) rounds to [1.27, 0.50, -0.21]:
# errors [0, -0.003, -0.004]. Every other weight is a whole number of steps (no error).
ROW = [1.27, 0.503, -0.206]
CONV_A = np.array([ROW, [0, 1.27, 0], [0, 0, 1.27]], np.float32).reshape(3, 3, 1, 1)
CONV_B = np.array([ROW], np.float32).reshape(1, 3, 1, 1)
COLOUR = (10, 100, 50)  # B, G, R of every calibration image: the input means
# a's fp32 output means: 1.27 * 10 + 0.503 * 100 - 0.206 * 50 + 1 = 53.7, 1.27 * 100 + 1, 1.27 * 50 + 1
A_MEANS = (53.7, 128.0, 64.5)
# Each conv's bias (1) less its mean int8 error: a: 1 - (-0.003 * 100 - 0.004 * 50) = 1.5;
# b (on a's fp32 means): 1 - (-0.003 * 128 - 0.004 * 64.5) = 1.642.
CORRECTED = {"conv_a": 1.5, "conv_b": 1.642}


def two_convs(path: Path) -> Path:
    """x (N, 3, 8, 8) -> conv_a -> a -> conv_b -> y, every bias 1, as an ONNX file."""
    nodes = [
        helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="conv_a"),
        helper.make_node("Conv", ["a", "wb", "bb"], ["y"], name="conv_b"),
    ]
    weights = {
        "wa": CONV_A,
        "ba": np.ones(3, np.float32),
        "wb": CONV_B,
        "bb": np.ones(1, np.float32),
    }
    graph = helper.make_graph(
        nodes,
        "two_convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def plan_biases(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Conv name -> its bias as the plan computes it: a float initializer, or int32 * scale."""
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    biases = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            name = node.input[2]
            if name in values:
                biases[node.name] = values[name]
            else:  # DequantizeLinear(int32 bias, scale, 0)
                dequantize = producers[name]
                biases[node.name] = values[dequantize.input[0]] * values[dequantize.input[1]]
    return biases


@pytest.mark.parametrize("exclude", [(), ("conv_b",)], ids=["all-int8", "conv_b-fp32"])
def test_builder_corrects_the_biases_of_the_quantised_convs_by_hand(
    exclude: tuple[str, ...], tmp_path: Path
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for index in range(2):
        cv2.imwrite(str(images / f"{index}.png"), np.full((8, 8, 3), COLOUR, np.uint8))
    source = two_convs(tmp_path / "two_convs.onnx")
    options = BuildOptions(
        precision="int8", calibration_dir=images, calibrator="minmax", exclude=exclude, bias_correction=True
    )
    result = build_engine(source, tmp_path / "bc.plan", options)
    model = onnx.load_from_string(result.plan.model)
    biases = plan_biases(model)
    assert set(biases) == {"conv_a", "conv_b"}
    # An int32 bias has the step input scale x weight scale: (128 / 255) x 0.01 at most.
    step = 128 / 255 * 0.01
    for name, corrected in CORRECTED.items():
        want = 1.0 if name in exclude else corrected  # a conv kept in fp32 has no error to correct
        assert biases[name][0] == pytest.approx(want, abs=step / 2), name
    np.testing.assert_allclose(biases["conv_a"][1:], 1.0, atol=step / 2)  # exact rows: no correction
    if exclude:
        assert biases["conv_b"].dtype == np.float32  # kept in fp32: its bias is the original float
    # The corrected int8 conv's output mean is the fp32 one: with the plan's int8 weights, on the
    # input means, conv_a gives 1.27 * 10 + 0.50 * 100 - 0.21 * 50 + 1.5 = 53.7.
    weight = next(
        numpy_helper.to_array(init)
        for init in model.graph.initializer
        if init.data_type == TensorProto.INT8 and tuple(init.dims) == (3, 3, 1, 1)
    )
    assert weight[0, :, 0, 0].tolist() == [127, 50, -21]
    int8_mean = float(weight[0, :, 0, 0] @ np.array(COLOUR) * 0.01 + biases["conv_a"][0])
    assert int8_mean == pytest.approx(A_MEANS[0], abs=step / 2)
    assert f"bias correction: {2 - len(exclude)} convs over 2 images" in result.logs["qdq_policy"]

"""Bias correction: the weights it assumes are exactly the quantiser's, the shift it subtracts is the
int8 conv's exact mean output error on an input of those channel means (plain and depthwise), and
the builder applies it on request."""

from __future__ import annotations

from pathlib import Path

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


def test_builder_corrects_biases_on_request(calibration_dir: Path, tmp_path: Path) -> None:
    options = BuildOptions(precision="int8", calibration_dir=calibration_dir, input_size=(96, 128))
    plain = build_engine("faceboxes", tmp_path / "plain.plan", options)
    corrected = build_engine(
        "faceboxes", tmp_path / "bc.plan", BuildOptions(**{**vars(options), "bias_correction": True})
    )
    assert any(note.startswith("[bias correction] 26 convs") for note in corrected.notes)
    assert plain.plan.model != corrected.plan.model

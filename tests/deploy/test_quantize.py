"""Q/DQ INT8 models from our calibrated ranges, on a small Conv-ReLU-Conv-Add-Concat net exported
from torch and fed crops of the bundled photo: where the Q/DQ go, the scales and zero points our
ranges give (asymmetric uint8 or symmetric int8), weight scales per channel or per tensor, excluded
nodes, and the format TensorRT parses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

from edgevision.data.io import read_image
from edgevision.deploy.calibration import (
    TensorRange,
    TensorStats,
    activation_tensors,
    calibrate,
    collect_activation_histograms,
)
from edgevision.deploy.quantize import quantize_qdq
from edgevision.errors import ConfigError

MEAN_BGR = (104.0, 117.0, 123.0)
CROP = 64


class SmallNet(nn.Module):
    """Conv-ReLU, then a residual Conv-ReLU + 1x1 Conv (Add), a Concat and a Conv head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.body = nn.Conv2d(16, 16, 3, padding=1)
        self.skip = nn.Conv2d(16, 16, 1)
        self.head = nn.Conv2d(32, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.stem(x))
        z = F.relu(self.body(y)) + self.skip(y)
        return self.head(torch.cat([z, y], 1))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    program = torch.onnx.export(
        SmallNet().eval(),
        (torch.zeros(1, 3, CROP, CROP),),
        dynamo=True,
        opset_version=17,
        input_names=["image"],
        output_names=["out"],
        verbose=False,
    )
    path = tmp_path_factory.mktemp("small") / "small.onnx"
    onnx.save(program.model_proto, path)
    return path


def crops(photo: np.ndarray, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``count`` random 64x64 crops of ``photo`` as ``{"image": (1, 3, 64, 64)}`` network inputs."""
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, np.array(photo.shape[:2]) - CROP, size=(count, 2))
    mean = np.float32(MEAN_BGR)
    return [
        {"image": (photo[y : y + CROP, x : x + CROP] - mean).transpose(2, 0, 1)[None].copy()}
        for y, x in corners
    ]


@pytest.fixture(scope="module")
def calibration_set(astronaut_path: Path) -> list[dict[str, np.ndarray]]:
    return crops(read_image(astronaut_path), 64, seed=0)


@pytest.fixture(scope="module")
def test_set(astronaut_path: Path) -> list[dict[str, np.ndarray]]:
    return crops(read_image(astronaut_path), 8, seed=1)


@pytest.fixture(scope="module")
def stats(model_path: Path, calibration_set: list[dict[str, np.ndarray]]) -> dict[str, TensorStats]:
    return collect_activation_histograms(model_path, calibration_set)


def run(path: Path, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run(None, batch)[0] for batch in batches]


def relative_errors(path: Path, reference: Path, batches: list[dict[str, np.ndarray]]) -> np.ndarray:
    """``||y_int8 - y_fp32|| / ||y_fp32||`` per batch."""
    return np.array(
        [
            np.linalg.norm(q - f) / np.linalg.norm(f)
            for q, f in zip(run(path, batches), run(reference, batches))
        ]
    )


def test_qdq_model_runs_close_to_fp32(
    model_path: Path, stats: dict[str, TensorStats], test_set: list[dict[str, np.ndarray]], tmp_path: Path
) -> None:
    path = quantize_qdq(model_path, calibrate(stats, "entropy", skip_zeros=True), tmp_path / "int8.onnx")
    # uint8 over [0, amax] of a ReLU output adds rounding noise of ~amax / 255 / sqrt(12), under 1 %
    # of its RMS for amax ~ 3 RMS, per quantised tensor (6 here, plus int8 weights), and a crop may
    # clip a little past the calibrated amax: 1.2-2.4 % measured (MinMax: 1.3-2.0 %).
    assert relative_errors(path, model_path, test_set).max() < 0.05
    # TensorRT's histograms keep the ReLU zeros; the spike pulls every ReLU threshold to ~1/4 of its
    # max and the clipping costs 16-59 % (see calibrate's skip_zeros).
    spiked = quantize_qdq(model_path, calibrate(stats, "entropy"), tmp_path / "spiked.onnx")
    assert relative_errors(spiked, model_path, test_set).min() > 0.1


def test_qdq_layout_is_what_ort_fuses_into_qlinearconv(
    model_path: Path, stats: dict[str, TensorStats], tmp_path: Path
) -> None:
    path = quantize_qdq(model_path, calibrate(stats, "minmax"), tmp_path / "int8.onnx")
    graph = onnx.load(path).graph
    producers = {output: node for node in graph.node for output in node.output}
    initializers = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert len(convs) == 4
    for conv in convs:
        data, weight = producers[conv.input[0]], producers[conv.input[1]]
        assert data.op_type == weight.op_type == "DequantizeLinear"
        assert producers[data.input[0]].op_type == "QuantizeLinear"
        assert initializers[data.input[2]].dtype == np.uint8  # U8 activations
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "fused.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    fused = [node.op_type for node in onnx.load(tmp_path / "fused.onnx").graph.node]
    assert fused.count("QLinearConv") == 4 and "Conv" not in fused
    assert {"QLinearAdd", "QLinearConcat"} <= set(fused)


# Hand-set ranges: the image is clipped to amax, the ReLU's range is its [0, amax].
HAND_RANGES = {"image": TensorRange(2.0, -3.0, 1.5), "relu": TensorRange(4.0, 0.0, 6.0)}
OTHER_RANGE = TensorRange(8.0, -8.0, 8.0)


@pytest.mark.parametrize(
    ("symmetric", "expected"),
    [
        # uint8 over the clipped (min, max): scale (max - min) / 255, zero point round(-min / scale).
        (False, {(3.5 / 255, 146, np.uint8), (4 / 255, 0, np.uint8), (16 / 255, 128, np.uint8)}),
        # int8 over [-amax, amax]: scale amax / 127, zero point 0.
        (True, {(2 / 127, 0, np.int8), (4 / 127, 0, np.int8), (8 / 127, 0, np.int8)}),
    ],
    ids=["uint8", "symmetric-int8"],
)
def test_activation_scales_and_zero_points_come_from_our_ranges(
    model_path: Path, symmetric: bool, expected: set, tmp_path: Path
) -> None:
    names = activation_tensors(onnx.load(model_path))
    ranges = {name: HAND_RANGES.get(name, OTHER_RANGE) for name in names}
    model = onnx.load(quantize_qdq(model_path, ranges, tmp_path / "q.onnx", symmetric=symmetric))
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    quantizers = [node for node in model.graph.node if node.op_type == "QuantizeLinear"]
    got = {
        (round(float(values[q.input[1]]), 7), int(values[q.input[2]]), values[q.input[2]].dtype.type)
        for q in quantizers
    }
    assert got == {(round(scale, 7), zero, dtype) for scale, zero, dtype in expected}
    image_quantizer = next(q for q in quantizers if q.input[0] == "image")
    assert float(values[image_quantizer.input[1]]) == pytest.approx(2 / 127 if symmetric else 3.5 / 255)


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_weight_scales_are_max_abs_over_127_on_the_output_channel_axis(
    model_path: Path, stats: dict[str, TensorStats], per_channel: bool, tmp_path: Path
) -> None:
    floats = {init.name: numpy_helper.to_array(init) for init in onnx.load(model_path).graph.initializer}
    path = quantize_qdq(model_path, calibrate(stats, "minmax"), tmp_path / "q.onnx", per_channel=per_channel)
    model = onnx.load(path)
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    for conv in convs:
        weight = producers[conv.input[1]]  # DequantizeLinear(int8 weight, scale, 0)
        name = weight.input[0].removesuffix("_quantized")
        w = floats[name]
        amax = np.abs(w).reshape(len(w), -1).max(axis=1) if per_channel else np.abs(w).max()
        np.testing.assert_allclose(values[weight.input[1]], amax / 127, rtol=1e-6)
        axis = {a.name: a.i for a in weight.attribute}.get("axis")
        assert axis == (0 if per_channel else None)  # per output channel: DequantizeLinear's axis 0
        assert values[weight.input[0]].dtype == np.int8 and not values[weight.input[2]].any()
    assert len(convs) == 4


def test_excluded_nodes_stay_fp32(
    model_path: Path, stats: dict[str, TensorStats], test_set: list[dict[str, np.ndarray]], tmp_path: Path
) -> None:
    head = next(node.name for node in onnx.load(model_path).graph.node if "head.weight" in node.input)
    ranges = calibrate(stats, "entropy", skip_zeros=True)
    path = quantize_qdq(model_path, ranges, tmp_path / "int8.onnx", exclude=[head])
    graph = onnx.load(path).graph
    producers = {output: node for node in graph.node for output in node.output}
    floats = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    conv = next(node for node in graph.node if node.name == head)
    assert conv.input[1] == "head.weight" and {"head.weight", "head.bias"} <= floats  # fp32 weights
    assert producers[conv.input[0]].op_type == "DequantizeLinear"  # fed a dequantized activation
    assert conv.output[0] == "out"  # its output is not re-quantized
    assert (
        sum(
            node.op_type == "Conv" and node.input[1].endswith("_DequantizeLinear_Output")
            for node in graph.node
        )
        == 3
    )
    assert relative_errors(path, model_path, test_set).max() < 0.05


def test_quantize_rejects_missing_ranges_and_unknown_nodes(
    model_path: Path, stats: dict[str, TensorStats], tmp_path: Path
) -> None:
    ranges = calibrate(stats, "minmax")
    with pytest.raises(ConfigError, match="no calibrated range"):
        quantize_qdq(model_path, {k: v for k, v in ranges.items() if k != "cat"}, tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="no node of that name"):
        quantize_qdq(model_path, ranges, tmp_path / "x.onnx", exclude=["node_absent"])
    assert not (tmp_path / "x.onnx").exists()


def test_symmetric_int8_without_bias_quantisation_is_what_tensorrt_parses(
    model_path: Path,
    stats: dict[str, TensorStats],
    test_set: list[dict[str, np.ndarray]],
    dequantized_types: Callable[[onnx.ModelProto], list[np.dtype]],
    tmp_path: Path,
) -> None:
    # TensorRT's ONNX parser takes only int8 Q/DQ with zero point 0, and DequantizeLinear of int8
    # only: no int32 biases.
    ranges = calibrate(stats, "entropy", skip_zeros=True)
    path = quantize_qdq(model_path, ranges, tmp_path / "sym.onnx", symmetric=True, quantize_bias=False)
    model = onnx.load(path)
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    zero_points = [values[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    assert set(dequantized_types(model)) == {np.dtype(np.int8)}
    biases = [node.input[2] for node in model.graph.node if node.op_type == "Conv"]
    assert len(biases) == 4 and all(values[name].dtype == np.float32 for name in biases)
    # ONNX Runtime's default (what its QLinearConv fusion wants) is int32 biases.
    default = onnx.load(quantize_qdq(model_path, ranges, tmp_path / "bias.onnx", symmetric=True))
    assert np.dtype(np.int32) in set(dequantized_types(default))
    # Half the levels of uint8 on the ReLU outputs: about twice the rounding noise, still small.
    assert relative_errors(path, model_path, test_set).max() < 0.08

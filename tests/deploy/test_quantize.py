"""Q/DQ INT8 models from our calibrated ranges, on a small Conv-ReLU-Conv-Add-Concat net exported
from torch and fed crops of the bundled photo; and what ONNX Runtime's own entropy calibration
returns at its defaults."""

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
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, quantize_static
from onnxruntime.quantization.calibrate import create_calibrator
from torch import nn

from edgevision.data.io import read_image
from edgevision.data.transforms import to_network_input
from edgevision.deploy.calibration import (
    TensorStats,
    calibrate,
    collect_activation_histograms,
)
from edgevision.deploy.quantize import QUANTIZED_OP_TYPES, quantize_qdq
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


class ListReader(CalibrationDataReader):
    """ORT's calibration reader over a list of batches."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self.batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


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
    return [
        {"image": to_network_input(photo[y : y + CROP, x : x + CROP], MEAN_BGR)[None].numpy()}
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
        quantized, scale = initializers[weight.input[0]], initializers[weight.input[1]]
        assert quantized.dtype == np.int8 and scale.shape == (quantized.shape[0],)  # S8 per output channel
        assert not initializers[weight.input[2]].any()  # symmetric weights
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "fused.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    fused = [node.op_type for node in onnx.load(tmp_path / "fused.onnx").graph.node]
    assert fused.count("QLinearConv") == 4 and "Conv" not in fused
    assert {"QLinearAdd", "QLinearConcat"} <= set(fused)

    per_tensor = quantize_qdq(model_path, calibrate(stats, "minmax"), tmp_path / "pt.onnx", per_channel=False)
    scales = {
        t.name: tuple(t.dims)
        for t in onnx.load(per_tensor).graph.initializer
        if t.name.endswith("weight_scale")
    }
    assert scales and set(scales.values()) == {()}


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


def ort_ranges(model_path: Path, method: CalibrationMethod, batches: list, tmp_path: Path, **options) -> dict:
    """ORT's calibrated ``(lowest, highest)`` per tensor, with quantize_static's choice of tensors."""
    calibrator = create_calibrator(
        model_path,
        QUANTIZED_OP_TYPES,
        augmented_model_path=str(tmp_path / f"augmented_{method.name}.onnx"),
        calibrate_method=method,
        extra_options=options,
    )
    calibrator.collect_data(ListReader(batches))
    return {
        name: tuple(float(np.ravel(v)[0]) for v in data.range_value)
        for name, data in calibrator.compute_data().items()
    }


def test_ort_entropy_at_its_defaults_is_minmax(
    model_path: Path, stats: dict[str, TensorStats], calibration_set: list, tmp_path: Path
) -> None:
    # EntropyCalibrater's defaults: num_bins=128, num_quantized_bins=128 over [-max|x|, max|x|], so
    # one candidate (all 128 bins), which is then clipped to the observed (min, max).
    entropy = ort_ranges(model_path, CalibrationMethod.Entropy, calibration_set, tmp_path)
    minmax = ort_ranges(model_path, CalibrationMethod.MinMax, calibration_set, tmp_path)
    assert entropy == minmax
    assert set(entropy) <= set(stats)
    assert all(entropy[name] == (stats[name].min, stats[name].max) for name in entropy)  # our pass 1
    # quantize_static forwards none of num_bins / num_quantized_bins, so through it Entropy writes
    # the very model MinMax writes, byte for byte in every scale, zero point and weight.
    files = {}
    for method in (CalibrationMethod.Entropy, CalibrationMethod.MinMax):
        files[method] = tmp_path / f"ort_{method.name}.onnx"
        quantize_static(model_path, files[method], ListReader(calibration_set), calibrate_method=method)
    initializers = [
        {t.name: numpy_helper.to_array(t) for t in onnx.load(files[method]).graph.initializer}
        for method in files
    ]
    assert initializers[0].keys() == initializers[1].keys()
    assert all(np.array_equal(initializers[0][name], initializers[1][name]) for name in initializers[0])
    # With 2048 bins its KL search does run, and clips where ours (TensorRT's, on |x|) clips too.
    searched = ort_ranges(model_path, CalibrationMethod.Entropy, calibration_set, tmp_path, num_bins=2048)
    ours = calibrate(stats, "entropy", skip_zeros=True)
    clipped = [name for name in searched if searched[name][1] < 0.99 * minmax[name][1]]
    assert clipped and all(ours[name].amax < stats[name].amax for name in clipped)


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

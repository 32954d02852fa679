"""The per-layer accuracy gate charges each layer only the error its own quantisation adds: with
one layer's range sabotaged, that layer (and not the ones after it) fails, and keeping it in fp32
brings the output back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgevision.deploy.calibration import TensorRange, calibrate, collect_activation_histograms
from edgevision.deploy.layer_gate import failing_layers, keep_failing_layers_in_fp32, layer_errors
from edgevision.deploy.quantize import quantize_qdq


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.middle = nn.Conv2d(8, 8, 3, padding=1)
        self.last = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.relu(self.middle(F.relu(self.first(x)))))


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    torch.manual_seed(0)
    program = torch.onnx.export(
        Chain().eval(), (torch.zeros(1, 3, 16, 16),), dynamo=True, input_names=["x"], verbose=False
    )
    return program.model_proto


def batches(seed: int, count: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(count)]


def quantised(
    fp32: onnx.ModelProto, ranges: dict[str, TensorRange], tmp: Path, exclude=()
) -> onnx.ModelProto:
    return onnx.load(quantize_qdq(fp32, ranges, tmp / "int8.onnx", exclude=exclude))


def output_error(model: onnx.ModelProto, fp32: onnx.ModelProto, data: list[dict[str, np.ndarray]]) -> float:
    def run(m: onnx.ModelProto) -> np.ndarray:
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return np.concatenate([session.run(None, batch)[0] for batch in data])

    got, want = run(model), run(fp32)
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def test_the_sabotaged_layer_is_worst_and_fp32_fallback_repairs_it(fp32, tmp_path):
    calibration, test = batches(0, 16), batches(1, 4)
    ranges = calibrate(collect_activation_histograms(fp32, calibration), "minmax")
    first, middle, last = (node for node in fp32.graph.node if node.op_type == "Conv")
    clean = layer_errors(fp32, quantised(fp32, ranges, tmp_path), test)
    assert set(clean) == {first.name, middle.name, last.name}
    assert max(clean.values()) < 0.02  # 8-bit minmax: about 1% per layer
    # Clip the middle layer's output (the ReLU after it: the quantiser folds the ReLU into that
    # range) to 2% of its range.
    bad = dict(ranges)
    relu = next(node for node in fp32.graph.node if node.input[0] == middle.output[0])
    original = ranges[relu.output[0]]
    bad[relu.output[0]] = TensorRange(original.amax * 0.02, original.min, original.max)
    sabotaged = quantised(fp32, bad, tmp_path)
    errors = layer_errors(fp32, sabotaged, test)
    assert failing_layers(errors, 0.05)[0] == middle.name
    assert errors[middle.name] > 0.5 and errors[first.name] == pytest.approx(clean[first.name])
    repaired, kept = keep_failing_layers_in_fp32(
        fp32, lambda exclude: quantised(fp32, bad, tmp_path, exclude), test, tolerance=0.05
    )
    # The middle conv first; its clipped output still feeds the int8 last conv, so that one next.
    assert kept == [middle.name, last.name]
    assert output_error(sabotaged, fp32, test) > 0.3
    assert output_error(repaired, fp32, test) < 0.03

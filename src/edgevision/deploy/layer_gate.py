"""Per-layer accuracy gate: which quantised layers to keep in fp32.

TensorRT lets a builder pin layers to higher precision when INT8 hurts them; here the builder
measures it. Both models run on the same inputs with every layer output exposed (in the Q/DQ model
a layer's output is read after its QuantizeLinear/DequantizeLinear pair, which is also where a
folded ReLU takes effect), and a layer fails the gate when the error its own quantisation adds
exceeds ``tolerance``:

    added error = rel_err(int8 output) - rel_err(int8 input)

with ``rel_err(t) = ||t_int8 - t_fp32|| / ||t_fp32||`` over all the inputs. Error inherited from
earlier layers is not charged to a layer, though a large one still grows on its way through the
next layers; so :func:`keep_failing_layers_in_fp32` repairs greedily, worst layer first, measuring
again after each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx

from edgevision.deploy.calibration import run_exposed
from edgevision.deploy.graph import consumers, dequantized_names, only_reader, producers

GATED_OP_TYPES = ("Conv", "Gemm", "MatMul")
FUSED_ACTIVATIONS = ("Relu", "Clip")


def layer_errors(
    fp32: onnx.ModelProto, int8: onnx.ModelProto, batches: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, float]:
    """Node name -> the relative output error its quantisation adds, for the ``GATED_OP_TYPES``
    nodes of ``fp32`` (which must have names; the exporter names every node)."""
    graph = fp32.graph
    nodes = [node for node in graph.node if node.op_type in GATED_OP_TYPES]
    outputs = _layer_outputs(fp32)
    # In the Q/DQ model a tensor's value as the next layer reads it is after its Q/DQ pair.
    dequantised = dequantized_names(int8)
    # Layer inputs written by a node of both models (graph inputs are exact in both, and so are
    # the pixels a pixel-input plan reads without its fp32 prologue), and layer outputs.
    written = set(producers(graph)) & (set(producers(int8.graph)) | set(dequantised))
    tensors = sorted({n.input[0] for n in nodes if n.input[0] in written} | set(outputs.values()))
    int8_names = [dequantised.get(name, name) for name in tensors]
    reference, quantised = _outputs(fp32, tensors, batches), _outputs(int8, int8_names, batches)
    errors = {
        name: _relative_error(quantised[int8_name], reference[name])
        for name, int8_name in zip(tensors, int8_names, strict=True)
    }
    return {node.name: errors[outputs[node.name]] - errors.get(node.input[0], 0.0) for node in nodes}


def failing_layers(errors: Mapping[str, float], tolerance: float) -> list[str]:
    """Names of the layers whose added error exceeds ``tolerance``, worst first."""
    return sorted((name for name, error in errors.items() if error > tolerance), key=lambda n: -errors[n])


def _layer_outputs(model: onnx.ModelProto) -> dict[str, str]:
    """Gated layer name -> its output tensor: its activation's when it has one (the quantiser
    folds a ReLU into the layer's output range; only the activation's tensor name survives)."""
    graph = model.graph
    readers = consumers(graph)
    outputs = {}
    for node in graph.node:
        if node.op_type in GATED_OP_TYPES:
            only = only_reader(graph, readers, node.output[0])
            fused = only is not None and graph.node[only].op_type in FUSED_ACTIVATIONS
            outputs[node.name] = graph.node[only].output[0] if fused else node.output[0]
    return outputs


def _readers_of_output(model: onnx.ModelProto, layer: str) -> list[str]:
    """The gated layers that read ``layer``'s output."""
    tensor = _layer_outputs(model)[layer]
    return [node.name for node in model.graph.node if node.op_type in GATED_OP_TYPES and tensor in node.input]


def _outputs(
    model: onnx.ModelProto, names: Sequence[str], batches: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, list[np.ndarray]]:
    """Each tensor in ``names`` over ``batches``."""
    values: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for batch in run_exposed(model, batches, names):
        for name, array in batch.items():
            values[name].append(array)
    return values


def _relative_error(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    difference = sum(float(np.square(g.astype(np.float64) - w).sum()) for g, w in zip(got, want, strict=True))
    norm = sum(float(np.square(w.astype(np.float64)).sum()) for w in want)
    return float(np.sqrt(difference / norm)) if norm > 0 else float(np.sqrt(difference))


def keep_failing_layers_in_fp32(
    fp32: onnx.ModelProto,
    quantize: Callable[[Sequence[str]], onnx.ModelProto],
    batches: Sequence[Mapping[str, np.ndarray]],
    tolerance: float,
    max_layers: int = 8,
) -> tuple[onnx.ModelProto, list[str]]:
    """The int8 model from ``quantize(excluded node names)`` with, one at a time, the worst layer
    over ``tolerance`` kept in fp32, until none is (or ``max_layers`` are kept); returns it and
    the names kept in fp32.

    A layer kept in fp32 still has its output quantised for the int8 layers that read it; when it
    fails again, those readers are kept in fp32 too, so the tensor stays fp32.
    """
    excluded: list[str] = []
    model = quantize(excluded)
    while len(excluded) < max_layers:
        failing = failing_layers(layer_errors(fp32, model, batches), tolerance)
        if not failing:
            break
        worst = failing[0]
        chosen = [worst] if worst not in excluded else _readers_of_output(fp32, worst)
        chosen = [name for name in chosen if name not in excluded][: max_layers - len(excluded)]
        if not chosen:
            break
        excluded.extend(chosen)
        model = quantize(excluded)
    return model, excluded

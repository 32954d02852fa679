"""Collection: every float activation of an fp32 ONNX graph, run in ONNX Runtime with the tensors
exposed as extra graph outputs, summarised as per-tensor ``|x|`` histograms (:class:`TensorStats`).

Collection is two exact passes over a small representative set: the first finds each tensor's min
and max, the second bins ``|x|`` into 2048 bins over ``[0, max |x|]``, so no histogram is re-binned
when a later batch is wider (ORT instead appends bins of the first batch's width, so its bin count
and resolution depend on the order of the batches).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from edgevision.deploy.plugins import make_session
from edgevision.errors import ConfigError, InputFileError, ShapeError

NUM_BINS = 2048  # histogram bins over [0, max |x|] (TensorRT)
SHAPE_OPS = frozenset({"Shape", "Size"})  # consumers that read a tensor's shape, not its values

Batch = Mapping[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class TensorStats:
    """What calibration saw of one activation tensor.

    Attributes:
        min: its smallest value over the calibration set.
        max: its largest value.
        hist: ``(NUM_BINS,)`` int64 counts of ``|x|``; bin ``k`` holds ``k * w <= |x| < (k + 1) * w``
            with ``w = amax / NUM_BINS`` (``|x| = amax`` goes to the last bin).
        zeros: how many of the values in bin 0 are exactly zero.
    """

    min: float
    max: float
    hist: np.ndarray
    zeros: int = 0

    @property
    def amax(self) -> float:
        return max(-self.min, self.max)

    @property
    def edges(self) -> np.ndarray:
        """``(NUM_BINS + 1,)`` bin edges from 0 to ``amax``."""
        return np.linspace(0.0, self.amax, len(self.hist) + 1)

    def histogram(self, skip_zeros: bool = False) -> np.ndarray:
        """``hist``, less the exact zeros when ``skip_zeros``."""
        if not skip_zeros:
            return self.hist
        hist = self.hist.copy()
        hist[0] -= self.zeros
        return hist


def load_model(model: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    """The model itself, or the ONNX file at a path (:class:`InputFileError` when unreadable)."""
    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    if not path.is_file():
        raise InputFileError(f"no such ONNX file: {path}")
    try:
        return onnx.load(path)
    except Exception as error:  # protobuf raises its own DecodeError types
        raise InputFileError(f"not a loadable ONNX model: {path} ({type(error).__name__})") from error


def activation_tensors(model: onnx.ModelProto) -> list[str]:
    """The float32 activations calibration measures, in graph order: the float graph inputs, then
    every float node output except constants and tensors that only feed shape ops."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {
        info.name: info.type.tensor_type.elem_type
        for info in [*graph.input, *graph.value_info, *graph.output]
    }
    initializers = {tensor.name for tensor in graph.initializer}
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    outputs = {info.name for info in graph.output}
    names = [info.name for info in graph.input if info.name not in initializers]
    names += [name for node in graph.node if node.op_type != "Constant" for name in node.output if name]
    return [
        name
        for name in names
        if types.get(name) == onnx.TensorProto.FLOAT
        and (name in outputs or not consumers.get(name, set()) <= SHAPE_OPS)
    ]


def collect_activation_ranges(
    model: onnx.ModelProto | str | Path, batches: Iterable[Batch]
) -> dict[str, tuple[float, float]]:
    """Pass 1: each activation's ``(min, max)`` over ``batches`` (name -> array, the model's inputs).

    Raises:
        ConfigError: ``batches`` is empty.
        ShapeError: a batch lacks one of the model's inputs.
    """
    ranges: dict[str, tuple[float, float]] = {}
    for values in run_exposed(load_model(model), batches):
        for name, array in values.items():
            low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
            old_low, old_high = ranges.get(name, (low, high))
            ranges[name] = (min(old_low, low), max(old_high, high))
    return ranges


def collect_activation_histograms(
    model: onnx.ModelProto | str | Path, batches: Iterable[Batch], num_bins: int = NUM_BINS
) -> dict[str, TensorStats]:
    """Both passes: ``(min, max)`` first, then ``num_bins`` bins of ``|x|`` over ``[0, max |x|]``.

    ``batches`` is iterated twice, so it must be re-iterable (a list, an :class:`ImageFolderBatches`),
    not a one-shot iterator.

    Raises:
        ConfigError: ``batches`` is a one-shot iterator or empty.
        ShapeError: a batch lacks one of the model's inputs.
    """
    if iter(batches) is batches:
        raise ConfigError("calibration batches are iterated twice; pass a list, not an iterator")
    model = load_model(model)
    ranges = collect_activation_ranges(model, batches)
    hists = {name: np.zeros(num_bins, dtype=np.int64) for name in ranges}
    zeros = dict.fromkeys(ranges, 0)
    for values in run_exposed(model, batches):
        for name, array in values.items():
            hists[name] += _abs_histogram(array, max(-ranges[name][0], ranges[name][1]), num_bins)
            zeros[name] += int(np.count_nonzero(array == 0))
    return {name: TensorStats(low, high, hists[name], zeros[name]) for name, (low, high) in ranges.items()}


def _abs_histogram(array: np.ndarray, amax: float, num_bins: int) -> np.ndarray:
    """``(num_bins,)`` counts of ``|array|`` over ``[0, amax]``; ``|x| = amax`` in the last bin."""
    if amax <= 0:  # an all-zero tensor
        hist = np.zeros(num_bins, dtype=np.int64)
        hist[0] = array.size
        return hist
    index = (np.abs(array, dtype=np.float32).ravel() * np.float32(num_bins / amax)).astype(np.intp)
    return np.bincount(np.minimum(index, num_bins - 1), minlength=num_bins)


def run_exposed(
    model: onnx.ModelProto, batches: Iterable[Batch], names: Sequence[str] | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Run ``model`` on each batch with the tensors ``names`` (default: every
    :func:`activation_tensors`) exposed as outputs and no graph optimisation (so every tensor
    exists); yield name -> array per batch. Plugin nodes run through their kernels.

    Raises:
        ShapeError: a batch lacks one of the model's inputs.
        ConfigError: ``batches`` is empty.
    """
    names = list(activation_tensors(model) if names is None else names)
    initializers = {tensor.name for tensor in model.graph.initializer}
    input_names = [info.name for info in model.graph.input if info.name not in initializers]
    exposed = onnx.shape_inference.infer_shapes(model)
    infos = {info.name: info for info in exposed.graph.value_info}
    already = {info.name for info in exposed.graph.output} | set(input_names)
    exposed.graph.output.extend(
        infos.get(name) or onnx.ValueInfoProto(name=name) for name in names if name not in already
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    session = make_session(exposed, options)
    output_names = [output.name for output in session.get_outputs()]
    count = 0
    for batch in batches:
        missing = [name for name in input_names if name not in batch]
        if missing:
            raise ShapeError(f"batch lacks model input {missing[0]!r}; it has {sorted(batch)}")
        feed = {name: batch[name] for name in input_names}
        values = dict(zip(output_names, session.run(output_names, feed)))
        values.update(feed)  # graph inputs are not outputs: read them from the feed
        yield {name: values[name] for name in names}
        count += 1
    if count == 0:
        raise ConfigError("no calibration batches")

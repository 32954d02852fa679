"""INT8 calibration of an fp32 ONNX graph, TensorRT style: per-tensor |x| histograms of every float
activation, a threshold (``amax``) chosen from each, and a calibration cache.

The ranges come from running the graph in ONNX Runtime with every float activation exposed as an
extra graph output. Collection is two exact passes over a small representative set: the first
finds each tensor's min and max, the second bins ``|x|`` into 2048 bins over ``[0, max |x|]``, so no
histogram is re-binned when a later batch is wider (ORT instead appends bins of the first batch's
width, so its bin count and resolution depend on the order of the batches).

Calibrators map a histogram (``hist (2048,)`` counts, ``edges (2049,)``) to ``amax``:

- ``entropy``: the KL-divergence search of "8-bit Inference with TensorRT" (Migacz, GTC 2017);
- ``minmax``: ``max |x|``;
- ``percentile``: the smallest bin edge below which ``percentile`` % of the ``|x|`` mass lies;
- ``mse``: the threshold that minimises the expected squared error of a symmetric int8 quantiser.

TensorRT's histograms include a ReLU's exact zeros, which drag the entropy threshold far down on
ReLU networks; :func:`calibrate` can leave them out (``skip_zeros``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from edgevision.data.io import IMAGE_SUFFIXES, atomic_write, read_image
from edgevision.data.preprocessing import Preprocessing
from edgevision.deploy.plugins import make_session
from edgevision.errors import ConfigError, ImageDecodeError, InputFileError, ShapeError

NUM_BINS = 2048  # histogram bins over [0, max |x|] (TensorRT)
NUM_LEVELS = 128  # int8 levels on one side of zero: the entropy candidates start at 128 bins
INT8_STEPS = 127  # quantisation steps of a symmetric int8 quantiser over [0, amax]
SHAPE_OPS = frozenset({"Shape", "Size"})  # consumers that read a tensor's shape, not its values
CACHE_FORMAT = "edgevision-calibration/1"

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


@dataclass(frozen=True)
class TensorRange:
    """A calibrated activation: the threshold ``amax`` and the observed ``min`` / ``max``."""

    amax: float
    min: float
    max: float

    def clipped(self) -> tuple[float, float]:
        """The observed ``(min, max)`` clipped to ``[-amax, amax]``: the range to quantise."""
        return max(self.min, -self.amax), min(self.max, self.amax)


# --- Collection -------------------------------------------------------------------------------


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


# --- Calibrators ------------------------------------------------------------------------------


def minmax_amax(hist: np.ndarray, edges: np.ndarray) -> float:
    """``max |x|``: the histogram's top edge."""
    return float(edges[-1])


def percentile_amax(hist: np.ndarray, edges: np.ndarray, percentile: float = 99.99) -> float:
    """The upper edge of the bin where the cumulative ``|x|`` mass first reaches ``percentile`` %."""
    if not 0 < percentile <= 100:
        raise ConfigError(f"percentile must be in (0, 100], got {percentile}")
    total = hist.sum()
    if total == 0:
        return 0.0
    index = int(np.searchsorted(np.cumsum(hist), percentile / 100 * total))
    return float(edges[min(index, len(hist) - 1) + 1])


def quantize_expand(bins: np.ndarray, levels: int) -> np.ndarray:
    """TensorRT's candidate ``Q``: merge the ``i`` bins into ``levels`` groups of ``i / levels``
    bins (bin ``j`` goes to group ``j * levels // i``), then spread each group's count evenly over
    its non-empty bins; empty bins stay empty. ``(i,) -> (i,)`` float64."""
    group = np.arange(len(bins)) * levels // len(bins)
    nonzero = bins != 0
    sums = np.bincount(group, weights=bins, minlength=levels)
    counts = np.bincount(group, weights=nonzero, minlength=levels)
    return np.where(nonzero, sums[group] / np.maximum(counts[group], 1), 0.0)


def entropy_divergences(hist: np.ndarray, levels: int = NUM_LEVELS) -> np.ndarray:
    """``KL(P || Q)`` of every candidate ``i = levels .. len(hist)`` (entry ``i - levels``).

    ``P`` is the first ``i`` bins with the outliers (bins ``i..``) added to bin ``i - 1``, ``Q`` is
    :func:`quantize_expand` of the first ``i`` bins; both normalised. ``inf`` where ``P`` has mass
    that ``Q`` lacks (an empty bin ``i - 1`` that took outliers).
    """
    hist = hist.astype(np.float64)
    tails = np.cumsum(hist[::-1])[::-1]  # tails[i] = sum(hist[i:])
    divergences = np.empty(len(hist) - levels + 1)
    for i in range(levels, len(hist) + 1):
        p = hist[:i].copy()
        p[-1] += tails[i] if i < len(hist) else 0.0
        divergences[i - levels] = _kl_divergence(p, quantize_expand(hist[:i], levels))
    return divergences


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """``KL(p || q)`` in nats of two unnormalised distributions."""
    support = p > 0
    if np.any(q[support] == 0):  # also when q is all zero
        return float("inf")
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p[support] * np.log(p[support] / q[support])))


def entropy_amax(hist: np.ndarray, edges: np.ndarray, levels: int = NUM_LEVELS) -> float:
    """TensorRT's entropy calibration: the candidate ``m`` of least ``KL(P || Q)``, and
    ``amax = (m + 0.5) * bin_width`` as the talk states (half a bin past the ``m`` bins kept)."""
    if len(hist) < levels:
        raise ConfigError(f"the entropy calibrator needs at least {levels} bins, got {len(hist)}")
    width = float(edges[1] - edges[0])
    if hist.sum() == 0 or width == 0:
        return 0.0
    m = levels + int(np.argmin(entropy_divergences(hist, levels)))
    return (m + 0.5) * width


def mse_amax(hist: np.ndarray, edges: np.ndarray, steps: int = INT8_STEPS) -> float:
    """The bin edge ``t`` minimising the expected squared error of quantising ``|x|`` to
    ``round(|x| / s) * s`` with ``s = t / steps``, clipped at ``t`` (a symmetric int8 quantiser
    for ``steps = 127``), taking ``|x|`` uniform within each bin: the rounding error of the bins below
    ``t`` is integrated exactly, a bin above costs the mean of ``(|x| - t)^2`` over it.

    In units of the bin width ``w``, with ``t = k w``: bin ``j < k`` costs
    ``(k / steps)^3 * (H(u_{j+1}) - H(u_j))``, ``u`` being its edges in steps, and bin ``j >= k``
    costs ``d^2 + d + 1/3`` with ``d = j - k``.
    """
    if hist.sum() == 0 or edges[-1] == 0:
        return 0.0
    counts = hist.astype(np.float64)
    kept = np.arange(1, len(hist) + 1)[:, None]  # (C, 1) candidate thresholds t = kept * w
    index = np.arange(len(hist))[None, :]  # (1, B) bins
    in_steps = np.arange(len(hist) + 1)[None, :] * (steps / kept)  # (C, B + 1) bin edges in steps
    rounding = np.where(index < kept, np.diff(_squared_rounding_integral(in_steps), axis=1), 0.0) @ counts
    over = index - kept
    clipping = np.where(over >= 0, over * (over + 1.0) + 1 / 3, 0.0) @ counts
    errors = (kept[:, 0] / steps) ** 3 * rounding + clipping
    return float(edges[int(np.argmin(errors)) + 1])


def _squared_rounding_integral(u: np.ndarray) -> np.ndarray:
    """``∫_{-1/2}^{u} r(v)^2 dv`` with ``r(v) = v - round(v)`` (``u`` in quantisation steps): each
    whole period adds ``1 / 12``, the last partial one ``((f - 1/2)^3 + 1/8) / 3``."""
    shifted = u + 0.5
    periods = np.floor(shifted)
    f = shifted - periods - 0.5
    return periods / 12 + (f * f * f + 0.125) / 3


Calibrator = Callable[..., float]
CALIBRATORS: dict[str, Calibrator] = {
    "entropy": entropy_amax,
    "minmax": minmax_amax,
    "percentile": percentile_amax,
    "mse": mse_amax,
}


def calibrate(
    stats: Mapping[str, TensorStats], method: str = "entropy", *, skip_zeros: bool = False, **options: float
) -> dict[str, TensorRange]:
    """``amax`` of every tensor by calibrator ``method``; ``options`` go to it (e.g. ``percentile``).

    ``skip_zeros`` leaves exact zeros out of the histograms (pytorch-quantization's ``skip_zeros``).
    A ReLU output is about half exact zeros: a spike in bin 0 that costs about ``p0 * ln g`` of KL
    when a candidate's first level merges it with ``g - 1`` other bins. ``g`` steps up just past
    every multiple of 128 bins, so ``entropy`` stops at a multiple of 128, biased low (1/8 to 3/8 of
    ``max |x|`` on FaceBoxes' ReLUs). Zeros are exact under every threshold, so they can be left out.
    """
    if method not in CALIBRATORS:
        raise ConfigError(f"unknown calibration method {method!r}; methods: {', '.join(CALIBRATORS)}")
    calibrator = CALIBRATORS[method]
    return {
        name: TensorRange(float(calibrator(s.histogram(skip_zeros), s.edges, **options)), s.min, s.max)
        for name, s in stats.items()
    }


# --- Cache ------------------------------------------------------------------------------------


def model_digest(model: onnx.ModelProto | str | Path) -> str:
    """sha256 of the model's graph without its inferred ``value_info``, so a shape-inferred copy of a
    model has the digest of the model."""
    graph = onnx.GraphProto()
    graph.CopyFrom(load_model(model).graph)
    del graph.value_info[:]
    return hashlib.sha256(graph.SerializeToString(deterministic=True)).hexdigest()


def calibration_cache_bytes(
    ranges: Mapping[str, TensorRange], method: str, model: onnx.ModelProto | str | Path
) -> bytes:
    """The calibration cache: ``ranges`` as JSON with ``method`` and the :func:`model_digest` of
    ``model`` (what :func:`save_calibration_cache` writes and a plan stores)."""
    payload = {
        "format": CACHE_FORMAT,
        "method": method,
        "model_sha256": model_digest(model),
        "tensors": {name: asdict(value) for name, value in ranges.items()},
    }
    return json.dumps(payload, indent=1).encode()


def save_calibration_cache(
    path: str | Path, ranges: Mapping[str, TensorRange], method: str, model: onnx.ModelProto | str | Path
) -> Path:
    """Write the :func:`calibration_cache_bytes` of ``ranges`` to ``path`` (atomically)."""
    with atomic_write(path) as handle:
        handle.write(calibration_cache_bytes(ranges, method, model))
    return Path(path)


def load_calibration_cache(
    path: str | Path, model: onnx.ModelProto | str | Path
) -> tuple[str, dict[str, TensorRange]]:
    """``(method, ranges)`` from a cache written by :func:`save_calibration_cache` for ``model``.

    Raises:
        InputFileError: the file is missing, not a calibration cache, or made for another model.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"no such calibration cache: {path}")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if payload["format"] != CACHE_FORMAT:
            raise ValueError(payload["format"])
        method, digest = str(payload["method"]), str(payload["model_sha256"])
        ranges = {str(name): TensorRange(**value) for name, value in payload["tensors"].items()}
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise InputFileError(
            f"not an edgevision calibration cache: {path} ({type(error).__name__})"
        ) from None
    expected = model_digest(model)
    if digest != expected:
        raise InputFileError(
            f"calibration cache {path} was made for another model (sha256 {digest[:12]}, this model "
            f"{expected[:12]}); recalibrate"
        )
    return method, ranges


# --- Data -------------------------------------------------------------------------------------


def image_paths(folder: str | Path, limit: int | None = None) -> list[Path]:
    """The images in ``folder`` (searched recursively, sorted; videos and other files ignored), at
    most ``limit`` of them spread evenly over the list so that every sub-folder contributes.

    Raises:
        InputFileError: ``folder`` is missing, not a folder, or holds no images.
        ConfigError: ``limit`` is not positive.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"not a folder of calibration images: {folder}")
    if limit is not None and limit < 1:
        raise ConfigError(f"need limit >= 1, got {limit}")
    images = sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    )
    if not images:
        raise InputFileError(f"no images in folder: {folder}")
    return spread(images, limit)


def spread(paths: Sequence[Path], limit: int | None) -> list[Path]:
    """At most ``limit`` of ``paths``, evenly spaced from the first to the last."""
    if limit is None or limit >= len(paths):
        return list(paths)
    return [paths[int(k)] for k in np.linspace(0, len(paths) - 1, limit).round()]


def readable_image_paths(folder: str | Path, limit: int | None = None) -> list[Path]:
    """:func:`image_paths`, each of which is read: a calibration set that fails on its tenth image
    fails before any work instead.

    A file that does not decode is refused, not skipped: the calibration images decide the
    plan's ranges, and a set that silently lost some would give another plan.

    Raises:
        InputFileError, ConfigError: as :func:`image_paths`; ``ImageDecodeError`` (an
            ``InputFileError``) naming the first image that cannot be read and how many cannot.
    """
    paths = image_paths(folder, limit)
    failures = []
    for path in paths:
        try:
            read_image(path)
        except InputFileError as error:
            failures.append(error)
    if failures:
        raise ImageDecodeError(
            f"{len(failures)} of {len(paths)} calibration images cannot be read, e.g. {failures[0]}"
        )
    return paths


class ImageBatches:
    """Calibration batches of a list of images, re-iterable.

    Each image is resized to ``size`` with ``cv2.INTER_LINEAR`` (aspect ratio not kept, as the
    network sees a fixed input) and turned into the ``(C, H, W)`` float32 input: by
    ``preprocessing`` for 3 channels, as grey levels 0-255 for 1 (what a model that declares no
    preprocessing, an ONNX file, is taken to read). Batches are ``{input_name: (B, C, H, W)}`` with
    ``B = batch_size`` (the last may be smaller, unless ``drop_last``).

    Args:
        paths: the image files.
        input_name: the model's input name.
        size: ``(H, W)`` of the model input.
        preprocessing: channel order, mean and std of the model's input.
        batch_size: images per batch.
        channels: the model input's channels, 3 or 1.
        drop_last: leave out a last batch of fewer than ``batch_size`` images (a model whose batch
            is fixed takes no other).

    Raises:
        ConfigError: ``size`` or ``batch_size`` is not positive, ``channels`` is not 3 or 1 (1 only
            without preprocessing), or ``drop_last`` leaves no batch.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        input_name: str,
        size: tuple[int, int],
        preprocessing: Preprocessing,
        batch_size: int = 1,
        channels: int = 3,
        drop_last: bool = False,
    ) -> None:
        if len(size) != 2 or min(size) < 1 or batch_size < 1:
            raise ConfigError(f"need size (H, W) >= 1 and batch_size >= 1; got {size}, {batch_size}")
        if channels not in (1, 3) or (channels == 1 and preprocessing != Preprocessing()):
            raise ConfigError(
                f"images make 3-channel inputs, or 1-channel grey ones without preprocessing; the "
                f"model takes {channels} channels{' with preprocessing' if channels == 1 else ''}"
            )
        if drop_last:
            if len(paths) < batch_size:
                raise ConfigError(
                    f"the model takes batches of {batch_size} images; {len(paths)} calibration images"
                )
            paths = paths[: len(paths) - len(paths) % batch_size]
        self.paths = list(paths)
        self.input_name = input_name
        self.size = (int(size[0]), int(size[1]))
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.channels = channels

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self.paths), self.batch_size):
            chunk = self.paths[start : start + self.batch_size]
            yield {self.input_name: np.stack([self.load(path) for path in chunk])}

    def load(self, path: Path) -> np.ndarray:
        """The network input of one image: ``(C, H, W)`` float32, or ``(H, W, 3)`` uint8 pixels."""
        image = read_image(path)
        if self.channels == 1:
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            resized = cv2.resize(grey, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
            return resized.astype(np.float32)[None]
        return self.preprocessing.apply(image, self.size)


class ImageFolderBatches(ImageBatches):
    """:class:`ImageBatches` of the :func:`image_paths` of ``folder`` (at most ``limit``); the
    other arguments are :class:`ImageBatches`'.

    Raises:
        InputFileError: ``folder`` is missing, not a folder, or holds no images.
        ConfigError: as :class:`ImageBatches`, or ``limit`` is not positive.
    """

    def __init__(
        self,
        folder: str | Path,
        input_name: str,
        size: tuple[int, int],
        preprocessing: Preprocessing,
        batch_size: int = 1,
        limit: int | None = None,
        channels: int = 3,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            image_paths(folder, limit), input_name, size, preprocessing, batch_size, channels, drop_last
        )

"""The builder's stages, in order: import -> optimise -> calibrate -> Q/DQ policy -> select -> finalise.

Each stage is a function of what the earlier ones made; it returns a frozen value that carries its
own log lines (``log``), which the build result keeps per stage. What a backend needs of the model
(symmetric int8, float biases, no pixel input, no plugins) comes from its capabilities
(:data:`edgevision.deploy.backends.capabilities.BACKENDS`), not from its name.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from edgevision.data.preprocessing import Preprocessing
from edgevision.deploy.backends import check_plugins
from edgevision.deploy.backends.capabilities import BACKENDS
from edgevision.deploy.bias_correction import conv_input_means, correct_biases
from edgevision.deploy.builder.options import BuildOptions
from edgevision.deploy.calibration import (
    ImageBatches,
    TensorRange,
    calibrate,
    calibration_cache_bytes,
    collect_activation_histograms,
    load_calibration_cache,
    save_calibration_cache,
    spread,
)
from edgevision.deploy.graph import with_input_shapes
from edgevision.deploy.half import to_float16
from edgevision.deploy.importer import ImportedModel, import_model
from edgevision.deploy.layer_gate import keep_failing_layers_in_fp32
from edgevision.deploy.memory import MemoryReport, plan_memory
from edgevision.deploy.passes import DEFAULT_PASSES, INT8_PASSES, PassReport, format_reports, run_passes
from edgevision.deploy.passes.dead_layers import eliminate_dead_layers
from edgevision.deploy.passes.fold_constants import fold_constants
from edgevision.deploy.passes.pixel_input import PIXELS, PixelInput, read_pixels_quantized, take_pixels
from edgevision.deploy.plan import Binding, Plan, Plugin
from edgevision.deploy.plugins import make_session, plugins_used
from edgevision.deploy.quantize import quantize_qdq
from edgevision.deploy.tuning import (
    Tactic,
    TimingCache,
    TuningResult,
    candidate_tactics,
    max_relative_error_gate,
    tune,
)
from edgevision.errors import ConfigError

GATE_IMAGES = 8  # images the per-layer accuracy gate measures on
BIAS_CORRECTION_BATCH = 8  # images a batch when measuring conv input means (any-batch models)

Log = tuple[str, ...]


# --- import ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationSet:
    """The checked calibration images and how the model takes them: resized to ``size``, with
    ``channels`` channels, in batches of exactly ``batch`` when the model fixes its batch."""

    paths: tuple[Path, ...]
    size: tuple[int, int]
    channels: int
    batch: int | None

    def batches(
        self, input_name: str, preprocessing: Preprocessing, *, limit: int | None = None, batch_size: int = 1
    ) -> ImageBatches:
        """At most ``limit`` of the images (spread over the set) as batches of ``batch_size``, or of
        the model's fixed batch.

        Raises:
            ConfigError: the model cannot take these images (channels, too few for its batch).
        """
        return ImageBatches(
            spread(self.paths, limit),
            input_name,
            self.size,
            preprocessing,
            batch_size=self.batch or batch_size,
            channels=self.channels,
            drop_last=self.batch is not None,
        )


@dataclass(frozen=True)
class Imported:
    """The import stage: the raw model and the calibration images it takes (None without any)."""

    model: ImportedModel
    images: CalibrationSet | None
    log: Log


def import_stage(
    source: str | Path,
    options: BuildOptions,
    image_paths: Sequence[Path] | None,
    *,
    weights: str | Path | None = None,
    arch: str | None = None,
) -> Imported:
    """Import ``source`` and refuse, before any pass, what the build cannot do with it.

    Raises:
        ConfigError: pixel input of an ONNX file, or calibration images the model cannot take (its
            channels, or fewer images than its fixed batch); and what :func:`import_model` raises.
    """
    model = import_model(source, weights=weights, arch=arch, input_size=options.input_size)
    if options.pixel_input and "onnx" in model.source:
        raise ConfigError(
            "pixel input needs a registry model or checkpoint: an ONNX file has no preprocessing"
        )
    images = None
    if image_paths is not None:
        images = CalibrationSet(tuple(image_paths), model.input_size, model.channels, model.batch)
        images.batches("image", model.preprocessing)  # refuses what the model cannot take
    batch = "N" if model.batch is None else model.batch
    log = [
        f"{model.source.get('model') or model.source.get('onnx')}: input ({batch}, {model.channels}, "
        f"{model.input_size[0]}, {model.input_size[1]})"
    ]
    if images is not None:
        log.append(f"{len(images.paths)} calibration images, each read")
    return Imported(model, images, tuple(log))


# --- optimise ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Graphs:
    """The optimise stage: the graphs the tactics are built from.

    Attributes:
        float_graph: what fp32 and fp16 tactics serve (the fp32 passes).
        int8_graph: what int8 tactics quantise (the int8 passes); None for a float build.
        input_name: the graphs' input.
        preprocessing: how an image becomes that input (pixels: the graph does it).
        pixels: the pixel-input pass's record, when the plan takes pixels.
        passes: the reports of the passes run on the graph the plan is made from.
    """

    float_graph: onnx.ModelProto
    int8_graph: onnx.ModelProto | None
    input_name: str
    preprocessing: Preprocessing
    pixels: PixelInput | None
    passes: tuple[PassReport, ...]

    @property
    def log(self) -> Log:
        return tuple(format_reports(self.passes).splitlines())


def optimise(imported: ImportedModel, options: BuildOptions) -> Graphs:
    """Run the graph passes: the fp32 list, and for int8 the int8 list too; then pixel input."""
    float_graph, reports = run_passes(imported.model, DEFAULT_PASSES)
    int8_graph = None
    if options.precision == "int8":
        int8_graph, reports = run_passes(imported.model, INT8_PASSES)
    preprocessing, pixels = imported.preprocessing, None
    if options.pixel_input:  # before calibration: the ranges are those of the graph quantised
        if int8_graph is not None:
            pixels = take_pixels(int8_graph, preprocessing)
            int8_graph = pixels.model
        float_pixels = take_pixels(float_graph, preprocessing)
        float_graph, pixels = float_pixels.model, pixels or float_pixels
        preprocessing = replace(preprocessing, pixels=True)
        reports.append(pixels.report)
    input_name = PIXELS if pixels is not None else _input_name(float_graph)
    return Graphs(float_graph, int8_graph, input_name, preprocessing, pixels, tuple(reports))


# --- calibrate ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """The calibrate stage: every activation's range, and the record a plan (and cache) keeps."""

    method: str
    ranges: Mapping[str, TensorRange]
    record: bytes
    log: Log


def calibrate_stage(graphs: Graphs, images: CalibrationSet | None, options: BuildOptions) -> Calibration:
    """The int8 graph's ranges: read from the calibration cache when it exists, else calibrated on
    the images (and written to the cache when one is named); a pixel plan's float copies of the
    pixels get their exact ranges.

    Raises:
        ConfigError: the cache was made by another calibrator.
        InputFileError: the cache is not one, or is for another model.
    """
    graph = graphs.int8_graph
    cache = Path(options.calibration_cache) if options.calibration_cache is not None else None
    if cache is not None and cache.is_file():
        method, ranges = load_calibration_cache(cache, graph)
        if method != options.calibrator:
            raise ConfigError(f"calibration cache {cache} was made by {method}, not {options.calibrator}")
        log = f"{method} ranges of {len(ranges)} activations read from {cache}"
    else:
        batches = images.batches(graphs.input_name, graphs.preprocessing)
        stats = collect_activation_histograms(graph, list(batches))
        ranges = calibrate(stats, options.calibrator, skip_zeros=True)
        if graphs.pixels is not None:
            exact = graphs.pixels.ranges().items()
            ranges.update({name: TensorRange(max(-low, high), low, high) for name, (low, high) in exact})
        log = f"{options.calibrator} over {len(batches.paths)} images: {len(ranges)} activation ranges"
        if cache is not None:
            save_calibration_cache(cache, ranges, options.calibrator, graph)
            log += f", written to {cache}"
    record = calibration_cache_bytes(ranges, options.calibrator, graph)
    return Calibration(options.calibrator, ranges, record, (log,))


# --- Q/DQ policy -------------------------------------------------------------------------------


@dataclass(frozen=True)
class QdqPolicy:
    """The Q/DQ policy stage: how the int8 graph is quantised.

    Attributes:
        graph: the int8 graph.
        ranges: the calibrated ranges.
        exclude: nodes kept in fp32 (by hand, then by the layer gate).
        symmetric: int8 activations with zero point 0 (the target backend's need).
        quantize_bias: biases as int32 Q/DQ (else float, as TensorRT needs).
        pixels: the pixel-input record, whose quantised read replaces the float one.
        input_means: every conv input's channel means, when biases are corrected.
    """

    graph: onnx.ModelProto
    ranges: Mapping[str, TensorRange]
    exclude: tuple[str, ...]
    symmetric: bool
    quantize_bias: bool
    pixels: PixelInput | None = None
    input_means: Mapping[str, np.ndarray] | None = None
    log: Log = ()

    def quantize(self, per_channel: bool, also_exclude: Sequence[str] = ()) -> onnx.ModelProto:
        """The Q/DQ model with int8 weight scales per output channel (else per tensor), the
        :attr:`exclude` nodes and ``also_exclude`` kept in fp32."""
        excluded = [*self.exclude, *also_exclude]
        source = self.graph
        if self.input_means is not None:  # only the convs that are quantised have an error to correct
            source = correct_biases(self.graph, self.input_means, per_channel, excluded)[0]
        with tempfile.TemporaryDirectory() as folder:
            path = quantize_qdq(
                source,
                self.ranges,
                Path(folder) / "int8.onnx",
                per_channel=per_channel,
                exclude=excluded,
                symmetric=self.symmetric,
                quantize_bias=self.quantize_bias,
            )
            model = onnx.load(path)
        return model if self.pixels is None else read_pixels_quantized(model, self.pixels)


def qdq_policy(
    graphs: Graphs, calibration: Calibration, images: CalibrationSet | None, options: BuildOptions
) -> QdqPolicy:
    """The Q/DQ format the target backends need (:attr:`BuildOptions.targets`), the conv input
    means for bias correction, and the layers the per-layer gate keeps in fp32."""
    symmetric, quantize_bias = BACKENDS[options.targets[0]].int8_format  # one for all: BuildOptions
    policy = QdqPolicy(
        graphs.int8_graph, calibration.ranges, options.exclude, symmetric, quantize_bias, graphs.pixels
    )
    log = [
        f"{', '.join(options.targets)}: activations {'int8, zero point 0' if symmetric else 'uint8'}, "
        f"weights int8, biases {'int32' if quantize_bias else 'float'}"
    ]
    if options.bias_correction:
        means = images.batches(graphs.input_name, graphs.preprocessing, batch_size=BIAS_CORRECTION_BATCH)
        policy = replace(policy, input_means=conv_input_means(policy.graph, means))
    if options.fp32_fallback is not None:
        batches = list(images.batches(graphs.input_name, graphs.preprocessing, limit=GATE_IMAGES))
        ungated = policy
        _, kept = keep_failing_layers_in_fp32(
            ungated.graph,
            lambda extra: ungated.quantize(options.per_channel, extra),
            batches,
            options.fp32_fallback,
        )
        policy = replace(policy, exclude=(*policy.exclude, *kept))
        log.append(f"layer gate: tolerance {options.fp32_fallback}, kept in fp32 {kept or 'none'}")
    if policy.input_means is not None:
        corrected = correct_biases(policy.graph, policy.input_means, options.per_channel, policy.exclude)[1]
        log.append(f"bias correction: {len(corrected.details)} convs over {len(means.paths)} images")
    return replace(policy, log=tuple(log))


# --- select ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """The select stage: the plan's tactic (the requested one, or the tuner's choice) and its
    serialized model."""

    tactic: Tactic
    model: bytes
    tuning: TuningResult | None
    log: Log


def select(
    imported: Imported,
    graphs: Graphs,
    policy: QdqPolicy | None,
    options: BuildOptions,
    timing_cache: TimingCache | None = None,
) -> Selection:
    """Build the requested tactic's model; or, with ``options.tune``, time every candidate the
    options allow (reading and updating ``timing_cache``) and keep the fastest accurate one."""

    def build(tactic: Tactic) -> bytes:
        if tactic.precision == "fp32":
            return graphs.float_graph.SerializeToString()
        if tactic.precision == "fp16":
            return to_float16(graphs.float_graph).SerializeToString()
        return policy.quantize(tactic.per_channel).SerializeToString()

    if not options.tune:
        tactic = Tactic(
            backend=options.backend,
            precision=options.precision,
            per_channel=options.per_channel,
            threads=0,
            graph_optimization_level="all",
        )
        return Selection(tactic, build(tactic), None, (f"{tactic} (untuned)",))
    feeds = {graphs.input_name: _example_input(imported, graphs)}
    reference = make_session(graphs.float_graph).run(None, feeds)
    allowed = (options.precision, "fp32") if options.precision != "fp32" else ("fp32",)
    candidates = candidate_tactics(
        allowed,
        threads=options.threads,
        per_channel=(True, False) if options.precision == "int8" else (True,),
        backends=options.tuned_backends,
    )
    tuning = tune(
        candidates,
        build,
        feeds,
        reference_outputs=reference,
        gate=max_relative_error_gate(options.tolerance),
        cache=timing_cache,
    )
    log = str(tuning).splitlines()
    if timing_cache is not None:
        log.append(_save_timing_cache(timing_cache))
    return Selection(tuning.tactic, tuning.model, tuning, tuple(log))


def _example_input(imported: Imported, graphs: Graphs) -> np.ndarray:
    """One input batch to time and gate tactics on: calibration images when there are some."""
    model, batch = imported.model, imported.model.batch or 1
    if imported.images is not None:
        return next(iter(imported.images.batches("x", graphs.preprocessing, limit=batch)))["x"]
    random = np.random.default_rng(0)
    if graphs.preprocessing.pixels:
        return random.integers(0, 256, (batch, *model.input_size, 3), dtype=np.uint8)
    return random.standard_normal((batch, model.channels, *model.input_size)).astype(np.float32)


def _save_timing_cache(cache: TimingCache) -> str:
    """Save ``cache``; the log line says where, or why not (a plan is not refused for its cache)."""
    try:
        return f"timing cache: {len(cache)} timings in {cache.save()}"
    except OSError as error:
        return f"timing cache: not saved to {cache.path}: {error.strerror or error}"


# --- finalise ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finalised:
    """The finalise stage: the plan (not yet written) and its activation memory plan."""

    plan: Plan
    memory: MemoryReport
    log: Log


def finalise(
    imported: Imported,
    graphs: Graphs,
    calibration: Calibration | None,
    policy: QdqPolicy | None,
    selection: Selection,
    backend_version: str,
) -> Finalised:
    """The plan of the selected model: memory planned for the built shape, plugins checked against
    the backend, the calibration record and the tactics (passes, fp32 layers, the tuned session).

    Raises:
        ConfigError: the backend runs no plugins and the model needs some.
    """
    model, tactic = onnx.ModelProto.FromString(selection.model), selection.tactic
    size, batch = imported.model.input_size, imported.model.batch or 1
    shape = (batch, *size, 3) if graphs.pixels is not None else (batch, imported.model.channels, *size)
    memory = _memory_report(model, {graphs.input_name: shape})
    plugins = tuple(Plugin(spec.domain, spec.op_type, spec.version) for spec in plugins_used(model))
    check_plugins(tactic.backend, plugins)
    int8 = tactic.precision == "int8"
    tactics = {"passes": [report.name for report in graphs.passes]}
    if int8:
        tactics["fp32_layers"] = list(policy.exclude)
    if selection.tuning is not None:
        tactics["session"] = tactic.as_dict()
    plan = Plan(
        model=selection.model,
        precision=tactic.precision,
        inputs=(_binding(model.graph.input[0], graphs.preprocessing.as_dict()),),
        outputs=tuple(_binding(value) for value in model.graph.output),
        calibration_method=calibration.method if int8 else None,
        calibration=calibration.record if int8 else None,
        tactics=tactics,
        plugins=plugins,
        source={**imported.model.source, "input_size": list(size)},
        backend=BACKENDS[tactic.backend].runtime,
        backend_version=backend_version,
    )
    return Finalised(plan, memory, tuple(str(memory).splitlines()))


def _memory_report(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> MemoryReport:
    """The activation memory plan of ``model`` specialised to ``input_shapes``: its shape
    arithmetic folded, so every tensor size is known (as TensorRT plans per optimisation profile)."""
    specialised, _ = run_passes(
        with_input_shapes(model, input_shapes), (fold_constants, eliminate_dead_layers)
    )
    return plan_memory(specialised).report()


def _input_name(model: onnx.ModelProto) -> str:
    initializers = {init.name for init in model.graph.initializer}
    return next(value.name for value in model.graph.input if value.name not in initializers)


def _binding(value: onnx.ValueInfoProto, preprocessing: dict | None = None) -> Binding:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
    return Binding(value.name, dtype, shape, preprocessing or {})

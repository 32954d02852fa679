"""The engine builder: a trained model in, a plan file out (TensorRT's builder workflow).

``build_engine`` imports the model as a raw fp32 ONNX graph (:mod:`.importer`), runs the graph
passes (:mod:`.passes`), calibrates and inserts Q/DQ for INT8 (:mod:`.calibration`,
:mod:`.quantize`), optionally times candidate session tactics behind an accuracy gate
(:mod:`.tuning`), plans activation memory (:mod:`.memory`) and writes the plan (:mod:`.plan`).
Each step adds to the build log that ``edgevision build --report`` prints.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx

from edgevision.data.preprocessing import Preprocessing
from edgevision.deploy.backends import backend_version, check_plugins
from edgevision.deploy.backends.capabilities import BACKENDS, CPU_BACKENDS
from edgevision.deploy.bias_correction import conv_input_means, correct_biases
from edgevision.deploy.calibration import (
    CALIBRATORS,
    ImageBatches,
    TensorRange,
    calibrate,
    calibration_cache_bytes,
    collect_activation_histograms,
    load_calibration_cache,
    readable_image_paths,
    save_calibration_cache,
    spread,
)
from edgevision.deploy.graph import with_input_shapes
from edgevision.deploy.half import to_float16
from edgevision.deploy.importer import ImportedModel, check_input_size, import_model
from edgevision.deploy.layer_gate import keep_failing_layers_in_fp32
from edgevision.deploy.memory import MemoryReport, plan_memory
from edgevision.deploy.passes import DEFAULT_PASSES, INT8_PASSES, PassReport, format_reports, run_passes
from edgevision.deploy.passes.dead_layers import eliminate_dead_layers
from edgevision.deploy.passes.fold_constants import fold_constants
from edgevision.deploy.passes.pixel_input import PIXELS, PixelInput, read_pixels_quantized, take_pixels
from edgevision.deploy.plan import PRECISIONS, Binding, Plan, Plugin, write_plan
from edgevision.deploy.plugins import make_session, plugins_used
from edgevision.deploy.quantize import quantize_qdq
from edgevision.deploy.tuning import (
    Tactic,
    TimingCache,
    TuningResult,
    candidate_tactics,
    default_timing_cache,
    max_relative_error_gate,
    tune,
)
from edgevision.errors import ConfigError


@dataclass(frozen=True)
class BuildOptions:
    """How to build.

    Attributes:
        precision: ``"fp32"``, ``"fp16"`` (:mod:`.half`: float16 weights and activations, for
            TensorRT's strongly typed builds; the CPU backends compute it in float32) or ``"int8"``.
        calibration_dir: folder of representative images, required for int8 unless
            ``calibration_cache`` already exists. Its images (up to ``calibration_images``) are
            all read before any work, and one that does not decode fails the build: the images
            decide the plan, so none is skipped silently. Files that are not images are ignored.
        calibration_cache: a calibration cache file (tensor -> range, as TensorRT's): read when it
            exists (it must be for this model and ``calibrator``), else written after calibrating.
        calibrator: ``entropy``, ``minmax``, ``percentile`` or ``mse``.
        calibration_images: at most this many images are used (spread over the folder).
        per_channel: int8 weight scales per output channel (else per tensor), when not tuned.
        exclude: node names kept in fp32 (by hand).
        fp32_fallback: the per-layer accuracy gate (:mod:`.layer_gate`): layers whose
            quantisation adds more relative error than this on the calibration images are kept
            in fp32 (worst first, at most 8); None skips the gate.
        backend: ``"ort"`` (ONNX Runtime, CPU), ``"openvino"`` (OpenVINO's CPU plugin) or
            ``"tensorrt"`` (a TensorRT engine on a CUDA GPU, built when the plan is loaded); the
            last two are optional extras, untuned.
        bias_correction: fold each int8 conv's mean weight-quantisation error into its bias
            (:mod:`.bias_correction`, measured on the calibration images).
        tune: time candidate tactics and keep the fastest that passes the gate; the precisions
            tried are those ``precision`` allows, as TensorRT's builder flags do (int8: int8 and
            fp32; fp16: fp16 and fp32), and the plan records the chosen one.
        tolerance: the tuner's accuracy gate, max relative output error against fp32.
        timing_cache: the tuner's timing cache (:class:`.tuning.TimingCache`), read before tuning
            and updated after it, so a tactic timed once on this machine for this model is not
            timed again (as TensorRT's timing cache); None tunes without one. Default:
            :func:`.tuning.default_timing_cache`.
        threads: thread counts the tuner tries.
        tune_backends: the CPU backends the tuner tries (default: ``backend``); the plan is for the
            chosen one.
        input_size: ``(H, W)`` to build for; None is the model's default. At most
            :data:`.importer.MAX_INPUT_SIDE` a side and :data:`.importer.MAX_INPUT_PIXELS` in all.
        pixel_input: the plan takes ``(N, H, W, 3)`` uint8 pixels in the model's channel order and
            does the preprocessing in its graph (:mod:`.passes.pixel_input`); registry models and
            checkpoints only (an ONNX file does not say its preprocessing).
    """

    precision: str = "fp32"
    calibration_dir: Path | None = None
    calibration_cache: Path | None = None
    calibrator: str = "entropy"
    calibration_images: int = 64
    per_channel: bool = True
    exclude: tuple[str, ...] = ()
    fp32_fallback: float | None = None
    backend: str = "ort"
    tune: bool = False
    tolerance: float = 0.1
    timing_cache: Path | None = field(default_factory=default_timing_cache)
    threads: tuple[int, ...] = (1, 2)
    tune_backends: tuple[str, ...] = ()
    input_size: tuple[int, int] | None = None
    pixel_input: bool = False
    bias_correction: bool = False

    @property
    def tuned_backends(self) -> tuple[str, ...]:
        return self.tune_backends or (self.backend,)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(
                f"backend {self.backend!r} is not available here; backends: {', '.join(BACKENDS)}"
            )
        if self.input_size is not None:
            check_input_size(self.input_size, "--input-size")
        if self.tune_backends and not self.tune:
            raise ConfigError("--tune-backend chooses what --tune tries; add --tune")
        if self.pixel_input and self.backend == "tensorrt":
            raise ConfigError(
                "TensorRT takes no uint8 pixel input (its int8 is symmetric, zero point 0): "
                "build tensorrt plans without --pixel-input"
            )
        if self.tune and set(self.tuned_backends) - set(CPU_BACKENDS):
            raise ConfigError(
                f"tuning times CPU sessions ({', '.join(CPU_BACKENDS)}); TensorRT times its own "
                "kernels when it builds: build for tensorrt without --tune"
            )
        cached = self.calibration_cache is not None and Path(self.calibration_cache).is_file()
        if (
            self.precision == "int8"
            and self.calibration_dir is None
            and (not cached or self.fp32_fallback is not None or self.bias_correction)
        ):
            raise ConfigError("an int8 build needs a folder of calibration images (--calib DIR)")
        if self.calibrator not in CALIBRATORS:
            raise ConfigError(
                f"unknown calibrator {self.calibrator!r}; calibrators: {', '.join(CALIBRATORS)}"
            )
        if self.calibration_cache is not None and Path(self.calibration_cache).is_dir():
            raise ConfigError(f"--calib-cache must be a file, {self.calibration_cache} is a folder")
        if self.fp32_fallback is not None and not self.fp32_fallback >= 0:  # also refuses NaN
            raise ConfigError(f"--fp32-fallback must be a tolerance >= 0, got {self.fp32_fallback}")


@dataclass(frozen=True)
class BuildResult:
    """What the build wrote and its log."""

    path: Path
    plan: Plan
    passes: list[PassReport]
    memory: MemoryReport
    tuning: TuningResult | None = None
    notes: list[str] = field(default_factory=list)

    def log(self) -> str:
        """The builder log: passes, calibration, tactics, memory."""
        parts = [format_reports(self.passes), *self.notes]
        if self.tuning is not None:
            parts.append(str(self.tuning))
        parts.append(str(self.memory))
        return "\n".join(parts)


def build_engine(
    source: str | Path,
    output: str | Path,
    options: BuildOptions | None = None,
    *,
    weights: str | Path | None = None,
    arch: str | None = None,
    progress: Callable[[str], None] | None = None,
    key: bytes | None = None,
) -> BuildResult:
    """Build ``source`` (a registry name, checkpoint or ONNX file) into the plan file ``output``,
    signed with ``key`` if given (:mod:`edgevision.deploy.plan_signing`).

    Raises:
        EdgeVisionError subclasses with one-line messages: an unknown model, missing weights or
        calibration images, a bad option.
    """
    options = options or BuildOptions()
    # A missing optional backend fails before any work.
    versions = {b: backend_version(b) for b in {options.backend, *options.tuned_backends}}
    # So does a timing cache that is not one.
    timing_cache = TimingCache.load(options.timing_cache) if options.tune and options.timing_cache else None
    # And calibration images that are missing or do not decode.
    image_set = (
        None
        if options.calibration_dir is None
        else readable_image_paths(options.calibration_dir, options.calibration_images)
    )
    say = progress or (lambda _message: None)
    say("importing")
    imported = import_model(source, weights=weights, arch=arch, input_size=options.input_size)
    if options.pixel_input and "onnx" in imported.source:
        raise ConfigError(
            "pixel input needs a registry model or checkpoint: an ONNX file has no preprocessing"
        )
    batch = imported.batch or 1  # what a model of any batch is built, tuned and planned for
    if image_set is not None:  # refuse images the model cannot take, before the passes
        ImageBatches(
            image_set,
            "image",
            imported.input_size,
            imported.preprocessing,
            batch_size=batch,
            channels=imported.channels,
            drop_last=imported.batch is not None,
        )
    say("running graph passes")
    # fp32 (and fp16) plans run the fp32 pass list; int8 quantises the int8 list's graph (`fp32`).
    float_graph, reports = run_passes(imported.model, DEFAULT_PASSES)
    fp32 = float_graph
    if options.precision == "int8":
        fp32, reports = run_passes(imported.model, INT8_PASSES)
    input_name = _input_name(fp32)
    preprocessing = imported.preprocessing
    pixels: PixelInput | None = None
    if options.pixel_input:  # before calibration: the ranges are those of the graph quantised
        pixels = take_pixels(fp32, preprocessing)
        float_graph = pixels.model if float_graph is fp32 else take_pixels(float_graph, preprocessing).model
        fp32, input_name, preprocessing = pixels.model, PIXELS, replace(preprocessing, pixels=True)
        reports.append(pixels.report)
    notes: list[str] = []
    calibration, ranges = None, None

    def calibration_images(
        name: str, prep: Preprocessing, limit: int | None = None, batch_size: int = 1
    ) -> ImageBatches:
        return ImageBatches(
            spread(image_set, limit),
            name,
            imported.input_size,
            prep,
            batch_size=imported.batch or batch_size,  # a fixed batch takes no other
            channels=imported.channels,
            drop_last=imported.batch is not None,
        )

    if options.precision == "int8":
        cache = Path(options.calibration_cache) if options.calibration_cache is not None else None
        if cache is not None and cache.is_file():
            method, ranges = load_calibration_cache(cache, fp32)
            if method != options.calibrator:
                raise ConfigError(f"calibration cache {cache} was made by {method}, not {options.calibrator}")
            notes.append(f"[calibration] {method} ranges of {len(ranges)} activations read from {cache}")
        else:
            say("calibrating")
            batches = calibration_images(input_name, preprocessing)
            stats = collect_activation_histograms(fp32, list(batches))
            ranges = calibrate(stats, options.calibrator, skip_zeros=True)
            if pixels is not None:  # the pixels' float copies have exact ranges
                exact = pixels.ranges().items()
                ranges.update({name: TensorRange(max(-low, high), low, high) for name, (low, high) in exact})
            notes.append(
                f"[calibration] {options.calibrator} over {len(batches.paths)} images: "
                f"{len(ranges)} activation ranges"
            )
            if cache is not None:
                save_calibration_cache(cache, ranges, options.calibrator, fp32)
        calibration = calibration_cache_bytes(ranges, options.calibrator, fp32)
    exclude = list(options.exclude)
    means = None  # of every conv's input, for bias correction
    if options.precision == "int8" and options.bias_correction:
        say("measuring conv input means")
        images = calibration_images(input_name, preprocessing, batch_size=8)
        means = conv_input_means(fp32, images)

    # TensorRT's parser takes int8 Q/DQ with zero point 0 only, and no int32 (bias) DequantizeLinear
    symmetric = options.backend == "tensorrt"

    def quantize(per_channel: bool, excluded: Sequence[str]) -> onnx.ModelProto:
        # Only the convs that are quantised have a weight error to correct.
        source = fp32 if means is None else correct_biases(fp32, means, per_channel, excluded)[0]
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "int8.onnx"
            model = onnx.load(
                quantize_qdq(
                    source,
                    ranges,
                    path,
                    per_channel=per_channel,
                    exclude=excluded,
                    symmetric=symmetric,
                    quantize_bias=not symmetric,
                )
            )
        return model if pixels is None else read_pixels_quantized(model, pixels)

    if options.precision == "int8" and options.fp32_fallback is not None:
        say("gating layers")
        gate_batches = list(calibration_images(input_name, preprocessing, limit=8))
        _, kept = keep_failing_layers_in_fp32(
            fp32,
            lambda extra: quantize(options.per_channel, [*exclude, *extra]),
            gate_batches,
            options.fp32_fallback,
        )
        exclude += kept
        notes.append(f"[layer gate] tolerance {options.fp32_fallback}: kept in fp32 {kept or 'none'}")
    if means is not None:
        corrected = correct_biases(fp32, means, options.per_channel, exclude)[1]
        notes.append(f"[bias correction] {len(corrected.details)} convs over {len(images.paths)} images")

    def build(tactic: Tactic) -> bytes:
        if tactic.precision == "fp32":
            return float_graph.SerializeToString()
        if tactic.precision == "fp16":
            return to_float16(float_graph).SerializeToString()
        return quantize(tactic.per_channel, exclude).SerializeToString()

    tuning = None
    if options.tune:
        say("timing tactics")
        feeds = {input_name: _example_input(imported, options, preprocessing, calibration_images)}
        reference = make_session(float_graph).run(None, feeds)
        per_channel = (True, False) if options.precision == "int8" else (True,)
        allowed = (options.precision, "fp32") if options.precision != "fp32" else ("fp32",)
        candidates = candidate_tactics(
            allowed, threads=options.threads, per_channel=per_channel, backends=options.tuned_backends
        )
        tuning = tune(
            candidates,
            build,
            feeds,
            reference_outputs=reference,
            gate=max_relative_error_gate(options.tolerance),
            cache=timing_cache,
        )
        if timing_cache is not None:
            notes.append(_save_timing_cache(timing_cache))
        model_bytes, tactics = tuning.model, {"session": tuning.tactic.as_dict()}
        precision, backend = tuning.tactic.precision, tuning.tactic.backend
    else:
        model_bytes = build(
            Tactic(
                precision=options.precision,
                per_channel=options.per_channel,
                threads=0,
                graph_optimization_level="all",
            )
        )
        tactics, precision, backend = {}, options.precision, options.backend
    final = onnx.ModelProto.FromString(model_bytes)
    say("planning memory")
    shape = (
        (batch, *imported.input_size, 3)
        if pixels is not None
        else (batch, imported.channels, *imported.input_size)
    )
    memory = _memory_report(final, {input_name: shape})
    tactics["passes"] = [report.name for report in reports]
    if precision == "int8":
        tactics["fp32_layers"] = exclude
    plugins = tuple(Plugin(spec.domain, spec.op_type, spec.version) for spec in plugins_used(final))
    check_plugins(backend, plugins)
    plan = Plan(
        model=model_bytes,
        precision=precision,
        inputs=(_binding(final.graph.input[0], preprocessing.as_dict()),),
        outputs=tuple(_binding(value) for value in final.graph.output),
        calibration_method=options.calibrator if precision == "int8" else None,
        calibration=calibration if precision == "int8" else None,
        tactics=tactics,
        plugins=plugins,
        source={**imported.source, "input_size": list(imported.input_size)},
        backend=BACKENDS[backend].runtime,
        backend_version=versions[backend],
    )
    say("writing the plan")
    path = write_plan(output, plan, key=key)
    return BuildResult(path, plan, reports, memory, tuning, notes)


def _save_timing_cache(cache: TimingCache) -> str:
    """Save ``cache``; the log line says where, or why not (a plan is not refused for its cache)."""
    try:
        return f"[timing cache] {len(cache)} timings in {cache.save()}"
    except OSError as error:
        return f"[timing cache] not saved to {cache.path}: {error.strerror or error}"


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


def _example_input(
    imported: ImportedModel,
    options: BuildOptions,
    preprocessing: Preprocessing,
    images: Callable[..., ImageBatches],
) -> np.ndarray:
    """One input batch to time and gate tactics on: calibration images when there are some."""
    if options.calibration_dir is not None:
        return next(iter(images("x", preprocessing, limit=imported.batch or 1)))["x"]
    random = np.random.default_rng(0)
    batch = imported.batch or 1
    if preprocessing.pixels:
        return random.integers(0, 256, (batch, *imported.input_size, 3), dtype=np.uint8)
    return random.standard_normal((batch, imported.channels, *imported.input_size)).astype(np.float32)


def _binding(value: onnx.ValueInfoProto, preprocessing: dict | None = None) -> Binding:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim)
    return Binding(value.name, dtype, shape, preprocessing or {})

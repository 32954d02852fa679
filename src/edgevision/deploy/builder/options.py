"""How to build a plan: :class:`BuildOptions`, checked when made, before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgevision.deploy.backends.capabilities import BACKENDS, CPU_BACKENDS
from edgevision.deploy.calibration import CALIBRATORS
from edgevision.deploy.importer import check_input_size
from edgevision.deploy.plan import PRECISIONS
from edgevision.deploy.tuning import default_timing_cache
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
            last two are optional extras, untuned. What each needs of the plan (e.g. TensorRT's
            symmetric int8 with float biases) is in :data:`edgevision.deploy.backends.capabilities.BACKENDS`.
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

    @property
    def targets(self) -> tuple[str, ...]:
        """The backends the plan's model may be for: the tuned ones, else ``backend``."""
        return self.tuned_backends if self.tune else (self.backend,)

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
        targets = [BACKENDS[name] for name in self.targets]
        for backend in targets:
            if self.pixel_input and not backend.pixel_input:
                raise ConfigError(
                    f"the {backend.name} backend takes no uint8 pixel input (its int8 is symmetric, zero "
                    f"point 0): build {backend.name} plans without --pixel-input"
                )
            if self.tune and not backend.cpu:
                raise ConfigError(
                    f"tuning times CPU sessions ({', '.join(CPU_BACKENDS)}); {backend.name} times its "
                    f"own kernels when it builds: build for {backend.name} without --tune"
                )
        if len({backend.int8_format for backend in targets}) > 1:
            raise ConfigError(
                f"the backends {', '.join(self.targets)} need different int8 models; tune them apart"
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

"""The builder's first step: a trained model, from wherever it comes, as a raw fp32 ONNX graph.

Sources: a registered model name (with its bundled weights, or ``weights``), a training
checkpoint or state dict (``.pth``/``.pt``, with ``arch`` naming its architecture), or an ONNX
file. Registry models are exported without the exporter's optimiser, so the builder's passes
start from the graph as torch wrote it (as TensorRT starts from an unoptimised import).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

import onnx

from edgevision.data.preprocessing import Preprocessing, model_preprocessing
from edgevision.deploy.export import export_onnx
from edgevision.errors import ConfigError, InputFileError, ShapeError, UnknownModelError
from edgevision.models import create_model, list_models, model_info, weights_options

CHECKPOINT_SUFFIXES = (".pth", ".pt")
# The largest input a plan is built for. Every activation grows with H x W (a 20000 x 20000
# FaceBoxes build took 14.8 GB), so a typo in a size fails at once instead of filling the memory.
MAX_INPUT_SIDE = 8192  # pixels, H or W
MAX_INPUT_PIXELS = 4096 * 4096  # H x W


def check_input_size(size: Sequence[int], what: str) -> tuple[int, int]:
    """``size`` as ``(H, W)`` if both are whole numbers from 1 to :data:`MAX_INPUT_SIDE` and
    ``H x W`` is at most :data:`MAX_INPUT_PIXELS`; ``what`` names it in the error.

    Raises:
        ConfigError: otherwise.
    """
    if len(size) != 2 or not all(isinstance(side, Integral) and not isinstance(side, bool) for side in size):
        raise ConfigError(f"{what} must be two whole numbers (H, W), got {tuple(size)}")
    height, width = int(size[0]), int(size[1])
    if not (1 <= height <= MAX_INPUT_SIDE and 1 <= width <= MAX_INPUT_SIDE):
        raise ConfigError(f"{what} {height}x{width}: each side must be 1 to {MAX_INPUT_SIDE} pixels")
    if height * width > MAX_INPUT_PIXELS:
        raise ConfigError(
            f"{what} {height}x{width} is {height * width:,} pixels, more than the {MAX_INPUT_PIXELS:,} "
            "a plan is built for"
        )
    return height, width


@dataclass(frozen=True)
class ImportedModel:
    """A raw fp32 ONNX model and what the builder needs to know about it.

    Attributes:
        model: the graph, one float32 image input ``(N, C, H, W)`` (``C = 3`` and N dynamic for
            registry models, and H and W too for those that take any size).
        input_size: ``(H, W)`` the plan is built, calibrated, tuned and memory-planned for.
        preprocessing: how an image becomes the input.
        source: JSON values saying where the model came from (stored in the plan).
        channels: ``C``, the input's channels.
        batch: ``N`` when the model fixes it, else None (any batch).
    """

    model: onnx.ModelProto
    input_size: tuple[int, int]
    preprocessing: Preprocessing
    source: dict[str, Any] = field(default_factory=dict)
    channels: int = 3
    batch: int | None = None


def import_model(
    source: str | Path,
    *,
    weights: str | Path | None = None,
    arch: str | None = None,
    input_size: tuple[int, int] | None = None,
) -> ImportedModel:
    """Import ``source`` (see the module docstring).

    Raises:
        UnknownModelError: ``source`` is neither a file nor a registered model name.
        ConfigError: the model takes more than an image, or only another input size.
        WeightsError: the weights are missing or do not fit the architecture.
        InputFileError: an ONNX file does not load, or has not exactly one 4-D float input with a
            fixed channel count.
        ShapeError: an ONNX file with dynamic H/W and no ``input_size``.
    """
    path = Path(source)
    if path.suffix.lower() == ".onnx":
        return _import_onnx(path, input_size)
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        if not path.is_file():
            raise InputFileError(f"no such checkpoint: {path}")
        return _import_registered(arch or "faceboxes", path, input_size)
    if str(source) not in list_models():
        raise UnknownModelError(
            f"{source!r} is neither an ONNX file, a checkpoint, nor a registered model; "
            f"models: {', '.join(list_models())}"
        )
    return _import_registered(str(source), weights, input_size)


def _import_registered(
    name: str, weights: str | Path | None, input_size: tuple[int, int] | None
) -> ImportedModel:
    network = create_model(name)  # what the model takes is checked before any weights are read
    if hasattr(network, "example_inputs"):
        raise ConfigError(
            f"{name!r} takes more than an image (e.g. RoIs); the builder takes one-input models"
        )
    fixed = getattr(network, "fixed_input_size", None)
    if fixed is not None and input_size is not None and tuple(input_size) != tuple(fixed):
        raise ConfigError(
            f"{name!r} only takes {fixed[0]}x{fixed[1]} inputs, not {input_size[0]}x{input_size[1]}"
        )
    bundled = weights is None
    weights = model_info(name).weights_path if bundled else Path(weights)
    options = weights_options(name, weights)  # what the weights hold, e.g. a landmark head
    network = create_model(name, weights=weights)
    size = tuple(input_size or fixed or network.default_input_size)
    with tempfile.TemporaryDirectory() as folder, _quiet_exporter():
        exported = export_onnx(
            network,
            Path(folder) / f"{name}.onnx",
            input_size=size,
            dynamic=fixed is None,
            optimize=False,
            dynamic_batch=True,
        )
        model = onnx.load(exported)
    source = {
        "model": name,
        "weights": weights.name if bundled else str(weights),
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
    }
    if options:
        source["options"] = options
    return ImportedModel(model, (int(size[0]), int(size[1])), model_preprocessing(network), source)


def _import_onnx(path: Path, input_size: tuple[int, int] | None) -> ImportedModel:
    if not path.is_file():
        raise InputFileError(f"no such ONNX file: {path}")
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model)
    except Exception as error:  # onnx raises DecodeError, ValidationError, ...
        raise InputFileError(f"not a valid ONNX model: {path} ({type(error).__name__})") from None
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    dims = (
        [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
        if inputs
        else []
    )
    if len(inputs) != 1 or len(dims) != 4:
        raise InputFileError(f"the builder takes ONNX models with one (N, C, H, W) input: {path}")
    batch, channels, height, width = dims
    if channels is None:
        raise InputFileError(f"{path} has a dynamic channel count; the builder needs C fixed")
    if input_size is None and None in (height, width):
        raise ShapeError(f"{path} has dynamic H and W; give the input size to build for")
    size = check_input_size(input_size or (height, width), f"the input size of {path.name}")
    source = {"onnx": path.name, "onnx_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return ImportedModel(
        model, (int(size[0]), int(size[1])), Preprocessing(), source, channels=channels, batch=batch
    )


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress and opset-conversion warnings (the builder reports what it
    did; its own errors still raise)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)

"""The calibration cache: calibrated ranges as JSON, with the calibrator and the digest of the model
they are for (as TensorRT's calibration cache); a plan stores the same bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import onnx

from edgevision.data.io import atomic_write
from edgevision.deploy.calibration.calibrators import TensorRange
from edgevision.deploy.calibration.collection import load_model
from edgevision.errors import InputFileError

CACHE_FORMAT = "edgevision-calibration/1"


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

"""Weights files on disk: PyTorch files that load with ``torch.load(weights_only=True)`` (tensors
and plain values only), read with checks, written atomically, and never holding a NaN or an inf.

The models layer owns this format because loading weights into a model needs it; training writes
its checkpoints through the same two functions.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from edgevision.data.io import atomic_write
from edgevision.errors import WeightsError

# torch.save writes a zip archive (PyTorch >= 1.6); older files, such as FaceBoxes.PyTorch's, are
# a bare pickle, which starts with the PROTO opcode.
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = b"\x80"


def save_checkpoint(path: Path, payload: Any) -> None:
    """Write ``payload`` atomically: a killed run never leaves a half-written checkpoint.

    Raises:
        WeightsError: a tensor of ``payload`` holds NaN or inf (nothing is written).
    """
    problem = non_finite_summary(payload)
    if problem:
        raise WeightsError(f"refusing to write {path}: {problem}")
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())


def load_checkpoint(path: str | Path) -> Any:
    """Load a checkpoint or state dict on the CPU without running pickled code.

    Raises:
        WeightsError: the path is missing, a folder, empty, not a PyTorch file, unreadable, or
            holds a tensor with NaN or inf values. The message is one line.
    """
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"weights path is a folder, not a file: {path}")
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(ZIP_MAGIC))
    except OSError as error:
        raise WeightsError(f"cannot read weights {path}: {error.strerror or error}") from None
    if not head:
        raise WeightsError(f"weights file is empty: {path}")
    if not (head.startswith(ZIP_MAGIC) or head.startswith(PICKLE_PROTO)):
        raise WeightsError(f"not a PyTorch weights file (it is neither a zip nor a pickle): {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(f"not a PyTorch weights file (or one that needs pickled code): {path}") from None
    except Exception as error:  # torch raises many kinds for a damaged or foreign file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"cannot read weights {path} (damaged or not PyTorch's?): {reason}") from None
    problem = non_finite_summary(payload)
    if problem:
        raise WeightsError(f"{path} is unusable: {problem}")
    return payload


def non_finite_summary(payload: Any) -> str | None:
    """None when every floating-point tensor in ``payload`` (nested dicts, lists, tuples) is
    finite; else a one-line count of the NaN/inf values and the tensors holding them, naming the
    first tensor."""
    values, tensors, first = 0, 0, None
    for name, tensor in named_tensors(payload):
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                values, tensors = values + bad, tensors + 1
                first = first or name
    if not values:
        return None
    return f"{values:,} non-finite (NaN or inf) value(s) in {tensors} tensor(s), the first {first!r}"


def named_tensors(payload: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside nested dicts, lists and tuples, with a dotted name (``model.conv1.weight``,
    ``optimizer.state.0.momentum_buffer``)."""
    if isinstance(payload, torch.Tensor):
        yield prefix or "<tensor>", payload
    elif isinstance(payload, dict):
        for key, value in payload.items():
            yield from named_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(payload, list | tuple):
        for index, value in enumerate(payload):
            yield from named_tensors(value, f"{prefix}.{index}" if prefix else str(index))

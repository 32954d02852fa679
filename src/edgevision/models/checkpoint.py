"""Checkpoints that load with ``torch.load(weights_only=True)``: tensors and plain values only."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from edgevision.data.io import atomic_write
from edgevision.errors import WeightsError


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically: a killed run never leaves a half-written checkpoint."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint or state dict on the CPU without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(f"not a PyTorch weights file (or one that needs pickled code): {path}") from None
    except Exception as error:  # torch raises many kinds for a corrupt or foreign file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"cannot read weights {path}: {reason}") from None

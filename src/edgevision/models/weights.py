"""Loading weights files into registered models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from edgevision.errors import WeightsError
from edgevision.models.checkpoint import load_checkpoint


def state_dict_from_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict inside a weights file: a bare state dict, or a training checkpoint's
    ``"model"`` entry. FaceBoxes.PyTorch's ``module.`` prefix (from ``nn.DataParallel``) is removed,
    which is the only difference between its names and ours."""
    state = load_checkpoint(path)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"not a state dict of tensors: {path}")
    return {key.removeprefix("module."): value for key, value in state.items()}


def load_weights(model: nn.Module, path: str | Path, name: str, new_parts: Sequence[str] = ()) -> nn.Module:
    """Load ``path`` into ``model`` (``strict=True``) or raise a one-line :class:`WeightsError`.
    The submodules named ``new_parts`` (e.g. a head added for fine-tuning) may be missing from the
    file, all or nothing each; they then keep their initial weights."""
    state = state_dict_from_file(path)
    expected = model.state_dict()
    for part in new_parts:
        keys = {key for key in expected if key.startswith(part + ".")}
        if not keys & set(state):
            state |= {key: expected[key] for key in keys}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        detail = (
            f"{len(missing)} missing (e.g. {missing[:1]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:1]}), {len(mismatched)} of the wrong shape (e.g. {mismatched[:1]})"
        )
        raise WeightsError(f"{path} does not fit the {name!r} architecture: {detail}")
    model.load_state_dict(state, strict=True)
    return model

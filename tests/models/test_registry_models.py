"""Every registered model: forward, backward, ONNX export run by ONNX Runtime, and determinism
under a seed (timm-style), so a new model is tested the day it is registered.

A model that only takes one input size (MobileFaceNet's GDConv spans its whole final map) says so
with a ``fixed_input_size = (H, W)`` attribute; it is run at that size and exported without
dynamic H/W. Every other model runs at 96x128, or at its ``default_input_size`` when that is
smaller (CIFAR's 32x32), and is exported with dynamic H/W. A model whose forward takes more than
the image (R-FCN takes RoIs too) builds its own inputs with ``example_inputs(batch, input_size)``.
Ops ONNX lacks (deformable RoI pooling) export as engine plugins, so ONNX Runtime runs every
model through :func:`edgevision.deploy.plugins.make_session`.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgevision.deploy.export import export_onnx
from edgevision.deploy.plugins import make_session
from edgevision.models import create_model, list_models

DEFAULT_INPUT_SIZE = (96, 128)


def input_size_of(model: nn.Module) -> tuple[int, int]:
    default = getattr(model, "default_input_size", DEFAULT_INPUT_SIZE)
    smaller = default[0] * default[1] < DEFAULT_INPUT_SIZE[0] * DEFAULT_INPUT_SIZE[1]
    return getattr(model, "fixed_input_size", None) or (tuple(default) if smaller else DEFAULT_INPUT_SIZE)


def inputs_for(model: nn.Module, batch: int) -> tuple[torch.Tensor, ...]:
    if hasattr(model, "example_inputs"):
        return tuple(model.example_inputs(batch, input_size_of(model)))
    return (torch.randn(batch, 3, *input_size_of(model)),)


def as_tuple(outputs: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return outputs if isinstance(outputs, tuple) else (outputs,)


def seeded(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    model = seeded(name)
    outputs = as_tuple(model(*inputs_for(model, 2)))
    sum(o.float().square().mean() for o in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without a gradient: {missing[:5]}"


@pytest.mark.parametrize("name", list_models())
def test_deterministic_under_a_seed(name: str) -> None:
    first, second = seeded(name).eval(), seeded(name).eval()
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{key} differs between two builds under the same seed"
    torch.manual_seed(1)
    inputs = inputs_for(first, 1)
    with torch.no_grad():
        for a, b in zip(as_tuple(first(*inputs)), as_tuple(second(*inputs)), strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("name", list_models())
def test_onnx_runtime_equals_pytorch(name: str, tmp_path) -> None:
    model = seeded(name).eval()
    fixed = getattr(model, "fixed_input_size", None)
    path = export_onnx(
        model, tmp_path / f"{name}.onnx", input_size=input_size_of(model), dynamic=fixed is None
    )
    session = make_session(onnx.load(path))
    torch.manual_seed(1)
    inputs = inputs_for(model, 1)
    with torch.no_grad():
        expected = as_tuple(model(*inputs))
    feeds = {binding.name: value.numpy() for binding, value in zip(session.get_inputs(), inputs, strict=True)}
    actual = session.run(None, feeds)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        scale = max(1.0, float(want.abs().max()))
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-4 * scale)

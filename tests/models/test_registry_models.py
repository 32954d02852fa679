"""Every registered model: forward, backward and ONNX export work on a small input (timm-style),
so a new model is tested the day it is registered.

A model that only takes one input size (MobileFaceNet's GDConv spans its whole 7x7 map) says so
with a ``fixed_input_size = (H, W)`` attribute; it is run at that size and exported without
dynamic H/W. Every other model runs at 96x128 and is exported with dynamic H/W.
"""

from __future__ import annotations

import onnx
import pytest
import torch

from edgevision.deploy.export import export_onnx
from edgevision.models import create_model, list_models

DEFAULT_INPUT_SIZE = (96, 128)


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_export(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name)
    fixed = getattr(model, "fixed_input_size", None)
    input_size = fixed or DEFAULT_INPUT_SIZE
    outputs = model(torch.randn(2, 3, *input_size))
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    sum(o.float().square().mean() for o in outputs).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    path = export_onnx(model, tmp_path / f"{name}.onnx", input_size=input_size, dynamic=fixed is None)
    onnx.checker.check_model(onnx.load(str(path)))

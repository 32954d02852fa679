"""Every registered model: forward, backward and ONNX export work on a small input (timm-style),
so a new model is tested the day it is registered."""

from __future__ import annotations

import onnx
import pytest
import torch

from edgevision.deploy.export import export_onnx
from edgevision.models import create_model, list_models


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_export(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name)
    outputs = model(torch.randn(2, 3, 96, 128))
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    sum(o.float().square().mean() for o in outputs).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    path = export_onnx(model, tmp_path / f"{name}.onnx", input_size=(96, 128))
    onnx.checker.check_model(onnx.load(str(path)))

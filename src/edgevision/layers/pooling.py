"""Global average pooling that exports to any ONNX opset."""

from __future__ import annotations

import torch


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, C)`` mean over H and W.

    Written as a sum over the size: torch.export lowers ``mean`` and adaptive pooling to an
    opset-18 ``ReduceMean`` that ONNX cannot convert down to opset 17 with dynamic H and W.
    """
    return x.sum(dim=(2, 3)) / (x.shape[2] * x.shape[3])

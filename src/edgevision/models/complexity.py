"""Model size and cost as papers report them: parameters and multiply-adds (MAdds)."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_madds(model: nn.Module, input_size: tuple[int, int]) -> int:
    """Multiply-adds of one forward pass on a ``(1, 3, H, W)`` input, ``input_size = (H, W)``.

    Counts ``nn.Conv2d`` (``out_elements * C_in / groups * kH * kW``) and ``nn.Linear``
    (``in * out`` per row) only, as the MobileNet papers do: bias, BN, activations, additions and
    pooling are left out (they are a fraction of a percent). The model runs in eval mode, under
    ``no_grad``, and is left in the mode it was in.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    inputs = example_inputs(model, input_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def median_latency_ms(
    model: nn.Module, input_size: tuple[int, int], repeats: int = 20, warmup: int = 3
) -> float:
    """Median wall time in ms of ``model`` on a ``(1, 3, H, W)`` input, in eval mode under
    ``no_grad``, after ``warmup`` untimed passes (for tables; benchmarks/ has the careful timings)."""
    import time

    model.eval()
    inputs = example_inputs(model, input_size)
    times = []
    with torch.no_grad():
        for run in range(warmup + repeats):
            start = time.perf_counter()
            model(*inputs)
            if run >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return float(torch.tensor(times).median())


def example_inputs(model: nn.Module, input_size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """Batch-1 inputs of ``model`` at ``input_size = (H, W)`` on its device: a zero image, or what
    the model's own ``example_inputs(batch, input_size)`` gives (R-FCN also takes RoIs)."""
    device = next(model.parameters(), torch.empty(0)).device
    if hasattr(model, "example_inputs"):
        return tuple(t.to(device) for t in model.example_inputs(1, input_size))
    return (torch.zeros(1, 3, *input_size, device=device),)

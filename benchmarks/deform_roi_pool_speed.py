"""How slow is our pure-PyTorch deformable RoI pooling against torchvision's C++ ``roi_align``?

Times, on one thread, the forward pass of :func:`edgevision.layers.deform_roi_pool.deform_roi_pool`
(``align`` mode, with random offsets, and without) and of ``torchvision.ops.roi_align(aligned=True)``
(the same pooling without offsets, in C++) on R-FCN's sizes: a 256-channel stride-16 feature map of
a 600x800 image, ``--rois`` random RoIs, 7x7 bins of 2x2 samples. Prints the median of
``--repeats`` runs after one warm-up run.

    python benchmarks/deform_roi_pool_speed.py
"""

from __future__ import annotations

import os
from typing import Annotated

import torch
import typer
from _machine import cpu_name, median_s, set_threads  # benchmarks/_machine.py
from torchvision.ops import roi_align

from edgevision.layers.deform_roi_pool import deform_roi_pool

CHANNELS, IMAGE, STRIDE, BINS, SAMPLES = 256, (600, 800), 16, 7, 2


def random_rois(count: int, generator: torch.Generator) -> torch.Tensor:
    """``(count, 5)`` RoIs ``(0, x1, y1, x2, y2)`` in image pixels, 32 to 400 px a side."""
    height, width = IMAGE
    size = torch.empty(count, 2).uniform_(32, 400, generator=generator)
    corner = torch.rand(count, 2, generator=generator) * (torch.tensor([width, height]) - size)
    return torch.cat([torch.zeros(count, 1), corner, corner + size], dim=1)


def main(
    rois: Annotated[int, typer.Option(min=1, help="RoIs pooled per run")] = 300,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs")] = 5,
) -> None:
    set_threads(1)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(1, CHANNELS, IMAGE[0] // STRIDE, IMAGE[1] // STRIDE, generator=generator)
    boxes = random_rois(rois, generator)
    offsets = torch.randn(rois, 2, BINS, BINS, generator=generator)
    scale = 1.0 / STRIDE
    cases = {
        "deform_roi_pool (ours, PyTorch), random offsets": lambda: deform_roi_pool(
            features, boxes, offsets, BINS, scale, SAMPLES, mode="align"
        ),
        "deform_roi_pool (ours, PyTorch), no offsets": lambda: deform_roi_pool(
            features, boxes, None, BINS, scale, SAMPLES, mode="align"
        ),
        "torchvision roi_align (C++), aligned=True": lambda: roi_align(
            features, boxes, BINS, scale, SAMPLES, aligned=True
        ),
    }
    print(
        f"{cpu_name()}, {os.cpu_count()} logical CPUs, 1 thread; features {tuple(features.shape)}, "
        f"{rois} RoIs, {BINS}x{BINS} bins of {SAMPLES}x{SAMPLES} samples; median of {repeats} runs"
    )
    with torch.inference_mode():
        for name, fn in cases.items():
            print(f"{name:<50} {median_s(fn, repeats):.3f} s")


if __name__ == "__main__":
    typer.run(main)

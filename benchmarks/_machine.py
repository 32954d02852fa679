"""What the benchmark scripts share about the machine they time on."""

from __future__ import annotations

import platform
from pathlib import Path

import cv2
import torch


def cpu_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (Linux), else :func:`platform.processor`."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def set_threads(threads: int) -> None:
    """Threads for torch and OpenCV (ONNX Runtime sessions take theirs in their options)."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)

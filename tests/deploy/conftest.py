"""Fixtures shared by the engine tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper


@pytest.fixture(scope="module")
def calibration_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight WIDER train images (never the val images the AP is measured on)."""
    train = data_dir / "widerface/WIDER_train/images"
    if not train.is_dir():
        pytest.skip(f"needs the WIDER train images at {train}")
    folder = tmp_path_factory.mktemp("calibration")
    for path in sorted(train.rglob("*.jpg"))[::150][:8]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(autouse=True)
def _timing_cache_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tuned builds keep their default timing cache in a temporary folder, not the user's cache."""
    monkeypatch.setenv("EDGEVISION_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def _dequantized_types(model: onnx.ModelProto) -> list[np.dtype]:
    """The dtype each DequantizeLinear of ``model`` reads: its initializer's, or the zero point's of
    the QuantizeLinear that writes it."""
    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}
    types = []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear":
            source = node.input[0]
            read = values[source] if source in values else values[producers[source].input[2]]
            types.append(read.dtype)
    return types


@pytest.fixture
def dequantized_types() -> Callable[[onnx.ModelProto], list[np.dtype]]:
    """What each DequantizeLinear of a model reads (TensorRT's parser takes int8 only)."""
    return _dequantized_types

"""Best-so-far figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from edgevision.errors import ShapeError
from edgevision.search.plots import plot_best_so_far


def test_best_so_far_writes_the_figure(tmp_path: Path) -> None:
    curves = {"evolution": [[0.5, 0.6, 0.7], [0.4, 0.6, 0.8]], "random": [[0.5, 0.5, 0.6]]}
    path = plot_best_so_far(curves, tmp_path / "best.png", "best true fitness")
    assert path == tmp_path / "best.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300


@pytest.mark.parametrize("runs", [[[0.5, 0.6], [0.5]], [[]]])
def test_ragged_or_empty_curves_are_refused(tmp_path: Path, runs: list[list[float]]) -> None:
    with pytest.raises(ShapeError, match="curves of 'rl' must be non-empty and of one length"):
        plot_best_so_far({"rl": runs}, tmp_path / "best.png", "reward")
    assert not (tmp_path / "best.png").exists()

"""Figures of evaluation results (PR curves), drawn with matplotlib's Agg canvas and written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgevision.data.io import atomic_write
from edgevision.errors import ShapeError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("png", "pdf", "svg")


def plot_pr_curves(
    curves: dict[str, np.ndarray],
    path: str | Path,
    title: str,
    ap: dict[str, float] | None = None,
) -> Path:
    """Draw one precision-recall line per curve, its AP in the legend; return ``path``.

    Args:
        curves: name (e.g. "easy") -> ``(T, 2)`` columns precision, recall, as in
            :attr:`edgevision.evaluation.widerface.WiderFaceResult.curves`; NaN points are not drawn.
        path: the figure file; its suffix (``.png``, ``.pdf``, ``.svg``) sets the format.
        title: the figure title, e.g. ``"FaceBoxes, WIDER val subset (140 of 3226 images)"``.
        ap: name -> AP for the legend; by default the VOC all-point AP of each curve.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from edgevision.evaluation.widerface import voc_ap

    figure = Figure(figsize=(5.5, 5.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, curve in curves.items():
        curve = np.asarray(curve, dtype=np.float64)
        if curve.ndim != 2 or curve.shape[1] != 2:
            raise ShapeError(f"PR curve {name!r} must be (T, 2) precision, recall, got {curve.shape}")
        value = ap[name] if ap is not None else voc_ap(curve[:, 1], curve[:, 0])
        axes.plot(curve[:, 1], curve[:, 0], linewidth=2.0, label=f"{name} (AP {value:.3f})")
    axes.set(xlim=(0.0, 1.0), ylim=(0.0, 1.02), xlabel="Recall", ylabel="Precision", title=title)
    axes.grid(True, alpha=0.3)
    if curves:
        axes.legend(loc="lower left")
    return save_figure(figure, path)


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write a matplotlib figure atomically; the suffix of ``path`` (png, pdf, svg) is the format."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"figure format must be one of {FORMATS}, got {path.name!r}")
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format=fmt, dpi=120, bbox_inches="tight")
    return path


def plot_loss_curves(log_path: str | Path, path: str | Path) -> Path:
    """Plot the per-epoch mean of each loss in a training log (``log.jsonl``), stacked, to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [r for r in map(json.loads, Path(log_path).read_text().splitlines()) if "epoch_mean" in r]
    figure = Figure(figsize=(6.5, 4.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    x = [r["epoch"] for r in epochs]
    bottom = np.zeros(len(epochs))
    for name in epochs[0]["epoch_mean"] if epochs else []:
        values = np.array([r["epoch_mean"].get(name, 0.0) for r in epochs])
        axes.fill_between(x, bottom, bottom + values, label=name, alpha=0.8, step="mid")
        bottom += values
    axes.set(xlabel="epoch", ylabel="loss (stacked)", title="training losses, per-epoch means")
    axes.grid(True, alpha=0.3)
    if epochs:
        axes.legend(loc="upper right")
    return save_figure(figure, path)

"""Figures of evaluation and data results (PR curves, losses, class frequencies), drawn with
matplotlib's Agg canvas and written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgevision.data.io import atomic_write
from edgevision.errors import ShapeError
from edgevision.evaluation.ap import voc_ap

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from edgevision.data.openimages_stats import ClassStatistics

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
    figure, axes = _figure((5.5, 5.0))
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


def plot_roc_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    title: str,
    accuracy: dict[str, float] | None = None,
) -> Path:
    """Draw one verification ROC line per curve, FAR on a log axis (where face verification is
    read: TAR at FAR 1e-3, 1e-2), TAR up; return ``path``.

    Args:
        curves: name -> ``(fpr, tpr)`` as :func:`edgevision.evaluation.verification.roc_curve`
            returns; points at FAR 0 cannot sit on a log axis and are not drawn.
        path: the figure file; its suffix (``.png``, ``.pdf``, ``.svg``) sets the format.
        title: the figure title, e.g. ``"ORL people 31-40, 900 pairs"``.
        accuracy: name -> 10-fold accuracy for the legend.
    """
    figure, axes = _figure((5.5, 5.0))
    lowest = 1.0
    for name, (fpr, tpr) in curves.items():
        fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
        if fpr.ndim != 1 or fpr.shape != tpr.shape:
            raise ShapeError(f"ROC curve {name!r} must be two (T,) arrays, got {fpr.shape} and {tpr.shape}")
        drawn = fpr > 0
        lowest = min(lowest, fpr[drawn].min(initial=1.0))
        label = name if accuracy is None else f"{name} (accuracy {100 * accuracy[name]:.2f}%)"
        axes.plot(fpr[drawn], tpr[drawn], linewidth=2.0, label=label)
    axes.set_xscale("log")
    axes.set(
        xlim=(min(lowest, 1e-3), 1.0), ylim=(0.0, 1.02), xlabel="False accept rate", ylabel="True accept rate"
    )
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    if curves:
        axes.legend(loc="lower right")
    return save_figure(figure, path)


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    """A ``size`` inches figure on the Agg canvas (no display needed) and its one axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


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
    epochs = [r for r in map(json.loads, Path(log_path).read_text().splitlines()) if "epoch_mean" in r]
    figure, axes = _figure((6.5, 4.0))
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


def plot_class_statistics(stats: ClassStatistics, path: str | Path, title: str, top: int | None = 50) -> Path:
    """Draw boxes per class as horizontal bars stacked by split, most frequent on top; return ``path``.

    Args:
        stats: from :func:`edgevision.data.openimages_stats.class_statistics`.
        path: the figure file; its suffix (``.png``, ``.pdf``, ``.svg``) sets the format.
        title: the figure title.
        top: draw only the ``top`` most frequent classes (all when None); the title says so.
    """
    classes = stats.classes if top is None else stats.classes[:top]
    if len(classes) < len(stats.classes):
        title = f"{title} (top {len(classes)} of {len(stats.classes)} classes)"
    figure, axes = _figure((7.5, 1.4 + 0.32 * max(len(classes), 1)))
    rows = np.arange(len(classes))[::-1]  # most frequent at the top
    left = np.zeros(len(classes))
    for split in stats.splits:
        counts = np.array([stats.boxes[split].get(mid, 0) for mid in classes], dtype=np.float64)
        axes.barh(rows, counts, left=left, height=0.7, label=split)
        left += counts
    for y, total in zip(rows, left):
        axes.text(total, y, f" {int(total):,}", va="center", fontsize=8)
    axes.set_yticks(rows, [stats.names[mid] for mid in classes], fontsize=9)
    axes.set(xlabel="Boxes", title=title)
    axes.set_xlim(0, max(left.max(initial=0.0) * 1.15, 1.0))
    axes.grid(True, axis="x", alpha=0.3)
    if classes:
        axes.legend(loc="lower right")
    return save_figure(figure, path)

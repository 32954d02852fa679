"""Figures of search results: best-so-far curves against models evaluated."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgevision.errors import ShapeError
from edgevision.evaluation.plots import _figure, save_figure


def plot_best_so_far(
    curves: dict[str, list[list[float]]], path: str | Path, ylabel: str, title: str | None = None
) -> Path:
    """Draw, per algorithm, the mean best-so-far over seeds and a min-max band; return ``path``.

    Args:
        curves: algorithm -> one curve per seed, each ``(N,)`` with value i the best reward after
            i + 1 models; an algorithm's seeds must have equal lengths.
        path: the figure file; its suffix (``.png``, ``.pdf``, ``.svg``) sets the format.
        ylabel: e.g. ``"best true fitness"`` or ``"best validation accuracy"``.
        title: the figure title; by default none.
    """
    figure, axes = _figure((6.5, 4.5))
    for name, runs in curves.items():
        lengths = {len(run) for run in runs}
        if len(lengths) != 1 or 0 in lengths:
            raise ShapeError(
                f"curves of {name!r} must be non-empty and of one length, got lengths {sorted(lengths)}"
            )
        values = np.asarray(runs, dtype=np.float64)  # (seeds, N)
        x = np.arange(1, values.shape[1] + 1)
        (line,) = axes.plot(x, values.mean(axis=0), linewidth=2.0, label=f"{name} ({len(runs)} seeds)")
        # Min-max rather than a standard deviation: with a handful of seeds it hides nothing.
        axes.fill_between(x, values.min(axis=0), values.max(axis=0), color=line.get_color(), alpha=0.2)
    axes.set(xlabel="models evaluated", ylabel=ylabel)
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    if curves:
        axes.legend(loc="lower right")
    return save_figure(figure, path)


def plot_pareto(
    trials: list[tuple[float, float]],
    measured: list[tuple[float, float]],
    target_ms: float | None,
    path: str | Path,
    trial_latency: str = "predicted",
) -> Path:
    """Accuracy against latency: every trial at its latency (grey; ``trial_latency`` says whether
    predicted or measured), the front's members at their measured latency joined in latency order,
    and the target.

    Args:
        trials: ``(accuracy, latency ms)`` per successful trial.
        measured: ``(accuracy, measured latency ms)`` per front member.
        target_ms: the objective's latency target, drawn as a vertical line; None: none.
    """
    figure, axes = _figure((6.5, 4.5))
    if trials:
        accuracy, latency = np.asarray(trials, dtype=np.float64).T
        axes.scatter(
            latency, accuracy, s=10, color="0.6", label=f"children, {trial_latency} latency ({len(trials)})"
        )
    if measured:
        front = np.asarray(sorted(measured, key=lambda point: point[1]), dtype=np.float64)
        axes.plot(front[:, 1], front[:, 0], "o-", color="C3", label="front, measured latency (int8 plan)")
    if target_ms is not None:
        axes.axvline(target_ms, color="C0", linestyle="--", label=f"target {target_ms:g} ms")
    axes.set(xlabel="latency, ms (one thread)", ylabel="validation accuracy")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right")
    return save_figure(figure, path)

"""Calibrators: a threshold ``amax`` from each activation's ``|x|`` histogram (``hist (2048,)``
counts, ``edges (2049,)``):

- ``entropy``: the KL-divergence search of "8-bit Inference with TensorRT" (Migacz, GTC 2017);
- ``minmax``: ``max |x|``;
- ``percentile``: the smallest bin edge below which ``percentile`` % of the ``|x|`` mass lies;
- ``mse``: the threshold that minimises the expected squared error of a symmetric int8 quantiser.

TensorRT's histograms include a ReLU's exact zeros, which drag the entropy threshold far down on
ReLU networks; :func:`calibrate` can leave them out (``skip_zeros``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from edgevision.deploy.calibration.collection import TensorStats
from edgevision.errors import ConfigError

NUM_LEVELS = 128  # int8 levels on one side of zero: the entropy candidates start at 128 bins
INT8_STEPS = 127  # quantisation steps of a symmetric int8 quantiser over [0, amax]


@dataclass(frozen=True)
class TensorRange:
    """A calibrated activation: the threshold ``amax`` and the observed ``min`` / ``max``."""

    amax: float
    min: float
    max: float

    def clipped(self) -> tuple[float, float]:
        """The observed ``(min, max)`` clipped to ``[-amax, amax]``: the range to quantise."""
        return max(self.min, -self.amax), min(self.max, self.amax)


def minmax_amax(hist: np.ndarray, edges: np.ndarray) -> float:
    """``max |x|``: the histogram's top edge."""
    return float(edges[-1])


def percentile_amax(hist: np.ndarray, edges: np.ndarray, percentile: float = 99.99) -> float:
    """The upper edge of the bin where the cumulative ``|x|`` mass first reaches ``percentile`` %."""
    if not 0 < percentile <= 100:
        raise ConfigError(f"percentile must be in (0, 100], got {percentile}")
    total = hist.sum()
    if total == 0:
        return 0.0
    index = int(np.searchsorted(np.cumsum(hist), percentile / 100 * total))
    return float(edges[min(index, len(hist) - 1) + 1])


def quantize_expand(bins: np.ndarray, levels: int) -> np.ndarray:
    """TensorRT's candidate ``Q``: merge the ``i`` bins into ``levels`` groups of ``i / levels``
    bins (bin ``j`` goes to group ``j * levels // i``), then spread each group's count evenly over
    its non-empty bins; empty bins stay empty. ``(i,) -> (i,)`` float64."""
    group = np.arange(len(bins)) * levels // len(bins)
    nonzero = bins != 0
    sums = np.bincount(group, weights=bins, minlength=levels)
    counts = np.bincount(group, weights=nonzero, minlength=levels)
    return np.where(nonzero, sums[group] / np.maximum(counts[group], 1), 0.0)


def entropy_divergences(hist: np.ndarray, levels: int = NUM_LEVELS) -> np.ndarray:
    """``KL(P || Q)`` of every candidate ``i = levels .. len(hist)`` (entry ``i - levels``).

    ``P`` is the first ``i`` bins with the outliers (bins ``i..``) added to bin ``i - 1``, ``Q`` is
    :func:`quantize_expand` of the first ``i`` bins; both normalised. ``inf`` where ``P`` has mass
    that ``Q`` lacks (an empty bin ``i - 1`` that took outliers).
    """
    hist = hist.astype(np.float64)
    tails = np.cumsum(hist[::-1])[::-1]  # tails[i] = sum(hist[i:])
    divergences = np.empty(len(hist) - levels + 1)
    for i in range(levels, len(hist) + 1):
        p = hist[:i].copy()
        p[-1] += tails[i] if i < len(hist) else 0.0
        divergences[i - levels] = _kl_divergence(p, quantize_expand(hist[:i], levels))
    return divergences


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """``KL(p || q)`` in nats of two unnormalised distributions."""
    support = p > 0
    if np.any(q[support] == 0):  # also when q is all zero
        return float("inf")
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p[support] * np.log(p[support] / q[support])))


def entropy_amax(hist: np.ndarray, edges: np.ndarray, levels: int = NUM_LEVELS) -> float:
    """TensorRT's entropy calibration: the candidate ``m`` of least ``KL(P || Q)``, and
    ``amax = (m + 0.5) * bin_width`` as the talk states (half a bin past the ``m`` bins kept)."""
    if len(hist) < levels:
        raise ConfigError(f"the entropy calibrator needs at least {levels} bins, got {len(hist)}")
    width = float(edges[1] - edges[0])
    if hist.sum() == 0 or width == 0:
        return 0.0
    m = levels + int(np.argmin(entropy_divergences(hist, levels)))
    return (m + 0.5) * width


def mse_amax(hist: np.ndarray, edges: np.ndarray, steps: int = INT8_STEPS) -> float:
    """The bin edge ``t`` minimising the expected squared error of quantising ``|x|`` to
    ``round(|x| / s) * s`` with ``s = t / steps``, clipped at ``t`` (a symmetric int8 quantiser
    for ``steps = 127``), taking ``|x|`` uniform within each bin: the rounding error of the bins below
    ``t`` is integrated exactly, a bin above costs the mean of ``(|x| - t)^2`` over it.

    In units of the bin width ``w``, with ``t = k w``: bin ``j < k`` costs
    ``(k / steps)^3 * (H(u_{j+1}) - H(u_j))``, ``u`` being its edges in steps, and bin ``j >= k``
    costs ``d^2 + d + 1/3`` with ``d = j - k``.
    """
    if hist.sum() == 0 or edges[-1] == 0:
        return 0.0
    counts = hist.astype(np.float64)
    kept = np.arange(1, len(hist) + 1)[:, None]  # (C, 1) candidate thresholds t = kept * w
    index = np.arange(len(hist))[None, :]  # (1, B) bins
    in_steps = np.arange(len(hist) + 1)[None, :] * (steps / kept)  # (C, B + 1) bin edges in steps
    rounding = np.where(index < kept, np.diff(_squared_rounding_integral(in_steps), axis=1), 0.0) @ counts
    over = index - kept
    clipping = np.where(over >= 0, over * (over + 1.0) + 1 / 3, 0.0) @ counts
    errors = (kept[:, 0] / steps) ** 3 * rounding + clipping
    return float(edges[int(np.argmin(errors)) + 1])


def _squared_rounding_integral(u: np.ndarray) -> np.ndarray:
    """``∫_{-1/2}^{u} r(v)^2 dv`` with ``r(v) = v - round(v)`` (``u`` in quantisation steps): each
    whole period adds ``1 / 12``, the last partial one ``((f - 1/2)^3 + 1/8) / 3``."""
    shifted = u + 0.5
    periods = np.floor(shifted)
    f = shifted - periods - 0.5
    return periods / 12 + (f * f * f + 0.125) / 3


Calibrator = Callable[..., float]
CALIBRATORS: dict[str, Calibrator] = {
    "entropy": entropy_amax,
    "minmax": minmax_amax,
    "percentile": percentile_amax,
    "mse": mse_amax,
}


def calibrate(
    stats: Mapping[str, TensorStats], method: str = "entropy", *, skip_zeros: bool = False, **options: float
) -> dict[str, TensorRange]:
    """``amax`` of every tensor by calibrator ``method``; ``options`` go to it (e.g. ``percentile``).

    ``skip_zeros`` leaves exact zeros out of the histograms (pytorch-quantization's ``skip_zeros``).
    A ReLU output is about half exact zeros: a spike in bin 0 that costs about ``p0 * ln g`` of KL
    when a candidate's first level merges it with ``g - 1`` other bins. ``g`` steps up just past
    every multiple of 128 bins, so ``entropy`` stops at a multiple of 128, biased low (1/8 to 3/8 of
    ``max |x|`` on FaceBoxes' ReLUs). Zeros are exact under every threshold, so they can be left out.
    """
    if method not in CALIBRATORS:
        raise ConfigError(f"unknown calibration method {method!r}; methods: {', '.join(CALIBRATORS)}")
    calibrator = CALIBRATORS[method]
    return {
        name: TensorRange(float(calibrator(s.histogram(skip_zeros), s.edges, **options)), s.min, s.max)
        for name, s in stats.items()
    }

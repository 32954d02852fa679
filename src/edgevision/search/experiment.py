"""What one ``edgevision search`` run evaluates and maximises: the child evaluation shipped to the
workers (proxy-task accuracy, plus the predicted latency when the objective has a target) and the
reward the driver computes from its metrics.

The objective is recorded in the trial log's header, so a resumed run cannot silently change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgevision.layers.nas_ops import Genotype
from edgevision.search.proxy_task import ProxyTask
from edgevision.validation import check_number

if TYPE_CHECKING:
    from edgevision.search.latency import LatencyModel


@dataclass(frozen=True)
class Objective:
    """Accuracy alone (``target_ms`` None) or MnasNet's soft latency objective:
    ``accuracy * (latency_ms / target_ms) ** weight`` with the predicted latency."""

    target_ms: float | None = None
    weight: float = -0.07  # MnasNet Sec. 3, alpha = beta = -0.07

    def __post_init__(self) -> None:
        if self.target_ms is not None:
            check_number("--latency-target", self.target_ms, 0.0, 1e6, low_open=True)
        check_number("--latency-weight", self.weight, -10.0, 0.0)

    def reward(self, metrics: dict[str, float]) -> float:
        """The reward of one trial's metrics (``accuracy``, and ``latency_ms`` with a target)."""
        if self.target_ms is None:
            return metrics["accuracy"]
        from edgevision.search.objective import latency_reward

        return latency_reward(metrics["accuracy"], metrics["latency_ms"], self.target_ms, self.weight)

    def describe(self) -> dict[str, Any]:
        """The objective as the trial log's header records it."""
        if self.target_ms is None:
            return {"reward": "accuracy"}
        return {"reward": "accuracy * (latency / target) ** w", "target_ms": self.target_ms, "w": self.weight}


# A prediction below this is a cell cheaper than any the model was fitted to: clamped, since the
# latency reward needs a positive latency and a linear model can extrapolate below zero.
MIN_PREDICTED_MS = 0.05


class ChildEvaluation:
    """The picklable ``evaluate(arch_json, trial_seed)`` of a search: the proxy task's metrics and,
    for a latency objective, ``latency_ms``: measured with our engine (``measure_latency``: an int8
    plan built and timed on one thread, about 10 s a child) or predicted by ``latency_model``
    (microseconds)."""

    def __init__(
        self, task: ProxyTask, latency_model: LatencyModel | None = None, measure_latency: bool = False
    ) -> None:
        self.task = task
        self.latency_model = latency_model
        self.measure_latency = measure_latency

    def __call__(self, arch_json: Any, trial_seed: int) -> dict[str, float]:
        metrics = self.task.evaluate(arch_json, trial_seed)
        if self.measure_latency:
            from edgevision.search.latency import measure_latency_ms

            metrics["latency_ms"] = measure_latency_ms(Genotype.from_dict(arch_json))
        elif self.latency_model is not None:
            predicted = self.latency_model.predict(Genotype.from_dict(arch_json))
            metrics["latency_ms"] = max(predicted, MIN_PREDICTED_MS)
        return metrics

"""The workload's metric: its name and direction (METRIC_NAME, METRIC_DIRECTION), and how a figure is read
from a metrics.json document (`{"validation": {"rmse": 0.41}}`: section `validation`, name `rmse`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mlpipe_common.config import require_env
from mlpipe_common.errors import ConfigurationError

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # one of DIRECTIONS

    @classmethod
    def from_env(cls) -> Metric:
        direction = require_env("METRIC_DIRECTION")
        if direction not in DIRECTIONS:
            raise ConfigurationError(
                f"environment variable METRIC_DIRECTION={direction!r} is not one of {DIRECTIONS}"
            )
        return cls(require_env("METRIC_NAME"), direction)

    def rank_key(self, value: float) -> float:
        """Sorts the best figure first."""
        return -value if self.direction == "maximize" else value

    def passes(self, value: float, threshold: float) -> bool:
        """The quality gate: at least the threshold when maximizing, at most it when minimizing."""
        return value >= threshold if self.direction == "maximize" else value <= threshold

    def describe_gate(self, threshold: float) -> str:
        return f"{self.name} {'>=' if self.direction == 'maximize' else '<='} {threshold:g}"


def read_figure(document: Any, section: str, name: str) -> float | None:
    """`document[section][name]` as a finite float, or None when it is absent or not a finite number."""
    values = document.get(section) if isinstance(document, dict) else None
    value = values.get(name) if isinstance(values, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)

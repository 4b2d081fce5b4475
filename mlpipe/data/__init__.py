"""The reference conversion-prediction workload: the raw event schema, the dataset generator and the truth.

`generate` and `bayes_optimal_auc` are imported lazily so that `import mlpipe.data` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GeneratorConfig", "bayes_optimal_auc", "generate"]


def __getattr__(name: str) -> Any:
    if name in ("GeneratorConfig", "generate"):
        from mlpipe.data import generator as _generator

        return getattr(_generator, name)
    if name == "bayes_optimal_auc":
        from mlpipe.data.truth import bayes_optimal_auc

        return bayes_optimal_auc
    raise AttributeError(name)

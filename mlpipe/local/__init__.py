"""Local execution of the pipeline: the synthesized state machine, run by moto's Step Functions interpreter
with the Lambdas' real code in-process and pluggable executors for Batch, Glue and EMR work.

See docs/local-harness.md for what the harness does, which moto gaps it works around, and how.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use (PEP 562): the harness imports moto, a second that `mlpipe local run --rows 5`
# should not wait for before it refuses the value.
_HOMES = {
    "CloudAssembly": "assembly", "UnresolvableReference": "assembly",
    "BatchJob": "executors", "BatchJobDefinition": "executors", "EmrStep": "executors",
    "Executor": "executors", "Executors": "executors", "GlueJobRun": "executors", "Outcome": "executors",
    "RetryStrategy": "executors",
    "ExecutionResult": "harness", "LocalPipeline": "harness", "UnsupportedDefinition": "harness",
    "InProcessLambdas": "lambdas", "Invocation": "lambdas", "LambdaInvoker": "lambdas",
    "LambdaServiceError": "lambdas",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"mlpipe.local.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_HOMES)

"""Local execution of the pipeline: the synthesized state machine, run by moto's Step Functions interpreter
with the Lambdas' real code in-process and pluggable executors for Batch, Glue and EMR work.

See docs/local-harness.md for what the harness does, which moto gaps it works around, and how.
"""

from mlpipe.local.assembly import CloudAssembly, UnresolvableReference
from mlpipe.local.executors import (
    BatchJob,
    BatchJobDefinition,
    EmrStep,
    Executor,
    Executors,
    GlueJobRun,
    Outcome,
    RetryStrategy,
)
from mlpipe.local.harness import ExecutionResult, LocalPipeline, UnsupportedDefinition
from mlpipe.local.lambdas import InProcessLambdas, Invocation, LambdaInvoker, LambdaServiceError

__all__ = [
    "BatchJob",
    "BatchJobDefinition",
    "CloudAssembly",
    "EmrStep",
    "ExecutionResult",
    "Executor",
    "Executors",
    "GlueJobRun",
    "InProcessLambdas",
    "Invocation",
    "LambdaInvoker",
    "LambdaServiceError",
    "LocalPipeline",
    "Outcome",
    "RetryStrategy",
    "UnresolvableReference",
    "UnsupportedDefinition",
]

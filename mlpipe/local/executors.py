"""The seam between the local state machine and the work it starts: Batch jobs, Glue job runs, EMR steps.

The harness turns each `.sync` task into a job description (`BatchJob`, `GlueJobRun`, `EmrStep`) and hands
it to an `Executor`, whose `run(job)` does the work (or pretends to) and returns an `Outcome`. The executors
are plugged in by whoever builds the harness: local mode runs the real jobs (Spark, torch), tests plug in
doubles. Everything here is plain data: an executor needs no moto and no Step Functions knowledge.

Batch's retry strategy is applied by the harness, not by the executor: each attempt is one `run` call with
`attempt` counting from 1, and `RetryStrategy.decide` says whether a failed attempt is retried, as AWS Batch
does with the job definition's `retryStrategy` (`attempts`, `evaluateOnExit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

Action = Literal["RETRY", "EXIT"]


@dataclass(frozen=True)
class Outcome:
    """How one attempt of a job ended.

    `status_reason` is what the service reports for the attempt (Batch: the job's `statusReason`, e.g.
    `Host EC2 (instance i-0123) terminated.` when a Spot instance is reclaimed; Glue: the run's
    `ErrorMessage`; EMR: the step's failure message). `reason` and `exit_code` are the container's.
    """

    succeeded: bool
    status_reason: str = ""
    exit_code: int | None = None
    reason: str = ""

    @classmethod
    def success(cls) -> Outcome:
        return cls(succeeded=True, status_reason="Essential container in task exited", exit_code=0)

    @classmethod
    def failure(cls, message: str, *, exit_code: int | None = 1, reason: str = "") -> Outcome:
        return cls(succeeded=False, status_reason=message, exit_code=exit_code, reason=reason)


# ---- Batch ----------------------------------------------------------------------------------------------
def _glob(pattern: str, value: str) -> bool:
    """Batch's evaluateOnExit patterns: exact, or a prefix when the pattern ends with `*`."""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


@dataclass(frozen=True)
class EvaluateOnExit:
    action: Action
    on_status_reason: str | None = None
    on_reason: str | None = None
    on_exit_code: str | None = None

    @classmethod
    def from_template(cls, spec: Mapping[str, Any]) -> EvaluateOnExit:
        lowered = {k[:1].lower() + k[1:]: v for k, v in spec.items()}
        action = str(lowered["action"]).upper()
        if action not in ("RETRY", "EXIT"):
            raise ValueError(f"evaluateOnExit action must be RETRY or EXIT, not {action!r}")
        return cls(
            action="RETRY" if action == "RETRY" else "EXIT",
            on_status_reason=lowered.get("onStatusReason"),
            on_reason=lowered.get("onReason"),
            on_exit_code=lowered.get("onExitCode"),
        )

    def matches(self, outcome: Outcome) -> bool:
        """Every condition given must match; an absent value matches as the empty string."""
        checks = (
            (self.on_status_reason, outcome.status_reason),
            (self.on_reason, outcome.reason),
            (self.on_exit_code, "" if outcome.exit_code is None else str(outcome.exit_code)),
        )
        return all(_glob(pattern, value) for pattern, value in checks if pattern is not None)


@dataclass(frozen=True)
class RetryStrategy:
    """A Batch job's retryStrategy. AWS Batch: up to `attempts` attempts; a failed attempt is retried
    unless the first matching `evaluateOnExit` entry says EXIT (no entry matching means RETRY)."""

    attempts: int = 1
    evaluate_on_exit: tuple[EvaluateOnExit, ...] = ()

    @classmethod
    def from_template(cls, spec: Mapping[str, Any] | None) -> RetryStrategy:
        if not spec:
            return cls()
        lowered = {k[:1].lower() + k[1:]: v for k, v in spec.items()}
        return cls(
            attempts=int(lowered.get("attempts", 1)),
            evaluate_on_exit=tuple(
                EvaluateOnExit.from_template(e) for e in lowered.get("evaluateOnExit", [])
            ),
        )

    def decide(self, outcome: Outcome, attempt: int) -> Action:
        """What Batch does after attempt number `attempt` (from 1) ended with the failed `outcome`."""
        if attempt >= self.attempts:
            return "EXIT"
        for rule in self.evaluate_on_exit:
            if rule.matches(outcome):
                return rule.action
        return "RETRY"


@dataclass(frozen=True)
class BatchJobDefinition:
    arn: str
    name: str
    type: str  # "container" | "multinode"
    parameters: Mapping[str, str]
    command: tuple[str, ...]
    environment: Mapping[str, str]
    retry_strategy: RetryStrategy
    num_nodes: int = 1
    attempt_timeout_s: int | None = None
    scheduling_priority: int | None = None


@dataclass(frozen=True)
class BatchJob:
    """One attempt of a submitted Batch job."""

    job_id: str
    job_name: str
    queue_arn: str
    definition: BatchJobDefinition
    parameters: Mapping[str, str]  # the definition's defaults, overlaid with the submitted ones
    command: tuple[str, ...]  # the definition's command with each Ref::name substituted
    environment: Mapping[str, str]
    num_nodes: int
    attempt: int  # 1, 2, ... (each retry of the retry strategy is a new attempt)
    tags: Mapping[str, str] = field(default_factory=dict)


# ---- Glue, EMR ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GlueJobRun:
    job_name: str
    run_id: str
    script_location: str
    arguments: Mapping[str, str]  # the job's DefaultArguments, overlaid with the run's Arguments


@dataclass(frozen=True)
class EmrStep:
    cluster_id: str
    step_id: str
    name: str
    jar: str
    args: tuple[str, ...]
    action_on_failure: str


# ---- the seam -------------------------------------------------------------------------------------------
Job = TypeVar("Job", contravariant=True)


class Executor(Protocol[Job]):
    """Runs one job (one attempt of it) to completion and says how it ended."""

    def run(self, job: Job) -> Outcome: ...


@dataclass(frozen=True)
class Executors:
    batch: Executor[BatchJob]
    glue: Executor[GlueJobRun]
    emr: Executor[EmrStep]

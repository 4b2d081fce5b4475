"""Pipeline executions: start (idempotently, named by run id), describe, follow, list, stop and redrive.

from mlpipe.client import Aws, Deployment, Executions
executions = Executions(Deployment(Aws(region="eu-west-1")))
started = executions.start({"raw_uri": "s3://<raw bucket>/<raw prefix>"})
final = executions.follow(started.execution_arn)     # polls until the execution ends
assert final.status == "SUCCEEDED", final.failure
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlpipe.client import run_input
from mlpipe.client.discovery import Deployment
from mlpipe.client.errors import NotFound, UsageError, is_code
from mlpipe.client.progress import ExecutionProgress, Failure, StateProgress

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE")
REDRIVABLE = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
EXECUTION_NAME_MAX = 80


@dataclass(frozen=True)
class PreparedRun:
    """A validated input, ready to start: the execution is named after the run id."""

    run_id: str
    derived: bool
    input: str
    """The execution input exactly as sent (canonical JSON)."""


@dataclass(frozen=True)
class Execution:
    arn: str
    name: str
    status: str
    start_date: datetime | None
    stop_date: datetime | None = None
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    redrive_count: int = 0
    redrive_status: str | None = None
    redrive_status_reason: str | None = None
    failure: Failure | None = None
    current_states: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "execution_arn": self.arn,
            "status": self.status,
            "start_date": _iso(self.start_date),
            "stop_date": _iso(self.stop_date),
            "redrive_count": self.redrive_count,
        }
        if self.current_states:
            document["current_states"] = list(self.current_states)
        if self.output is not None:
            document["output"] = self.output
        if self.status in TERMINAL and not self.succeeded:
            document["failed_state"] = self.failure.state if self.failure else None
            document["error"] = self.error
            document["cause"] = self.cause
        if self.redrive_status:
            document["redrive_status"] = self.redrive_status
        return document


@dataclass
class Follow:
    """What `follow` reports to its observer after each poll."""

    execution: Execution
    progress: ExecutionProgress
    changed: list[StateProgress] = field(default_factory=list)


class Executions:
    """The deployment's state machine, seen from a user's seat."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment

    @property
    def _sfn(self) -> Any:
        return self.deployment.aws.client("stepfunctions")

    # ---- starting ------------------------------------------------------------------------------------
    def prepare(self, document: Any, *, run_id: str | None = None) -> PreparedRun:
        """Validate `document` (schema first, before any AWS call), then resolve it with the deployment's
        settings and derive its run id as the Plan state will."""
        if run_id is not None:
            if isinstance(document, dict) and document.get("run_id") not in (None, run_id):
                raise UsageError(
                    f"--run-id {run_id!r} differs from the input's run_id {document['run_id']!r}"
                )
            document = {**document, "run_id": run_id} if isinstance(document, dict) else document
        run_input.validate(document)
        resolved = run_input.resolve(document, self.plan_environment())
        return PreparedRun(
            run_id=resolved.run_id, derived=resolved.derived, input=run_input.canonical(document)
        )

    def plan_environment(self) -> dict[str, str]:
        """The environment of the state machine's first state, the Plan Lambda (its deployed settings)."""
        described = self._sfn.describe_state_machine(stateMachineArn=self.deployment.state_machine_arn)
        definition = json.loads(described["definition"])
        first = definition["States"][definition["StartAt"]]
        function = first.get("Resource", "")
        if ":states:::lambda:invoke" in function:
            function = first.get("Parameters", {}).get("FunctionName", "")
        if ":lambda:" not in function:
            raise RuntimeError(
                f"the state machine's first state {definition['StartAt']!r} is not the Plan Lambda"
            )
        configuration = self.deployment.aws.client("lambda").get_function_configuration(FunctionName=function)
        variables: dict[str, str] = configuration.get("Environment", {}).get("Variables", {})
        return variables

    def start(self, prepared: PreparedRun) -> Execution:
        """StartExecution named after the run id. The same name and input while it runs returns the same
        execution (Step Functions is idempotent there); an ended execution of that run is an error that
        says what to do instead."""
        arn = self.deployment.state_machine_arn
        try:
            response = self._sfn.start_execution(
                stateMachineArn=arn, name=prepared.run_id, input=prepared.input
            )
        except Exception as exc:
            if is_code(exc, "ExecutionAlreadyExists"):
                raise self._already_exists(prepared) from None
            raise
        return Execution(
            arn=response["executionArn"],
            name=prepared.run_id,
            status="RUNNING",
            start_date=response["startDate"],
        )

    def _already_exists(self, prepared: PreparedRun) -> UsageError:
        existing = self.describe(prepared.run_id)
        when = _iso(existing.start_date)
        if existing.status == "RUNNING":
            return UsageError(
                f"run {prepared.run_id} is already running (started {when}) with a different input; "
                "give this input another run_id"
            )
        advice = {
            "SUCCEEDED": f"see `mlpipe status {prepared.run_id}`; to train again, give a new run_id",
        }.get(
            existing.status,
            f"resume it with `mlpipe redrive {prepared.run_id}`, or give a new run_id to start over",
        )
        return UsageError(
            f"run {prepared.run_id} already has an execution ({existing.status}, started {when}), and a run id "
            f"starts once: {advice}"
        )

    # ---- looking -------------------------------------------------------------------------------------
    def execution_arn(self, ref: str) -> str:
        """An execution ARN from a run id (the execution's name) or an ARN."""
        if ref.startswith("arn:"):
            if ":execution:" not in ref:
                raise UsageError(f"{ref!r} is not a Step Functions execution ARN")
            return ref
        if not ref or len(ref) > EXECUTION_NAME_MAX:
            raise UsageError(f"{ref!r} is not a run id or execution ARN")
        machine = self.deployment.state_machine_arn
        return machine.replace(":stateMachine:", ":execution:", 1) + ":" + ref

    def describe(self, ref: str, *, progress: ExecutionProgress | None = None) -> Execution:
        """The execution now; its states come from `progress` (read from the history when not given)."""
        arn = self.execution_arn(ref)
        described = self._describe(ref, arn)
        if progress is None and described["status"] != "SUCCEEDED":
            progress = self.progress(arn)
        return self._execution(arn, described, progress)

    def _describe(self, ref: str, arn: str) -> dict[str, Any]:
        try:
            described: dict[str, Any] = self._sfn.describe_execution(executionArn=arn)
        except Exception as exc:
            if is_code(exc, "ExecutionDoesNotExist"):
                raise NotFound(f"no execution {ref!r} of {self.deployment.state_machine_arn}") from None
            raise
        return described

    @staticmethod
    def _execution(arn: str, described: dict[str, Any], progress: ExecutionProgress | None) -> Execution:
        status = described["status"]
        failure = None
        current: tuple[str, ...] = ()
        if progress is not None:
            if status in TERMINAL:
                progress.finish(status)
            if status in TERMINAL and status != "SUCCEEDED":
                failure = progress.failure(described.get("error"), described.get("cause"))
            current = tuple(s.name for s in progress.states.values() if s.running)
        return Execution(
            arn=arn,
            name=described["name"],
            status=status,
            start_date=described.get("startDate"),
            stop_date=described.get("stopDate"),
            input=_json_or_none(described.get("input")),
            output=_json_or_none(described.get("output")),
            error=described.get("error"),
            cause=described.get("cause"),
            redrive_count=int(described.get("redriveCount") or 0),
            redrive_status=described.get("redriveStatus"),
            redrive_status_reason=described.get("redriveStatusReason"),
            failure=failure,
            current_states=current,
        )

    def history(self, arn: str) -> Iterator[dict[str, Any]]:
        for page in self._sfn.get_paginator("get_execution_history").paginate(
            executionArn=arn, includeExecutionData=False, PaginationConfig={"PageSize": 1000}
        ):
            yield from page["events"]

    def progress(self, arn: str, progress: ExecutionProgress | None = None) -> ExecutionProgress:
        progress = progress or ExecutionProgress()
        for event in self.history(arn):
            progress.add(event)
        return progress

    def follow(
        self,
        ref: str,
        *,
        observer: Callable[[Follow], None] | None = None,
        poll_seconds: float = 5.0,
        timeout_seconds: float | None = None,
        since_event: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Execution:
        """Poll until the execution ends (or `timeout_seconds`); report each poll to `observer`.

        `since_event`: history events up to this id are known already (a redriven execution's earlier run).
        """
        arn = self.execution_arn(ref)
        progress = ExecutionProgress()
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        while True:
            # Status first: when it has ended, the history read after it is complete.
            described = self._describe(ref, arn)
            changed: list[StateProgress] = []
            for event in self.history(arn):
                state = progress.add(event)
                if state is not None and int(event["id"]) > since_event and state not in changed:
                    changed.append(state)
            execution = self._execution(arn, described, progress)
            if observer is not None:
                observer(Follow(execution, progress, changed))
            if execution.status in TERMINAL:
                return execution
            if deadline is not None and time.monotonic() >= deadline:
                return execution
            sleep(poll_seconds)

    def list(self, *, status: str | None = None, limit: int = 20) -> list[Execution]:
        if status is not None and status not in STATUSES:
            raise UsageError(f"--status {status!r} is not one of {', '.join(STATUSES)}")
        arguments: dict[str, Any] = {"stateMachineArn": self.deployment.state_machine_arn}
        if status:
            arguments["statusFilter"] = status
        found: list[Execution] = []
        for page in self._sfn.get_paginator("list_executions").paginate(
            **arguments, PaginationConfig={"MaxItems": limit, "PageSize": min(limit, 1000)}
        ):
            for item in page["executions"]:
                found.append(
                    Execution(
                        arn=item["executionArn"],
                        name=item["name"],
                        status=item["status"],
                        start_date=item.get("startDate"),
                        stop_date=item.get("stopDate"),
                        redrive_count=int(item.get("redriveCount") or 0),
                    )
                )
        return found[:limit]

    # ---- acting --------------------------------------------------------------------------------------
    def stop(self, ref: str, *, cause: str | None = None) -> Execution:
        current = self.describe(ref)
        if current.status != "RUNNING":
            raise UsageError(f"run {current.name} is not running ({current.status}): nothing to stop")
        arguments: dict[str, Any] = {"executionArn": current.arn, "error": "mlpipe.Stopped"}
        if cause:
            arguments["cause"] = cause
        self._sfn.stop_execution(**arguments)
        for _ in range(20):  # Step Functions records the stop at once; an emulator may take a moment
            stopped = self.describe(current.arn)
            if stopped.status != "RUNNING":
                break
            time.sleep(0.1)
        return stopped

    def redrive(self, ref: str) -> Execution:
        """RedriveExecution: resume a failed, timed-out or aborted execution from the states that did not
        succeed. The client token is derived from the execution and its redrive count, so a retried
        command does not redrive twice."""
        current = self.describe(ref)
        if current.status not in REDRIVABLE:
            raise UsageError(
                f"run {current.name} is {current.status}: only a FAILED, TIMED_OUT or ABORTED execution can be "
                "redriven"
            )
        if current.redrive_status == "NOT_REDRIVABLE":
            reason = current.redrive_status_reason or "Step Functions says so"
            raise UsageError(f"run {current.name} cannot be redriven: {reason}")
        token = hashlib.sha256(f"{current.arn}#{current.redrive_count}".encode()).hexdigest()[:64]
        self._sfn.redrive_execution(executionArn=current.arn, clientToken=token)
        return dataclasses.replace(
            current,
            status="RUNNING",
            stop_date=None,
            redrive_count=current.redrive_count + 1,
            error=None,
            cause=None,
            failure=None,
            redrive_status=None,
            redrive_status_reason=None,
        )


def _json_or_none(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None

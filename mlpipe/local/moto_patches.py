"""Where the harness meets moto's Step Functions interpreter (moto 5.2.5, pinned exactly).

moto executes a state machine with its ASL interpreter when `execute_state_machine` is on. The definition is
run as synthesized; the harness changes nothing in it. It intercepts at the service-integration boundary
only, by installing (for the life of a `Patches` context) task classes of its own for the integrations that
moto cannot run as the pipeline needs:

- Lambda (a function ARN as Resource): the call goes to an in-process `LambdaInvoker` instead of moto's
  Lambda (which needs Docker); a service error (`LambdaServiceError`) becomes `Lambda.<code>`, as in AWS
  (moto reports a ClientError of this integration as the bare error `Exception`).
- `batch:submitJob.sync`: moto passes the Step Functions-cased parameters to boto3 unconverted (botocore
  then fails with KeyError 'JobName'), cannot run a container without Docker, returns camelCase
  descriptions and never applies the retry strategy. The harness's `BatchService` runs it instead.
- `glue:startJobRun.sync`: the job run goes to the Glue executor (moto's Glue would only flip a state).
- `elasticmapreduce:createCluster.sync | addStep.sync | terminateCluster.sync`: unsupported in moto
  (RuntimeError "Unsupported .sync callback procedure"); the harness creates and terminates the cluster in
  moto's EMR and runs steps with the EMR executor (moto's steps never complete).
- Retry waits: moto sleeps `time.sleep(interval)` between attempts (with BackoffRate, MaxDelaySeconds and
  JitterStrategy FULL applied). The harness records each wait and sleeps `wait * time_scale` instead.
- Definition checks: moto parses a definition on every create_state_machine to validate it; the harness
  validates each definition text once per process (a text that validated once is valid).
- Definition parsing: moto parses the definition again for every execution; the harness keeps the syntax
  tree of each valid definition text, and each execution builds its own components from it.
- SNS message signatures: moto generates a new RSA key for every message it delivers to a subscription;
  the harness has it sign them all with one key per process.

`sns:publish` and every other state type (Pass, Choice, Parallel, Map, Fail, intrinsic functions) are moto's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from moto.sns.models import Subscription
from moto.stepfunctions.parser.api import (
    HistoryEventType,
    LambdaFunctionFailedEventDetails,
    TaskFailedEventDetails,
)
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
    lambda_eval_utils,
    state_task_factory,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
    LambdaResource,
    Resource,
    ResourceCondition,
    ServiceResource,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch import (
    StateTaskServiceBatch,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
    StateTaskServiceCallback,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
    StateTaskServiceGlue,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda
from moto.stepfunctions.parser.asl.component.state.fail import state_fail
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails as _EventDetails
from moto.stepfunctions.parser.asl.parse import preprocessor
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.utils.encoding import to_json_str
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from mlpipe.local.lambdas import LambdaInvoker, LambdaServiceError
from mlpipe.local.services import BatchService, EmrService, GlueService, JobFailed, ServiceError


@dataclass
class RetryWait:
    """One wait between two attempts of a state, as the definition's Retry computed it."""

    state: str
    seconds: float


@dataclass
class Services:
    """What the patched integrations talk to while a harness is active."""

    lambdas: LambdaInvoker
    batch: BatchService
    glue: GlueService
    emr: EmrService
    time_scale: float = 0.0
    waits: list[RetryWait] = field(default_factory=list)


# moto types EventDetails as a total TypedDict; it is used, as moto itself uses it, with one key.
EventDetails: Any = _EventDetails

_active: Services | None = None
_install_lock = threading.Lock()
_current_state = threading.local()


def _services() -> Services:
    if _active is None:
        raise RuntimeError("the local harness is not active (use mlpipe.local.LocalPipeline as a context)")
    return _active


def _client_error(operation: str, code: str, message: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "local"},
        },
        operation,
    )


def _until_done(task: Any, env: Any, run: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """The `.sync` resolver of a job: runs it to completion; a failed job fails the task (States.TaskFailed)."""

    def resolve() -> dict[str, Any]:
        try:
            return run()
        except JobFailed as failed:
            raise _task_failed(task, env, failed.description) from None

    return resolve


def _task_failed(task: Any, env: Any, description: Any) -> FailureEventException:
    """States.TaskFailed with the job's description as the cause, as a `.sync` integration reports it."""
    return FailureEventException(
        FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    resource=task._get_sfn_resource(),
                    resourceType=task._get_sfn_resource_type(),
                    error=StatesErrorNameType.StatesTaskFailed.to_name(),
                    cause=to_json_str(description),
                )
            ),
        )
    )


# moto's `.sync` path calls `interrupt_all()` on the task-token endpoint, which exists only when the task
# supports the task-token pattern: list it (the harness's tasks still run `.sync` only).
_SYNC_PATTERNS: set[Any] = {ResourceCondition.Sync, ResourceCondition.WaitForTaskToken}


class _SkipWhenStopped:
    """moto keeps running a state of a Parallel branch or Map iteration that was stopped because a sibling
    failed; its components then "prune" (evaluate to nothing), the task pops a stack it never pushed and
    records a spurious States.Runtime TaskFailed in the history. A stopped branch starts no task here."""

    def _eval_execution(self, env: Any) -> None:
        if not env.is_running():
            env.stack.append(None)
            return
        super()._eval_execution(env)  # type: ignore[misc]

    def _eval_sync(
        self,
        env: Any,
        sync_resolver: Callable[[], Any] | None,
        timeout_seconds: Any,
        callback_endpoint: Any,
        heartbeat_endpoint: Any,
    ) -> Any:
        """The harness's `.sync` resolvers return the finished job on their first call: no polling, and no
        task-token listener thread (moto starts one whenever the task lists that pattern)."""
        return sync_resolver() if sync_resolver is not None and env.is_running() else None


# ---- Lambda ---------------------------------------------------------------------------------------------
def _invoke_lambda_function(
    parameters: dict[str, Any], region: str, state_credentials: Any
) -> dict[str, Any]:
    """Replaces moto's `lambda_eval_utils._invoke_lambda_function` (used by both Lambda integrations)."""
    try:
        invocation = _services().lambdas.invoke(
            str(parameters["FunctionName"]), parameters.get("Payload") or b""
        )
    except LambdaServiceError as exc:
        raise _client_error("Invoke", exc.code, exc.message, exc.status) from exc
    response: dict[str, Any] = {
        "StatusCode": 200,
        "Payload": invocation.payload,
        "ExecutedVersion": "$LATEST",
    }
    if invocation.function_error:
        response["FunctionError"] = invocation.function_error
    return response


class _LambdaTask(_SkipWhenStopped, StateTaskLambda):
    """A function ARN as Resource; a service error is `Lambda.<code>` (AWS's name), not `Exception`."""

    def _from_error(self, env: Any, ex: Exception) -> Any:
        if isinstance(ex, ClientError):
            error = f"Lambda.{ex.response['Error']['Code']}"
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(error),
                event_type=HistoryEventType.LambdaFunctionFailed,
                event_details=EventDetails(
                    lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(
                        error=error, cause=ex.response["Error"]["Message"]
                    )
                ),
            )
        return super()._from_error(env, ex)


# ---- Batch ----------------------------------------------------------------------------------------------
class _BatchTask(_SkipWhenStopped, StateTaskServiceBatch):
    def _get_supported_parameters(self) -> set[str] | None:
        # moto's list predates fair share; Step Functions passes a fair-share queue's parameters on.
        supported = super()._get_supported_parameters()
        return None if supported is None else supported | {"ShareIdentifier", "SchedulingPriorityOverride"}

    def _eval_service_task(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> None:
        if self.resource.condition != ResourceCondition.Sync:
            raise RuntimeError(
                f"the local harness runs batch:submitJob.sync only, not {self.resource.resource_arn}"
            )
        try:
            env.stack.append(_services().batch.submit(normalised_parameters))
        except ServiceError as exc:
            raise _client_error("SubmitJob", exc.code, exc.message) from exc

    def _build_sync_resolver(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> Callable[[], Any]:
        job_id = env.stack.pop()["JobId"]
        return _until_done(self, env, lambda: _services().batch.run_to_completion(job_id))


# ---- Glue -----------------------------------------------------------------------------------------------
class _GlueTask(_SkipWhenStopped, StateTaskServiceGlue):
    def __init__(self) -> None:
        # moto's Glue task supports only `.sync`, so it has no callback endpoint, and its `.sync` path ends in
        # `None.interrupt_all()` (States.Runtime). With the task-token pattern listed, the endpoint exists.
        StateTaskServiceCallback.__init__(self, supported_integration_patterns=_SYNC_PATTERNS)

    def _handle_start_job_run(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        computed_credentials: Any,
    ) -> None:
        try:
            env.stack.append(_services().glue.start(normalised_parameters))
        except ServiceError as exc:
            raise _client_error("StartJobRun", exc.code, exc.message) from exc

    def _sync_to_start_job_run(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> Callable[[], Any]:
        run_id = env.stack.pop()["JobRunId"]
        return _until_done(self, env, lambda: _services().glue.run_to_completion(run_id))


# ---- EMR ------------------------------------------------------------------------------------------------
_EMR_PARAMETERS: dict[str, set[str]] = {
    "createcluster": {
        "AdditionalInfo",
        "AmiVersion",
        "Applications",
        "AutoScalingRole",
        "AutoTerminationPolicy",
        "BootstrapActions",
        "Configurations",
        "CustomAmiId",
        "EbsRootVolumeSize",
        "Instances",
        "JobFlowRole",
        "KerberosAttributes",
        "LogEncryptionKmsKeyId",
        "LogUri",
        "ManagedScalingPolicy",
        "Name",
        "NewSupportedProducts",
        "OSReleaseLabel",
        "PlacementGroupConfigs",
        "ReleaseLabel",
        "RepoUpgradeOnBoot",
        "ScaleDownBehavior",
        "SecurityConfiguration",
        "ServiceRole",
        "StepConcurrencyLevel",
        "Steps",
        "SupportedProducts",
        "Tags",
        "VisibleToAllUsers",
    },
    "addstep": {"ClusterId", "Step", "ExecutionRoleArn"},
    "terminatecluster": {"ClusterId"},
}


class _EmrTask(_SkipWhenStopped, StateTaskServiceCallback):
    def __init__(self) -> None:
        super().__init__(supported_integration_patterns=_SYNC_PATTERNS)

    def _get_supported_parameters(self) -> set[str] | None:
        return _EMR_PARAMETERS.get(self.resource.api_action.lower())

    def _from_error(self, env: Any, ex: Exception) -> Any:
        if isinstance(ex, ClientError):
            error = f"EMR.{ex.response['Error']['Code']}"
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(error),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=error,
                        cause=ex.response["Error"]["Message"],
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                    )
                ),
            )
        return super()._from_error(env, ex)

    def _eval_service_task(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> None:
        if self.resource.condition != ResourceCondition.Sync:
            raise RuntimeError(
                f"the local harness runs EMR .sync tasks only, not {self.resource.resource_arn}"
            )
        emr = _services().emr
        action = self.resource.api_action.lower()
        if action == "createcluster":
            env.stack.append(emr.create_cluster(normalised_parameters))
        elif action == "addstep":
            env.stack.append(emr.add_step(normalised_parameters))
        elif action == "terminatecluster":
            env.stack.append(emr.terminate_cluster(normalised_parameters))
        else:
            raise RuntimeError(f"the local harness does not run {self.resource.resource_arn}")

    def _build_sync_resolver(
        self,
        env: Any,
        resource_runtime_part: Any,
        normalised_parameters: dict[str, Any],
        state_credentials: Any,
    ) -> Callable[[], Any]:
        submitted = env.stack.pop()
        if self.resource.api_action.lower() != "addstep":
            # The cluster is created (WAITING) or terminated as soon as moto answers.
            return lambda: submitted or {"ClusterId": normalised_parameters.get("ClusterId")}
        return _until_done(self, env, lambda: _services().emr.run_to_completion(submitted["StepId"]))


# ---- States.* errors out of Fail states, Parallel branches and Map iterations -----------------------------
class _ReservedErrorName(ErrorName):
    """A `States.*` error name that moto does not know as one of its own."""


def _error_name(error_name: str | None) -> Any:
    """moto wraps the error of a Fail state, of a failed Parallel branch and of a failed Map iteration in
    CustomErrorName, which refuses `States.*` names: the ValueError turns the execution into States.Runtime.
    In AWS a Fail state may re-raise a caught States.TaskFailed through ErrorPath (what the pipeline's branch
    Fail states do), and a branch or iteration fails with its error as it is; keep the name."""
    if error_name is not None and error_name.startswith("States."):
        try:
            return StatesErrorName.from_name(error_name)
        except Exception:
            return _ReservedErrorName(error_name)
    return CustomErrorName(error_name)


# ---- installation ---------------------------------------------------------------------------------------
_original_state_task_for = state_task_factory.state_task_for


def _state_task_for(resource: Resource) -> Any:
    if isinstance(resource, LambdaResource):
        return _LambdaTask()  # type: ignore[no-untyped-call]
    if isinstance(resource, ServiceResource):
        service: Any = {"batch": _BatchTask, "glue": _GlueTask, "elasticmapreduce": _EmrTask}.get(
            resource.service_name
        )
        if service is not None:
            return service()
    return _original_state_task_for(resource)


class _ScaledTime:
    """Stands in for the `time` module inside moto's retrier: records each wait, sleeps it scaled."""

    @staticmethod
    def sleep(seconds: float) -> None:
        services = _services()
        services.waits.append(RetryWait(getattr(_current_state, "name", "?"), float(seconds)))
        if services.time_scale > 0:
            import time

            time.sleep(seconds * services.time_scale)


_original_retrier_eval = retrier_decl.RetrierDecl._eval_body


def _retrier_eval(self: Any, env: Any) -> None:
    _current_state.name = env.states.context_object.context_object_data.get("State", {}).get("Name", "?")
    _original_retrier_eval(self, env)


# moto validates a definition on every create_state_machine by parsing it with its ANTLR grammar, and the
# harness creates the same state machine for every pipeline it opens: a text that validated once is valid.
_original_validate_definition = StepFunctionsParserBackend._validate_definition
_validated: set[str] = set()


def _validate_definition_once(definition: str) -> None:
    if definition not in _validated:
        _original_validate_definition(definition=definition)  # raises InvalidDefinition: not remembered
        _validated.add(definition)


# moto parses a definition again for every execution it starts. The syntax tree is only read once built, so
# it is kept per (valid) definition text; each execution still builds its own evaluation components from it.
_original_parse = AmazonStateLanguageParser.parse
_trees: dict[str, Any] = {}


def _parse_keeping_the_tree(definition: str) -> tuple[Any, Any]:
    tree = _trees.get(definition)
    if tree is None:
        program, tree = _original_parse(definition)  # a syntax error raises: nothing is kept
        _trees[definition] = tree
        return program, tree
    return preprocessor.Preprocessor().visit(tree), tree


# moto signs each message it delivers to an SNS subscription with a new 2048-bit RSA key. Its signing
# certificate is self-made either way, so one key per process signs every message.
_original_private_key = Subscription.private_key
_signing_key: list[Any] = []


def _private_key_once(self: Subscription) -> Any:
    if not _signing_key:  # two threads may both make one here: either key signs as well
        _signing_key.append(_original_private_key(self))
    return _signing_key[0]


@contextmanager
def definitions_parsed_once() -> Iterator[None]:
    """moto's state machine definitions parsed once per text and process: by the validation of each
    create_state_machine, and for every execution (which still gets components of its own)."""
    from unittest import mock

    with (
        mock.patch.object(
            StepFunctionsParserBackend, "_validate_definition", staticmethod(_validate_definition_once)
        ),
        mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(_parse_keeping_the_tree)),
    ):
        yield


@contextmanager
def installed(services: Services) -> Iterator[Services]:
    """Install the harness's integrations into moto's interpreter for the duration of the context."""
    global _active
    from unittest import mock

    if not _install_lock.acquire(blocking=False):
        raise RuntimeError("another local harness is active in this process; run one at a time")
    try:
        with ExitStack() as stack:
            stack.enter_context(mock.patch.object(preprocessor, "state_task_for", _state_task_for))
            stack.enter_context(
                mock.patch.object(lambda_eval_utils, "_invoke_lambda_function", _invoke_lambda_function)
            )
            stack.enter_context(mock.patch.object(retrier_decl, "time", _ScaledTime))
            for module in (state_fail, branches_decl, iteration_worker):
                stack.enter_context(mock.patch.object(module, "CustomErrorName", _error_name))
            stack.enter_context(mock.patch.object(retrier_decl.RetrierDecl, "_eval_body", _retrier_eval))
            stack.enter_context(definitions_parsed_once())
            stack.enter_context(mock.patch.object(Subscription, "private_key", _private_key_once))
            _active = services
            try:
                yield services
            finally:
                _active = None
    finally:
        _install_lock.release()

"""Batch training jobs: check a request against the job definition and the queue's compute, submit it,
then follow, read the logs of, or cancel the job.

    from mlpipe.client import Aws, Deployment, TrainingJobs, TrainingRequest
    jobs = TrainingJobs(Deployment(Aws(region="eu-west-1")))
    job = jobs.submit(TrainingRequest(input="s3://<curated>/features/<workload>/r1/manifest.json",
                                      output="s3://<artifacts>/runs/<workload>/r1/candidates/a/", gpus=1))

Every check runs before SubmitJob; a request the queue cannot serve (too many GPUs for its instance types,
a multi-node job on Spot only, more nodes than the job definition's node ranges cover) is a UsageError.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlpipe.client import run_input
from mlpipe.client.discovery import Deployment
from mlpipe.client.errors import NotFound, UsageError, is_code
from mlpipe.instances import GPU_INSTANCES, GpuInstance

TERMINAL = frozenset({"SUCCEEDED", "FAILED"})
CANCELLABLE = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"})
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
S3_OBJECT = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$")
S3_PREFIX = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/(\S*/)?$")
QUEUE_ALIASES = {"spot-first": "SpotFirstQueue", "on-demand": "OnDemandQueue"}
MAX_NODES = 16  # the execution-input schema's bound on candidates[].nodes
MAX_GPUS = 8  # the largest GPU count of one instance in mlpipe.instances
MAX_DEPENDENCIES = 20
MAX_TAGS = 50
IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_:./#@-]{0,254}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = frozenset({"MLPIPE_INPUT", "MLPIPE_OUTPUT", "MLPIPE_CHECKPOINT", "MLPIPE_HYPERPARAMETERS"})
# What RegisterJobDefinition takes of a described definition; the rest (ARN, revision, status) is Batch's.
_REGISTERED_KEYS = ("type", "parameters", "schedulingPriority", "containerProperties", "nodeProperties",
                    "retryStrategy", "propagateTags", "timeout", "platformCapabilities",
                    "consumableResourceProperties", "tags")  # fmt: skip


@dataclass(frozen=True)
class TrainingRequest:
    """One training job. Unset values come from the deployment (job definition, queue) or defaults."""

    input: str
    """What the training code reads (MLPIPE_INPUT): a feature manifest
    (`s3://<curated>/features/<run_id>/manifest.json`) or a data prefix."""
    output: str
    """The output prefix: model/ and metrics.json go under it."""
    checkpoint: str | None = None
    """The checkpoint prefix; default `s3://<artifacts bucket>/checkpoints/<workload>/<job name>/`."""
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    nodes: int = 1
    """More than 1: a multi-node parallel (DDP) job on the multi-node job definition."""
    gpus: int | None = None
    """GPUs per node; default: the job definition's."""
    queue: str | None = None
    """`spot-first`, `on-demand`, a queue name or ARN; default spot-first (single node) or on-demand."""
    job_definition: str | None = None
    """A name, name:revision or ARN; default: the deployment's training or multi-node job definition."""
    name: str | None = None
    retry_attempts: int | None = None
    timeout_minutes: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    """Job ids this job waits for."""
    image: str | None = None
    """Another container image: the job runs on a revision of the job definition with this image (registered
    under `<definition name>-custom`), as the workload's job role, under its vCPU cap."""
    command: tuple[str, ...] = ()
    """Another command for the container(s); it learns its locations from MLPIPE_INPUT, MLPIPE_OUTPUT,
    MLPIPE_CHECKPOINT and MLPIPE_HYPERPARAMETERS."""
    environment: Mapping[str, str] = field(default_factory=dict)
    """More environment variables for the container(s)."""


@dataclass(frozen=True)
class ComputeEnvironment:
    name: str
    spot: bool
    max_vcpus: int
    instance_types: tuple[str, ...]

    def gpu_instances(self) -> tuple[list[GpuInstance], list[str]]:
        """The catalog entries of this environment's instance types (families expanded), and the types the
        catalog does not know."""
        known, unknown = [], []
        for name in self.instance_types:
            if name in GPU_INSTANCES:
                known.append(GPU_INSTANCES[name])
            elif "." not in name and (
                family := [i for i in GPU_INSTANCES.values() if i.name.startswith(name + ".")]
            ):
                known.extend(family)
            else:
                unknown.append(name)
        return known, unknown


@dataclass(frozen=True)
class Submission:
    """What was (or, with dry_run, would be) submitted."""

    request: dict[str, Any]
    """The SubmitJob request."""
    job_id: str | None = None
    job_arn: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "job_arn": self.job_arn,
            "job_name": self.request["jobName"],
            "request": self.request,
        }


@dataclass(frozen=True)
class Job:
    job_id: str
    name: str
    status: str
    status_reason: str | None
    queue: str | None
    job_definition: str | None
    created_at: datetime | None
    started_at: datetime | None
    stopped_at: datetime | None
    exit_code: int | None
    attempts: int
    parameters: dict[str, str]
    log_group: str | None
    log_stream: str | None
    array_summary: dict[str, int] | None
    num_nodes: int | None
    raw: dict[str, Any]

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "job_id": self.job_id,
            "job_name": self.name,
            "status": self.status,
            "status_reason": self.status_reason,
            "queue": self.queue,
            "job_definition": self.job_definition,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "stopped_at": _iso(self.stopped_at),
            "exit_code": self.exit_code,
            "attempts": self.attempts,
            "parameters": self.parameters,
            "log_group": self.log_group,
            "log_stream": self.log_stream,
        }
        if self.array_summary is not None:
            document["array"] = self.array_summary
        if self.num_nodes is not None:
            document["nodes"] = self.num_nodes
        return document


class TrainingJobs:
    """The deployment's Batch training, seen from a user's seat."""

    def __init__(
        self, deployment: Deployment, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.deployment = deployment
        self._now = now

    @property
    def _batch(self) -> Any:
        return self.deployment.aws.client("batch")

    # ---- submitting ----------------------------------------------------------------------------------
    def build(self, request: TrainingRequest) -> dict[str, Any]:
        """The SubmitJob request, after every check (offline checks first, then the job definition and the
        queue's compute environments)."""
        _check_offline(request)
        multi_node = request.nodes > 1
        name = request.name or f"mlpipe-train-{self._now():%Y%m%d-%H%M%S}"
        definition = self.job_definition(
            request.job_definition
            or self.deployment.output("MultiNodeJobDefinition" if multi_node else "TrainingJobDefinition")
        )
        if request.image is not None:
            definition = _with_image(definition, request.image)
        queue = self.job_queue(request.queue or ("on-demand" if multi_node else "spot-first"))
        environments = self.compute_environments(queue)
        _check_vcpu_cap(definition, request.nodes, self._consumable_total)
        checkpoint = request.checkpoint or (
            f"s3://{self.deployment.output('ArtifactsBucket')}/checkpoints/{self.deployment.workload}/{name}/"
        )
        if not S3_PREFIX.match(checkpoint):
            raise UsageError(f"--checkpoint {checkpoint!r} must be an s3:// prefix ending in '/'")
        self._check_reach(request, checkpoint)
        submit: dict[str, Any] = {
            "jobName": name,
            "jobQueue": queue["jobQueueArn"],
            "jobDefinition": definition["jobDefinitionArn"],
            **({"registerJobDefinition": definition["registration"]} if "registration" in definition else {}),
            "parameters": {
                "input": request.input,
                "output": request.output,
                "checkpoint": checkpoint,
                "hyperparameters": json.dumps(
                    dict(request.hyperparameters), sort_keys=True, separators=(",", ":")
                ),
            },
            "tags": {"mlpipe:submitted-by": "mlpipe-cli", **request.tags},
        }
        missing = sorted(set(submit["parameters"]) - set(definition.get("parameters", {})))
        if missing:
            raise UsageError(
                f"job definition {definition['jobDefinitionName']} takes no parameter(s) {', '.join(missing)}: "
                "it is not an mlpipe training job definition"
            )
        if multi_node:
            submit["nodeOverrides"] = _check_multi_node(request, definition, queue, environments)
        else:
            gpus = _check_single_node(request, definition, queue, environments)
            if request.gpus is not None:
                submit["containerOverrides"] = {"resourceRequirements": [{"type": "GPU", "value": str(gpus)}]}
        if request.retry_attempts is not None:
            retry: dict[str, Any] = {"attempts": request.retry_attempts}
            evaluate = definition.get("retryStrategy", {}).get("evaluateOnExit")
            if evaluate:  # keep the definition's rules (retry Spot reclaims only)
                retry["evaluateOnExit"] = evaluate
            submit["retryStrategy"] = retry
        if request.timeout_minutes is not None:
            submit["timeout"] = {"attemptDurationSeconds": request.timeout_minutes * 60}
        if request.depends_on:
            submit["dependsOn"] = [{"jobId": d} for d in request.depends_on]
        if queue.get("schedulingPolicyArn"):  # a fair-share queue: the workload's share, and a priority
            submit["shareIdentifier"] = self.deployment.output("ShareIdentifier")
            if "schedulingPriority" not in definition:
                submit["schedulingPriorityOverride"] = 0
        if request.command or request.environment:
            _override_container(submit, request, multi_node)
        return submit

    def _check_reach(self, request: TrainingRequest, checkpoint: str) -> None:
        """The job role reaches only the workload's prefixes: a location outside them would fail the job
        after its GPUs were paid for."""
        workload = self.deployment.workload
        artifacts = self.deployment.output("ArtifactsBucket")
        reach = {
            "--input": (request.input, [self.deployment.output("JobInput")]),
            "--output-prefix": (request.output, [f"s3://{artifacts}/runs/{workload}/"]),
            "--checkpoint": (checkpoint, [f"s3://{artifacts}/checkpoints/{workload}/"]),
        }
        for flag, (uri, prefixes) in reach.items():
            if not uri.startswith(tuple(prefixes)):
                raise UsageError(
                    f"{flag} {uri} is outside what the job role of workload {workload!r} reaches: {' or '.join(prefixes)}"
                )

    def _consumable_total(self, arn: str) -> int:
        return int(self._batch.describe_consumable_resource(consumableResource=arn)["totalQuantity"])

    def submit(self, request: TrainingRequest, *, dry_run: bool = False) -> Submission:
        built = self.build(request)
        registration = built.pop("registerJobDefinition", None)
        if dry_run:
            return Submission({**built, **({"registerJobDefinition": registration} if registration else {})})
        if registration is not None:  # the image's revision first: the job runs on it
            registered = self._batch.register_job_definition(**registration)
            built["jobDefinition"] = registered["jobDefinitionArn"]
        response = self._batch.submit_job(**built)
        return Submission(built, job_id=response["jobId"], job_arn=response.get("jobArn"))

    def job_definition(self, ref: str) -> dict[str, Any]:
        try:
            found = self._batch.describe_job_definitions(jobDefinitions=[ref])["jobDefinitions"]
        except Exception as exc:
            if is_code(exc, "ClientException"):
                raise NotFound(f"job definition {ref!r} not found") from None
            raise
        active = [d for d in found if d.get("status", "ACTIVE") == "ACTIVE"]
        if not active:
            raise NotFound(f"job definition {ref!r} not found (or not ACTIVE)")
        newest: dict[str, Any] = max(active, key=lambda d: int(d.get("revision", 0)))
        return newest

    def job_queue(self, ref: str) -> dict[str, Any]:
        if ref in QUEUE_ALIASES:
            ref = self.deployment.output(QUEUE_ALIASES[ref])
        try:
            queues = self._batch.describe_job_queues(jobQueues=[ref])["jobQueues"]
        except Exception as exc:
            if is_code(exc, "ClientException"):
                raise NotFound(f"job queue {ref!r} not found") from None
            raise
        if not queues:
            aliases = ", ".join(QUEUE_ALIASES)
            raise NotFound(f"job queue {ref!r} not found (give {aliases}, a queue name or a queue ARN)")
        queue: dict[str, Any] = queues[0]
        if queue.get("state") != "ENABLED":
            raise UsageError(f"job queue {queue['jobQueueName']} is {queue.get('state')}: it takes no jobs")
        return queue

    def compute_environments(self, queue: dict[str, Any]) -> list[ComputeEnvironment]:
        order = sorted(queue.get("computeEnvironmentOrder", []), key=lambda o: o["order"])
        arns = [o["computeEnvironment"] for o in order]
        if not arns:
            raise UsageError(f"job queue {queue['jobQueueName']} has no compute environment")
        described = self._batch.describe_compute_environments(computeEnvironments=arns)["computeEnvironments"]
        environments = []
        for item in described:
            resources = item.get("computeResources", {})
            if item.get("state", "ENABLED") != "ENABLED":
                continue
            environments.append(
                ComputeEnvironment(
                    name=item["computeEnvironmentName"],
                    spot=resources.get("type") in ("SPOT", "FARGATE_SPOT"),
                    max_vcpus=int(resources.get("maxvCpus", 0)),
                    instance_types=tuple(resources.get("instanceTypes", ())),
                )
            )
        if not environments:
            raise UsageError(f"job queue {queue['jobQueueName']} has no ENABLED compute environment")
        return environments

    # ---- looking -------------------------------------------------------------------------------------
    def describe(self, job_id: str) -> Job:
        _check_job_id(job_id)
        jobs = self._batch.describe_jobs(jobs=[job_id])["jobs"]
        if not jobs:
            raise NotFound(f"no Batch job {job_id!r} in {self.deployment.aws.region}")
        return self._job(jobs[0])

    def _job(self, raw: dict[str, Any]) -> Job:
        container = raw.get("container", {})
        attempts = raw.get("attempts", [])
        stream = container.get("logStreamName")
        if not stream and attempts:
            stream = attempts[-1].get("container", {}).get("logStreamName")
        options = container.get("logConfiguration", {}).get("options", {})
        group = options.get("awslogs-group")
        num_nodes = raw.get("nodeProperties", {}).get("numNodes")
        exit_code = container.get("exitCode")
        if exit_code is None and attempts:
            exit_code = attempts[-1].get("container", {}).get("exitCode")
        summary = raw.get("arrayProperties", {}).get("statusSummary")
        return Job(
            job_id=raw["jobId"],
            name=raw["jobName"],
            status=raw["status"],
            status_reason=raw.get("statusReason"),
            queue=raw.get("jobQueue"),
            job_definition=raw.get("jobDefinition"),
            created_at=_from_millis(raw.get("createdAt")),
            started_at=_from_millis(raw.get("startedAt")),
            stopped_at=_from_millis(raw.get("stoppedAt")),
            exit_code=exit_code,
            attempts=len(attempts),
            parameters=dict(raw.get("parameters", {})),
            log_group=group,
            log_stream=stream,
            array_summary={k: v for k, v in summary.items() if v} if summary else None,
            num_nodes=num_nodes,
            raw=raw,
        )

    def log_group(self, job: Job) -> str:
        """The job's log group: from its log configuration, else the Batch stack's JobLogGroup output."""
        if job.log_group:
            return job.log_group
        try:
            return self.deployment.output("JobLogGroup")
        except NotFound:
            return "/aws/batch/job"  # Batch's default

    def log_events(
        self, job: Job, *, node: int | None = None, position: dict[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """The log events of the job's stream (a multi-node job: of `node`, default the main node), from the
        beginning, or after `position` (a dict this updates: pass the same one again to read on)."""
        if job.num_nodes and node is None:
            node = int(job.raw.get("nodeProperties", {}).get("mainNode", 0))
        if node is not None:
            job = self.describe(f"{job.job_id}#{node}")
        if not job.log_stream:
            return
        position = {} if position is None else position
        arguments: dict[str, Any] = {
            "logGroupName": self.log_group(job),
            "logStreamName": job.log_stream,
            "startFromHead": True,
        }
        logs = self.deployment.aws.client("logs")
        while True:
            if position.get("token"):
                arguments["nextToken"] = position["token"]
            try:
                response = logs.get_log_events(**arguments)
            except Exception as exc:
                if is_code(exc, "ResourceNotFoundException"):
                    return  # the stream does not exist yet
                raise
            yield from response.get("events", [])
            token = response.get("nextForwardToken")
            if not token or token == position.get("token"):
                return
            position["token"] = token

    def follow(
        self,
        job_id: str,
        *,
        on_status: Callable[[Job], None] | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
        poll_seconds: float = 10.0,
        timeout_seconds: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Job:
        """Poll until the job ends; report status changes and new log events as they come."""
        deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
        last_status = None
        position: dict[str, str] = {}
        while True:
            job = self.describe(job_id)
            if job.status != last_status:
                last_status = job.status
                if on_status is not None:
                    on_status(job)
            if on_log is not None and job.array_summary is None:
                for event in self.log_events(job, position=position):
                    on_log(event)
            if job.status in TERMINAL or (deadline is not None and time.monotonic() >= deadline):
                return job
            sleep(poll_seconds)

    def cancel(self, job_id: str, *, reason: str) -> Job:
        """TerminateJob (cancels a job not yet started, stops a running one)."""
        job = self.describe(job_id)
        if job.status not in CANCELLABLE:
            raise UsageError(f"job {job.name} ({job_id}) has already ended ({job.status}): nothing to cancel")
        self._batch.terminate_job(jobId=job.job_id, reason=reason)
        return self.describe(job_id)


# ---- checks ----------------------------------------------------------------------------------------------
def _check_offline(request: TrainingRequest) -> None:
    """What can be checked without AWS."""
    if not S3_OBJECT.match(request.input):
        raise UsageError(
            f"--input {request.input!r} must be an s3:// URI (a feature manifest or a data prefix)"
        )
    if not S3_PREFIX.match(request.output):
        raise UsageError(f"--output-prefix {request.output!r} must be an s3:// prefix ending in '/'")
    run_input.validate_hyperparameters(dict(request.hyperparameters), source="--hyperparameters")
    _in_range("--nodes", request.nodes, 1, MAX_NODES)
    if request.gpus is not None:
        _in_range("--gpus", request.gpus, 1, MAX_GPUS)
    if request.retry_attempts is not None:
        _in_range("--retry-attempts", request.retry_attempts, 1, 10)
    if request.timeout_minutes is not None:
        _in_range("--timeout-minutes", request.timeout_minutes, 1, 14 * 24 * 60)
    if request.name is not None and not JOB_NAME.match(request.name):
        raise UsageError(
            f"--name {request.name!r} is not a Batch job name (1 to 128 letters, digits, '-' and '_', starting "
            "with a letter or digit)"
        )
    if len(request.tags) > MAX_TAGS - 1:
        raise UsageError(f"--tag: at most {MAX_TAGS - 1} tags")
    for key, value in request.tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256 or key.lower().startswith("aws:"):
            raise UsageError(
                f"--tag {key}={value}: keys are 1 to 128 characters not starting with 'aws:', values at most 256"
            )
    if len(request.depends_on) > MAX_DEPENDENCIES:
        raise UsageError(f"--depends-on: at most {MAX_DEPENDENCIES} dependencies")
    for dependency in request.depends_on:
        _check_job_id(dependency)
    # RegisterJobDefinition's image: up to 255 letters, digits, '-', '_', ':', '.', '/', '#' (and '@' of a digest)
    if request.image is not None and not IMAGE.match(request.image):
        raise UsageError(
            f"--image {request.image!r} is not an image reference (up to 255 letters, digits and -_:./#@)"
        )
    if any(part == "" for part in request.command):
        raise UsageError("--command: Batch refuses an empty argument in a command override")
    for name in request.environment:
        if not ENV_NAME.match(name):
            raise UsageError(f"--job-env {name}: not an environment variable name (letters, digits, '_')")
        if name.startswith("AWS_BATCH"):
            raise UsageError(f"--job-env {name}: names starting with AWS_BATCH are reserved for Batch")
        if request.command and name in RESERVED_ENV:
            raise UsageError(
                f"--job-env {name}: mlpipe sets it for --command from --input, --output-prefix, ..."
            )


def _check_vcpu_cap(definition: Mapping[str, Any], nodes: int, total_of: Callable[[str], int]) -> None:
    """A job that holds more of its workload's vCPU cap (a Batch consumable resource) than the cap has would
    wait RUNNABLE for ever: nothing cancels a job waiting for a consumable resource."""
    holders = [definition, *definition.get("nodeProperties", {}).get("nodeRangeProperties", [])]
    needed: dict[str, int] = {}
    for holder in holders:  # a multi-node job holds its quantity on every node
        count = nodes if holder is not definition else 1
        for item in holder.get("consumableResourceProperties", {}).get("consumableResourceList", []):
            needed[item["consumableResource"]] = (
                needed.get(item["consumableResource"], 0) + item["quantity"] * count
            )
    for arn, quantity in needed.items():
        total = total_of(arn)
        if quantity > total:
            name = arn.rsplit("/", 1)[-1]
            raise UsageError(
                f"the job holds {quantity} of {name}, which has {total} (the workload's vCPU cap, "
                "batch.workload_vcpu_limits): it would never start; ask for fewer nodes or a higher cap"
            )


def _with_image(definition: dict[str, Any], image: str) -> dict[str, Any]:
    """The job definition as it will be registered with `image`: same roles, resources, retries and vCPU cap."""
    registration: dict[str, Any] = {k: definition[k] for k in _REGISTERED_KEYS if k in definition}
    # CloudFormation's own tags (aws:...) come back with the definition, but no one may set them.
    tags = {k: v for k, v in registration.pop("tags", {}).items() if not k.lower().startswith("aws:")}
    if tags:
        registration["tags"] = tags
    registration["jobDefinitionName"] = f"{definition['jobDefinitionName'][:121]}-custom"
    if "containerProperties" in registration:
        registration["containerProperties"] = {**registration["containerProperties"], "image": image}
    else:
        nodes = registration["nodeProperties"]
        ranges = [
            {**r, "container": {**r["container"], "image": image}} for r in nodes["nodeRangeProperties"]
        ]
        registration["nodeProperties"] = {**nodes, "nodeRangeProperties": ranges}
    return {**definition, "jobDefinitionArn": "(registered at submission)", "registration": registration}


def _override_container(submit: dict[str, Any], request: TrainingRequest, multi_node: bool) -> None:
    """--command and --env as container overrides. A command of its own does not see the definition's
    Ref:: parameters, so the job's locations also come as MLPIPE_* variables."""
    environment = dict(request.environment)
    if request.command:
        parameters = submit["parameters"]
        environment.update({
            "MLPIPE_INPUT": parameters["input"],
            "MLPIPE_OUTPUT": parameters["output"],
            "MLPIPE_CHECKPOINT": parameters["checkpoint"],
            "MLPIPE_HYPERPARAMETERS": parameters["hyperparameters"],
        })  # fmt: skip
    overrides: dict[str, Any] = {
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())]
    }
    if request.command:
        overrides["command"] = list(request.command)
    if multi_node:  # every node runs the same container; keep the node overrides the GPU check made
        node_overrides = submit.setdefault("nodeOverrides", {})
        ranges = node_overrides.setdefault("nodePropertyOverrides", [])
        if not ranges:
            ranges.append({"targetNodes": "0:", "containerOverrides": {}})
        for node_range in ranges:
            node_range.setdefault("containerOverrides", {}).update(overrides)
    else:
        submit.setdefault("containerOverrides", {}).update(overrides)


def _in_range(flag: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise UsageError(f"{flag} {value} is out of range: give {low} to {high}")


def _requirements(container: Mapping[str, Any]) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in container.get("resourceRequirements", []):
        found[item["type"]] = float(item["value"])
    found.setdefault("VCPU", float(container.get("vcpus", 0) or 0))
    found.setdefault("MEMORY", float(container.get("memory", 0) or 0))
    found.setdefault("GPU", 0.0)
    return found


def _check_single_node(
    request: TrainingRequest,
    definition: dict[str, Any],
    queue: dict[str, Any],
    environments: list[ComputeEnvironment],
) -> int:
    """The GPUs per job; UsageError when no instance type of the queue can hold the job."""
    if definition.get("type") != "container" or "containerProperties" not in definition:
        raise UsageError(
            f"job definition {definition['jobDefinitionName']} is a {definition.get('type')} job definition: "
            "a single-node job needs a container job definition (use --nodes N for multi-node)"
        )
    needs = _requirements(definition["containerProperties"])
    gpus = request.gpus if request.gpus is not None else int(needs["GPU"])
    known: list[GpuInstance] = []
    unknown: list[str] = []
    for environment in environments:
        types, strangers = environment.gpu_instances()
        known.extend(t for t in types if t.vcpus <= environment.max_vcpus)
        unknown.extend(strangers)
    fits = [
        t for t in known if t.gpus >= gpus and t.vcpus >= needs["VCPU"] and t.memory_mib >= needs["MEMORY"]
    ]
    if not fits and not unknown:
        best = max(known, key=lambda t: t.gpus, default=None)
        most = f"at most {best.gpus} ({best.name})" if best else "none (no GPU instance types)"
        raise UsageError(
            f"job queue {queue['jobQueueName']} cannot give {gpus} GPU(s) with {needs['VCPU']:g} vCPUs and "
            f"{needs['MEMORY']:g} MiB to one job: its instance types give {most}"
        )
    return gpus


def _covered(target: str, nodes: int) -> set[int]:
    start_text, _, end_text = target.partition(":")
    start = int(start_text) if start_text else 0
    end = int(end_text) if end_text else (nodes - 1 if ":" in target else start)
    return set(range(start, min(end, nodes - 1) + 1))


def _check_multi_node(
    request: TrainingRequest,
    definition: dict[str, Any],
    queue: dict[str, Any],
    environments: list[ComputeEnvironment],
) -> dict[str, Any]:
    """The nodeOverrides of a multi-node job; UsageError when the definition or the queue cannot run it."""
    name = definition["jobDefinitionName"]
    properties = definition.get("nodeProperties")
    if definition.get("type") != "multinode" or not properties:
        raise UsageError(
            f"job definition {name} is not a multi-node job definition: --nodes {request.nodes} needs one "
            "(the deployment's MultiNodeJobDefinition)"
        )
    ranges = properties.get("nodeRangeProperties", [])
    covered: set[int] = set()
    for item in ranges:
        covered |= _covered(item["targetNodes"], request.nodes)
    if covered != set(range(request.nodes)):
        spans = ", ".join(r["targetNodes"] for r in ranges)
        raise UsageError(
            f"job definition {name} describes nodes {spans} only: --nodes {request.nodes} leaves nodes without a "
            f"container; give at most {len(covered)} or register a definition whose node range is open-ended"
        )
    on_demand = [e for e in environments if not e.spot]
    if not on_demand:
        raise UsageError(
            f"job queue {queue['jobQueueName']} has only Spot compute environments: Batch runs multi-node jobs "
            "On-Demand only (use --queue on-demand)"
        )
    overrides: list[dict[str, Any]] = []
    for item in ranges:
        container = item.get("container", {})
        needs = _requirements(container)
        gpus = request.gpus if request.gpus is not None else int(needs["GPU"])
        instance_type = container.get("instanceType")
        if instance_type:
            hosts = [e for e in on_demand if _lists(e, instance_type)]
            if not hosts:
                raise UsageError(
                    f"job queue {queue['jobQueueName']} has no On-Demand compute environment with {instance_type}, "
                    f"the instance type of job definition {name}"
                )
            instance = GPU_INSTANCES.get(instance_type)
            if instance is not None:
                if gpus > instance.gpus:
                    raise UsageError(
                        f"{instance_type} has {instance.gpus} GPU(s): job definition {name} cannot use {gpus} per node"
                    )
                vcpus = instance.vcpus * request.nodes
                if all(vcpus > e.max_vcpus for e in hosts):
                    limit = max(e.max_vcpus for e in hosts)
                    raise UsageError(
                        f"{request.nodes} nodes of {instance_type} need {vcpus} vCPUs; the queue's On-Demand "
                        f"compute environments allow at most {limit}"
                    )
        if request.gpus is not None:
            overrides.append(
                {
                    "targetNodes": item["targetNodes"],
                    "containerOverrides": {"resourceRequirements": [{"type": "GPU", "value": str(gpus)}]},
                }
            )
    node_overrides: dict[str, Any] = {"numNodes": request.nodes}
    if overrides:
        node_overrides["nodePropertyOverrides"] = overrides
    return node_overrides


def _lists(environment: ComputeEnvironment, instance_type: str) -> bool:
    family = instance_type.split(".")[0]
    return instance_type in environment.instance_types or family in environment.instance_types


JOB_ID = re.compile(r"^[A-Za-z0-9-]{1,64}(:\d{1,5})?(#\d{1,4})?$")


def _check_job_id(job_id: str) -> None:
    if not JOB_ID.match(job_id):
        raise UsageError(f"{job_id!r} is not a Batch job id")


def _from_millis(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None

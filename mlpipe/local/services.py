"""Local stand-ins for the services behind the state machine's `.sync` tasks: Batch, Glue, EMR.

Each turns a task's request into a job for an `Executor`, runs it to completion, and returns what Step
Functions would return (PascalCase, as the optimised integrations give it) or raises `JobFailed` with the
description Step Functions puts in the error's cause. They keep a record of every job, run and step, so a
caller can see what ran (`BatchService.jobs`, `GlueService.runs`, `EmrService.steps`).

Batch and Glue are in memory (moto's Batch needs Docker to run a job and never applies a retry strategy;
moto's Glue is not needed). EMR clusters and steps are created in moto's EMR, so `describe_cluster` shows a
terminated cluster as terminated; the step's final state is set here, because moto's steps never finish.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3

from mlpipe.local.assembly import CloudAssembly
from mlpipe.local.executors import (
    BatchJob,
    BatchJobDefinition,
    EmrStep,
    Executors,
    GlueJobRun,
    RetryStrategy,
)


class ServiceError(Exception):
    """The service refused the request (what boto3 would raise as a ClientError with this code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class JobFailed(Exception):
    """The job, run or step ended in failure; `description` is what Step Functions reports as the cause."""

    def __init__(self, description: Mapping[str, Any]) -> None:
        super().__init__(json.dumps(description, default=str)[:500])
        self.description = dict(description)


def _now() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _substitute(command: tuple[str, ...], parameters: Mapping[str, str]) -> tuple[str, ...]:
    """Batch's `Ref::name` placeholders in a command, replaced by the job's parameters."""
    return tuple(
        parameters.get(part[len("Ref::") :], part) if part.startswith("Ref::") else part for part in command
    )


# ---- Batch ----------------------------------------------------------------------------------------------
@dataclass
class BatchService:
    definitions: dict[str, BatchJobDefinition]
    queues: dict[str, bool]
    """Each job queue's ARN, and whether it has a fair-share scheduling policy."""
    executors: Executors
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_assembly(cls, assembly: CloudAssembly, executors: Executors) -> BatchService:
        definitions: dict[str, BatchJobDefinition] = {}
        for stack, logical_id, resource in assembly.find("AWS::Batch::JobDefinition"):
            props = resource.get("Properties", {})
            arn = assembly.ref(stack, logical_id)
            if "NodeProperties" in props:
                nodes = props["NodeProperties"]
                container = nodes["NodeRangeProperties"][0]["Container"]
                num_nodes = int(nodes.get("NumNodes", 1))
            else:
                container = props.get("ContainerProperties", {})
                num_nodes = 1
            definition = BatchJobDefinition(
                arn=arn,
                name=arn.rsplit("/", 1)[-1].rsplit(":", 1)[0],
                type=str(props.get("Type", "container")),
                parameters={k: str(v) for k, v in props.get("Parameters", {}).items()},
                # resolved: a workload's command names its code package's asset (an Fn::Sub of the account)
                command=tuple(str(assembly.resolve(c, stack)) for c in container.get("Command", [])),
                environment={e["Name"]: str(e["Value"]) for e in container.get("Environment", [])},
                retry_strategy=RetryStrategy.from_template(props.get("RetryStrategy")),
                num_nodes=num_nodes,
                attempt_timeout_s=props.get("Timeout", {}).get("AttemptDurationSeconds"),
                scheduling_priority=props.get("SchedulingPriority"),
            )
            definitions[arn] = definition
        queues = {
            assembly.ref(stack, logical_id): "SchedulingPolicyArn" in queue.get("Properties", {})
            for stack, logical_id, queue in assembly.find("AWS::Batch::JobQueue")
        }
        return cls(definitions=definitions, queues=queues, executors=executors)

    def _definition(self, reference: str) -> BatchJobDefinition:
        for definition in self.definitions.values():
            if reference in (definition.arn, definition.name, f"{definition.name}:1"):
                return definition
        raise ServiceError("ClientException", f"Job definition {reference} does not exist")

    def submit(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """SubmitJob with Step Functions' (PascalCase) parameters; returns JobId, JobName, JobArn."""
        name = request.get("JobName")
        queue = request.get("JobQueue")
        if not name or not queue or not request.get("JobDefinition"):
            raise ServiceError("ClientException", "JobName, JobQueue and JobDefinition are required")
        if queue not in self.queues:
            raise ServiceError("ClientException", f"Job queue {queue} does not exist")
        # As Batch: a fair-share queue needs the job's share identifier, and a FIFO queue takes none.
        if self.queues[queue] != bool(request.get("ShareIdentifier")):
            raise ServiceError(
                "ClientException",
                f"Job queue {queue} has a fair-share scheduling policy: ShareIdentifier is required"
                if self.queues[queue]
                else f"Job queue {queue} has no scheduling policy: ShareIdentifier is not allowed",
            )
        definition = self._definition(str(request["JobDefinition"]))
        fair_share = self.queues[queue]
        if (
            fair_share
            and definition.scheduling_priority is None
            and "SchedulingPriorityOverride" not in request
        ):
            raise ServiceError(
                "ClientException",
                "Either schedulingPriority in job definition or schedulingPriorityOverride should be specified.",
            )
        submitted = request.get("Parameters") or {}
        if not isinstance(submitted, dict) or not all(isinstance(v, str) for v in submitted.values()):
            raise ServiceError("ClientException", "Parameters must map names to strings")
        job_id = str(uuid.uuid4())
        retry = (
            RetryStrategy.from_template(request["RetryStrategy"]) if request.get("RetryStrategy") else None
        )
        num_nodes = int((request.get("NodeOverrides") or {}).get("NumNodes", definition.num_nodes))
        record: dict[str, Any] = {
            "JobArn": f"{queue.split(':job-queue/')[0]}:job/{job_id}",
            "JobId": job_id,
            "JobName": name,
            "JobQueue": queue,
            **({"ShareIdentifier": request["ShareIdentifier"]} if request.get("ShareIdentifier") else {}),
            "JobDefinition": definition.arn,
            "Parameters": {**definition.parameters, **submitted},
            "RetryStrategy": _retry_description(retry or definition.retry_strategy),
            "Tags": dict(request.get("Tags") or {}),
            "NumNodes": num_nodes,
            "Status": "SUBMITTED",
            "CreatedAt": _now(),
            "Attempts": [],
        }
        with self._lock:
            self.jobs[job_id] = record
        return {"JobId": job_id, "JobName": name, "JobArn": record["JobArn"]}

    def run_to_completion(self, job_id: str) -> dict[str, Any]:
        """Run every attempt the retry strategy allows; the job's description, or JobFailed."""
        record = self.jobs[job_id]
        definition = self._definition(record["JobDefinition"])
        retry = _retry_from_description(record["RetryStrategy"])
        record["Status"] = "RUNNING"
        record["StartedAt"] = _now()
        for attempt in itertools.count(1):
            job = BatchJob(
                job_id=job_id,
                job_name=record["JobName"],
                queue_arn=record["JobQueue"],
                definition=definition,
                parameters=record["Parameters"],
                command=_substitute(definition.command, record["Parameters"]),
                environment=definition.environment,
                num_nodes=record["NumNodes"],
                attempt=attempt,
                tags=record["Tags"],
            )
            started = _now()
            outcome = self.executors.batch.run(job)
            record["Attempts"].append(
                {
                    "Container": {"ExitCode": outcome.exit_code, "Reason": outcome.reason},
                    "StartedAt": started,
                    "StoppedAt": _now(),
                    "StatusReason": outcome.status_reason,
                }
            )
            record["StatusReason"] = outcome.status_reason
            if outcome.succeeded:
                record["Status"] = "SUCCEEDED"
                break
            if retry.decide(outcome, attempt) == "EXIT":
                record["Status"] = "FAILED"
                break
        record["StoppedAt"] = _now()
        if record["Status"] != "SUCCEEDED":
            raise JobFailed(record)
        return dict(record)


def _retry_description(retry: RetryStrategy) -> dict[str, Any]:
    return {
        "Attempts": retry.attempts,
        "EvaluateOnExit": [
            {
                key: value
                for key, value in (
                    ("Action", rule.action),
                    ("OnStatusReason", rule.on_status_reason),
                    ("OnReason", rule.on_reason),
                    ("OnExitCode", rule.on_exit_code),
                )
                if value is not None
            }
            for rule in retry.evaluate_on_exit
        ],
    }


def _retry_from_description(description: Mapping[str, Any]) -> RetryStrategy:
    return RetryStrategy.from_template(description)


# ---- Glue -----------------------------------------------------------------------------------------------
@dataclass
class GlueService:
    jobs: dict[str, Mapping[str, Any]]  # name -> the job's template properties (resolved)
    executors: Executors
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_assembly(cls, assembly: CloudAssembly, executors: Executors) -> GlueService:
        jobs = {
            assembly.ref(stack, logical_id): assembly.resolve(resource.get("Properties", {}), stack)
            for stack, logical_id, resource in assembly.find("AWS::Glue::Job")
        }
        return cls(jobs=jobs, executors=executors)

    def start(self, request: Mapping[str, Any]) -> dict[str, Any]:
        name = request.get("JobName")
        if name not in self.jobs:
            raise ServiceError("EntityNotFoundException", f"Job {name} not found")
        arguments = request.get("Arguments") or {}
        if not isinstance(arguments, dict) or not all(isinstance(v, str) for v in arguments.values()):
            raise ServiceError("InvalidInputException", "Arguments must map names to strings")
        job = self.jobs[name]
        run_id = f"jr_{uuid.uuid4().hex}"
        self.runs[run_id] = {
            "Id": run_id,
            "JobName": name,
            "JobRunState": "STARTING",
            "Arguments": {**{k: str(v) for k, v in job.get("DefaultArguments", {}).items()}, **arguments},
            "Attempt": 0,
            "StartedOn": _now(),
            "Timeout": request.get("Timeout", job.get("Timeout")),
        }
        return {"JobRunId": run_id, "JobName": name}

    def run_to_completion(self, run_id: str) -> dict[str, Any]:
        record = self.runs[run_id]
        job = self.jobs[record["JobName"]]
        record["JobRunState"] = "RUNNING"
        outcome = self.executors.glue.run(
            GlueJobRun(
                job_name=record["JobName"],
                run_id=run_id,
                script_location=str(job.get("Command", {}).get("ScriptLocation", "")),
                arguments=record["Arguments"],
            )
        )
        record["CompletedOn"] = _now()
        if not outcome.succeeded:
            record["JobRunState"] = "FAILED"
            record["ErrorMessage"] = outcome.status_reason
            raise JobFailed(record)
        record["JobRunState"] = "SUCCEEDED"
        return dict(record)


# ---- EMR ------------------------------------------------------------------------------------------------
@dataclass
class EmrService:
    """Clusters in moto's EMR; steps run by the EMR executor."""

    region: str
    account: str
    executors: Executors
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _client(self) -> Any:
        return boto3.client("emr", region_name=self.region)

    def create_cluster(self, request: Mapping[str, Any]) -> dict[str, Any]:
        response = self._client().run_job_flow(**request)
        return {"ClusterId": response["JobFlowId"], "ClusterArn": response.get("ClusterArn")}

    def terminate_cluster(self, request: Mapping[str, Any]) -> dict[str, Any]:
        self._client().terminate_job_flows(JobFlowIds=[request["ClusterId"]])
        return {}

    def add_step(self, request: Mapping[str, Any]) -> dict[str, Any]:
        cluster_id = request.get("ClusterId")
        step = request.get("Step") or {}
        response = self._client().add_job_flow_steps(JobFlowId=cluster_id, Steps=[step])
        step_id = response["StepIds"][0]
        jar = step.get("HadoopJarStep", {})
        self.steps[step_id] = {
            "ClusterId": cluster_id,
            "Id": step_id,
            "Name": step.get("Name"),
            "ActionOnFailure": step.get("ActionOnFailure", "CONTINUE"),
            "Config": {"Jar": jar.get("Jar"), "Args": list(jar.get("Args", []))},
            "Status": {"State": "PENDING"},
        }
        return {"ClusterId": cluster_id, "StepId": step_id}

    def run_to_completion(self, step_id: str) -> dict[str, Any]:
        record = self.steps[step_id]
        record["Status"] = {"State": "RUNNING"}
        outcome = self.executors.emr.run(
            EmrStep(
                cluster_id=record["ClusterId"],
                step_id=step_id,
                name=str(record["Name"]),
                jar=str(record["Config"]["Jar"]),
                args=tuple(record["Config"]["Args"]),
                action_on_failure=str(record["ActionOnFailure"]),
            )
        )
        state = "COMPLETED" if outcome.succeeded else "FAILED"
        record["Status"] = {"State": state}
        if not outcome.succeeded:
            record["Status"]["FailureDetails"] = {"Reason": "Step failed", "Message": outcome.status_reason}
        self._set_moto_step_state(record["ClusterId"], step_id, state)
        if not outcome.succeeded:
            raise JobFailed({"Step": record})
        return {"Step": dict(record)}

    def _set_moto_step_state(self, cluster_id: str, step_id: str, state: str) -> None:
        # moto's steps stay RUNNING/PENDING for ever; give describe_step the final state.
        from moto.emr.models import emr_backends

        cluster = emr_backends[self.account][self.region].clusters.get(cluster_id)
        for step in getattr(cluster, "steps", []):
            if step.id == step_id:
                step.state = state

"""Training jobs against the moto deployment: the SubmitJob request, every check before it, following a job
with its log, and cancelling. moto's Batch runs no container: a job succeeds at once (or fails, with
MOTO_SIMPLE_BATCH_FAIL_AFTER=0)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto_deployment import ARTIFACTS, CURATED, LOG_GROUP, REGION, Deployed

from mlpipe.client import Deployment, NotFound, TrainingJobs, TrainingRequest, UsageError

MANIFEST = f"s3://{CURATED}/features/clicks/r1/manifest.json"
OUTPUT = f"s3://{ARTIFACTS}/runs/clicks/r1/candidates/a/"


@pytest.fixture
def jobs(deployment: Deployment) -> TrainingJobs:
    return TrainingJobs(deployment, now=lambda: datetime(2026, 11, 21, 6, 0, 0, tzinfo=UTC))


def request(**changes: Any) -> TrainingRequest:
    return TrainingRequest(**{"input": MANIFEST, "output": OUTPUT, **changes})


def test_single_node_request_from_the_deployment(jobs: TrainingJobs, deployed: Deployed) -> None:
    built = jobs.build(request(hyperparameters={"lr": 0.003, "hidden": [64, 32]}, tags={"team": "ml"}))
    assert built == {
        "jobName": "mlpipe-train-20261121-060000",
        "jobQueue": deployed.spot_first_queue,
        "jobDefinition": deployed.training_job_definition,
        "parameters": {
            "input": MANIFEST,
            "output": OUTPUT,
            "checkpoint": f"s3://{ARTIFACTS}/checkpoints/clicks/mlpipe-train-20261121-060000/",
            "hyperparameters": '{"hidden":[64,32],"lr":0.003}',
        },
        "tags": {"mlpipe:submitted-by": "mlpipe-cli", "team": "ml"},
        # a fair-share queue: the workload's share, and (moto keeps no schedulingPriority of the definition)
        # the priority that Batch otherwise refuses the job without
        "shareIdentifier": "clicks",
        "schedulingPriorityOverride": 0,
    }


def test_a_queue_without_fair_share_gets_no_share_identifier(jobs: TrainingJobs) -> None:
    """Batch refuses a share identifier on a queue without a scheduling policy (SubmitJob: shareIdentifier)."""
    built = jobs.build(request(queue="mlpipe-spot-only"))
    assert "shareIdentifier" not in built and "schedulingPriorityOverride" not in built


def test_a_job_of_another_image_command_and_environment(jobs: TrainingJobs, deployed: Deployed) -> None:
    submission = jobs.submit(
        request(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/team/trainer:7", name="custom-1",
                command=("python", "train.py", "--epochs", "3"), environment={"SEED": "7"})
    )  # fmt: skip
    job = jobs.describe(str(submission.job_id))
    definition = jobs.job_definition(job.raw["jobDefinition"])
    # a revision of the workload's training definition with the image: same role, resources and retries
    base = jobs.job_definition(deployed.training_job_definition)
    assert definition["jobDefinitionName"] == "mlpipe-training-custom"
    assert (
        definition["containerProperties"]["image"]
        == "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/trainer:7"
    )
    for key in ("resourceRequirements", "command"):
        assert definition["containerProperties"][key] == base["containerProperties"][key]
    assert definition["retryStrategy"] == base["retryStrategy"]
    overrides = submission.request["containerOverrides"]
    assert overrides["command"] == ["python", "train.py", "--epochs", "3"]
    environment = {e["name"]: e["value"] for e in overrides["environment"]}
    assert environment["SEED"] == "7" and environment["MLPIPE_INPUT"] == MANIFEST
    assert environment["MLPIPE_OUTPUT"] == OUTPUT


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"environment": {"AWS_BATCH_JOB_ID": "x"}},
            "--job-env AWS_BATCH_JOB_ID: names starting with AWS_BATCH",
        ),
        (
            {"environment": {"MLPIPE_INPUT": "x"}, "command": ("true",)},
            "--job-env MLPIPE_INPUT: mlpipe sets it",
        ),
        ({"command": ("python", "")}, "--command: Batch refuses an empty argument"),
        ({"image": "bad image"}, "--image 'bad image' is not an image reference"),
    ],
)
def test_bad_overrides_are_refused_before_any_call(
    jobs: TrainingJobs, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        jobs.build(request(**changes))


def test_submitted_job_carries_parameters_and_tags(jobs: TrainingJobs) -> None:
    submission = jobs.submit(request(name="submit-1", checkpoint=f"s3://{ARTIFACTS}/checkpoints/clicks/x/"))
    assert submission.job_id
    job = jobs.describe(submission.job_id)
    assert (job.name, job.status) == ("submit-1", "SUCCEEDED")
    assert (
        job.parameters["input"] == MANIFEST
        and job.parameters["checkpoint"] == f"s3://{ARTIFACTS}/checkpoints/clicks/x/"
    )
    assert job.raw["tags"]["mlpipe:submitted-by"] == "mlpipe-cli"


def test_gpu_count_is_checked_against_the_queue_instance_types(jobs: TrainingJobs) -> None:
    four = jobs.build(request(gpus=4))  # g5.12xlarge, in the On-Demand environment behind spot-first
    assert four["containerOverrides"] == {"resourceRequirements": [{"type": "GPU", "value": "4"}]}
    with pytest.raises(
        UsageError, match=r"job queue mlpipe-spot-first cannot give 8 GPU\(s\).*at most 4 \(g5\.12xlarge\)"
    ):
        jobs.build(request(gpus=8))
    with pytest.raises(UsageError, match=r"job queue mlpipe-spot-only cannot give 4 GPU\(s\).*at most 1"):
        jobs.build(request(gpus=4, queue="mlpipe-spot-only"))
    with pytest.raises(UsageError, match="--gpus 9 is out of range: give 1 to 8"):
        jobs.build(request(gpus=9))


def test_multi_node_request(jobs: TrainingJobs, deployed: Deployed) -> None:
    built = jobs.build(request(nodes=2, gpus=2))
    assert built["jobDefinition"] == deployed.multi_node_job_definition
    assert built["jobQueue"] == deployed.on_demand_queue
    assert built["nodeOverrides"] == {
        "numNodes": 2,
        "nodePropertyOverrides": [
            {
                "targetNodes": "0:1",
                "containerOverrides": {"resourceRequirements": [{"type": "GPU", "value": "2"}]},
            }
        ],
    }
    assert "containerOverrides" not in built and "arrayProperties" not in built


def test_multi_node_checks(jobs: TrainingJobs) -> None:
    with pytest.raises(UsageError, match="describes nodes 0:1 only: --nodes 3"):
        jobs.build(request(nodes=3))
    with pytest.raises(UsageError, match="has only Spot compute environments"):
        jobs.build(request(nodes=2, queue="mlpipe-spot-only"))
    with pytest.raises(UsageError, match=r"g5\.12xlarge has 4 GPU\(s\)"):
        jobs.build(request(nodes=2, gpus=8))
    with pytest.raises(UsageError, match="is not a multi-node job definition"):
        jobs.build(request(nodes=2, job_definition="mlpipe-training"))
    with pytest.raises(UsageError, match="a single-node job needs a container job definition"):
        jobs.build(request(job_definition="mlpipe-multinode"))
    with pytest.raises(UsageError, match="--nodes 17 is out of range"):
        jobs.build(request(nodes=17))


def test_retry_timeout_and_dependencies(jobs: TrainingJobs) -> None:
    built = jobs.build(request(retry_attempts=5, timeout_minutes=30, depends_on=("abc-1", "def-2:3")))
    assert "arrayProperties" not in built
    definition = boto3.client("batch", region_name=REGION).describe_job_definitions(
        jobDefinitions=[built["jobDefinition"]]
    )["jobDefinitions"][0]
    rules = definition["retryStrategy"]["evaluateOnExit"]  # retry Spot reclaims only
    assert [r.get("onStatusReason") for r in rules] == ["Host EC2*", None]
    assert built["retryStrategy"] == {"attempts": 5, "evaluateOnExit": rules}
    assert built["timeout"] == {"attemptDurationSeconds": 1800}
    assert built["dependsOn"] == [{"jobId": "abc-1"}, {"jobId": "def-2:3"}]  # an array child is <id>:<index>
    with pytest.raises(UsageError, match="is not a Batch job id"):
        jobs.build(request(depends_on=("abc-1:N_TO_N",)))
    with pytest.raises(UsageError, match="--retry-attempts 11 is out of range"):
        jobs.build(request(retry_attempts=11))


def test_unknown_queue_and_job_definition(jobs: TrainingJobs) -> None:
    with pytest.raises(NotFound, match="job queue 'nope' not found"):
        jobs.build(request(queue="nope"))
    with pytest.raises(NotFound, match="job definition 'nope' not found"):
        jobs.build(request(job_definition="nope"))
    with pytest.raises(UsageError, match="takes no parameter"):
        jobs.build(request(job_definition="mlpipe-inference"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"input": f"s3://{CURATED}/features/other/r1/manifest.json"},
            "--input .* is outside what the job role of workload 'clicks'",
        ),
        ({"output": f"s3://{ARTIFACTS}/runs/r1/a/"}, "--output-prefix .* reaches: s3://.*/runs/clicks/"),
        (
            {"checkpoint": f"s3://{ARTIFACTS}/checkpoints/other/"},
            "--checkpoint .* reaches: s3://.*/checkpoints/clicks/",
        ),
    ],
)
def test_locations_the_job_role_cannot_reach_are_refused(
    jobs: TrainingJobs, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        jobs.build(request(**changes))


def test_offline_checks_come_before_any_aws_call(deployed: Deployed) -> None:
    class NoAws:
        def client(self, service: str) -> Any:
            raise AssertionError(f"an AWS call ({service}) before the request was checked")

    jobs = TrainingJobs(Deployment(NoAws(), environ={}))  # type: ignore[arg-type]
    for changes, message in [
        ({"input": "features/manifest.json"}, "--input"),
        ({"output": f"s3://{ARTIFACTS}/runs/r1"}, "--output-prefix .* ending in '/'"),
        ({"hyperparameters": {"lr": {"x": 1}}}, r"--hyperparameters\.lr"),
        ({"name": "-bad"}, "is not a Batch job name"),
        ({"tags": {"aws:x": "y"}}, "--tag aws:x=y"),
        ({"depends_on": ("not a job",)}, "is not a Batch job id"),
    ]:
        with pytest.raises(UsageError, match=message):
            jobs.build(request(**changes))


def test_follow_reports_status_and_the_log(jobs: TrainingJobs) -> None:
    submission = jobs.submit(request(name="follow-1"))
    job = jobs.describe(str(submission.job_id))
    assert job.log_stream
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=job.log_stream)
    lines = ["epoch 1 loss 0.61", "epoch 2 loss 0.52", "saved model"]
    now_ms = int(time.time() * 1000)  # CloudWatch Logs drops events older than 14 days
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=job.log_stream,
        logEvents=[{"timestamp": now_ms + i, "message": m} for i, m in enumerate(lines)],
    )
    statuses: list[str] = []
    messages: list[str] = []
    final = jobs.follow(
        str(submission.job_id),
        on_status=lambda j: statuses.append(j.status),
        on_log=lambda e: messages.append(e["message"]),
        poll_seconds=0.01,
    )
    assert final.succeeded and statuses == ["SUCCEEDED"]
    assert messages == lines
    assert [e["message"] for e in jobs.log_events(final)] == lines
    position: dict[str, str] = {}
    assert len(list(jobs.log_events(final, position=position))) == 3
    assert list(jobs.log_events(final, position=position)) == []  # read on: nothing new


def test_a_failed_job(jobs: TrainingJobs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    submission = jobs.submit(request(name="fails-1"))
    final = jobs.follow(str(submission.job_id), poll_seconds=0.01)
    assert final.status == "FAILED" and not final.succeeded
    assert final.to_json()["status"] == "FAILED"


def test_cancel_and_unknown_jobs(jobs: TrainingJobs) -> None:
    submission = jobs.submit(request(name="cancel-1"))
    with pytest.raises(UsageError, match=r"has already ended \(SUCCEEDED\): nothing to cancel"):
        jobs.cancel(str(submission.job_id), reason="test")
    with pytest.raises(NotFound, match="no Batch job '00000000-0000-0000-0000-000000000000'"):
        jobs.describe("00000000-0000-0000-0000-000000000000")
    with pytest.raises(UsageError, match="is not a Batch job id"):
        jobs.describe("../etc")


def test_dry_run_submits_nothing(jobs: TrainingJobs) -> None:
    before = boto3.client("batch", region_name=REGION).list_jobs(jobQueue="mlpipe-spot-first")[
        "jobSummaryList"
    ]
    submission = jobs.submit(request(name="dry-1"), dry_run=True)
    assert submission.job_id is None and json.loads(json.dumps(submission.to_json()))["job_name"] == "dry-1"
    after = boto3.client("batch", region_name=REGION).list_jobs(jobQueue="mlpipe-spot-first")[
        "jobSummaryList"
    ]
    assert len(after) == len(before)


def test_a_multi_node_command_keeps_the_gpu_override(jobs: TrainingJobs) -> None:
    built = jobs.build(request(nodes=2, gpus=2, command=("python", "ddp.py"), environment={"SEED": "1"}))
    (node_range,) = built["nodeOverrides"]["nodePropertyOverrides"]
    overrides = node_range["containerOverrides"]
    assert {"type": "GPU", "value": "2"} in overrides["resourceRequirements"]
    assert overrides["command"] == ["python", "ddp.py"]
    assert {"name": "SEED", "value": "1"} in overrides["environment"]


def test_a_custom_image_registration_drops_cloudformations_own_tags(
    jobs: TrainingJobs, deployed: Deployed
) -> None:
    from mlpipe.client.batch_jobs import _with_image

    definition = jobs.job_definition(deployed.multi_node_job_definition)
    definition["tags"] = {"aws:cloudformation:stack-name": "MlpipeDev-Workload-clicks", "team": "ml"}
    registration = _with_image(definition, "registry.example/trainer:2")["registration"]
    assert registration["tags"] == {"team": "ml"}
    assert registration["jobDefinitionName"] == "mlpipe-multinode-custom"
    (node_range,) = registration["nodeProperties"]["nodeRangeProperties"]
    assert node_range["container"]["image"] == "registry.example/trainer:2"
    assert node_range["container"]["instanceType"] == "g5.12xlarge"  # the rest as it was


def test_a_job_larger_than_its_workloads_vcpu_cap_is_refused() -> None:
    """moto keeps no consumable resources, so the check runs on a described definition as Batch returns it."""
    from mlpipe.client.batch_jobs import _check_vcpu_cap

    cap = "arn:aws:batch:us-east-1:123456789012:consumable-resource/mlpipe-dev-clicks-vcpus"
    multi_node = {
        "type": "multinode",
        "nodeProperties": {
            "numNodes": 2,
            "nodeRangeProperties": [
                {"targetNodes": "0:", "consumableResourceProperties": {
                    "consumableResourceList": [{"consumableResource": cap, "quantity": 46}]}},
            ],
        },
    }  # fmt: skip
    _check_vcpu_cap(multi_node, 2, lambda arn: 128)  # 92 of 128
    with pytest.raises(UsageError, match="holds 138 of mlpipe-dev-clicks-vcpus, which has 128"):
        _check_vcpu_cap(multi_node, 3, lambda arn: 128)
    single = {
        "consumableResourceProperties": {
            "consumableResourceList": [{"consumableResource": cap, "quantity": 4}]
        }
    }
    _check_vcpu_cap(single, 1, lambda arn: 4)
    with pytest.raises(UsageError, match="holds 4 of"):
        _check_vcpu_cap(single, 1, lambda arn: 3)
    _check_vcpu_cap(
        {"containerProperties": {}}, 1, lambda arn: 0
    )  # no cap on this definition: nothing to check

"""ExpandCandidates: parameter maps for Batch SubmitJob."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.validate import validate_parameters
from mlpipe_common.errors import InvalidInput
from training.expand import expand_candidates
from training.handler import handler


def test_expand_returns_one_submit_job_parameter_map_per_candidate(
    planned: Callable[..., dict[str, Any]], lambda_env: dict[str, str]
) -> None:
    plan = planned(run_id="run-7")
    payload = handler({"action": "expand", "plan_uri": plan["uris"]["plan"]}, None)
    artifacts, curated = lambda_env["ARTIFACTS_BUCKET"], lambda_env["CURATED_BUCKET"]
    small, large = payload["candidates"]
    assert small == {
        "name": "small",
        "job_name": "mlpipe-run-7-small",
        "multi_node": False,
        "num_nodes": 1,
        "gpus": 1,
        "parameters": {
            "input": f"s3://{curated}/features/clicks/run-7/manifest.json",
            "output": f"s3://{artifacts}/runs/clicks/run-7/candidates/small/",
            "checkpoint": f"s3://{artifacts}/checkpoints/clicks/run-7/small/",
            "hyperparameters": '{"hidden":32,"lr":0.01}',
        },
    }
    assert (large["multi_node"], large["num_nodes"], large["gpus"]) == (True, 2, 4)
    assert json.loads(large["parameters"]["hyperparameters"]) == {"hidden": 128, "lr": 0.001}


def test_a_plan_from_before_training_input_trains_on_its_feature_manifest(
    planned: Callable[..., dict[str, Any]],
) -> None:
    """A failed run redriven after an update keeps the plan it had: one written before `uris.training_input`."""
    plan = planned(run_id="old-1")
    del plan["uris"]["training_input"]
    candidate, _ = expand_candidates(plan)["candidates"]
    assert candidate["parameters"]["input"] == plan["uris"]["manifest"]


def test_expand_output_is_a_valid_batch_submit_job_request(planned: Callable[..., dict[str, Any]]) -> None:
    """Each candidate, as the Map state passes it, validates against botocore's SubmitJob input shape."""
    longest = "n" * 32
    plan = planned(run_id="r" * 48, candidates=[{"name": longest, "nodes": 2}, {"name": "b"}])
    shape = boto3.client("batch").meta.service_model.operation_model("SubmitJob").input_shape
    for candidate in expand_candidates(plan)["candidates"]:
        request: dict[str, Any] = {
            "jobName": candidate["job_name"],
            "jobQueue": "queue",
            "jobDefinition": "training",
            "parameters": candidate["parameters"],
        }
        if candidate["multi_node"]:
            request["nodeOverrides"] = {"numNodes": candidate["num_nodes"]}
        validate_parameters(request, shape)  # raises ParamValidationError if a type is wrong
        assert all(isinstance(v, str) and v for v in candidate["parameters"].values())
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", candidate["job_name"])


def test_expand_rejects_a_plan_with_duplicate_or_unsafe_names(planned: Callable[..., dict[str, Any]]) -> None:
    plan = planned()
    plan["candidates"].append(dict(plan["candidates"][0]))
    with pytest.raises(InvalidInput, match=r"plan.candidates\[2\].name 'small' is used by more than one"):
        expand_candidates(plan)
    plan["candidates"][2]["name"] = "a/b"
    with pytest.raises(InvalidInput, match=r"'a/b' is not a valid candidate name"):
        expand_candidates(plan)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"plan_uri": "s3://{a}/runs/x1/plan.json"}, "event.action must be a non-empty string"),
        ({"action": "train", "plan_uri": "s3://{a}/runs/x1/plan.json"}, "event.action must be one of"),
        ({"action": "expand"}, "event.plan_uri must be a non-empty string"),
        ({"action": "expand", "plan_uri": "s3://someone-elses-bucket/runs/x1/plan.json"}, "is outside"),
        ({"action": "expand", "plan_uri": "s3://{a}/runs/x1/other.json"}, "is not a run plan"),
        (
            {"action": "expand", "plan_uri": "s3://{a}/runs/other/x1/plan.json"},
            "not a run plan of workload 'clicks'",
        ),
        ({"action": "expand", "plan_uri": "s3://{a}/runs/clicks/x1/plan.json"}, "does not exist"),
    ],
)
def test_bad_payloads_are_invalid_input(
    event: dict[str, str], message: str, s3: Any, lambda_env: dict[str, str]
) -> None:
    event = {k: v.replace("{a}", lambda_env["ARTIFACTS_BUCKET"]) for k, v in event.items()}
    with pytest.raises(InvalidInput, match=message):
        handler(event, None)

"""Scenario 7: the same run id started twice gives one set of outputs, not two."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

pytestmark = [pytest.mark.scenario, pytest.mark.xdist_group("scenario")]


def test_same_run_id_twice_leaves_one_set_of_outputs(local: Callable[..., Any]) -> None:
    env = local()
    document = env.input(run_id="nightly-42", candidates=[{"name": "baseline"}, {"name": "wide"}])

    first = env.run(document, name="nightly-42-a")
    artifacts, curated = env.keys("artifacts"), env.keys("curated")
    plan = env.get_json(f"s3://{env.pipeline.bucket('artifacts')}/runs/clickstream/nightly-42/plan.json")
    second = env.run(document, name="nightly-42-b")

    assert first.status == second.status == "SUCCEEDED", (first.cause, second.cause)
    assert first.output == second.output  # same model, evaluation, predictions and package
    assert env.keys("artifacts") == artifacts and env.keys("curated") == curated  # no second set
    assert all(
        key.startswith(("runs/clickstream/nightly-42/", "tmp/")) is True
        for key in artifacts
        if "nightly" in key
    )
    assert (
        env.get_json(f"s3://{env.pipeline.bucket('artifacts')}/runs/clickstream/nightly-42/plan.json") == plan
    )
    [package] = env.model_packages()
    assert package["ModelPackageArn"] == first.output["model_package_arn"]
    assert not [key for key in env.keys("artifacts") if key.startswith("tmp/")]  # no leftovers of the commits

    # The same execution name again, once the execution has closed, is refused (StartExecution is idempotent
    # only while it runs): nothing runs a third time.
    jobs = len(env.batch.runs)
    with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
        env.pipeline.start(document, name="nightly-42-b")
    assert len(env.batch.runs) == jobs

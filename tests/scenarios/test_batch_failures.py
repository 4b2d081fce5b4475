"""Scenarios 2 and 3: a training job loses its Spot instance (retried by the job definition's retry
strategy), or fails in the application (not retried: caught, notified once, the execution fails)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from doubles import SPOT_RECLAIM, FakeBatch, application_error, spot_reclaimed

from mlpipe.local import Outcome

pytestmark = [pytest.mark.scenario, pytest.mark.xdist_group("scenario")]

CANDIDATES = [{"name": "baseline"}, {"name": "wide", "hyperparameters": {"hidden": [64]}}]


def test_spot_reclaim_is_retried_by_the_retry_strategy_and_the_execution_succeeds(
    local: Callable[..., Any],
) -> None:
    env = local(batch=FakeBatch().script("-baseline", [spot_reclaimed(), Outcome.success()]))
    result = env.run(env.input(candidates=CANDIDATES))

    assert result.status == "SUCCEEDED", result.cause
    attempts = env.batch.attempts("-baseline")
    assert [job.attempt for job in attempts] == [1, 2]  # Batch retried it: same job, second attempt
    assert len({job.job_id for job in attempts}) == 1
    [record] = [r for r in env.pipeline.services.batch.jobs.values() if r["JobName"].endswith("-baseline")]
    assert [a["StatusReason"] for a in record["Attempts"]] == [
        SPOT_RECLAIM,
        "Essential container in task exited",
    ]
    assert record["Status"] == "SUCCEEDED"
    # Step Functions submitted it once: the retry is Batch's, not a Retry of the state machine
    assert result.entered().count("TrainSingleNode") == len(CANDIDATES)
    assert not result.events_of("TaskFailed")
    assert result.output["best_candidate"] in {"baseline", "wide"}
    assert env.notifications() == []


def test_spot_reclaim_on_every_attempt_fails_after_the_strategy_attempts(local: Callable[..., Any]) -> None:
    env = local(batch=FakeBatch().script("-baseline", [spot_reclaimed()]))
    result = env.run(env.input(candidates=CANDIDATES))

    assert result.status == "FAILED"
    assert [job.attempt for job in env.batch.attempts("-baseline")] == [
        1,
        2,
        3,
    ]  # attempts: 3 in the job definition
    assert SPOT_RECLAIM in (result.cause or "")
    assert len(env.notifications()) == 1


def test_application_error_in_training_is_not_retried_and_is_notified_once(local: Callable[..., Any]) -> None:
    env = local(
        batch=FakeBatch().script("-baseline", [application_error("Essential container in task exited")])
    )
    result = env.run(env.input(candidates=CANDIDATES))

    assert result.status == "FAILED"
    assert [job.attempt for job in env.batch.attempts("-baseline")] == [1]  # EXIT: no second attempt
    assert result.error == "States.TaskFailed"
    cause = result.cause or ""
    assert cause.startswith("TrainSingleNode failed: ")
    job = json.loads(cause.removeprefix("TrainSingleNode failed: "))
    assert job["Status"] == "FAILED" and job["JobName"].endswith("-baseline")
    assert job["Attempts"][0]["Container"]["ExitCode"] == 1

    [message] = env.notifications()
    assert message["state"] == "TrainAndPrepareInference"
    assert message["error"] == "States.TaskFailed"
    assert message["cause"] == cause
    assert message["execution"] == result.arn
    assert message["Subject"] == "mlpipe dev: pipeline execution failed"

    entered = result.entered()
    assert "TrainSingleNode failed" in entered and "TrainAndPrepareInference failed" in entered
    assert entered[-3:] == ["ClusterToTerminate?", "TerminateClusterAfterFailure", "PipelineFailed"]
    assert not {"SelectModel", "EvaluateModel", "Publish", "RegisterModel"} & set(entered)
    assert set(env.clusters().values()) == {"TERMINATED"}
    assert env.model_packages() == []

"""Scenario 4: the Lambda service throttles the Plan function; Step Functions retries with backoff."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from doubles import ThrottledLambdas

pytestmark = [pytest.mark.scenario, pytest.mark.xdist_group("scenario")]


def test_throttled_lambda_is_retried_with_backoff_then_succeeds(local: Callable[..., Any]) -> None:
    throttled: list[ThrottledLambdas] = []

    def wrap(inner: Any) -> ThrottledLambdas:
        throttled.append(ThrottledLambdas(inner, function="Preprocessing", times=2))
        return throttled[0]

    env = local(lambdas=wrap)
    result = env.run(env.input(candidates=[{"name": "baseline"}]))

    assert result.status == "SUCCEEDED", result.cause
    assert len(throttled[0].refused) == 2
    plan_events = [
        e
        for e in result.events
        if e["type"].startswith("LambdaFunction") and e["id"] < _exited(result, "Plan")
    ]
    assert [e["type"] for e in plan_events] == [
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionFailed",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionFailed",
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
    ]
    errors = [
        e["lambdaFunctionFailedEventDetails"]["error"] for e in plan_events if e["type"].endswith("Failed")
    ]
    assert errors == ["Lambda.TooManyRequestsException"] * 2
    assert result.entered().count("Plan") == 1  # retried within the state, not re-entered

    # Backoff: IntervalSeconds 2, BackoffRate 2, JitterStrategy FULL -> waits in [0, 2] then [0, 4]
    waits = [w.seconds for w in env.pipeline.retry_waits if w.state == "Plan"]
    assert len(waits) == 2
    assert 0 <= waits[0] <= 2 and 0 <= waits[1] <= 4
    assert env.notifications() == []


def _exited(result: Any, state: str) -> int:
    return int(
        next(
            e["id"]
            for e in result.events
            if e["type"].endswith("StateExited") and e["stateExitedEventDetails"]["name"] == state
        )
    )

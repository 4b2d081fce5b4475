"""Scenario 8: a bad execution input is rejected by the Plan state with the validation message, before any
job starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.scenario, pytest.mark.xdist_group("scenario")]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"epochs": 3}, "input: unknown key(s) 'epochs'"),
        (
            {"raw_uri": "s3://someone-elses-bucket/events/"},
            "input.raw_uri: s3://someone-elses-bucket/events/ is outside",
        ),
    ],
)
def test_bad_input_is_rejected_before_any_job_starts(
    local: Callable[..., Any], document: dict[str, Any], message: str
) -> None:
    env = local()
    result = env.run(env.input(**document))

    assert result.status == "FAILED"
    assert result.error == "InvalidInput"
    assert message in (result.cause or "")
    assert result.entered() == [
        "Plan",
        "Plan failed",
        "NotifyFailure",
        "ClusterToTerminate?",
        "PipelineFailed",
    ]
    [message_sent] = env.notifications()
    assert message_sent["state"] == "Plan" and message in message_sent["cause"]
    assert env.glue.runs == [] and env.emr.runs == [] and env.batch.runs == []
    assert env.clusters() == {}
    assert env.keys("artifacts") == [] and env.keys("curated") == []

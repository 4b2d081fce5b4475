"""Scenario 6: the chosen model is below the quality gate: nothing is published or registered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from doubles import FakeBatch

pytestmark = [pytest.mark.scenario, pytest.mark.xdist_group("scenario")]


def test_quality_gate_not_met_publishes_and_registers_nothing(local: Callable[..., Any]) -> None:
    env = local(batch=FakeBatch(poor_models={"baseline", "wide"}))
    result = env.run(env.input(candidates=[{"name": "baseline"}, {"name": "wide"}]))

    assert result.status == "FAILED"
    assert result.error == "QualityGateFailed"
    assert "misses the quality gate auc >= 0.7 (from METRIC_GATE); the model is not registered" in (
        result.cause or ""
    )
    [message] = env.notifications()
    assert message["state"] == "QualityGate" and message["error"] == "QualityGateFailed"

    entered = result.entered()
    assert "EvaluateModel" in entered and "QualityGate failed" in entered and entered[-1] == "PipelineFailed"
    assert not {"PlanPredictions", "Publish", "RegisterModel", "BatchInference", "Summarize"} & set(entered)
    assert env.model_packages() == []
    assert not any(job.job_name.endswith("-inference") for job in env.batch.runs)
    run_id = env.batch.runs[0].job_name.rsplit("-", 1)[0]
    assert env.keys("artifacts", f"runs/clickstream/{run_id}/predictions/") == []
    evaluation = env.get_json(
        f"s3://{env.pipeline.bucket('artifacts')}/runs/clickstream/{run_id}/evaluation.json"
    )
    assert evaluation["passed"] is False and evaluation["value"] == pytest.approx(2 / 9)
    assert set(env.clusters().values()) == {"TERMINATED"}

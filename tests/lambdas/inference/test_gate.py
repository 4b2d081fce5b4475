"""EvaluateModel: numpy scoring of the held-out sample, evaluation.json and the quality gate.

The fixtures' model scores sigmoid(2x); the test shards put positives at x = 0.5, 2, 0 and negatives at
x = -2, -1, 1, so the AUC is 7/9 on all six rows, 2/3 on the first shard's four, 5/6 on the first five."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from inference.handler import handler
from mlpipe_common.errors import EvaluationError, InvalidInput, ModelArtifactError, QualityGateFailed

Plan = Callable[..., dict[str, Any]]
ALL_ROWS = [(-2.0, 0), (-1.0, 0), (0.5, 1), (1.0, 0), (2.0, 1), (0.0, 1)]


def expected_log_loss(rows: list[tuple[float, int]]) -> float:
    total = 0.0
    for x, label in rows:
        p = 1 / (1 + math.exp(-2 * x))
        total -= math.log(p) if label else math.log(1 - p)
    return total / len(rows)


@pytest.fixture
def selected(
    planned: Plan, put_candidate: Callable[..., None], put_features: Callable[..., None]
) -> Callable[..., dict[str, Any]]:
    """A run planned, with features and one trained candidate selected; returns the EvaluateModel event."""
    from training.handler import handler as training

    def make(**execution_input: Any) -> dict[str, Any]:
        plan = planned(candidates=[{"name": "only"}], **execution_input)
        put_features(plan)
        put_candidate(plan, "only", 0.9)
        model = training({"action": "select", "plan_uri": plan["uris"]["plan"], "candidates": ["only"]}, None)
        return {
            "action": "evaluate",
            "plan_uri": plan["uris"]["plan"],
            "model_manifest_uri": model["model_manifest_uri"],
        }

    return make


def test_evaluate_scores_the_test_split_and_passes_the_gate(
    selected: Callable[..., dict[str, Any]], store: Any
) -> None:
    event = selected()
    payload = handler(event, None)
    assert set(payload) == {"evaluation_uri", "auc", "passed"}
    assert payload["auc"] == pytest.approx(7 / 9) and payload["passed"] is True
    evaluation = store.get_json(payload["evaluation_uri"])
    assert payload["evaluation_uri"].endswith("/runs/" + evaluation["run_id"] + "/evaluation.json")
    assert evaluation["rows"] == 6 and evaluation["positives"] == 3
    assert evaluation["auc"] == pytest.approx(7 / 9)
    assert evaluation["log_loss"] == pytest.approx(expected_log_loss(ALL_ROWS))
    assert (evaluation["threshold"], evaluation["threshold_source"], evaluation["passed"]) == (
        0.7,
        "QUALITY_GATE_MIN_AUC",
        True,
    )
    assert evaluation["model_uri"].endswith("/candidates/only/model/") and len(evaluation["shards"]) == 2


@pytest.mark.parametrize(
    ("sample_rows", "auc", "shards"), [("4", 2 / 3, 1), ("5", 5 / 6, 2), ("6", 7 / 9, 2), ("100", 7 / 9, 2)]
)
def test_sample_is_bounded_by_sample_rows(
    sample_rows: str,
    auc: float,
    shards: int,
    selected: Callable[..., dict[str, Any]],
    store: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAMPLE_ROWS", sample_rows)
    monkeypatch.setenv("QUALITY_GATE_MIN_AUC", "0.6")
    payload = handler(selected(), None)
    evaluation = store.get_json(payload["evaluation_uri"])
    assert evaluation["rows"] == min(int(sample_rows), 6)
    assert evaluation["auc"] == pytest.approx(auc) and len(evaluation["shards"]) == shards


def test_below_the_gate_raises_quality_gate_failed_and_publishes_nothing(
    selected: Callable[..., dict[str, Any]], store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUALITY_GATE_MIN_AUC", "0.8")
    event = selected()
    with pytest.raises(QualityGateFailed) as raised:
        handler(event, None)
    message = str(raised.value)
    assert "test AUC 0.7778" in message and "quality gate 0.8000" in message and "not registered" in message
    evaluation_uri = event["plan_uri"].replace("plan.json", "evaluation.json")
    evaluation = store.get_json(evaluation_uri)
    assert evaluation["passed"] is False and evaluation["threshold"] == 0.8
    # RegisterModel refuses this evaluation, so no state of the run marks the model as published
    from mlpipe_common.errors import RegistrationRefused
    from training.handler import handler as training

    with pytest.raises(RegistrationRefused, match=r"failed quality gate"):
        training({**event, "action": "register", "evaluation_uri": evaluation_uri}, None)


def test_the_runs_gate_override_applies(
    selected: Callable[..., dict[str, Any]], store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(QualityGateFailed, match=r"quality gate 0\.9000 \(from execution_input\)"):
        handler(selected(quality_gate={"min_auc": 0.9}), None)
    monkeypatch.setenv("QUALITY_GATE_MIN_AUC", "0.95")
    payload = handler(selected(quality_gate={"min_auc": 0.75}), None)
    assert store.get_json(payload["evaluation_uri"])["threshold_source"] == "execution_input"


@pytest.mark.parametrize(
    ("shards", "error", "message"),
    [
        ([{"x": [1.0, 2.0], "c": [0, 1], "label": [1, 1]}], EvaluationError, "AUC needs both classes"),
        ([{"x": [1.0], "c": [2], "label": [1]}], EvaluationError, r"bucket indices outside \[0, 2\)"),
        ([], EvaluationError, "the test split has no rows"),
    ],
)
def test_unusable_samples_are_evaluation_errors(
    shards: list[dict[str, list[Any]]],
    error: type[Exception],
    message: str,
    planned: Plan,
    put_candidate: Callable[..., None],
    put_features: Callable[..., None],
    store: Any,
    lambda_env: dict[str, str],
) -> None:
    from training.select_model import select_model

    plan = planned(candidates=[{"name": "only"}])
    put_features(plan, shards)
    put_candidate(plan, "only", 0.9)
    model = select_model(store.client, plan, ["only"], code_version="x")
    with pytest.raises(error, match=message):
        handler({"action": "evaluate", "plan_uri": plan["uris"]["plan"], **model}, None)
    assert store.keys(lambda_env["ARTIFACTS_BUCKET"], f"runs/{plan['run_id']}/evaluation.json") == []


def test_missing_feature_manifest_or_model_is_named(
    selected: Callable[..., dict[str, Any]], store: Any
) -> None:
    event = selected()
    plan = store.get_json(event["plan_uri"])
    bucket, key = plan["uris"]["manifest"].removeprefix("s3://").split("/", 1)
    store.client.delete_object(Bucket=bucket, Key=key)
    with pytest.raises(ModelArtifactError, match=r"feature manifest .*manifest.json does not exist"):
        handler(event, None)
    with pytest.raises(InvalidInput, match=r"event.action must be 'evaluate'"):
        handler({**event, "action": "score"}, None)
    with pytest.raises(InvalidInput, match=r"event.model_manifest_uri: .* does not exist"):
        handler(
            {**event, "model_manifest_uri": event["model_manifest_uri"].replace("model/", "other/")}, None
        )

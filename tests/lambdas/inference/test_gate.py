"""QualityGate: the evaluation job's figure against the workload's threshold, in the metric's direction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from inference.handler import handler
from mlpipe_common.errors import ConfigurationError, EvaluationError, InvalidInput, QualityGateFailed

Plan = Callable[..., dict[str, Any]]


@pytest.fixture
def selected(planned: Plan, put_candidate: Callable[..., None]) -> Callable[..., tuple[dict[str, Any], dict]]:
    """A run planned with one trained candidate selected; returns (the QualityGate event, the plan)."""
    from training.handler import handler as training

    def make(**execution_input: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        plan = planned(candidates=[{"name": "only"}], **execution_input)
        put_candidate(plan, "only", 0.9)
        model = training({"action": "select", "plan_uri": plan["uris"]["plan"], "candidates": ["only"]}, None)
        event = {
            "action": "gate",
            "plan_uri": plan["uris"]["plan"],
            "model_manifest_uri": model["model_manifest_uri"],
        }
        return event, plan

    return make


def test_a_figure_at_the_gate_passes_and_is_recorded(
    selected: Callable[..., Any], put_evaluation: Callable[..., str], store: Any
) -> None:
    event, plan = selected()
    metrics_uri = put_evaluation(plan, {"auc": 0.7, "log_loss": 0.4})
    payload = handler(event, None)
    assert payload == {
        "evaluation_uri": plan["uris"]["evaluation"],
        "metric": "auc",
        "value": 0.7,
        "passed": True,
    }
    evaluation = store.get_json(payload["evaluation_uri"])
    assert evaluation["metrics_uri"] == metrics_uri and evaluation["rows"] == 6
    assert evaluation["model_uri"] == f"{plan['uris']['candidates']}only/model/"
    assert (evaluation["metric"], evaluation["direction"], evaluation["threshold"]) == (
        "auc",
        "maximize",
        0.7,
    )
    assert evaluation["threshold_source"] == "METRIC_GATE" and evaluation["passed"] is True


def test_a_figure_below_a_maximized_gate_fails_after_recording_why(
    selected: Callable[..., Any], put_evaluation: Callable[..., str], store: Any
) -> None:
    event, plan = selected()
    put_evaluation(plan, {"auc": 0.69})
    with pytest.raises(
        QualityGateFailed, match=r"test auc 0.69 .* misses the quality gate auc >= 0.7 \(from METRIC_GATE\)"
    ):
        handler(event, None)
    assert store.get_json(plan["uris"]["evaluation"])["passed"] is False


@pytest.mark.parametrize(("value", "passed"), [(0.49, True), (0.5, True), (0.51, False)])
def test_a_minimized_metric_passes_at_or_below_the_gate(
    value: float,
    passed: bool,
    planned: Plan,
    put_candidate: Callable[..., None],
    put_evaluation: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    store: Any,
) -> None:
    from training.handler import handler as training

    for variable, setting in (
        ("METRIC_NAME", "rmse"),
        ("METRIC_DIRECTION", "minimize"),
        ("METRIC_GATE", "0.5"),
    ):
        monkeypatch.setenv(variable, setting)
    plan = planned(candidates=[{"name": "only"}])
    put_candidate(plan, "only", None, raw_metrics=b'{"validation": {"rmse": 0.45}}')
    model = training({"action": "select", "plan_uri": plan["uris"]["plan"], "candidates": ["only"]}, None)
    put_evaluation(plan, {"rmse": value})
    event = {
        "action": "gate",
        "plan_uri": plan["uris"]["plan"],
        "model_manifest_uri": model["model_manifest_uri"],
    }
    if passed:
        assert handler(event, None)["value"] == value
    else:
        with pytest.raises(QualityGateFailed, match=r"test rmse 0.51 .* misses the quality gate rmse <= 0.5"):
            handler(event, None)
    assert store.get_json(plan["uris"]["evaluation"])["passed"] is passed


def test_the_run_can_override_the_threshold(
    selected: Callable[..., Any], put_evaluation: Callable[..., str], store: Any
) -> None:
    event, plan = selected(quality_gate={"threshold": 0.95})
    put_evaluation(plan, {"auc": 0.9})
    with pytest.raises(QualityGateFailed, match=r"auc >= 0.95 \(from execution_input\)"):
        handler(event, None)
    assert store.get_json(plan["uris"]["evaluation"])["threshold_source"] == "execution_input"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, r"the evaluation job's metrics s3://.*/evaluation/metrics.json does not exist"),
        (b"{cut", r"is not valid JSON"),
        (b'{"validation": {"auc": 0.9}}', r"has no finite number at test.auc"),
        (b'{"test": {"auc": "0.9"}}', r"has no finite number at test.auc"),
        (b'{"test": {"auc": NaN}}', r"has no finite number at test.auc"),
        (b'{"test": {"auc": true}}', r"has no finite number at test.auc"),
    ],
)
def test_a_missing_or_unreadable_figure_is_an_evaluation_error(
    raw: bytes | None,
    message: str,
    selected: Callable[..., Any],
    put_evaluation: Callable[..., str],
    store: Any,
    lambda_env: dict[str, str],
) -> None:
    event, plan = selected()
    if raw is not None:
        put_evaluation(plan, raw=raw)
    with pytest.raises(EvaluationError, match=message):
        handler(event, None)
    assert not store.keys(lambda_env["ARTIFACTS_BUCKET"], plan["uris"]["evaluation"].split("/", 3)[3])


def test_a_manifest_of_another_run_is_refused(
    selected: Callable[..., Any], put_evaluation: Callable[..., str]
) -> None:
    event, _ = selected(run_id="gate-a")
    other, plan = selected(run_id="gate-b")
    put_evaluation(plan, {"auc": 0.9})
    with pytest.raises(InvalidInput, match=r"is not a model manifest of run 'gate-b'"):
        handler({**other, "model_manifest_uri": event["model_manifest_uri"]}, None)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("METRIC_DIRECTION", "up", r"METRIC_DIRECTION='up' is not one of"),
        ("METRIC_GATE", "", r"METRIC_GATE is not set"),
        ("METRIC_GATE", "nan", r"METRIC_GATE=nan is outside"),
    ],
)
def test_a_bad_deployment_setting_is_a_configuration_error(
    variable: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch, lambda_env: dict[str, str]
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message):
        handler(
            {"action": "gate", "plan_uri": "s3://x/plan.json", "model_manifest_uri": "s3://x/m.json"}, None
        )

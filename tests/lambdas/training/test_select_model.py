"""SelectModel: the best candidate by the workload's validation metric, and the model manifest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mlpipe_common.errors import CandidateMetricsError, InvalidInput, ModelArtifactError
from mlpipe_common.metric import Metric
from training.handler import handler
from training.select_model import select_model

Plan = Callable[..., dict[str, Any]]
CANDIDATES = [{"name": n} for n in ("alpha", "beta", "gamma")]
AUC = Metric("auc", "maximize")


def select(plan: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return handler({"action": "select", "plan_uri": plan["uris"]["plan"], "candidates": names}, None)


def test_select_picks_the_best_validation_figure_and_writes_the_manifest(
    planned: Plan, put_candidate: Callable[..., None], store: Any, lambda_env: dict[str, str]
) -> None:
    plan = planned(
        run_id="sel-1", candidates=[{"name": "alpha", "hyperparameters": {"lr": 0.1}}, *CANDIDATES[1:]]
    )
    for name, auc in (("alpha", 0.81), ("beta", 0.86), ("gamma", 0.79)):
        put_candidate(plan, name, auc)
    payload = select(plan, ["alpha", "beta", "gamma"])
    artifacts = lambda_env["ARTIFACTS_BUCKET"]
    assert payload == {
        "model_manifest_uri": f"s3://{artifacts}/runs/clicks/sel-1/model/manifest.json",
        "model_uri": f"s3://{artifacts}/runs/clicks/sel-1/candidates/beta/model/",
        "best_candidate": "beta",
        "validation": 0.86,
    }
    manifest = store.get_json(payload["model_manifest_uri"])
    assert manifest["best_candidate"] == "beta" and manifest["model_uri"] == payload["model_uri"]
    assert manifest["metrics"]["validation"] == {"auc": 0.86, "log_loss": 0.5}
    assert manifest["metric"] == {"name": "auc", "direction": "maximize"}
    assert [row["name"] for row in manifest["leaderboard"]] == ["beta", "alpha", "gamma"]
    assert manifest["lineage"] == {
        "run_id": "sel-1",
        "plan_uri": plan["uris"]["plan"],
        "raw_uri": plan["raw_uri"],
        "curated_uri": plan["uris"]["curated"],
        "training_input_uri": plan["uris"]["training_input"],
        "code_version": "0123abc",
    }
    assert not store.keys(artifacts, "tmp/")


def test_without_spark_stages_the_lineage_names_the_raw_input_and_no_curated_data(
    planned: Plan, put_candidate: Callable[..., None], store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGES", "[]")
    plan = planned(run_id="lean-1", candidates=CANDIDATES[:1])
    put_candidate(plan, "alpha", 0.8)
    lineage = store.get_json(select(plan, ["alpha"])["model_manifest_uri"])["lineage"]
    assert (lineage["curated_uri"], lineage["training_input_uri"]) == (None, plan["raw_uri"])


@pytest.mark.parametrize(
    "order", [["alpha", "beta", "gamma"], ["gamma", "beta", "alpha"], ["beta", "gamma", "alpha"]]
)
def test_ties_go_to_the_smallest_name_whatever_the_order(
    order: list[str], planned: Plan, put_candidate: Callable[..., None]
) -> None:
    plan = planned(candidates=CANDIDATES)
    for name, auc in (("alpha", 0.80), ("beta", 0.85), ("gamma", 0.85)):
        put_candidate(plan, name, auc)
    assert select(plan, order)["best_candidate"] == "beta"


@pytest.mark.parametrize(("direction", "best"), [("minimize", "alpha"), ("maximize", "beta")])
def test_the_direction_decides_which_figure_wins(
    direction: str,
    best: str,
    planned: Plan,
    put_candidate: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRIC_NAME", "rmse")
    monkeypatch.setenv("METRIC_DIRECTION", direction)
    plan = planned(candidates=CANDIDATES[:2])
    put_candidate(plan, "alpha", None, raw_metrics=b'{"validation": {"rmse": 0.9, "auc": 0.1}}')
    put_candidate(plan, "beta", None, raw_metrics=b'{"validation": {"rmse": 1.4, "auc": 0.9}}')
    payload = select(plan, ["alpha", "beta"])
    assert payload["best_candidate"] == best and payload["validation"] == {"alpha": 0.9, "beta": 1.4}[best]


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        (None, r"candidate 'beta': s3://.*/runs/.*/candidates/beta/metrics.json does not exist"),
        (b"{truncated", r"candidate 'beta': s3://.*/candidates/beta/metrics.json is not valid JSON"),
        (
            b'{"validation": {"log_loss": 0.3}}',
            r"candidate 'beta': .* has no finite number at validation.auc",
        ),
        (b'{"validation_auc": 0.9}', r"candidate 'beta': .* has no finite number at validation.auc"),
        (b'{"validation": {"auc": null}}', r"candidate 'beta': .* has no finite number at validation.auc"),
        (b'{"validation": {"auc": "0.9"}}', r"candidate 'beta': .* has no finite number at validation.auc"),
        (
            b'{"validation": {"auc": Infinity}}',
            r"candidate 'beta': .* has no finite number at validation.auc",
        ),
        (b"[0.9]", r"candidate 'beta': .* has no finite number at validation.auc"),
    ],
)
def test_missing_or_corrupt_metrics_name_the_candidate(
    metrics: bytes | None,
    message: str,
    planned: Plan,
    put_candidate: Callable[..., None],
    store: Any,
    lambda_env: dict[str, str],
) -> None:
    plan = planned(candidates=CANDIDATES)
    put_candidate(plan, "alpha", 0.8)
    put_candidate(plan, "beta", None, raw_metrics=metrics, model=False)
    put_candidate(plan, "gamma", 0.9)
    with pytest.raises(CandidateMetricsError, match=message):
        select(plan, ["alpha", "beta", "gamma"])
    assert not store.keys(lambda_env["ARTIFACTS_BUCKET"], plan["uris"]["model_manifest"].split("/", 3)[3])


def test_best_candidate_without_a_saved_model_is_an_error(
    planned: Plan, put_candidate: Callable[..., None]
) -> None:
    plan = planned(candidates=CANDIDATES[:2])
    put_candidate(plan, "alpha", 0.9, model=False)
    put_candidate(plan, "beta", 0.8)
    with pytest.raises(
        ModelArtifactError,
        match=r"candidate .alpha. has the best validation auc but saved nothing under .*/alpha/model/",
    ):
        select(plan, ["alpha", "beta"])


def test_unknown_or_duplicate_names_are_invalid(s3: Any, planned: Plan) -> None:
    plan = planned(candidates=CANDIDATES)
    with pytest.raises(InvalidInput, match=r"\['delta'\] are not candidates of run"):
        select_model(s3, plan, ["alpha", "delta"], metric=AUC, code_version="x")
    with pytest.raises(InvalidInput, match=r"duplicate names"):
        select_model(s3, plan, ["alpha", "alpha"], metric=AUC, code_version="x")
    with pytest.raises(InvalidInput, match=r"event.candidates must be a non-empty list"):
        select(plan, [])

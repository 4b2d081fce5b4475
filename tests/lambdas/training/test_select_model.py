"""SelectModel: the best candidate by validation AUC and the model manifest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mlpipe_common.errors import CandidateMetricsError, InvalidInput, ModelArtifactError
from training.handler import handler
from training.select_model import select_model

Plan = Callable[..., dict[str, Any]]
CANDIDATES = [{"name": n} for n in ("alpha", "beta", "gamma")]


def select(plan: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return handler({"action": "select", "plan_uri": plan["uris"]["plan"], "candidates": names}, None)


def test_select_picks_the_highest_validation_auc_and_writes_the_manifest(
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
        "model_manifest_uri": f"s3://{artifacts}/runs/sel-1/model/manifest.json",
        "model_uri": f"s3://{artifacts}/runs/sel-1/candidates/beta/model/",
        "best_candidate": "beta",
        "validation_auc": 0.86,
    }
    manifest = store.get_json(payload["model_manifest_uri"])
    assert manifest["best_candidate"] == "beta" and manifest["model_uri"] == payload["model_uri"]
    assert manifest["metrics"]["validation_auc"] == 0.86 and manifest["metrics"]["validation_log_loss"] == 0.5
    assert [row["name"] for row in manifest["leaderboard"]] == ["beta", "alpha", "gamma"]
    assert manifest["lineage"] == {
        "run_id": "sel-1",
        "plan_uri": plan["uris"]["plan"],
        "raw_uri": plan["raw_uri"],
        "curated_events_uri": plan["uris"]["curated_events"],
        "features_manifest_uri": plan["uris"]["manifest"],
        "code_version": "0123abc",
    }
    assert not store.keys(artifacts, "tmp/")


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


def test_nested_validation_auc_is_accepted(planned: Plan, put_candidate: Callable[..., None]) -> None:
    plan = planned(candidates=CANDIDATES[:2])
    put_candidate(plan, "alpha", None, raw_metrics=b'{"validation": {"auc": 0.9}}')
    put_candidate(plan, "beta", 0.7)
    assert select(plan, ["alpha", "beta"])["best_candidate"] == "alpha"


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        (None, r"candidate 'beta': s3://.*/runs/.*/candidates/beta/metrics.json does not exist"),
        (b"{truncated", r"candidate 'beta': s3://.*/candidates/beta/metrics.json is not valid JSON"),
        (b'{"validation_log_loss": 0.3}', r"candidate 'beta': .* has no validation AUC"),
        (b'{"validation_auc": null}', r"candidate 'beta': .* has no validation AUC"),
        (b'{"validation_auc": "0.9"}', r"candidate 'beta': .* has no validation AUC"),
        (b'{"validation": {"auc": 1.7}}', r"candidate 'beta': .* has no validation AUC"),
        (b"[0.9]", r"candidate 'beta': .* has no validation AUC"),
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
    assert store.keys(lambda_env["ARTIFACTS_BUCKET"], f"runs/{plan['run_id']}/model/") == []


def test_best_candidate_without_model_files_is_an_error(
    planned: Plan, put_candidate: Callable[..., None]
) -> None:
    plan = planned(candidates=CANDIDATES[:2])
    put_candidate(plan, "alpha", 0.9, model=False)
    put_candidate(plan, "beta", 0.8)
    with pytest.raises(
        ModelArtifactError, match=r"candidate .alpha. .*candidates/alpha/model/model.json does not exist"
    ):
        select(plan, ["alpha", "beta"])


def test_unknown_or_duplicate_names_are_invalid(s3: Any, planned: Plan) -> None:
    plan = planned(candidates=CANDIDATES)
    with pytest.raises(InvalidInput, match=r"\['delta'\] are not candidates of run"):
        select_model(s3, plan, ["alpha", "delta"], code_version="x")
    with pytest.raises(InvalidInput, match=r"duplicate names"):
        select_model(s3, plan, ["alpha", "alpha"], code_version="x")
    with pytest.raises(InvalidInput, match=r"event.candidates must be a non-empty list"):
        select(plan, [])


def test_model_files_match_the_portable_model() -> None:
    from mlpipe_common import portable_model
    from training.select_model import MODEL_FILES

    assert (portable_model.MODEL_JSON, portable_model.WEIGHTS_NPZ) == MODEL_FILES

"""Scenario 1: every state of the success path runs; the output points to the model, metrics and predictions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from doubles import GOOD_TEST_AUC, FakeBatch

pytestmark = [pytest.mark.scenario, pytest.mark.xdist_group("scenario")]


def test_every_state_runs_and_the_output_points_to_model_metrics_and_predictions(
    local: Callable[..., Any], all_states: set[str], failure_states: set[str]
) -> None:
    env = local(batch=FakeBatch(validation_auc={"baseline": 0.81, "wide": 0.86}))
    candidates = [
        {"name": "baseline", "hyperparameters": {"lr": 0.003}},
        {"name": "wide", "hyperparameters": {"lr": 0.002, "hidden": [256, 128]}, "nodes": 2},
    ]
    result = env.run(env.input(candidates=candidates))

    assert result.status == "SUCCEEDED", result.cause
    entered = result.entered()
    assert set(entered) == all_states - failure_states  # every state of the success path, nothing else
    assert entered[0] == "Plan" and entered[-1] == "Summarize"
    assert entered.count("MultiNode?") == 2

    out = result.output
    run_id = out["run_id"]
    artifacts = f"s3://{env.pipeline.bucket('artifacts')}/runs/clickstream/{run_id}/"
    assert out == {
        "run_id": run_id,
        "model_uri": f"{artifacts}candidates/wide/model/",
        "model_manifest_uri": f"{artifacts}model/manifest.json",
        "best_candidate": "wide",
        "evaluation_uri": f"{artifacts}evaluation.json",
        "metric": "auc",
        "test_value": pytest.approx(GOOD_TEST_AUC),
        "predictions_uri": f"{artifacts}predictions/",
        "model_package_arn": out["model_package_arn"],
    }
    # what the pointers point to
    manifest = env.get_json(out["model_manifest_uri"])
    assert manifest["best_candidate"] == "wide" and manifest["validation"] == 0.86
    assert {row["name"]: row["validation"] for row in manifest["leaderboard"]} == {
        "baseline": 0.81,
        "wide": 0.86,
    }
    evaluation = env.get_json(out["evaluation_uri"])
    assert evaluation["passed"] is True and evaluation["rows"] == 6
    assert env.keys("artifacts", f"runs/clickstream/{run_id}/predictions/") == [
        f"runs/clickstream/{run_id}/predictions/metrics.json",
        f"runs/clickstream/{run_id}/predictions/part-00000.parquet",
    ]
    [package] = env.model_packages()
    assert package["ModelPackageArn"] == out["model_package_arn"]
    assert package["ModelApprovalStatus"] == "PendingManualApproval"

    # the work: Glue once, both EMR steps, one Batch job per candidate and one for inference, all first time
    assert [run.arguments["--output"] for run in env.glue.runs] == [
        f"s3://{env.pipeline.bucket('curated')}/curated/clickstream/"
    ]
    assert [step.name for step in env.emr.runs] == ["BuildFeatures", "BuildInferenceFeatures"]
    jobs = {job.job_name: job for job in env.batch.runs}
    assert sorted(jobs) == sorted(
        [f"{run_id}-baseline", f"{run_id}-wide", f"{run_id}-evaluation", f"{run_id}-inference"]
    )
    assert all(job.attempt == 1 for job in env.batch.runs)
    assert jobs[f"{run_id}-wide"].num_nodes == 2 and jobs[f"{run_id}-wide"].definition.type == "multinode"
    assert jobs[f"{run_id}-baseline"].definition.type == "container"
    assert jobs[f"{run_id}-wide"].command[-2:] == ("--hyperparameters", '{"hidden":[256,128],"lr":0.002}')
    assert jobs[f"{run_id}-inference"].parameters["model"] == out["model_uri"]
    evaluation_job = jobs[f"{run_id}-evaluation"]  # the held-out figure comes from the workload's own scoring
    assert evaluation_job.parameters["model"] == out["model_uri"] and evaluation_job.command[-2:] == (
        "--split",
        "test",
    )
    assert evaluation["metrics_uri"] == f"{evaluation_job.parameters['output']}metrics.json"

    assert list(env.clusters().values()) == ["TERMINATED"]  # the transient cluster is gone
    assert env.notifications() == []
    assert env.pipeline.retry_waits == []


def test_the_deployment_default_candidates_run(local: Callable[..., Any]) -> None:
    """No candidates in the input: the workload's candidates (its workload.toml) are trained."""
    env = local()
    result = env.run(env.input())

    assert result.status == "SUCCEEDED", result.cause
    names = sorted(
        job.parameters["output"].rstrip("/").rsplit("/", 1)[-1]  # .../candidates/<name>/
        for job in env.batch.runs
        if "mlpipe_batch.train" in job.command
    )
    assert names == ["baseline", "ddp-2-nodes"]

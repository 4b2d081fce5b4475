"""Scenario 5: the Glue clean job fails: caught, notified, the execution fails cleanly; nothing is published."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from doubles import FakeGlue

from mlpipe.local import GlueJobRun, Outcome

pytestmark = [pytest.mark.scenario, pytest.mark.xdist_group("scenario")]

GLUE_ERROR = "AnalysisException: [PATH_NOT_FOUND] Path does not exist: s3://raw/events/"


def test_glue_failure_is_caught_notified_and_nothing_is_published(local: Callable[..., Any]) -> None:
    env = local(glue=FakeGlue(fail_with=GLUE_ERROR))
    result = env.run(env.input(candidates=[{"name": "baseline"}]))

    assert result.status == "FAILED"
    assert result.error == "States.TaskFailed"
    cause = result.cause or ""
    assert cause.startswith("CleanData failed: ")
    run = json.loads(cause.removeprefix("CleanData failed: "))
    assert run["JobRunState"] == "FAILED" and run["ErrorMessage"] == GLUE_ERROR
    assert len(env.glue.runs) == 1  # a job failure is not a transient Glue error: no Retry

    [message] = env.notifications()
    assert message["state"] == "CleanData" and message["cause"] == cause

    entered = result.entered()
    # Caught inside its branch: the Parallel keeps the cluster it started, and the failure path ends it.
    assert {
        "CleanData failed",
        "DataCleaned?",
        "Cleaning failed",
        "NotifyFailure",
        "TerminateClusterAfterFailure",
    } <= set(entered)
    assert "PrepareData failed" not in entered
    assert entered[-1] == "PipelineFailed"
    assert not {"BuildFeatures", "ExpandCandidates", "SelectModel", "Publish"} & set(entered)
    assert env.emr.runs == [] and env.batch.runs == []
    assert env.model_packages() == []
    artifacts = env.keys("artifacts")
    assert [key for key in artifacts if not key.endswith("/plan.json")] == []  # only the plan was written


class _GlueFailingAfterTheCluster(FakeGlue):
    """Fails once the EMR cluster is up (a Glue run takes minutes; a cluster can be ready before it ends)."""

    def __init__(self, cluster_up: threading.Event) -> None:
        super().__init__(fail_with=GLUE_ERROR)
        self.cluster_up = cluster_up

    def run(self, job: GlueJobRun) -> Outcome:
        assert self.cluster_up.wait(10), "the cluster was never created"
        return super().run(job)


def test_glue_failure_after_the_cluster_is_up_leaves_no_cluster_running(local: Callable[..., Any]) -> None:
    cluster_up = threading.Event()
    env = local(glue=_GlueFailingAfterTheCluster(cluster_up))
    original = env.pipeline.services.emr.create_cluster

    def create_cluster(request: Any) -> Any:
        created = original(request)
        cluster_up.set()
        return created

    env.pipeline.services.emr.create_cluster = create_cluster  # type: ignore[method-assign]
    result = env.run(env.input(candidates=[{"name": "baseline"}]))

    assert result.status == "FAILED"
    assert len(env.clusters()) == 1
    assert set(env.clusters().values()) == {"TERMINATED"}

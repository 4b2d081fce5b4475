"""Scenario: a Batch job that never ends. A job's own limit counts neither its time RUNNABLE nor its retries,
so the state's TimeoutSeconds bounds it (stacks/defaults.py: batch_task_bound). When that fires, the Catch
path runs as for any failure: notified once, the transient cluster terminated, the execution failed with
States.Timeout (Step Functions' error for a state that ran past its TimeoutSeconds)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from doubles import FakeBatch

from mlpipe.local import BatchJob, Outcome

pytestmark = [pytest.mark.scenario, pytest.mark.xdist_group("scenario")]


class _StuckBatch(FakeBatch):
    """The training job stays where it is (RUNNABLE behind other shares, say) until the test ends."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def run(self, job: BatchJob) -> Outcome:
        if "-baseline" in job.job_name:
            self.release.wait(60)
            return Outcome.failure("the test ended", exit_code=None)
        return super().run(job)


def test_a_job_that_never_ends_times_out_its_state_and_the_failure_path_runs(
    local: Callable[..., Any],
) -> None:
    release = threading.Event()
    try:
        env = local(batch=_StuckBatch(release), timeouts={"TrainSingleNode": 2})
        result = env.run(env.input(candidates=[{"name": "baseline"}]))
    finally:
        release.set()

    assert result.status == "FAILED"
    assert result.error == "States.Timeout", result.cause
    [message] = env.notifications()
    assert message["state"] == "TrainAndPrepareInference"
    entered = result.entered()
    assert {"NotifyFailure", "TerminateClusterAfterFailure"} <= set(entered)
    assert entered[-1] == "PipelineFailed"
    assert not {"SelectModel", "Publish"} & set(entered)
    assert set(env.clusters().values()) <= {"TERMINATED", "TERMINATING"}

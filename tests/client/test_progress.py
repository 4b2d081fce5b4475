"""Per-state progress from history events: retried failures are not failures, caught ones are, and the
failing state is found along previousEventId even when branches interleave."""

from __future__ import annotations

from typing import Any

from mlpipe.client.progress import ExecutionProgress


def events(*specs: tuple[Any, ...]) -> list[dict[str, Any]]:
    """(id, previous id, type, state name or failure error)."""
    built = []
    for event_id, previous, kind, detail in specs:
        event: dict[str, Any] = {"id": event_id, "previousEventId": previous, "type": kind}
        if kind.endswith("StateEntered"):
            event["stateEnteredEventDetails"] = {"name": detail}
        elif kind.endswith("StateExited"):
            event["stateExitedEventDetails"] = {"name": detail}
        elif kind.endswith("Failed") and detail:
            event[kind[0].lower() + kind[1:] + "EventDetails"] = {"error": detail, "cause": "why"}
        built.append(event)
    return built


def test_a_retried_failure_is_not_the_state_s_failure() -> None:
    progress = ExecutionProgress()
    for event in events(
        (1, 0, "ExecutionStarted", None),
        (2, 1, "TaskStateEntered", "Plan"),
        (3, 2, "LambdaFunctionScheduled", None),
        (4, 3, "LambdaFunctionFailed", "Lambda.TooManyRequestsException"),
        (5, 4, "LambdaFunctionScheduled", None),
        (6, 5, "LambdaFunctionSucceeded", None),
        (7, 6, "TaskStateExited", "Plan"),
    ):
        progress.add(event)
    assert progress.states["Plan"].status == "succeeded"


def test_a_caught_failure_fails_the_state_and_names_it() -> None:
    progress = ExecutionProgress()
    for event in events(
        (1, 0, "ExecutionStarted", None),
        (2, 1, "TaskStateEntered", "EvaluateModel"),
        (3, 2, "LambdaFunctionScheduled", None),
        (4, 3, "LambdaFunctionFailed", "QualityGateFailed"),
        (5, 4, "TaskStateExited", "EvaluateModel"),
        (6, 5, "PassStateEntered", "EvaluateModel failed"),
        (7, 6, "PassStateExited", "EvaluateModel failed"),
        (8, 7, "FailStateEntered", "Fail"),
        (9, 8, "ExecutionFailed", None),
    ):
        progress.add(event)
    progress.finish("FAILED")
    assert progress.states["EvaluateModel"].status == "failed"
    assert progress.states["EvaluateModel failed"].status == "succeeded"
    assert progress.failure("QualityGateFailed", "why").state == "EvaluateModel"


def test_interleaved_map_iterations_count_per_state() -> None:
    progress = ExecutionProgress()
    for event in events(
        (1, 0, "MapStateEntered", "Train"),
        (2, 1, "TaskStateEntered", "TrainSingleNode"),
        (3, 1, "TaskStateEntered", "TrainSingleNode"),
        (4, 2, "TaskScheduled", None),
        (5, 3, "TaskScheduled", None),
        (6, 5, "TaskFailed", "Batch.JobFailed"),
        (7, 4, "TaskSucceeded", None),
        (8, 7, "TaskStateExited", "TrainSingleNode"),
    ):
        progress.add(event)
    train = progress.states["TrainSingleNode"]
    assert (train.entered, train.succeeded, train.running) == (2, 1, 1)
    assert train.describe() == "1 running, 1 succeeded"
    assert progress.failure("Batch.JobFailed", None).state == "TrainSingleNode"
    progress.finish("FAILED")
    assert train.describe() == "1 succeeded, 1 failed"


def test_events_are_taken_once_and_a_fail_state_is_the_fallback() -> None:
    progress = ExecutionProgress()
    stream = events(
        (1, 0, "PassStateEntered", "Plan"),
        (2, 1, "PassStateExited", "Plan"),
        (3, 2, "FailStateEntered", "Stop"),
    )
    for event in stream + stream:
        progress.add(event)
    assert progress.states["Plan"].entered == 1
    assert progress.failure("E", "c").state == "Stop"

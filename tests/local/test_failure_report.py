"""A failed local run's report names the job whose failure failed the state, and that job's log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlpipe.local.jobs import Journal
from mlpipe.local.mode import _failure


def _batch_cause(job_name: str) -> str:
    """What Step Functions gives as the cause of a failed `batch:submitJob.sync` task: the job's description."""
    return json.dumps({"JobName": job_name, "Status": "FAILED", "StatusReason": "Essential container exited"})


def _journal(tmp_path: Path, *names: str) -> Journal:
    journal = Journal(tmp_path / "journal.jsonl")
    for name in names:
        journal.record(f"batch:{name}", status="FAILED", label=f"Batch job {name}", name=name,
                       log=tmp_path / f"{name}.log", reason=f"{name} exited 1")  # fmt: skip
    return journal


def test_of_two_failed_candidates_the_report_names_the_one_in_the_cause(tmp_path: Path) -> None:
    # Both candidates of the Map state fail: `mlp` failed the state, then `mlp2` (a name that begins with it).
    journal = _journal(tmp_path, "r-1-mlp", "r-1-mlp2")
    notice = {
        "state": "TrainAndPrepareInference",
        "error": "States.TaskFailed",
        "cause": _batch_cause("r-1-mlp"),
    }
    failure = _failure(None, journal, [notice], tmp_path / "lambdas.log", interrupted=False)
    assert failure["job"] == "Batch job r-1-mlp"
    assert failure["log"] == str(tmp_path / "r-1-mlp.log")
    assert failure["reason"] == "r-1-mlp exited 1"


def test_a_cause_that_names_no_job_reports_the_last_failure(tmp_path: Path) -> None:
    journal = _journal(tmp_path, "r-1-a", "r-1-b")
    notice = {"state": "Summarize", "error": "States.Timeout", "cause": "the state timed out"}
    failure = _failure(None, journal, [notice], tmp_path / "lambdas.log", interrupted=False)
    assert failure["job"] == "Batch job r-1-b" and failure["log"] == str(tmp_path / "r-1-b.log")


def test_the_command_says_why_the_job_failed_before_its_last_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlpipe.commands.local import _report

    reason = "exit status 2: mlpipe_clean: error: clean.parse does not return the column 'nope' that --partition-column names"
    summary = {"status": "FAILED", "run_id": "r-1", "workdir": str(tmp_path), "failure": {
        "state": "CleanData", "error": "States.TaskFailed", "cause": "...", "log": str(tmp_path / "glue.log"),
        "job": "Glue job MlpipeDev-Workload-w-GlueJob", "reason": reason}}  # fmt: skip
    assert _report(summary) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == f"Glue job MlpipeDev-Workload-w-GlueJob: {reason}"
    assert lines[1].startswith("local run r-1 FAILED: state CleanData failed with States.TaskFailed; log: ")


def test_a_failed_jobs_reason_keeps_its_last_lines_whole(tmp_path: Path) -> None:
    from mlpipe.local.jobs import _tail

    log = tmp_path / "glue.log"
    command = (
        "[spark host 1] clean_job.py --input s3://raw/x/ " + "--flag value " * 40 + "(the JVM's log: /x)"
    )
    error = "mlpipe_clean: error: clean.parse does not return the column 'orderid' that --dedupe-key names"
    log.write_text(f"starting\n{command}\n\n{error}\n")
    assert _tail(log) == error  # the command line does not fit whole: left out, not cut
    log.write_text(f"first\nsecond\n{error}\n")
    assert _tail(log) == f"first | second | {error}"
    log.write_text("x" * 500 + "\n")
    assert _tail(log) == "x" * 400

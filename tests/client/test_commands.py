"""The `mlpipe` commands against a moto server (127.0.0.1, a free port) holding the deployment, through
AWS_ENDPOINT_URL. Two tests run the command as a user does, `python -m mlpipe ...` in a subprocess: the
happy path and every kind of bad input. The others call its `main` in this process (`mlpipe_main`): the same
code and the same server, without an interpreter's start and imports (about half a second a call)."""

from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer
from moto_deployment import (
    ARTIFACTS,
    CURATED,
    GATE_CAUSE,
    LOG_GROUP,
    MOTO_CONFIG,
    RAW,
    REGION,
    deploy,
    moto_gaps_filled,
)

from mlpipe import cli

pytestmark = pytest.mark.xdist_group("client-server")

REPO = Path(__file__).resolve().parents[2]
RAW_URI = f"s3://{RAW}/events/"
MANIFEST = f"s3://{CURATED}/features/clicks/r1/manifest.json"
OUTPUT = f"s3://{ARTIFACTS}/runs/clicks/r1/candidates/a/"
SUBMIT = ["train", "submit", "--input", MANIFEST, "--output-prefix", OUTPUT]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, str]]:
    """A moto server in this process with mlpipe deployed; yields the environment for the command."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    environment = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "MOTO_PORT": str(port),  # moto's Step Functions interpreter calls the Plan Lambda here
    }
    with (
        moto_gaps_filled(),
        mock.patch.dict(default_user_config, MOTO_CONFIG),
        mock.patch.dict(os.environ, environment),
    ):
        for name in [k for k in os.environ if k.startswith(("MLPIPE_", "AWS_PROFILE"))]:
            del os.environ[name]  # the command in this process sees what a subprocess would (restored after)
        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        moto.start()
        try:
            deploy(boto3.Session(region_name=REGION))
            yield {**os.environ, "PYTHONWARNINGS": "ignore"}
        finally:
            moto.stop()


def mlpipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m mlpipe args` in a subprocess with `env`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mlpipe", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def mlpipe_main(*args: str) -> subprocess.CompletedProcess[str]:
    """The command's `main(args)` in this process (the `server` fixture's environment is this process's), with
    its output captured: an exit through `SystemExit` (argparse, `parser.exit`) gives its status as a process
    would; any other exception fails the test with its traceback and the output so far. A call that outlives
    the subprocesses' 120 s limit ends the test worker with every thread's traceback instead of hanging it."""
    out, err = io.StringIO(), io.StringIO()
    faulthandler.dump_traceback_later(120, exit=True)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
    except Exception as exc:
        exc.add_note(f"mlpipe {' '.join(args)}\nstdout:\n{out.getvalue()}\nstderr:\n{err.getvalue()}")
        raise
    finally:
        faulthandler.cancel_dump_traceback_later()
    return subprocess.CompletedProcess(["mlpipe", *args], code, out.getvalue(), err.getvalue())


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed as a user error should: exit 2, one line on stderr, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def write(tmp_path: Path, name: str, document: Any) -> str:
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_run_wait_shows_each_state_then_the_output(server: dict[str, str], tmp_path: Path) -> None:
    path = write(tmp_path, "input.json", {"raw_uri": RAW_URI, "run_id": "cli-ok"})
    result = mlpipe(server, "run", path, "--wait", "--poll-seconds", "0.2")
    assert result.returncode == 0, result.stderr
    progress = result.stderr
    assert "started run cli-ok" in progress
    assert "\x1b[" not in progress  # not a terminal: plain lines, no live display
    state_lines = [line.split()[1:3] for line in progress.splitlines() if len(line.split()) >= 3]
    assert ["Plan", "succeeded"] in state_lines and ["Summarize", "succeeded"] in state_lines
    assert "run cli-ok: SUCCEEDED" in result.stdout
    assert '"published": true' in result.stdout


def test_a_failed_run_exits_1_with_state_error_and_cause(server: dict[str, str], tmp_path: Path) -> None:
    path = write(tmp_path, "gate.json", {"raw_uri": RAW_URI, "quality_gate": {"threshold": 0.95}})
    result = mlpipe_main(
        "run", path, "--run-id", "cli-gate", "--wait", "--poll-seconds", "0.2", "--output", "json"
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "FAILED" and report["name"] == "cli-gate"
    assert (report["failed_state"], report["error"], report["cause"]) == (
        "EvaluateModel",
        "QualityGateFailed",
        GATE_CAUSE,
    )

    again = one_line_error(mlpipe_main("run", path, "--run-id", "cli-gate"))
    assert "run cli-gate already has an execution (FAILED" in again and "mlpipe redrive cli-gate" in again

    status = mlpipe_main("status", "cli-gate")
    assert status.returncode == 0
    assert "failed in  EvaluateModel" in status.stdout and GATE_CAUSE in status.stdout

    listed = json.loads(mlpipe_main("list", "--status", "FAILED", "--output", "json").stdout)
    assert "cli-gate" in [e["name"] for e in listed]


def test_run_without_wait_then_stop(server: dict[str, str], tmp_path: Path) -> None:
    held = write(
        tmp_path, "held.json", {"raw_uri": RAW_URI, "quality_gate": {"threshold": 0.5}}
    )  # waits an hour
    started = mlpipe_main("run", held, "--output", "json", "--run-id", "cli-held")
    assert started.returncode == 0, started.stderr
    document = json.loads(started.stdout)
    assert document["run_id"] == "cli-held" and document["run_id_derived"] is False
    # The same input again while it runs: Step Functions returns the same execution.
    same = mlpipe_main("run", held, "--output", "json", "--run-id", "cli-held")
    assert json.loads(same.stdout)["execution_arn"] == document["execution_arn"]
    # moto answers RUNNING before its interpreter has started the execution, and a StopExecution in between
    # fails inside moto: stop it once it waits in its Wait state (a process's start used to leave the time).
    sfn = boto3.client("stepfunctions", region_name=REGION, endpoint_url=server["AWS_ENDPOINT_URL"])
    for _ in range(100):
        events = sfn.get_execution_history(executionArn=document["execution_arn"])["events"]
        if any(e["type"] == "WaitStateEntered" for e in events):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the run never entered its Wait state")
    stopped = mlpipe_main("stop", "cli-held", "--cause", "not needed", "--output", "json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["status"] == "ABORTED"
    assert "is not running (ABORTED)" in one_line_error(mlpipe_main("stop", "cli-held"))


def test_redrive_refuses_a_run_that_did_not_fail(server: dict[str, str]) -> None:
    # MOTO GAP (5.2.5): RedriveExecution itself is not implemented (its server answers 500); the redrive of
    # a failed run is tested in-process with that one call stubbed (test_executions.py, test_cli.py).
    mlpipe_main(
        "run",
        "--raw-uri",
        RAW_URI + "redrive/",
        "--run-id",
        "cli-done",
        "--wait",
        "--poll-seconds",
        "0.2",
    )
    message = one_line_error(mlpipe_main("redrive", "cli-done"))
    assert (
        "run cli-done is SUCCEEDED: only a FAILED, TIMED_OUT or ABORTED execution can be redriven" in message
    )


def test_train_submit_status_logs_cancel(server: dict[str, str]) -> None:
    submitted = mlpipe_main(
        *SUBMIT, "--name", "cli-train", "--hyperparameters", '{"lr": 0.01}', "--output", "json"
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["job_id"]
    status = json.loads(mlpipe_main("train", "status", job_id, "--output", "json").stdout)
    assert status["status"] == "SUCCEEDED" and status["parameters"]["hyperparameters"] == '{"lr":0.01}'
    logs = boto3.client("logs", region_name=REGION, endpoint_url=server["AWS_ENDPOINT_URL"])
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=status["log_stream"])
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=status["log_stream"],
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "epoch 1 validation_auc 0.81"}],
    )
    printed = mlpipe_main("train", "logs", job_id)
    assert printed.returncode == 0 and printed.stdout == "epoch 1 validation_auc 0.81\n"
    followed = mlpipe_main("train", "status", job_id, "--wait", "--poll-seconds", "0.1")
    assert followed.returncode == 0
    assert (
        "epoch 1 validation_auc 0.81" in followed.stdout
        and f"job cli-train ({job_id}): SUCCEEDED" in followed.stdout
    )
    assert "has already ended (SUCCEEDED)" in one_line_error(mlpipe_main("train", "cancel", job_id))


def test_status_wait_multi_node_dry_run_array_and_log_follow(server: dict[str, str]) -> None:
    followed = mlpipe_main("status", "cli-ok", "--wait", "--poll-seconds", "0.1")
    assert followed.returncode == 0 and "run cli-ok: SUCCEEDED" in followed.stdout

    dry = mlpipe_main(
        *SUBMIT, "--nodes", "2", "--gpus", "4", "--name", "cli-ddp", "--dry-run", "--output", "json"
    )
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["job_id"] is None
    assert planned["request"]["nodeOverrides"]["numNodes"] == 2
    assert planned["request"]["jobQueue"].endswith("job-queue/mlpipe-on-demand")

    # Array jobs are not submitted by mlpipe, but one submitted otherwise is shown and its children followed.
    assert "unrecognized arguments: --array-size" in one_line_error(mlpipe_main(*SUBMIT, "--array-size", "8"))
    batch = boto3.client("batch", region_name=REGION, endpoint_url=server["AWS_ENDPOINT_URL"])
    built = json.loads(dry.stdout)["request"]
    job_id = batch.submit_job(
        jobName="cli-array",
        jobQueue=built["jobQueue"].replace("mlpipe-on-demand", "mlpipe-spot-first"),
        jobDefinition="mlpipe-training",
        arrayProperties={"size": 8},
        parameters={"input": MANIFEST, "output": OUTPUT, "checkpoint": OUTPUT, "hyperparameters": "{}"},
    )["jobId"]
    status = json.loads(mlpipe_main("train", "status", job_id, "--output", "json").stdout)
    assert status["array"] == {"SUCCEEDED": 8}
    child = f"{job_id}:3"
    logs = mlpipe_main("train", "logs", child, "--follow", "--poll-seconds", "0.1", "--output", "json")
    assert logs.returncode == 0 and logs.stdout == ""  # the child ended; moto wrote no log events


def test_train_submit_wait_exit_status_follows_the_job(
    server: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = mlpipe_main(*SUBMIT, "--name", "cli-wait", "--wait", "--poll-seconds", "0.1")
    assert ok.returncode == 0 and "job cli-wait: SUCCEEDED" in ok.stderr
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # read by moto's Batch in this process
    failed = mlpipe_main(*SUBMIT, "--name", "cli-fails", "--wait", "--poll-seconds", "0.1")
    assert failed.returncode == 1 and "job cli-fails: FAILED" in failed.stderr


def test_bad_input_is_one_line_exit_2_and_submits_nothing(server: dict[str, str], tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.json")
    malformed = write(tmp_path, "malformed.json", '{"raw_uri": "s3://x/events/",')
    unknown_key = write(tmp_path, "unknown.json", {"raw_uri": RAW_URI, "epochs": 3})
    # One of each kind here, as a user meets them; every case again, in-process, in test_cli.py.
    cases: list[tuple[list[str], str]] = [
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", missing], "missing.json: no such file"),
        (["run", malformed], "malformed.json: not valid JSON"),
        (["run", unknown_key], "input: unknown key(s) 'epochs'"),
        ([*SUBMIT, "--gpus", "9"], "--gpus 9 is out of range"),
        (["list", "--env", "prod"], "stack MlpipeProd-Batch not found"),
        ([*SUBMIT, "--queue", "nope"], "job queue 'nope' not found"),
        ([*SUBMIT, "--gpus", "8"], "cannot give 8 GPU(s)"),
    ]
    sfn = boto3.client("stepfunctions", region_name=REGION, endpoint_url=server["AWS_ENDPOINT_URL"])
    batch = boto3.client("batch", region_name=REGION, endpoint_url=server["AWS_ENDPOINT_URL"])
    machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]

    def counts() -> tuple[int, int]:
        executions = len(sfn.list_executions(stateMachineArn=machine)["executions"])
        jobs = sum(
            len(batch.list_jobs(jobQueue=q, jobStatus="SUCCEEDED")["jobSummaryList"])
            for q in ("mlpipe-spot-first", "mlpipe-on-demand")
        )
        return executions, jobs

    before = counts()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: mlpipe(server, *case[0]), cases))
    for (args, expected), result in zip(cases, results, strict=True):
        line = one_line_error(result)
        assert expected in line, (args, line)
    assert counts() == before

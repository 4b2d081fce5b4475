"""Local mode end to end, with the real executors (Spark scripts, PyTorch entrypoints, the Lambdas) on an
embedded moto server: a small run whose Batch inference job fails for real, and a redrive through the CLI
that completes it without redoing the work that had succeeded; Ctrl-C; bad arguments."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from mlpipe.local.executors import BatchJob, Executors, Outcome

pytestmark = [pytest.mark.local, pytest.mark.xdist_group("local")]

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS = 15_000


@pytest.fixture(scope="session")
def cdk_out(dev_cloud_assembly: Path) -> Path:
    """The test run's dev synth: made by local mode's own synth, so every run here reuses it as current."""
    return dev_cloud_assembly


def mlpipe(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [sys.executable, "-m", "mlpipe", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclasses.dataclass
class BrokenInference:
    """The real Batch executor, but the inference job is given a model URI where there is no model: the
    real entrypoint fails (exit status 2, a one-line error in its log)."""

    inner: Any

    def run(self, job: BatchJob) -> Outcome:
        if job.job_name.endswith("-inference"):
            command = list(job.command)
            at = command.index("--model") + 1
            command[at] = command[at].rsplit("/candidates/", 1)[0] + "/no-such-model/"
            job = dataclasses.replace(job, command=tuple(command))
        return self.inner.run(job)  # type: ignore[no-any-return]


def test_a_run_whose_last_stage_fails_is_reported_and_a_redrive_completes_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    local_workloads: Any,
    spark_host: Any,
) -> None:
    """One small run of the renamed clickstream copy through every stage: all but the last (Batch inference)
    succeed for real, the last fails for real; `mlpipe local redrive` then completes the run without redoing
    the work that succeeded. (All in one run: a run costs about a minute on two cores, mostly Spark and
    PyTorch start-up.)"""
    from mlpipe.local.mode import LocalRun, Options, Printer

    workload, cdk_out = local_workloads.shopping, local_workloads.cdk_out
    workdir = tmp_path / "run"
    lines: list[str] = []
    local = LocalRun(workdir, printer=Printer(lines.append), cdk_out=cdk_out, spark_host=spark_host)
    local.wrap_executors = lambda e: Executors(batch=BrokenInference(e.batch), glue=e.glue, emr=e.emr)
    # One candidate: the two-node DDP path runs in the regression example's test and in tests/batch_containers.
    failed = local.run(Options(rows=ROWS, workload=workload, workdir=workdir, candidates=1))

    # ---- the failure report
    failure = failed.get("failure")
    assert failed["status"] == "FAILED" and failure is not None, failed
    # the Parallel whose branch failed, as the failure notice names it; on a failure elsewhere, the report and
    # the end of the failed job's log say why
    assert failure["state"] == "Publish", _report(failure)
    assert failure["error"] == "States.TaskFailed", _report(failure)
    assert "no-such-model" in failure["cause"]
    log = Path(failure["log"])
    assert log.is_file() and log.parent.name == f"{failed['run_id']}-inference"
    assert "no-such-model" in log.read_text()
    assert failed["test_value"] is None and failed["model_uri"] is None
    assert json.loads((workdir / "run.json").read_text())["status"] == "FAILED"
    # the progress names each stage of the run as it comes, and each state as it starts
    shown = "\n".join(lines)
    for stage in (
        f"generate   {ROWS:,} raw rows with",
        "input      1 raw files from",
        "provision  moto server",
        "upload     1 files",
        "execution  local-",
    ):
        assert f"] {stage}" in shown, stage
    assert "start      CleanData" in shown
    # the workload's Spark wheel reached both stages (its modules import it), as a zip on the Python path
    template = json.loads((cdk_out / "MlpipeDev-Workload-shopping.template.json").read_text())
    ((glue_id, job),) = [
        (name, r["Properties"]) for name, r in template["Resources"].items() if r["Type"] == "AWS::Glue::Job"
    ]
    assert json.dumps(job["DefaultArguments"]["--extra-py-files"]).count(".zip") == 2  # code package, wheel
    assert "--additional-python-modules" not in job["DefaultArguments"]  # nothing for pip to fetch

    # ---- the redrive, through the command line (its `main`, in this process: a second Python would import
    # moto and the harness again; `mlpipe local run` as a process is the Ctrl-C test's)
    from mlpipe.cli import main

    sigterm = signal.getsignal(signal.SIGTERM)  # the command stops on SIGTERM as on Ctrl-C
    try:
        code = main(["local", "redrive", "--workdir", str(workdir), "--cdk-out", str(cdk_out)])
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    done = capsys.readouterr()
    assert code == 0, done.out[-3000:] + done.err[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "SUCCEEDED" and summary["run_id"] == failed["run_id"]
    run_id = summary["run_id"]
    # the work that had succeeded is not redone: Glue, both EMR steps, the training job and the evaluation
    # are replayed
    assert sorted(summary["replayed"]) == sorted(
        [
            f"Glue job MlpipeDev-Workload-shopping-{glue_id}",
            "EMR step BuildFeatures",
            "EMR step BuildInferenceFeatures",
            f"Batch job {run_id}-baseline",
            f"Batch job {run_id}-evaluation",
        ]
    )
    # only the failed state's job ran again, and this time it wrote the predictions
    journal = [json.loads(line) for line in (workdir / "journal.jsonl").read_text().splitlines()]
    inference = [e["status"] for e in journal if e["label"] == f"Batch job {run_id}-inference"]
    assert inference == ["FAILED", "SUCCEEDED"]
    assert "start      CleanData" in done.out  # live progress per state

    # ---- what the completed run summarizes
    assert summary["rows_in"] == ROWS
    # every raw row is accounted for: curated, quarantined, or a removed duplicate
    assert summary["rows_curated"] + summary["rows_quarantined"] + summary["duplicates_removed"] == ROWS
    assert summary["rows_quarantined"] > 0 and summary["duplicates_removed"] > 0  # the generator's dirty rows
    assert [c["name"] for c in summary["candidates"]] == ["baseline"]
    assert summary["best_candidate"] == "baseline"
    # a real model: far better than chance, and no better than the Bayes-optimal ranking allows
    assert summary["metric"] == "log_loss" and 0 < summary["test_value"] < 0.69  # selected and gated on it
    monkeypatch.syspath_prepend(str(workload))
    from oracle import local_run_quality  # the copy's own truth, as its generator wrote it

    quality = local_run_quality(workdir)
    assert 0.6 < quality["auc"] <= quality["bayes_auc"] + 0.02
    assert summary["model_uri"].startswith("s3://mlpipe-dev-artifacts-")
    assert summary["model_uri"].endswith(
        f"/runs/shopping/{run_id}/candidates/{summary['best_candidate']}/model/"
    )
    # what the URIs point to, as copied into the workdir's mirror of S3
    model = Path(summary["model_path"])
    assert json.loads((model / "model.json").read_text())["format"] == "mlpipe.model.v1"
    predictions = sorted(Path(summary["predictions_path"]).glob("*.parquet"))
    scored = sum(pq.read_metadata(p).num_rows for p in predictions)
    assert scored == summary["rows_curated"]  # the inference input is every curated event
    # the redrive's progress shows every state of the success path ending
    for state in ("CleanData", "BuildFeatures", "TrainSingleNode", "BuildInferenceFeatures", "BatchInference",
                  "Summarize"):  # fmt: skip
        assert f"done       {state} (" in done.out, state


def _report(failure: dict[str, Any]) -> str:
    """A run's failure report, and the end of the failed job's log when it has one."""
    log = Path(failure["log"]) if failure.get("log") else None
    tail = f"{log}:\n{log.read_text(errors='replace')[-3000:]}" if log and log.is_file() else "(no log)"
    return f"{json.dumps(failure, indent=1, default=str)}\n{tail}"


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        children = [p for p, parent in parents.items() if parent == pid]
        found.update(children)
        todo += children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_ctrl_c_stops_every_child_process_and_records_the_run(
    tmp_path: Path, cdk_out: Path, request: pytest.FixtureRequest
) -> None:
    workdir = tmp_path / "run"
    argv = [sys.executable, "-m", "mlpipe", "local", "run", "--rows", str(ROWS), "--candidates", "1",
            "--workdir", str(workdir), "--cdk-out", str(cdk_out)]  # fmt: skip
    # Ctrl-C comes to a command in the foreground. A shell runs a background job (`make test &`) with SIGINT
    # ignored, its children inherit that, and a Python started that way never raises KeyboardInterrupt: the
    # run is started with Python's own handler in place, so that whatever started the tests cannot change it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert proc.stdout is not None
    watchdog = threading.Timer(300, proc.kill)  # a stalled run fails the test instead of hanging it
    watchdog.start()
    request.addfinalizer(watchdog.cancel)
    seen = []
    for line in proc.stdout:  # wait for the Glue job's Spark process
        seen.append(line)
        if "Glue job" in line and "running" in line:
            break
    else:
        pytest.fail("the run ended before the Glue job started:\n" + "".join(seen[-30:]))
    deadline = time.monotonic() + 60
    while not any("java" in _cmdline(p) for p in _descendants(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    children = _descendants(proc.pid)
    jvms = [p for p in children if "java" in _cmdline(p)]
    assert jvms, "Spark's JVM never started"
    scratch = workdir / "spark-scratch"  # the JVM's temporary files: in the run's folder, not in /tmp
    assert f"-Djava.io.tmpdir={scratch} " in _cmdline(jvms[0])

    proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the driver
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, "".join(seen[-20:]) + rest[-3000:]
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in children if _alive(p)], "child processes outlived the run"
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["status"] == "ABORTED" and summary["failure"]["error"] == "Interrupted"
    assert json.loads((workdir / "run.json").read_text())["status"] == "ABORTED"
    assert not scratch.exists()  # removed, although the killed JVM could not remove its own files


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--rows", "5"], "--rows: 5 is out of range"),
        (["run", "--candidates", "0"], "--candidates: 0 is out of range"),
        (["run", "--workdir", "{file}"], "is a file, not a folder"),
        (["run", "--workdir", "{busy}"], "holds other files"),
        (["redrive", "--workdir", "{empty}"], "no local run in"),
        (["run", "--workload", "{comma}"], "a workload folder's path may not hold a comma"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2_before_any_work(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    paths = {"file": tmp_path / "file", "busy": tmp_path / "busy", "empty": tmp_path / "empty",
             "comma": tmp_path / "a,b"}  # fmt: skip
    done = mlpipe("local", *[a.format(**paths) for a in args], timeout=60)
    assert done.returncode == 2
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 1 and message in errors[0]
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"  # nothing touched
    assert not (tmp_path / "empty").exists()


def test_a_change_to_a_listed_workloads_code_makes_the_synth_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlpipe.local import mode, options

    (tmp_path / "team" / "w").mkdir(parents=True)
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"workloads": ["team/w"]}}))
    clean = tmp_path / "team" / "w" / "clean.py"
    clean.write_text("SCHEMA = 'id STRING'\n")
    monkeypatch.setattr(mode, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(options, "REPO_ROOT", tmp_path)  # where cdk.json's list is read
    before = mode.sources_digest()
    assert mode.sources_digest() == before
    clean.write_text("SCHEMA = 'id STRING, x DOUBLE'\n")
    assert mode.sources_digest() != before


def test_a_current_synth_is_reused_for_any_workload_it_holds_until_one_changes(tmp_path: Path) -> None:
    from mlpipe.cli import UsageError
    from mlpipe.local import mode

    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "clean.py").write_text("SCHEMA = 'id STRING'\n")
    outdir = tmp_path / "cdk.out"
    outdir.mkdir()
    (outdir / "manifest.json").write_text("{}")
    marker = {"digest": mode.sources_digest([a, b]), "workloads": [str(a), str(b)]}
    (outdir / mode.DIGEST_FILE).write_text(json.dumps(marker))
    assert mode.synthesized_workloads(outdir) == [a, b]
    assert mode.synthesize(outdir, [b]) is False  # reused: it returns True only after running the CDK CLI
    (a / "clean.py").write_text("SCHEMA = 'id STRING, x DOUBLE'\n")
    assert mode.synthesized_workloads(outdir) is None
    (outdir / mode.DIGEST_FILE).write_text(marker["digest"])  # an older marker: the digest alone
    assert mode.synthesized_workloads(outdir) is None
    with pytest.raises(UsageError, match="may not hold a comma"):  # `-c workloads=` splits at commas
        mode.synthesize(outdir, [tmp_path / "a,b"])


def test_the_names_mlpipe_gives_the_renamed_copys_resources_and_states_hold_none_of_the_original(
    local_workloads: Any, clickstream_words: set[str]
) -> None:
    from mlpipe.local.assembly import CloudAssembly
    from mlpipe.local.definition import StateMachineDefinition, states

    copy = CloudAssembly.load(local_workloads.cdk_out).for_workload("shopping")
    # its own stack's: the shared stacks hold CDK's names too, such as an EventBridge rule's "AllowEventRule"
    names = [name for stack in copy.stacks.values() if stack.workload() for name in stack.resources]
    names += [path for path, _ in states(StateMachineDefinition.from_assembly(copy).definition)]
    assert "Plan" in names and len(names) > 50  # the names of a whole pipeline
    leaks = sorted(
        (name, word) for name in names for word in clickstream_words if word in name.replace("_", "").lower()
    )
    assert leaks == []


def test_a_run_reads_the_shared_stacks_and_its_own_workloads_stack_alone(local_workloads: Any) -> None:
    from mlpipe.local.assembly import CloudAssembly
    from mlpipe.local.definition import StateMachineDefinition

    assembly = CloudAssembly.load(local_workloads.cdk_out)
    lean = assembly.for_workload("lean")
    assert [s.workload() for s in lean.stacks.values() if s.workload()] == ["lean"]
    assert len(lean.stacks) == len(assembly.stacks) - 4  # the other four workloads' stacks
    assert StateMachineDefinition.from_assembly(lean).stack.name == "MlpipeDev-Workload-lean"
    with pytest.raises(
        KeyError, match=r"'nope'.*workloads: churn-demo, lean, regression, scripted, shopping"
    ):
        assembly.for_workload("nope")

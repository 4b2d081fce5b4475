"""Local mode: the whole pipeline on this machine (`mlpipe local run`, `mlpipe local redrive`).

One run:

1. synthesize the app (dev), or reuse `cdk.out` when its digest of the app's sources is current;
2. the raw files: --input, else what the workload's generator writes into `<workdir>/data/`, else its sample,
   copied under its raw prefix in the local mirror of the raw bucket (`<workdir>/s3/<raw bucket>/`);
3. start the harness (`LocalPipeline`) on an embedded moto server on 127.0.0.1: the buckets, topic, model
   package group and state machine of the assembly; upload the raw files;
4. execute the synthesized state machine with the real executors (`jobs.py`): Lambdas in this process,
   Glue and EMR scripts on local Spark, Batch entrypoints as processes (multi-node: several DDP workers);
   progress is printed per state;
5. copy what the run wrote in S3 into the mirror and write `<workdir>/summary.json` (status, run id, row
   counts, candidates, the metric and its test figure, URIs, seconds per stage).

A failed (or interrupted) run can be redriven: `redrive` restores S3 from the mirror and starts a new
execution of the same input; the jobs that succeeded before (the journal) are not run again, so the first
work done is the failed state's.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlpipe.cli import UsageError
from mlpipe.data.storage import write_bytes
from mlpipe.local import spark_cds
from mlpipe.local.assembly import CloudAssembly
from mlpipe.local.executors import Executors
from mlpipe.local.harness import ExecutionResult, LocalPipeline, bucket_for, plan_setting
from mlpipe.local.jobs import (
    REPO_ROOT,
    Children,
    Context,
    Journal,
    LocalBatch,
    SparkDriver,
    SparkEmr,
    SparkGlue,
    SparkHost,
    asset_paths,
)
from mlpipe.local.lambdas import LAMBDAS_DIR
from mlpipe.local.mirror import Mirror
from mlpipe.local.options import (
    RUN_FILE,
    Options,
    check_redrivable,
    check_synth_folders,
    input_files,
    listed_workloads,
    load_workload,
    workload_folder,
)

SUMMARY_FILE = "summary.json"
RAW_FOLDER = "local/"  # under the workload's raw prefix

# What `cdk synth` reads: a change to any of these makes cdk.out stale.
SYNTH_INPUTS = ("app.py", "cdk.json", "stacks", "lambdas", "glue_jobs", "emr_steps", "batch_containers",
                "mlpipe/config.py", "mlpipe/instances.py", "mlpipe/workload.py", "mlpipe/code_package.py",
                "package-lock.json", "constraints.txt")  # fmt: skip
DIGEST_FILE = ".mlpipe-local-digest"
HISTORY_POLL_S = 3.0  # how often a run's progress lines are refreshed when no job starts or ends

log = logging.getLogger("mlpipe.local")


# ---- output ---------------------------------------------------------------------------------------------
class Printer:
    def __init__(self, out: Callable[[str], None] | None = None) -> None:
        self.out = out or (lambda line: print(line, flush=True))
        self.started = time.monotonic()

    def __call__(self, line: str) -> None:
        self.out(f"[{time.monotonic() - self.started:7.1f}s] {line}")


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    write_bytes(str(path), (json.dumps(payload, indent=2, default=str) + "\n").encode())


# ---- synth ----------------------------------------------------------------------------------------------
def sources_digest(workloads: Sequence[Path] | None = None) -> str:
    """A digest of what the synth reads: mlpipe's sources and the workload folders (`workloads`, else every
    folder that cdk.json lists)."""
    digest = hashlib.sha256()
    folders = list(workloads) if workloads is not None else listed_workloads()
    for base in [REPO_ROOT / name for name in SYNTH_INPUTS] + folders:
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            name = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
            digest.update(name.as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def synthesized_workloads(outdir: Path) -> list[Path] | None:
    """The workload folders of which `outdir` is a current local synth; None when it is none, or stale."""
    try:
        marker = json.loads((outdir / DIGEST_FILE).read_text())
        folders = [Path(folder) for folder in marker["workloads"]]
        digest = marker["digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not (outdir / "manifest.json").exists() or sources_digest(folders) != digest:
        return None
    return folders


def synthesize(outdir: Path, workloads: Sequence[Path] | None = None) -> bool:
    """Make `outdir` a current dev synth that holds `workloads` (else cdk.json's); returns False when it already
    was one (reused: it may hold other workloads too). One process at a time checks, builds and swaps it."""
    folders = [folder.resolve() for folder in (workloads if workloads is not None else listed_workloads())]
    if workloads is not None:
        check_synth_folders(folders)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    with open(outdir.with_name(f"{outdir.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = synthesized_workloads(outdir)
        if current is not None and set(folders) <= set(current):
            return False
        _synthesize(outdir, folders, explicit=workloads is not None)
        return True


def _synthesize(outdir: Path, folders: list[Path], *, explicit: bool) -> None:
    cdk = REPO_ROOT / "node_modules" / ".bin" / "cdk"
    if not cdk.exists():
        raise UsageError(f"{cdk} is missing: run `make setup` first")
    digest = sources_digest(folders)  # before the synth: a file changed while it runs makes it stale
    tmp = outdir.with_name(f"{outdir.name}.tmp-{uuid.uuid4().hex[:8]}")
    # No AWS account: without credentials the CLI looks nothing up, and the templates stay
    # environment-agnostic (the harness gives them moto's account); nothing reaches AWS.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_DEFAULT_"))}
    env |= {
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PATH": os.pathsep.join(
            [str(cdk.parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        ),
        "CDK_DISABLE_CLI_TELEMETRY": "1",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }
    argv = [str(cdk), "synth", "--quiet", "-c", "env=dev", "--no-notices", "--no-version-reporting", "--ci",
            "--output", str(tmp)]  # fmt: skip
    if explicit:
        argv += ["-c", f"workloads={','.join(map(str, folders))}"]
    done = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"cdk synth failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    marker = {"digest": digest, "workloads": [str(folder) for folder in folders]}
    (tmp / DIGEST_FILE).write_text(json.dumps(marker) + "\n")
    old = outdir.with_name(f"{outdir.name}.old-{uuid.uuid4().hex[:8]}")
    if outdir.exists():
        os.replace(outdir, old)
    os.replace(tmp, outdir)
    shutil.rmtree(old, ignore_errors=True)


# ---- the run --------------------------------------------------------------------------------------------
@dataclass
class Stages:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.monotonic() - started, 2)


@contextmanager
def logs_to(path: Path, moto_path: Path) -> Iterator[None]:
    """While the run lasts, the Lambdas' JSON logs (stdout in AWS) go to `path`, and what moto's Step
    Functions interpreter logs (a failed state's exception, at ERROR) to `moto_path`, not to the terminal."""
    path.parent.mkdir(parents=True, exist_ok=True)
    moto_logger = logging.getLogger("moto")
    moto_handler = logging.FileHandler(moto_path)
    moto_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    saved = moto_logger.propagate
    moto_logger.addHandler(moto_handler)
    moto_logger.propagate = False
    if str(LAMBDAS_DIR) not in sys.path:
        sys.path.insert(0, str(LAMBDAS_DIR))
    from mlpipe_common import logs as lambda_logs

    logger = lambda_logs.configure()
    handler = next(h for h in logger.handlers if getattr(h, "_mlpipe", False))
    assert isinstance(handler, logging.StreamHandler)
    with open(path, "a") as fh:
        # Swapped, not setStream(): that flushes the stream it replaces, which an embedding process (a test
        # runner's capture) may already have closed.
        handler.acquire()
        previous, handler.stream = handler.stream, fh
        handler.release()
        try:
            yield
        finally:
            handler.acquire()
            handler.stream = previous
            handler.release()
            moto_logger.removeHandler(moto_handler)
            moto_logger.propagate = saved
            moto_handler.close()


# Below this many rows the JIT's optimizing tier (C2) costs a run more time than it saves.
SMALL_RUN_ROWS = 200_000


def spark_driver(rows: int) -> SparkDriver:
    """The Spark host's driver for a run of `rows`: more memory for the larger datasets, and the
    class-data-sharing archive of `make setup` when it is usable; MLPIPE_SPARK_DRIVER_MEMORY and
    MLPIPE_SPARK_JAVA_OPTIONS override them."""
    memory = os.environ.get("MLPIPE_SPARK_DRIVER_MEMORY") or ("6g" if rows > 2_000_000 else "3g")
    options = os.environ.get("MLPIPE_SPARK_JAVA_OPTIONS")
    if not options:
        tiers = "-XX:TieredStopAtLevel=1" if rows < SMALL_RUN_ROWS else ""
        options = " ".join(filter(None, [tiers, spark_cds.java_options()]))
    return SparkDriver(memory=memory, java_options=options)


class LocalRun:
    """One local run (or redrive) in `workdir`. Its Spark scripts run on a Spark host of its own, or on
    `spark_host` when its caller shares one among several runs and its driver suits this run's size
    (`spark_driver`); the caller then closes it."""

    def __init__(
        self,
        workdir: Path,
        *,
        printer: Printer | None = None,
        cdk_out: Path | None = None,
        spark_host: SparkHost | None = None,
    ) -> None:
        self.workdir = workdir.absolute()
        self.say = printer or Printer()
        self.given_cdk_out = cdk_out
        self.spark_host = spark_host
        self.cdk_out = (cdk_out or REPO_ROOT / "cdk.out").absolute()
        self.workload: Path | None = None  # the workload folder of the run, when not cdk.json's
        self.stages = Stages()
        self.children = Children()
        self.wrap_executors: Callable[[Executors], Executors] | None = None  # tests inject failures here

    # ---- entry points ---------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One run or redrive at a time in a work folder."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(f"another local run is using {self.workdir}") from None
            yield

    def run(self, options: Options) -> dict[str, Any]:
        options.validate()
        with self._locked():
            return self._run(options)

    def _run(self, options: Options) -> dict[str, Any]:
        self._use_workload(options.workload)
        assembly = self._synth()  # before the earlier run is replaced: a synth failure destroys nothing
        if (self.workdir / RUN_FILE).exists():
            self.say(f"replacing the earlier local run in {self.workdir}")
            for name in ("s3", "data", "logs", "journal.jsonl", SUMMARY_FILE, RUN_FILE):
                target = self.workdir / name
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        record: dict[str, Any] = {
            "format": "mlpipe.local_run.v1",
            "rows": options.rows,
            "candidates": options.candidates,
            "seed": options.seed,
            "workload": str(self.workload) if self.workload else None,
            "started_at": _now(),
            "status": "RUNNING",
            "pid": os.getpid(),
            "executions": [],
        }
        write_json_atomic(self.workdir / RUN_FILE, record)
        mirror = Mirror(self.workdir / "s3")
        raw_bucket = bucket_for(assembly, "raw")
        raw_uri = f"s3://{raw_bucket}/{plan_setting(assembly, 'RAW_PREFIX')}{RAW_FOLDER}"
        workload = load_workload(options.folder())
        given = options.input
        if given is None and workload.raw.generator:
            given = self._generate(workload.path(workload.raw.generator), options)
        elif given is None:
            given = workload.path(workload.raw.sample)
        files = input_files(given)
        if not files:
            raise UsageError(f"{given} holds no raw files")
        with self.stages.timed("stage input"):
            for path in files:
                relative = path.name if given.is_file() else path.relative_to(given).as_posix()
                target = mirror.path(raw_uri + relative)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        self.say(f"input      {len(files)} raw files from {given}")
        execution_input: dict[str, Any] = {"raw_uri": raw_uri}
        if options.candidates is not None:
            execution_input["candidates"] = workload.execution_candidates()[: options.candidates]
        if options.input is not None or not workload.raw.generator:
            # Not generated: the Spark driver is sized by an estimate (raw records run about 100 bytes).
            record["rows"] = sum(path.stat().st_size for path in files) // 100
        record.update(input=execution_input, source=str(given))
        write_json_atomic(self.workdir / RUN_FILE, record)
        return self._execute(
            assembly, mirror, record, journal=Journal(self.workdir / "journal.jsonl"), restore=False
        )

    def _generate(self, generator: Path, options: Options) -> Path:
        """The workload's synthetic raw data: its generator writes DIR/raw/ (and its truth) into the workdir."""
        out = self.workdir / "data"
        argv = [sys.executable, str(generator), "--rows", str(options.rows), "--seed", str(options.seed)]
        with self.stages.timed("generate"):
            done = subprocess.run([*argv, "--out", str(out)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{generator} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        self.say(
            f"generate   {options.rows:,} raw rows with {generator} ({self.stages.seconds['generate']} s)"
        )
        return out / "raw"

    def redrive(self) -> dict[str, Any]:
        check_redrivable(self.workdir)
        with self._locked():
            return self._redrive(json.loads((self.workdir / RUN_FILE).read_text()))

    def _redrive(self, record: dict[str, Any]) -> dict[str, Any]:
        if record.get("status") == "SUCCEEDED":
            raise UsageError(f"the local run in {self.workdir} succeeded: there is nothing to redrive")
        if record.get("status") == "RUNNING" and _alive(record.get("pid")):
            raise UsageError(f"the local run in {self.workdir} is still running (process {record['pid']})")
        if not record.get("executions"):
            raise UsageError(
                f"the local run in {self.workdir} never got to start an execution: start a new one with "
                "`mlpipe local run`"
            )
        record["pid"] = os.getpid()
        self._use_workload(Path(record["workload"]) if record.get("workload") else None)
        assembly = self._synth()
        mirror = Mirror(self.workdir / "s3")
        journal = Journal(self.workdir / "journal.jsonl", replay=True)
        self.say(f"redrive    {len(journal.done)} jobs of the failed run are done and will not run again")
        return self._execute(assembly, mirror, record, journal=journal, restore=True)

    # ---- parts ----------------------------------------------------------------------------------------
    def _use_workload(self, folder: Path | None) -> None:
        """Run `folder`'s workload (its own synth, in cdk.out.local-<name> unless --cdk-out says where)."""
        if folder is None:
            return
        self.workload = folder.absolute()
        if self.given_cdk_out is None:
            self.cdk_out = REPO_ROOT / f"cdk.out.local-{load_workload(folder).name}"

    def _synth(self) -> CloudAssembly:
        """The run's assembly: the synth's shared stacks and the run's workload stack (a reused synth may hold
        other workloads too)."""
        with self.stages.timed("synth"):
            fresh = synthesize(self.cdk_out, [self.workload] if self.workload else None)
        self.say(
            f"synth      {'synthesized' if fresh else 'reused (current)'} {self.cdk_out} ({self.stages.seconds['synth']} s)"
        )
        return CloudAssembly.load(self.cdk_out).for_workload(
            load_workload(workload_folder(self.workload)).name
        )

    def _execute(
        self,
        assembly: CloudAssembly,
        mirror: Mirror,
        record: dict[str, Any],
        *,
        journal: Journal,
        restore: bool,
    ) -> dict[str, Any]:
        self.children = Children()
        ctx = Context(
            workdir=self.workdir,
            mirror=mirror,
            children=self.children,
            journal=journal,
            assets=asset_paths(self.cdk_out),
            spark_driver=spark_driver(int(record["rows"])),
            shared_spark=self.spark_host,
            batch_nodes_at_once=sum(int(c.get("nodes", 1)) for c in _candidates(assembly, record)),
        )
        if self.spark_host is not None and ctx.spark is not self.spark_host:
            driver = ctx.spark_driver
            self.say(
                f"spark      a Spark host of its own: a run of this size needs {driver.memory}, {driver.java_options}"
            )
        # The JVM starts while the run provisions, for a workload with a Spark stage (a redrive may need no
        # Spark at all; the first Spark job starts it then).
        if not restore and json.loads(plan_setting(assembly, "STAGES")):
            ctx.spark.start()
        executors = Executors(batch=LocalBatch(ctx), glue=SparkGlue(ctx), emr=SparkEmr(ctx))
        if self.wrap_executors is not None:
            executors = self.wrap_executors(executors)
        lambdas_log = self.workdir / "logs" / "lambdas.log"
        redrive = len(record["executions"])
        name = f"local-{datetime.now(UTC):%Y%m%d-%H%M%S}" + (f"-redrive-{redrive}" if redrive else "")
        result: ExecutionResult | None = None
        interrupted = False
        with (
            logs_to(lambdas_log, self.workdir / "logs" / "moto.log"),
            LocalPipeline(assembly, executors, server=True) as pipeline,
        ):
            with self.stages.timed("provision"):
                queue_url = _subscribe(pipeline)
            assert pipeline.server is not None
            self.say(
                f"provision  moto server {pipeline.server.endpoint}, state machine {pipeline.state_machine_arn.rsplit(':', 1)[-1]}"
            )
            with self.stages.timed("upload"):
                sent = mirror.push_all() if restore else mirror.push(record["input"]["raw_uri"])
            self.say(f"upload     {sent} files to S3 ({self.stages.seconds['upload']} s)")
            arn = pipeline.start(record["input"], name=name)
            record["executions"].append({"name": name, "arn": arn, "started_at": _now()})
            record["status"] = "RUNNING"
            write_json_atomic(self.workdir / RUN_FILE, record)
            self.say(f"execution  {name}")
            try:
                with self.stages.timed("execution"):
                    result = self._follow(pipeline, arn, ctx)
            except Exception:  # the harness itself failed: record it so that a redrive can resume
                _stop_execution(pipeline, arn, "the local harness failed")
                self.children.stop_all()
                record["status"] = "FAILED"
                write_json_atomic(self.workdir / RUN_FILE, record)
                raise
            except KeyboardInterrupt:
                interrupted = True
                self.say("interrupted: stopping the execution and every child process")
                # The execution first, so that the killed jobs do not send it down the failure path.
                _stop_execution(pipeline, arn, "interrupted (Ctrl-C)")
                stopped = self.children.stop_all()
                self.say(f"stopped    {stopped} child processes")
                try:
                    result = pipeline.wait(arn, timeout_s=30)
                except TimeoutError:
                    result = None
            finally:
                ctx.close_spark()
                self.children.stop_all(grace_s=2.0)
            with self.stages.timed("snapshot"):
                mirror.pull_all([bucket_for(assembly, p) for p in ("raw", "curated", "artifacts")])
            notices = _notifications(pipeline, queue_url)
        summary = self._summary(assembly, mirror, record, result, journal, notices, lambdas_log, interrupted)
        record["status"] = summary["status"]
        record["executions"][-1]["status"] = summary["status"]
        write_json_atomic(self.workdir / SUMMARY_FILE, summary)
        write_json_atomic(self.workdir / RUN_FILE, record)
        return summary

    def _follow(self, pipeline: LocalPipeline, arn: str, ctx: Context) -> ExecutionResult:
        sfn = pipeline.client("stepfunctions")
        seen = 0
        shown = 0
        entered: dict[str, float] = {}
        history_due = 0.0
        while True:
            described = sfn.describe_execution(executionArn=arn)
            running = described["status"] == "RUNNING"
            job_lines = len(ctx.events)  # those shown this time: the history read below has their states
            # The whole history comes back on every call (moto ignores maxResults), so it is read only every
            # few seconds, and whenever a job started or ended: its state's line then comes before the job's.
            if not running or job_lines > shown or time.monotonic() >= history_due:
                events = pipeline.history(arn, sfn)
                for event in events[seen:]:
                    self._show(event, entered)
                seen = len(events)
                history_due = time.monotonic() + HISTORY_POLL_S
            for line in ctx.events[shown:job_lines]:
                self.say(f"           {line}")
            shown = job_lines
            if not running:
                return pipeline.wait(arn, timeout_s=30)
            time.sleep(0.5)

    def _show(self, event: Mapping[str, Any], entered: dict[str, float]) -> None:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            entered[name] = event["timestamp"].timestamp()
            self.say(f"start      {name}")
        elif kind.endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            took = event["timestamp"].timestamp() - entered.get(name, event["timestamp"].timestamp())
            self.say(f"done       {name} ({took:.1f} s)")
        elif kind.endswith("Failed") and kind != "ExecutionFailed":
            details: Mapping[str, Any] = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
            self.say(f"failed     {kind}: {details.get('error', '')} {str(details.get('cause', ''))[:300]}")
        elif kind in ("ExecutionFailed", "ExecutionAborted", "ExecutionSucceeded", "ExecutionTimedOut"):
            self.say(kind)

    # ---- the summary ----------------------------------------------------------------------------------
    def _summary(
        self,
        assembly: CloudAssembly,
        mirror: Mirror,
        record: dict[str, Any],
        result: ExecutionResult | None,
        journal: Journal,
        notices: list[dict[str, Any]],
        lambdas_log: Path,
        interrupted: bool,
    ) -> dict[str, Any]:
        status = "ABORTED" if interrupted else (result.status if result else "FAILED")
        output = result.output if result and isinstance(result.output, dict) else {}
        run_id = output.get("run_id") or _run_id(result)
        summary: dict[str, Any] = {
            "format": "mlpipe.local_summary.v1",
            "status": status,
            "run_id": run_id,
            "execution": record["executions"][-1]["name"],
            "workdir": str(self.workdir),
        }
        plan = (
            _read_json(
                mirror,
                f"s3://{bucket_for(assembly, 'artifacts')}/runs/{plan_setting(assembly, 'WORKLOAD_NAME')}/"
                f"{run_id}/plan.json",
            )
            if run_id
            else None
        )
        if plan:
            report_uri = plan["uris"].get("clean_report")  # none without a clean stage: the counts are null
            report = (_read_json(mirror, report_uri) if report_uri else None) or {}
            for key in ("rows_in", "rows_curated", "rows_quarantined", "duplicates_removed"):
                summary[key] = report.get(key)
        model_manifest = (
            _read_json(mirror, output["model_manifest_uri"]) if output.get("model_manifest_uri") else None
        )
        if model_manifest:
            summary["candidates"] = [
                {"name": row["name"], "validation": row.get("validation")}
                for row in model_manifest.get("leaderboard", [])
            ]
        elif plan:
            summary["candidates"] = [{"name": c["name"]} for c in plan.get("candidates", [])]
        summary["best_candidate"] = output.get("best_candidate")
        summary["metric"] = output.get("metric")
        summary["test_value"] = output.get("test_value")
        summary["model_uri"] = output.get("model_uri")
        summary["predictions_uri"] = output.get("predictions_uri")
        for key in ("model_uri", "predictions_uri"):
            if summary[key]:
                summary[key.replace("_uri", "_path")] = str(mirror.path(summary[key]))
        summary["seconds"] = {**self.stages.seconds, **(_state_seconds(result) if result else {})}
        if journal.replayed:
            summary["replayed"] = journal.replayed
        if status != "SUCCEEDED":
            summary["failure"] = _failure(result, journal, notices, lambdas_log, interrupted)
        return summary


# ---- helpers --------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _alive(pid: Any) -> bool:
    """Whether process `pid` exists (a run recorded as RUNNING whose process is gone was killed)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_execution(pipeline: LocalPipeline, arn: str, cause: str) -> None:
    with contextlib.suppress(Exception):  # already ended, or the server is the thing that failed
        pipeline.client("stepfunctions").stop_execution(executionArn=arn, cause=cause)


def _subscribe(pipeline: LocalPipeline) -> str:
    """An SQS queue subscribed to the failure topic: the run reads the pipeline's own failure notice."""
    sqs = pipeline.client("sqs")
    url = str(sqs.create_queue(QueueName="mlpipe-local-failures")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pipeline.client("sns").subscribe(TopicArn=pipeline.topic_arn(), Protocol="sqs", Endpoint=arn)
    return url


def _notifications(pipeline: LocalPipeline, url: str) -> list[dict[str, Any]]:
    sqs = pipeline.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            envelope = json.loads(message["Body"])
            try:
                found.append(json.loads(envelope["Message"]))
            except (KeyError, ValueError):
                found.append({"message": envelope.get("Message")})


def _read_json(mirror: Mirror, uri: str) -> Any:
    """A JSON document of the run, by its S3 URI or its mirror path (JSON in the mirror names mirror paths)."""
    path = mirror.path(uri) if uri.startswith("s3://") else Path(uri)
    return json.loads(path.read_text()) if path.is_file() else None


def _run_id(result: ExecutionResult | None) -> str | None:
    for event in result.events if result else []:
        details = event.get("stateExitedEventDetails") or {}
        if details.get("name") == "Plan":
            plan = json.loads(details.get("output") or "{}").get("plan") or {}
            return plan.get("run_id")
    return None


def _state_seconds(result: ExecutionResult) -> dict[str, float]:
    """Seconds in each state entered, by name (a state entered more than once: the sum)."""
    entered: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for event in result.events:
        if event["type"].endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            entered.setdefault(name, []).append(event["timestamp"].timestamp())
        elif event["type"].endswith("StateExited"):
            name = event["stateExitedEventDetails"]["name"]
            if entered.get(name):
                took = event["timestamp"].timestamp() - entered[name].pop()
                seconds[f"state:{name}"] = round(seconds.get(f"state:{name}", 0.0) + took, 2)
    return seconds


def _candidates(assembly: CloudAssembly, record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The run's candidates: its input's, else the workload's (the Plan function's defaults)."""
    given = record["input"].get("candidates")
    return list(given) if given else list(json.loads(plan_setting(assembly, "DEFAULT_CANDIDATES")))


def _failure(
    result: ExecutionResult | None,
    journal: Journal,
    notices: list[dict[str, Any]],
    lambdas_log: Path,
    interrupted: bool,
) -> dict[str, Any]:
    """Which state failed, why, and where its logs are."""
    if interrupted:
        return {
            "state": None,
            "error": "Interrupted",
            "cause": "stopped with Ctrl-C",
            "log": str(lambdas_log),
        }
    notice = notices[-1] if notices else {}
    failure: dict[str, Any] = {
        "state": notice.get("state"),
        "error": notice.get("error") or (result.error if result else None),
        "cause": notice.get("cause") or (result.cause if result else None),
    }
    if journal.failures:
        # Several jobs of a Parallel or Map state can fail; the cause is the one that failed the state.
        cause = failure["cause"] or ""
        named = [f for f in journal.failures if json.dumps(f["name"]) in cause]
        job = (named or journal.failures)[-1]
        failure["log"] = job["log"]
        failure["job"] = job["label"]
        failure["reason"] = job.get("reason")
    else:
        failure["log"] = str(lambdas_log)
    return failure

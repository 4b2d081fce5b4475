"""The real executors of local mode: the Glue and EMR jobs' PySpark scripts on local Spark, and the Batch
jobs' PyTorch entrypoints as local processes, each with its log file.

- The code that runs is the synthesized code: an `s3://` script or `--py-files` location is looked up in the
  cloud assembly's asset manifests (`*.assets.json`: object key -> file or folder in cdk.out), so the local
  run executes exactly what `cdk deploy` would upload.
- Glue (`SparkGlue`): the job's `ScriptLocation` runs as `__main__` with the run's arguments (`--JOB_NAME`
  and the job's default arguments, overlaid with the run's), as Glue passes them; without `awsglue` the
  script makes its own SparkSession.
- EMR (`SparkEmr`): a `command-runner.jar` step's `spark-submit [options] s3://…/<script>.py args` runs the
  script with the `--py-files` asset on `sys.path` (what spark-submit ships to the driver in AWS).
- Both run on a `SparkHost` (`spark_host.py`): one warm Spark driver for every script of the run, or of
  several runs when their caller shares one.
- Spark cannot read S3 here, so every `s3://` argument is staged through the `Mirror`: pulled before the
  job, replaced by its mirror path, and pushed back only after the job succeeds (a failed job publishes
  nothing).
- Batch (`LocalBatch`): the job definition's command, `Ref::` parameters substituted by the harness, with
  the environment AWS Batch gives a container (`AWS_BATCH_JOB_ID`, `AWS_BATCH_JOB_ATTEMPT`, …). A multi-node
  job starts one process per node with `AWS_BATCH_JOB_NUM_NODES`, `AWS_BATCH_JOB_NODE_INDEX`,
  `AWS_BATCH_JOB_MAIN_NODE_INDEX` and, on the other nodes, `AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS`
  (127.0.0.1): the container's launcher makes them DDP workers. The job's output is pulled into the mirror
  when it succeeds.

Every child runs in its own process group, registered in `Children`, so that Ctrl-C (or a failure of the
driver) stops every one of them, Spark's JVM included. A `Journal` records each job that succeeded; with
`replay=True` (a redrive) a job already in it is not run again: its outputs are in the restored S3.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipe.local.executors import BatchJob, EmrStep, GlueJobRun, Outcome
from mlpipe.local.mirror import Mirror

REPO_ROOT = Path(__file__).resolve().parents[2]
BATCH_SOURCE = REPO_ROOT / "batch_containers" / "src"
STOP_GRACE_S = 10.0
CONTAINER_EXITED = "Essential container in task exited"


class Aborted(RuntimeError):
    """The run is being stopped: no new job starts."""


# Loaded here, not between fork and exec: loading a library in the child of a threaded process can deadlock.
_LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """SIGTERM the child if the driver dies without stopping it (SIGKILL): no orphaned jobs. (A Spark
    script's JVM exits by itself when its Python parent goes: py4j's gateway ends on stdin EOF.)"""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# ---- children -------------------------------------------------------------------------------------------
@dataclass
class Children:
    """Every child process of the run, for stopping them all at once."""

    _procs: set[subprocess.Popen[bytes]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: bool = False

    def start(
        self, argv: Sequence[str], *, env: Mapping[str, str], log: Path, pipes: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start `argv` with its output (stderr only, with `pipes`: stdin and stdout are then pipes) in `log`."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self.stopping:
                raise Aborted("the local run is stopping")
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    list(argv),
                    env=dict(env),
                    stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                    stdout=subprocess.PIPE if pipes else out,
                    stderr=out if pipes else subprocess.STDOUT,
                    cwd=REPO_ROOT,
                    start_new_session=True,  # its own process group: Ctrl-C reaches the driver, which stops it
                    preexec_fn=_die_with_parent if _LIBC is not None else None,
                )
            self._procs.add(proc)
        return proc

    def adopt(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop `proc` with these children (a shared Spark host, while it runs a job of this run)."""
        with self._lock:
            if self.stopping:
                raise Aborted("the local run is stopping")
            self._procs.add(proc)

    def release(self, proc: subprocess.Popen[bytes]) -> None:
        """No longer stop `proc` with these children (the shared Spark host, once the job is done)."""
        with self._lock:
            self._procs.discard(proc)

    def wait(self, proc: subprocess.Popen[bytes]) -> int:
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._procs.discard(proc)

    def stop_all(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM every child's process group, SIGKILL what is left after `grace_s`; returns how many."""
        with self._lock:
            self.stopping = True
            procs = [p for p in self._procs if p.poll() is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group: also what the child started (a JVM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        return len(procs)


# ---- the journal ----------------------------------------------------------------------------------------
def job_key(kind: str, name: str, args: Any) -> str:
    text = json.dumps([kind, name, args], sort_keys=True, default=str)
    return f"{kind}:{name}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@dataclass
class Journal:
    """One JSON line per job that succeeded (and per failed attempt, for the failure report)."""

    path: Path
    replay: bool = False
    done: set[str] = field(default_factory=set)
    failures: list[dict[str, Any]] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.path.exists():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:  # a line cut short by a killed run: that job is not known to be done
                    continue
                if entry.get("status") == "SUCCEEDED":
                    self.done.add(entry["key"])

    def has(self, key: str) -> bool:
        return self.replay and key in self.done

    def record(
        self, key: str, *, status: str, label: str, name: str, log: Path | None, reason: str = ""
    ) -> None:
        """`name`: the job's (the Glue job's, the EMR step's, the Batch job's), as a failure's cause names it."""
        entry = {"key": key, "status": status, "label": label, "name": name, "log": str(log) if log else None}
        if reason:
            entry["reason"] = reason
        with self._lock:
            if status == "SUCCEEDED":
                self.done.add(key)
                # a retried attempt that succeeded is no longer the failure to report
                self.failures = [f for f in self.failures if f["key"] != key]
            else:
                self.failures.append(entry)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as fh:
                fh.write(json.dumps(entry) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    def note_replay(self, label: str) -> None:
        with self._lock:
            self.replayed.append(label)


def asset_paths(cdk_out: Path) -> dict[str, Path]:
    """Object key -> source path of every file asset of the assembly (`<stack>.assets.json`)."""
    found: dict[str, Path] = {}
    for manifest in sorted(cdk_out.glob("*.assets.json")):
        for asset in json.loads(manifest.read_text()).get("files", {}).values():
            for destination in asset.get("destinations", {}).values():
                found[destination["objectKey"]] = cdk_out / asset["source"]["path"]
    return found


_NOT_INHERITED = frozenset(
    {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT",
     "MLPIPE_MASTER_PORT", "MLPIPE_NPROC_PER_NODE", "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET"}
)  # fmt: skip


# ---- shared ---------------------------------------------------------------------------------------------
# What gives boto3 an account or an endpoint (credentials, profile, configuration files, endpoint URLs).
_AWS_ACCESS = ("AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE",
               "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
               "AWS_CONTAINER_", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")  # fmt: skip


def base_env() -> dict[str, str]:
    """This process's environment for a job, without what would change the job: a distributed topology or
    hyperparameters of the caller's shell. (A Lambda of the harness may be running: its overlay empties keys
    it adds, see lambdas.py.)"""
    return {
        k: v
        for k, v in os.environ.copy().items()
        if v != "" and k not in _NOT_INHERITED and not k.startswith(("MLPIPE_HP_", "AWS_BATCH_"))
    }


@dataclass(frozen=True)
class SparkDriver:
    """How a Spark host's driver starts: in local mode this one driver is the whole "cluster"."""

    master: str = "local[*]"
    memory: str = "3g"
    java_options: str = ""  # extra JVM options


@dataclass
class Context:
    """What every executor of one local run shares."""

    workdir: Path
    mirror: Mirror
    children: Children
    journal: Journal
    assets: Mapping[str, Path] = field(default_factory=dict)  # S3 object key -> file or folder in cdk.out
    spark_driver: SparkDriver = field(default_factory=SparkDriver)
    # A host that its owner lends to several runs (`LocalRun(spark_host=...)`); the run starts its own instead
    # when that host's driver is not the one this run needs.
    shared_spark: SparkHost | None = None
    # How many Batch nodes may run at once: candidates train side by side, so each node's PyTorch gets that
    # share of the cores (as torchrun gives each process one thread); more threads only spin while another
    # job holds the core. Batch inference, which runs alone, gets the same share: a simplification.
    batch_nodes_at_once: int = 1
    events: list[str] = field(default_factory=list)  # one line per job start/end, for the progress display
    spark: SparkHost = field(init=False)

    def __post_init__(self) -> None:
        if self.shared_spark is not None and self.shared_spark.driver == self.spark_driver:
            self.spark = self.shared_spark
        else:
            self.spark = SparkHost(
                self.spark_driver,
                log=self.log_path("spark-host.log"),
                scratch=self.workdir / "spark-scratch",
                children=self.children,
            )

    def close_spark(self) -> None:
        """Stop the run's own Spark host; a shared one is left to its owner."""
        if self.spark is not self.shared_spark:
            self.spark.close()

    def asset(self, uri: str) -> Path | None:
        """The cdk.out file (or folder) that the asset at `uri` is uploaded from."""
        return self.assets.get(uri.removeprefix("s3://").partition("/")[2])

    def log_path(self, *parts: str) -> Path:
        return self.workdir / "logs" / Path(*parts)

    def say(self, line: str) -> None:
        self.events.append(line)


def _tail(path: Path, lines: int = 3, limit: int = 400) -> str:
    """The log's last non-empty lines, whole, within `limit` characters: a long line before the last (a
    command line) is left out rather than cut, so that the last one, usually the error, reads whole."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    useful = [line.strip() for line in text if line.strip()][-lines:]
    if not useful:
        return ""
    tail = useful[-1][-limit:]
    for line in reversed(useful[:-1]):
        if len(longer := f"{line} | {tail}") > limit:
            break
        tail = longer
    return tail


def _staged_run(
    ctx: Context, *, key: str, name: str, label: str, script: Path, args: list[str], python_path: list[Path],
    log: Path, uris: list[str],
) -> Outcome:  # fmt: skip
    """Run a Spark script on the run's Spark host (its own or a shared one) with its `s3://` arguments staged
    through the mirror."""
    if ctx.journal.has(key):
        ctx.journal.note_replay(label)
        ctx.say(f"{label}: done in the failed run, not run again")
        return Outcome.success()
    for uri in uris:
        ctx.mirror.pull(uri)
    local_args = [ctx.mirror.local(a) if a.startswith("s3://") else a for a in args]
    ctx.say(f"{label}: running, log {log}")
    try:
        code = ctx.spark.run(script, local_args, python_path=python_path, log=log, stopped_by=ctx.children)
    except Aborted as exc:
        return Outcome.failure(str(exc))
    if code != 0:
        reason = f"exit status {code}: {_tail(log)}"
        ctx.journal.record(key, status="FAILED", label=label, name=name, log=log, reason=reason)
        return Outcome.failure(f"{label} failed with {reason} (log: {log})", exit_code=code)
    for uri in uris:
        ctx.mirror.push(uri)
    ctx.journal.record(key, status="SUCCEEDED", label=label, name=name, log=log)
    return Outcome.success()


@dataclass
class SparkHost:
    """A Spark driver (`mlpipe.local.spark_host`): one warm JVM for Spark scripts, one script at a time.

    A run starts its own ahead of its first job (`start()`, or the first job does) and closes it at its end. A
    caller that runs several workloads in one process can instead create one, give it to each `LocalRun`
    and close it when done: every run after the first then skips the JVM's start-up and its cold JIT, about
    a third of a small run's CPU time. A host that died (killed, or its JVM out of memory) fails its job and
    is started again for the next."""

    driver: SparkDriver
    log: Path  # the JVM's own log
    # The driver's temporary files (Spark's local folders and the JVM's temporary folder), here rather than
    # in the machine's /tmp: a JVM that is killed (Ctrl-C, a crash) cannot delete its own, and `close()`
    # removes them all.
    scratch: Path
    children: Children = field(default_factory=Children)  # the host's process is one of these
    # The environment when it was created (less any AWS access, see `_spark_env`): the same for every job,
    # whichever run started the host.
    env: dict[str, str] = field(default_factory=base_env)
    _proc: subprocess.Popen[bytes] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The host's process while one is started."""
        return self._proc

    def start(self) -> None:
        with self._lock:
            self._running()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:  # died between jobs
                self.children.wait(self._proc)
            self.scratch.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, "-m", "mlpipe.local.spark_host"]
            self._proc = self.children.start(argv, env=self._spark_env(), log=self.log, pipes=True)
        return self._proc

    def _spark_env(self) -> dict[str, str]:
        # No AWS account either: the scripts read and write the mirror's local files, and the caller's
        # credentials, profile or endpoints must not reach a real account from a local run.
        env = {k: v for k, v in self.env.items() if not k.startswith(_AWS_ACCESS)}
        env.update(
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
        )
        # Spark's launcher splits the options as a shell would: the path goes in double quotes, escaped.
        quoted = str(self.scratch).replace("\\", "\\\\").replace('"', '\\"')
        env.update(
            MLPIPE_SPARK_MASTER=self.driver.master,
            MLPIPE_SPARK_DRIVER_MEMORY=self.driver.memory,
            MLPIPE_SPARK_JAVA_OPTIONS=f'{self.driver.java_options} -Djava.io.tmpdir="{quoted}"'.strip(),
            MLPIPE_SPARK_HOST_LOG=str(self.log),
            PYSPARK_PYTHON=sys.executable,
            PYSPARK_DRIVER_PYTHON=sys.executable,
        )
        env.pop("SPARK_LOCAL_DIRS", None)  # Spark's local folders then go to that temporary folder too
        return env

    def run(
        self,
        script: Path,
        args: Sequence[str],
        *,
        python_path: Sequence[Path],
        log: Path,
        stopped_by: Children | None = None,
    ) -> int:
        """The exit status of `python script args` run on the host (`python_path` leads `sys.path`). While the
        script runs, `stopped_by` (the children of the run whose job it is) stops the host with the others:
        Ctrl-C of a run ends its Spark job too, and the next job starts a new host."""
        request = {"script": str(script), "args": list(args), "python_path": [str(p) for p in python_path],
                   "log": str(log)}  # fmt: skip
        lender = stopped_by if stopped_by is not self.children else None
        with self._lock:
            if lender is not None and lender.stopping:  # before a new JVM would start for nothing
                raise Aborted("the local run is stopping")
            proc = self._running()
            if lender is not None:
                lender.adopt(proc)
            try:
                return self._answer(proc, request, log)
            finally:
                if lender is not None:
                    lender.release(proc)

    def _answer(self, proc: subprocess.Popen[bytes], request: dict[str, Any], log: Path) -> int:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            answer = proc.stdout.readline()
        except OSError:  # the host is gone
            answer = b""
        if answer:
            reply = json.loads(answer)
            if reply.get("host_exits"):  # the job broke the SparkContext: the next job gets a new host
                self._proc = None
                self.children.wait(proc)
            return int(reply["exit_code"])
        self._proc = None
        code = self.children.wait(proc)  # killed (Ctrl-C) or crashed: the job failed with it
        with contextlib.suppress(OSError), open(log, "a") as out:
            out.write(f"the Spark host exited with status {code}; its log: {self.log}\n")
        return code or 1

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the host: its SparkContext first, then the process (killed if it takes over `timeout_s`);
        then remove what Spark left in the scratch folder (everything, when a host was killed)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                assert proc.stdin is not None
                with contextlib.suppress(OSError):
                    proc.stdin.close()
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
            self.children.wait(proc)
        shutil.rmtree(self.scratch, ignore_errors=True)


# ---- Glue -----------------------------------------------------------------------------------------------
@dataclass
class SparkGlue:
    ctx: Context

    def run(self, job: GlueJobRun) -> Outcome:
        script = self.ctx.asset(job.script_location)
        if script is None or not script.is_file():
            return Outcome.failure(
                f"the Glue script {job.script_location} is not an asset of the cloud assembly"
            )
        arguments = {"--JOB_NAME": job.job_name, **job.arguments}
        # Glue puts each --extra-py-files object on the script's path: here, the asset it was uploaded from.
        library: list[Path] = []
        for uri in filter(None, arguments.pop("--extra-py-files", "").split(",")):
            path = self.ctx.asset(uri)
            if path is None or not path.exists():
                return Outcome.failure(
                    f"the Glue --extra-py-files {uri} is not an asset of the cloud assembly"
                )
            library.append(path)
        args = [part for name, value in arguments.items() for part in (name, value)]
        label = f"Glue job {job.job_name}"
        key = job_key("glue", job.job_name, dict(job.arguments))
        uris = [v for k, v in arguments.items() if v.startswith("s3://") and k != "--TempDir"]
        log = self.ctx.log_path("glue", f"{job.run_id}.log")
        return _staged_run(
            self.ctx, key=key, name=job.job_name, label=label, script=script, args=args, python_path=library,
            log=log, uris=uris,
        )  # fmt: skip


# ---- EMR ------------------------------------------------------------------------------------------------
SPARK_SUBMIT_OPTIONS_WITH_VALUE = frozenset(
    {"--deploy-mode", "--master", "--py-files", "--conf", "--name", "--jars", "--files", "--packages",
     "--driver-memory", "--executor-memory", "--executor-cores", "--num-executors", "--class"}
)  # fmt: skip


@dataclass
class SparkEmr:
    ctx: Context

    def run(self, step: EmrStep) -> Outcome:
        args = list(step.args)
        if step.jar != "command-runner.jar" or not args or args[0] != "spark-submit":
            return Outcome.failure(f"local mode runs spark-submit steps only, not {step.jar} {args[:1]}")
        i, py_files = 1, None
        while i < len(args) and args[i].startswith("--"):
            if args[i] == "--py-files" and i + 1 < len(args):
                py_files = args[i + 1]
            i += 2 if args[i] in SPARK_SUBMIT_OPTIONS_WITH_VALUE else 1
        if i >= len(args):
            return Outcome.failure(f"no application in the spark-submit step {step.name}")
        script = self.ctx.asset(args[i])
        if script is None or not script.is_file():
            return Outcome.failure(f"the EMR step script {args[i]} is not an asset of the cloud assembly")
        library: list[Path] = []
        for uri in filter(None, (py_files or "").split(",")):  # each goes on the script's path, as on EMR
            path = self.ctx.asset(uri)
            if path is None or not path.exists():
                return Outcome.failure(
                    f"the --py-files {uri} of step {step.name} is not an asset of the cloud assembly"
                )
            library.append(path)
        script_args = args[i + 1 :]
        label = f"EMR step {step.name}"
        key = job_key("emr", step.name, script_args)
        uris = [a for a in script_args if a.startswith("s3://")]
        log = self.ctx.log_path("emr", f"{step.step_id}-{step.name}.log")
        return _staged_run(
            self.ctx, key=key, name=step.name, label=label, script=script, args=script_args,
            python_path=library, log=log, uris=uris,
        )  # fmt: skip


# ---- Batch ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalBatch:
    ctx: Context
    published: set[str] = field(default_factory=set)  # asset URIs already in the embedded S3

    def run(self, job: BatchJob) -> Outcome:
        label = f"Batch job {job.job_name}"
        key = job_key("batch", job.job_name, [list(job.command), job.num_nodes])
        if self.ctx.journal.has(key):
            self.ctx.journal.note_replay(label)
            self.ctx.say(f"{label}: done in the failed run, not run again")
            return Outcome.success()
        command = list(job.command)
        if command and command[0] in ("python", "python3"):
            command[0] = sys.executable
        self._publish_assets(command)
        nodes = max(1, job.num_nodes)
        env = base_env()
        env.update(job.environment)
        env.update(
            PYTHONPATH=os.pathsep.join(filter(None, [str(BATCH_SOURCE), env.get("PYTHONPATH", "")])),
            AWS_BATCH_JOB_ATTEMPT=str(job.attempt),
            AWS_BATCH_JQ_NAME=job.queue_arn.rsplit("/", 1)[-1],
            AWS_BATCH_CE_NAME="local",
            MLPIPE_NPROC_PER_NODE="1",  # no GPUs here: one worker per node
            # Jobs share this host (on Batch each container has its own network): a rendezvous port each.
            MLPIPE_MASTER_PORT=str(free_port()),
            OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // max(nodes, self.ctx.batch_nodes_at_once))),
        )
        if nodes > 1:
            env.update(
                AWS_BATCH_JOB_NUM_NODES=str(nodes),
                AWS_BATCH_JOB_MAIN_NODE_INDEX="0",
                GLOO_SOCKET_IFNAME="lo",  # the nodes talk over the loopback interface only
            )
        suffix = f"attempt-{job.attempt}"
        logs = [
            self.ctx.log_path(
                "batch", job.job_name, f"{suffix}.node-{n}.log" if nodes > 1 else f"{suffix}.log"
            )
            for n in range(nodes)
        ]
        self.ctx.say(f"{label}: running on {nodes} node(s), log {logs[0]}")
        procs = []
        try:
            for node in range(nodes):
                node_env = dict(env)
                node_env["AWS_BATCH_JOB_ID"] = f"{job.job_id}#{node}" if nodes > 1 else job.job_id
                if nodes > 1:
                    node_env["AWS_BATCH_JOB_NODE_INDEX"] = str(node)
                    if node > 0:
                        node_env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = "127.0.0.1"
                procs.append(self.ctx.children.start(command, env=node_env, log=logs[node]))
        except Aborted as exc:
            for proc in procs:
                proc.kill()
            return Outcome.failure(str(exc))
        codes = self._wait_nodes(procs)
        failed = [(n, c) for n, c in enumerate(codes) if c != 0]
        if failed:
            node, code = failed[0]
            reason = f"exit status {code}: {_tail(logs[node])}"
            self.ctx.journal.record(
                key, status="FAILED", label=label, name=job.job_name, log=logs[node], reason=reason
            )
            return Outcome.failure(CONTAINER_EXITED, exit_code=code, reason=f"{reason} (log: {logs[node]})")
        output = job.parameters.get("output", "")
        if output.startswith("s3://"):  # the job's outputs outlive the server: a redrive restores them
            self.ctx.mirror.pull(output)
        self.ctx.journal.record(key, status="SUCCEEDED", label=label, name=job.job_name, log=logs[0])
        return Outcome.success()

    def _publish_assets(self, command: Sequence[str]) -> None:
        """Put each file asset that the command names (a workload's code package) into the embedded S3 once,
        as `cdk deploy` uploads it: the job then fetches the deployed bytes, not the workload's folder."""
        s3 = self.ctx.mirror.s3
        for arg in command:
            path = self.ctx.asset(arg) if arg.startswith("s3://") else None
            if path is None or not path.is_file() or arg in self.published:
                continue
            self.published.add(arg)
            bucket, key = arg.removeprefix("s3://").split("/", 1)
            region = s3.meta.region_name
            where = (
                {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            )
            with contextlib.suppress(
                s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists
            ):
                s3.create_bucket(Bucket=bucket, **where)
            s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    def _wait_nodes(self, procs: list[subprocess.Popen[bytes]]) -> list[int]:
        """Every node's exit code. When one node fails, the others are stopped at once (they would wait in
        the DDP rendezvous or collectives until its timeout), as Batch ends a multi-node job."""
        while any(proc.poll() is None for proc in procs):
            if any(proc.poll() not in (None, 0) for proc in procs):
                for proc in procs:
                    if proc.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(0.2)
        return [self.ctx.children.wait(proc) for proc in procs]

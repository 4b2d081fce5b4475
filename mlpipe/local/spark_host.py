"""One warm Spark driver for all the Spark scripts of a local run: `python -m mlpipe.local.spark_host`.

In AWS each Glue job run and each EMR step gets a driver of its own. Locally, a new driver per script costs
a JVM start and, worse, a cold JIT: the first query of a fresh JVM runs 2 to 3 times slower than the same
query in a warm one (the Glue job on 50k rows: 16 s cold, 6 s warm). So local mode starts this host once
per run, ahead of the first job, and runs each script in it, one at a time, as `python script.py args`
would run it:

- `sys.argv` is the script and its arguments, the script's folder and its `--py-files` library lead
  `sys.path`, and it runs as `__main__` (`runpy`); its exit status is what `sys.exit` gave, or 1 with the
  traceback for an uncaught exception.
- Its stdout and stderr (file descriptors 1 and 2) go to the job's log. The JVM's own log4j output goes
  to the host's log, named at the top of each job log.
- Isolation between jobs: each script gets a new SparkSession (its own SQL configuration, temporary views
  and functions) over the shared SparkContext: `SparkSession.builder.getOrCreate()` in the script creates
  it with the script's options. Afterwards the cache is cleared, the environment variables are restored,
  and the modules imported from the script's folder or library are forgotten, so the next job imports its
  own.
- Not shared with AWS: Python workers (UDFs; none of mlpipe's scripts has one) run with the host's
  PYTHONPATH, and SparkContext-level settings (master, driver memory) are the host's.

The protocol is one JSON line per job on stdin, `{"script", "args", "python_path", "log"}`, answered by one
JSON line `{"exit_code"}` on stdout (with `"host_exits": true` when the job left the SparkContext unusable:
the host then exits). End of input stops the SparkContext and the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def start_context() -> Any:
    """The shared SparkContext, configured as the scripts' own local sessions are (see their builders), with
    the JVM options of `MLPIPE_SPARK_JAVA_OPTIONS`."""
    from pyspark import SparkConf, SparkContext

    conf = (
        SparkConf()
        .setMaster(os.environ.get("MLPIPE_SPARK_MASTER", "local[*]"))
        .setAppName("mlpipe-local")
        .set("spark.driver.memory", os.environ.get("MLPIPE_SPARK_DRIVER_MEMORY", "2g"))
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
    )
    if java_options := os.environ.get("MLPIPE_SPARK_JAVA_OPTIONS", "").strip():
        conf.set("spark.driver.extraJavaOptions", java_options)
    context = SparkContext(conf=conf)
    context.setLogLevel(os.environ.get("MLPIPE_SPARK_LOG_LEVEL", "WARN"))
    return context


def _forget_session(context: Any) -> None:
    """Make the next `SparkSession.builder.getOrCreate()` create a new session over `context`."""
    from pyspark.sql import SparkSession

    session = SparkSession._instantiatedSession
    if session is not None:
        session.catalog.clearCache()
    for rdd in context._jsc.getPersistentRDDs().values():  # what a job persisted and left
        rdd.unpersist()
    jvm_session = context._jvm.org.apache.spark.sql.SparkSession
    jvm_session.clearActiveSession()
    jvm_session.clearDefaultSession()
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None


@contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """File descriptors 1 and 2 (Python's and native code's output) to `log` for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _exit_status(code: object) -> int:
    """What the interpreter makes of `sys.exit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_script(context: Any, script: str, args: Sequence[str], python_path: Sequence[str], log: Path) -> int:
    """Run `script` with `args` as `__main__`, as `python script args` would; its exit status. Raises
    `BrokenContext` (after the job) when the shared context cannot serve another job."""
    roots = [str(Path(script).parent), *python_path]
    under_roots = tuple(root.rstrip(os.sep) + os.sep for root in roots)
    saved_argv, saved_path, saved_env, known = sys.argv, list(sys.path), dict(os.environ), set(sys.modules)
    with _output_to(log):
        print(
            f"[spark host {os.getpid()}] {script} {' '.join(args)} (the JVM's log: {host_log()})", flush=True
        )
        sys.argv = [script, *args]
        sys.path[:0] = roots
        try:
            runpy.run_path(script, run_name="__main__")
            status = 0
        except SystemExit as exc:
            status = _exit_status(exc.code)
        except Exception:
            traceback.print_exc()
            status = 1
        finally:
            sys.argv, sys.path[:] = saved_argv, saved_path
            os.environ.clear()
            os.environ.update(saved_env)
            for name in set(sys.modules) - known:
                if (getattr(sys.modules[name], "__file__", None) or "").startswith(under_roots):
                    del sys.modules[name]
            try:
                _forget_session(context)
            except Exception as exc:  # e.g. a JVM that died of an OutOfMemoryError
                traceback.print_exc()
                raise BrokenContext(status) from exc
    return status


class BrokenContext(Exception):
    """The job ran (with `status`), but the shared SparkContext cannot serve another."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the SparkContext is unusable after a job that exited with {status}")
        self.status = status


def host_log() -> str:
    return os.environ.get("MLPIPE_SPARK_HOST_LOG", "stderr of the spark host")


def main() -> int:
    reply = os.fdopen(os.dup(1), "w", buffering=1)  # the protocol channel (not inherited by the JVM)
    os.dup2(2, 1)  # anything else printed goes to the host's log
    context = start_context()
    try:
        for line in sys.stdin:
            request = json.loads(line)
            try:
                status = run_script(
                    context, request["script"], request["args"], request["python_path"], Path(request["log"])
                )
            except BrokenContext as exc:
                reply.write(json.dumps({"exit_code": exc.status, "host_exits": True}) + "\n")
                return 1  # the client starts a new host for the next job
            reply.write(json.dumps({"exit_code": status}) + "\n")
    finally:
        with contextlib.suppress(Exception):  # a dead JVM has nothing left to stop
            context.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Spark host of local mode: scripts, of one run or of several that share the host, run on one warm driver
as `python script args` would run them, each with its own SparkSession, environment and modules; a host that
dies (here: its run stops) fails its job, and the next job gets a new one; Spark's scratch files stay in the
host's folder and are removed when the host closes."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mlpipe.local.jobs import Aborted, Children, Context, Journal, SparkDriver, SparkHost
from mlpipe.local.mirror import Mirror

pytestmark = [pytest.mark.local]

FIRST = """
    import os, sys
    import helper
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.config("spark.sql.shuffle.partitions", "3").getOrCreate()
    spark.range(10).createOrReplaceTempView("numbers")
    os.environ["LEFT_BEHIND"] = "yes"
    print("first", sys.argv[1:], helper.VERSION, spark.catalog.tableExists("numbers"))
    print(spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"))
    print("aws", *(os.environ.get(k) for k in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE")))
    sys.exit(int(sys.argv[1]))
"""
SECOND = """
    import os, sys
    import helper
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    print("second", helper.VERSION, spark.conf.get("spark.sql.shuffle.partitions"),
          spark.catalog.tableExists("numbers"), os.environ.get("LEFT_BEHIND"), __name__)
"""
STOPS = """
    from pyspark.sql import SparkSession

    SparkSession.builder.getOrCreate().sparkContext.stop()
"""
FAILS = """
    raise ValueError("the script's own error")
"""


def _script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _run(workdir: Path, driver: SparkDriver, host: SparkHost | None = None) -> Context:
    """A run's context, given `host` as its caller's shared one."""
    return Context(workdir=workdir, mirror=Mirror(workdir / "s3"), children=Children(),
                   journal=Journal(workdir / "journal.jsonl"), spark_driver=driver, shared_spark=host)  # fmt: skip


def test_scripts_of_several_runs_share_the_driver_but_not_their_state(
    tmp_path: Path, spark_java_options: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / 'a "host" folder'  # a path that the JVM's options must quote
    monkeypatch.setenv("SPARK_LOCAL_DIRS", str(tmp_path / "elsewhere"))  # the caller's: not for this driver
    for name, value in (
        ("AWS_PROFILE", "someone"),
        ("AWS_ACCESS_KEY_ID", "AKIA-REAL"),
        ("AWS_ENDPOINT_URL", "https://x"),
    ):
        monkeypatch.setenv(name, value)  # the caller's AWS access: never for a local run's scripts
    driver = SparkDriver(master="local[1]", memory="1g", java_options=spark_java_options)
    host = SparkHost(driver, log=folder / "spark-host.log", scratch=folder / "spark-scratch")
    run_a, run_b = _run(tmp_path / "a", driver, host), _run(tmp_path / "b", driver, host)
    assert run_a.spark is host and run_b.spark is host
    larger = _run(tmp_path / "c", SparkDriver(master="local[1]", memory="2g"), host)  # needs another driver
    assert larger.spark is not host and larger.spark.log == tmp_path / "c" / "logs" / "spark-host.log"
    lib_a, lib_b = tmp_path / "lib-a", tmp_path / "lib-b"
    _script(lib_a, "helper.py", "VERSION = 'a'\n")
    _script(lib_b, "helper.py", "VERSION = 'b'\n")
    first = _script(tmp_path / "jobs", "first.py", FIRST)
    second = _script(tmp_path / "jobs", "second.py", SECOND)
    fails = _script(tmp_path / "jobs", "fails.py", FAILS)
    slow = _script(tmp_path / "jobs", "slow.py", "import time\ntime.sleep(60)\n")
    logs = tmp_path / "logs"
    try:
        host.start()
        assert run_a.spark.run(first, ["3"], python_path=[lib_a], log=logs / "first.log") == 3
        assert "first ['3'] a True" in (logs / "first.log").read_text()
        # Spark's local folders are in the host's folder, not in the machine's /tmp
        scratch = host.scratch
        assert list(scratch.glob("blockmgr-*")) and list(scratch.glob("spark-*"))
        # the other run's job: a new session (the default shuffle partitions, no temporary view), the
        # environment as it was, and the helper module of its own library, not the one the first job imported
        assert run_b.spark.run(second, [], python_path=[lib_b], log=logs / "second.log") == 0
        assert "second b 200 False None __main__" in (logs / "second.log").read_text()
        assert run_a.spark.run(fails, [], python_path=[], log=logs / "fails.log") == 1
        assert "ValueError: the script's own error" in (logs / "fails.log").read_text()

        # the JVM options are in the driver's configuration; no AWS access of the caller reached the script
        assert "-XX:TieredStopAtLevel=1" in (logs / "first.log").read_text()
        assert f"aws None None None {os.devnull}" in (logs / "first.log").read_text()
        # a run that stops (Ctrl-C) stops its job on the shared host, and the host with it: that job fails,
        # the stopped run starts no other, and the other run's next job gets a new host
        stopped = host.process
        assert stopped is not None

        def stop_once_running() -> (
            None
        ):  # Ctrl-C while the job is on the host (its log has the host's header)
            while not (logs / "slow.log").is_file() or "[spark host" not in (logs / "slow.log").read_text():
                time.sleep(0.05)
            run_b.children.stop_all(grace_s=5.0)

        stopper = threading.Thread(target=stop_once_running, daemon=True)
        stopper.start()
        code = run_b.spark.run(slow, [], python_path=[], log=logs / "slow.log", stopped_by=run_b.children)
        stopper.join(timeout=30)
        assert code == -signal.SIGTERM
        assert "the Spark host exited with status -15" in (logs / "slow.log").read_text()
        assert stopped.poll() is not None and not run_b.children._procs
        with pytest.raises(Aborted):
            run_b.spark.run(second, [], python_path=[], log=logs / "late.log", stopped_by=run_b.children)
        assert host.process is None  # no JVM started for the stopped run
        assert run_a.spark.run(second, [], python_path=[lib_a], log=logs / "again.log") == 0
        assert "second a 200 False None __main__" in (logs / "again.log").read_text()
        assert host.process is not None and host.process.pid != stopped.pid

        # a script that stops the shared SparkContext succeeds, and the host it broke is gone: the next job
        # starts a new one, as after the stop above (not run again here: a host costs a JVM's start-up)
        stops = _script(tmp_path / "jobs", "stops.py", STOPS)
        broken = host.process
        assert run_a.spark.run(stops, [], python_path=[], log=logs / "stops.log") == 0
        assert broken.poll() is not None and host.process is None
        run_a.close_spark()  # a run leaves its caller's host alone
        assert scratch.is_dir()
    finally:
        host.close()
        for run in (run_a, run_b):
            run.children.stop_all(grace_s=1.0)
    assert host.process is None
    assert not scratch.exists()  # closing the host removed what the stopped one left

"""The Spark host of local mode: scripts run on one warm driver as `python script args` would run them, each
with its own SparkSession, environment and modules; a host that dies fails its job, and the next job gets a
new one; Spark's scratch files stay in the run's folder and are removed when the host closes."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
from pathlib import Path

import pytest

from mlpipe.local.jobs import Children, Context, Journal
from mlpipe.local.mirror import Mirror

pytestmark = [pytest.mark.local, pytest.mark.xdist_group("local")]

FIRST = """
    import os, sys
    import helper
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.config("spark.sql.shuffle.partitions", "3").getOrCreate()
    spark.range(10).createOrReplaceTempView("numbers")
    os.environ["LEFT_BEHIND"] = "yes"
    print("first", sys.argv[1:], helper.VERSION, spark.catalog.tableExists("numbers"))
    print(spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"))
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


def test_scripts_share_the_driver_but_not_their_state(
    tmp_path: Path, spark_java_options: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / 'a "run" folder'  # a path that the JVM's options must quote
    monkeypatch.setenv("SPARK_LOCAL_DIRS", str(tmp_path / "elsewhere"))  # the caller's: not for this driver
    ctx = Context(workdir=workdir, mirror=Mirror(tmp_path / "s3"), children=Children(),
                  journal=Journal(tmp_path / "journal.jsonl"), spark_master="local[1]", spark_driver_memory="1g",
                  spark_java_options=spark_java_options)  # fmt: skip
    lib_a, lib_b = tmp_path / "lib-a", tmp_path / "lib-b"
    _script(lib_a, "helper.py", "VERSION = 'a'\n")
    _script(lib_b, "helper.py", "VERSION = 'b'\n")
    first = _script(tmp_path / "jobs", "first.py", FIRST)
    second = _script(tmp_path / "jobs", "second.py", SECOND)
    fails = _script(tmp_path / "jobs", "fails.py", FAILS)
    logs = tmp_path / "logs"
    try:
        ctx.spark.start()
        assert ctx.spark.run(first, ["3"], python_path=[lib_a], log=logs / "first.log") == 3
        assert "first ['3'] a True" in (logs / "first.log").read_text()
        # Spark's local folders are in the run's folder, not in the machine's /tmp
        scratch = ctx.spark.scratch
        assert scratch.parent == workdir
        assert list(scratch.glob("blockmgr-*")) and list(scratch.glob("spark-*"))
        # a new session (the default shuffle partitions, no temporary view), the environment as it was,
        # and the helper module of its own library, not the one the first job imported
        assert ctx.spark.run(second, [], python_path=[lib_b], log=logs / "second.log") == 0
        assert "second b 200 False None __main__" in (logs / "second.log").read_text()
        assert ctx.spark.run(fails, [], python_path=[], log=logs / "fails.log") == 1
        assert "ValueError: the script's own error" in (logs / "fails.log").read_text()

        # the JVM options are in the driver's configuration
        assert "-XX:TieredStopAtLevel=1" in (logs / "first.log").read_text()
        # the host dies during a job (here: killed): that job fails, the next one gets a new host
        host = ctx.spark.process
        assert host is not None
        killer = threading.Timer(2.0, os.killpg, (host.pid, signal.SIGKILL))
        killer.start()
        slow = _script(tmp_path / "jobs", "slow.py", "import time\ntime.sleep(60)\n")
        assert ctx.spark.run(slow, [], python_path=[], log=logs / "slow.log") == -signal.SIGKILL
        assert "the Spark host exited with status -9" in (logs / "slow.log").read_text()
        assert ctx.spark.run(second, [], python_path=[lib_a], log=logs / "again.log") == 0
        assert "second a 200 False None __main__" in (logs / "again.log").read_text()
        assert ctx.spark.process is not None and ctx.spark.process.pid != host.pid
        assert len(list(scratch.glob("blockmgr-*"))) == 2  # the killed JVM could not delete its own

        # a script that stops the shared SparkContext succeeds, and the host it broke is gone: the next job
        # starts a new one, as after the kill above (not run again here: a host costs a JVM's start-up)
        stops = _script(tmp_path / "jobs", "stops.py", STOPS)
        broken = ctx.spark.process
        assert ctx.spark.run(stops, [], python_path=[], log=logs / "stops.log") == 0
        assert broken.poll() is not None and ctx.spark.process is None
    finally:
        ctx.spark.close()
        ctx.children.stop_all(grace_s=1.0)
    assert ctx.spark.process is None
    assert not scratch.exists()  # closing the host removed what the killed one left

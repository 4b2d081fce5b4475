"""Shared fixtures: fake AWS credentials for moto, one local SparkSession per test worker, and one dev synth
for the whole test run.

Slow paths are session-scoped and grouped for pytest-xdist (`--dist loadgroup`): mark Spark tests with
`@pytest.mark.xdist_group("spark")` so that one worker owns the only SparkSession.
"""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The tests' own synths run jsii's kernel on the node that app.py uses (scripts/jsii-node says why).
os.environ.setdefault("JSII_NODE", str(REPO_ROOT / "scripts" / "jsii-node"))


# The xdist groups, longest first (by --durations=0): with `--dist loadgroup
# --no-loadscope-reorder` (the Makefile) a worker takes the next group in this order as it frees up, so the
# longest starts at once and the ungrouped tests, each a unit of its own, fill in at the end.
GROUPS_LONGEST_FIRST = ("local", "spark", "torch", "cdk", "scenario", "client-server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        marker = item.get_closest_marker("xdist_group")
        group = marker.args[0] if marker else None
        return (
            GROUPS_LONGEST_FIRST.index(group) if group in GROUPS_LONGEST_FIRST else len(GROUPS_LONGEST_FIRST)
        )

    items.sort(key=rank)  # stable: the order within a group and among the others is kept


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection loaded (CDK's bindings, moto, PyTorch: about a million objects in each worker) lives
    until the worker exits: out of the cyclic garbage collector's sight with it. Each full collection walked
    it all again (about 20 a run, 0.5 s each: 23 of the run's CPU seconds, measured with gc.callbacks).
    What the tests create is collected as before."""
    gc.freeze()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """At the end pytest collects garbage five times over, to find unraisable exceptions (a `__del__` that
    raised) among the tests' leftovers: 2.5 s per worker, after the last test. One collection here finds
    them (pytest's hook still records them); what survives it is frozen, so those five passes walk only
    what is newer."""
    gc.collect()
    gc.freeze()


def pytest_configure(config: pytest.Config) -> None:
    """moto's mocks keep boto3's default session instead of replacing it for each test: a new session loads
    every service model again (about 0.3 s of JSON per test that makes clients). Every test runs with the
    same fake credentials and region (`aws_credentials`), and a mock answers whatever the credentials."""
    from moto.core.config import default_user_config

    default_user_config["core"]["reset_boto3_session"] = False
    # A full collection after 100 young ones instead of 10 (and only once a quarter of what is not frozen is
    # new, as before): the tests' garbage is small, their imports large.
    gc.set_threshold(700, 10, 100)


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a fixed region, so no test can reach a real AWS account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="session")
def spark_java_options() -> str:
    """The JVM options of the tests' Spark drivers. Their data is tiny: the JIT's optimizing tier (C2) would
    compile for longer than the code runs (about 25 of the Spark tests' 78 CPU seconds), and one GC thread is
    enough for a 2 GB heap; the classes come from the class-data-sharing archive of `make setup` (half of a
    JVM's start-up)."""
    from mlpipe.local import spark_cds

    return f"-XX:TieredStopAtLevel=1 -XX:+UseSerialGC {spark_cds.java_options()}".strip()


@pytest.fixture(scope="session")
def spark(spark_java_options: str) -> Iterator[Any]:
    """One local SparkSession for the whole test session (Spark 3.5, as on Glue 5.1 and EMR 7.12)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)  # type: ignore[attr-defined]
    session = (
        # One core: under `pytest -n 2` the other worker has the other. Two partitions keep every shuffle a
        # real exchange between partitions; adaptive execution is off because on these few thousand rows its
        # re-planning costs more than the queries. So is code generation (a fifth of the Spark tests' CPU):
        # Spark runs each operator interpreted instead, with the same results, as its own test suites check.
        SparkSession.builder.master("local[1]")
        .appName("mlpipe-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "2g")
        .config("spark.driver.extraJavaOptions", spark_java_options)
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def dev_cloud_assembly(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The dev app as `cdk synth` writes it (local mode's own synth: the CDK CLI, app.py, cdk-nag), made once
    for the whole test run: the stack tests, the scenarios and local mode all read this one cloud assembly.
    Under pytest-xdist the first worker to ask synthesizes it while the others wait on the synth's lock."""
    from mlpipe.local.mode import synthesize

    if worker_id == "master":  # not distributed: this session's own
        outdir = tmp_path_factory.mktemp("dev-synth") / "cdk.out"
        synthesize(outdir)
        return outdir
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above every worker's own
    outdir = shared / "dev-synth" / "cdk.out"
    synthesize(outdir)  # under its lock: nothing to do when another worker made it current
    return outdir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Any:
    """Returns a function that picks a free TCP port on 127.0.0.1."""
    return _free_port


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 and a free port, for entry points run as subprocesses. (Servers of one
    process share moto's state: a module's buckets are its own only by their names.)"""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()

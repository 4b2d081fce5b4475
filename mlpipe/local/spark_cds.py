"""A class-data-sharing archive for local Spark's JVM (AppCDS, JDK 17's dynamic archive).

A Spark driver loads about 15,000 classes before its first query. The archive holds them parsed and verified,
made once by `make setup` from a driver that ran mlpipe's kinds of queries (gzip JSON lines, windows,
aggregations, partitioned Parquet); every later JVM maps it instead of loading them again. On 2 cores a
local SparkSession answers its first query after 2.9 s instead of 6.8 s, and uses 4 CPU seconds instead of 8.

The archive is valid only for the JVM and the Spark jars that made it, and a JVM given a truncated archive
crashes, so it is used only while its record matches: the JVM library, the pyspark version and jars, and the
archive's own size. Otherwise the JVMs start without it (slower, nothing else changes) until the next
`make setup` makes a new one. `python -m mlpipe.local.spark_cds` makes it unless a usable one exists.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from mlpipe.data.storage import write_bytes

REPO_ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = REPO_ROOT / "build" / "spark-cds.jsa"


def _record_path(archive: Path) -> Path:
    return archive.with_suffix(".json")


def fingerprint() -> dict[str, Any]:
    """What the archive depends on: the JVM that pyspark starts (as pyspark finds it) and the Spark jars."""
    import pyspark

    java_home = os.environ.get("JAVA_HOME")
    java = Path(java_home) / "bin" / "java" if java_home else shutil.which("java")
    libjvm = None
    if java is not None and Path(java).exists():
        home = Path(java).resolve().parents[1]
        libjvm = next((p for p in (home / "lib" / "server" / "libjvm.so", home / "jre" / "lib" / "amd64" /
                                   "server" / "libjvm.so") if p.is_file()), None)  # fmt: skip
    jvm = libjvm.stat() if libjvm else None
    jars = Path(pyspark.__file__).parent / "jars"
    return {
        "libjvm": str(libjvm) if libjvm else None,
        "libjvm_size": jvm.st_size if jvm else None,
        "libjvm_mtime_ns": jvm.st_mtime_ns if jvm else None,
        "pyspark": pyspark.__version__,
        "jars": str(jars),
    }


def usable(archive: Path = ARCHIVE) -> bool:
    """Whether `archive` was made for this JVM and these jars, and is whole."""
    try:
        record = json.loads(_record_path(archive).read_text())
        size = archive.stat().st_size
    except (OSError, ValueError):
        return False
    current = fingerprint()
    return current["libjvm"] is not None and record == {**current, "size": size}


def java_options(archive: Path = ARCHIVE) -> str:
    """The JVM option that maps the archive, or nothing when there is no usable one."""
    return f"-XX:SharedArchiveFile={archive}" if usable(archive) else ""


def build(archive: Path = ARCHIVE) -> bool:
    """Make `archive` unless a usable one exists; returns whether it made one. Written beside it and renamed,
    and recorded only once whole: a failed or interrupted build leaves no archive that a JVM would map."""
    if usable(archive):
        return False
    if fingerprint()["libjvm"] is None:
        raise RuntimeError("no JVM found (JAVA_HOME or java on PATH): Spark needs Java 17")
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(f".{archive.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mlpipe.local.spark_cds", "--dump", str(tmp)],
            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or not tmp.is_file():
            raise RuntimeError(
                f"the Spark CDS archive was not made ({done.returncode}): {done.stderr[-2000:]}"
            )
        _record_path(archive).unlink(missing_ok=True)
        os.replace(tmp, archive)
        record = {**fingerprint(), "size": archive.stat().st_size}
        write_bytes(str(_record_path(archive)), (json.dumps(record, indent=2) + "\n").encode())
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _dump(path: Path) -> None:
    """Run a driver with `-XX:ArchiveClassesAtExit=path` through mlpipe's kinds of queries, then end its JVM
    (the archive is written as the JVM exits) and wait for it."""
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    conf = (
        SparkConf()
        .setMaster("local[2]")
        .setAppName("mlpipe-spark-cds")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
        .set("spark.sql.shuffle.partitions", "2")
        .set("spark.driver.extraJavaOptions", f"-XX:ArchiveClassesAtExit={path}")
    )
    context = SparkContext(conf=conf)
    context.setLogLevel("ERROR")
    jvm = context._gateway.proc  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory(prefix="mlpipe-spark-cds-") as folder:
        _workload(SparkSession(context), Path(folder))
    context.stop()
    jvm.stdin.close()  # pyspark's gateway exits at the end of its input
    jvm.wait(timeout=300)


def _workload(spark: Any, folder: Path) -> None:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    raw = folder / "raw"
    raw.mkdir()
    with gzip.open(raw / "part-0.jsonl.gz", "wt") as out:
        for i in range(2000):
            ts = f"2026-01-{1 + i % 5:02d}T{i % 24:02d}:{i % 60:02d}:00Z"
            event = {"record_id": f"e{i}", "ts": ts, "key": f"u{i % 97}", "kind": ["a", "b"][i % 2],
                     "amount": i % 50 + 0.5, "label": i % 3 % 2}  # fmt: skip
            out.write(json.dumps(event) + "\n")
        out.write("{not json\n")
    schema = "record_id string, ts string, key string, kind string, amount double, label int"
    lines = spark.read.text(str(raw)).withColumn("source", F.input_file_name())
    parsed = lines.select(F.from_json("value", schema).alias("e"), "source").select("e.*", "source")
    events = parsed.where(F.col("record_id").isNotNull()).withColumn("ts", F.to_timestamp("ts"))
    events = events.dropDuplicates(["record_id"]).persist()
    seconds = F.col("ts").cast("long")
    history = Window.partitionBy("key").orderBy(seconds).rangeBetween(-7 * 86400, -1)
    features = (
        events.withColumn("seen_7d", F.count("*").over(history))
        .withColumn("ctr_7d", (F.sum("label").over(history) + 1) / (F.count("*").over(history) + 10))
        .withColumn("rank", F.row_number().over(Window.partitionBy("key").orderBy("ts")))
        .withColumn("dt", F.to_date("ts"))
        .withColumn("bucket", F.abs(F.hash("key")) % 10)
    )
    features.count()
    curated = str(folder / "curated")
    features.write.mode("overwrite").partitionBy("dt").parquet(curated)
    back = spark.read.parquet(curated)
    stats = back.groupBy("kind").agg(F.avg("amount").alias("mean"), F.stddev("amount").alias("sd"),
                                       F.approx_count_distinct("key").alias("users"))  # fmt: skip
    joined = back.join(F.broadcast(stats), "kind").withColumn(
        "z", (F.col("amount") - F.col("mean")) / F.col("sd")
    )
    joined.repartition(2).write.mode("overwrite").json(str(folder / "scored"))
    back.approxQuantile("amount", [0.25, 0.5, 0.75], 0.01)
    spark.sql("SELECT 1 AS one").collect()
    events.unpersist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlpipe.local.spark_cds", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dump", type=Path, help=argparse.SUPPRESS)  # the child that `build` starts
    args = parser.parse_args(argv)
    if args.dump:
        _dump(args.dump)
        return 0
    try:
        made = build()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:  # Spark works without it, slower
        print(f"warning: no Spark CDS archive ({exc}); Spark's JVMs start without one", file=sys.stderr)
        return 0
    print(f"Spark CDS archive {'made' if made else 'current'}: {ARCHIVE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""I/O for the EMR feature steps: argument errors, Parquet shards, atomic JSON, the feature manifest.

Files are moved with Hadoop's FileSystem API through the Spark JVM, so the same code works on local paths
(tests, laptops) and on `s3://` under EMR (EMRFS) without boto3.

Commit strategy: a split's shards are written by Spark to a staging folder next to the output (Spark's own
commit protocol publishes them there at job commit), renamed to `part-NNNNN.parquet` under the split folder,
and only then is the manifest written, in one atomic step (a local rename, or one S3 PUT at stream close).
The manifest is the commit point: consumers read shard URIs from it, never by listing folders, so a
consumer never sees a partial set of shards.
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class UsageError(ValueError):
    """A bad invocation or unreadable input: one line on stderr and exit status 2."""


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri).absolute()


def normalize(uri: str) -> str:
    """Absolute local paths (no scheme) or the URI unchanged."""
    return str(local_path(uri)) if is_local(uri) else uri.rstrip("/")


def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/"), *names])


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_records(spark: Any, uri: str) -> Any:
    """The curated records (Parquet, partitioned or not); a missing local input is a usage error."""
    if is_local(uri) and not local_path(uri).exists():
        raise UsageError(f"input not found: {uri}")
    return spark.read.parquet(normalize(uri))


def add_workload_path(path: str | None) -> None:
    """For plain `python`: put the workload's folder or code package on sys.path (on EMR, spark-submit's
    --py-files does this)."""
    if path:
        if not local_path(path).exists():
            raise UsageError(f"--workload-path {path} does not exist")
        sys.path.insert(0, str(local_path(path)))


def check_local_inputs(*uris: str | None) -> None:
    for uri in uris:
        if uri and is_local(uri) and not local_path(uri).exists():
            raise UsageError(f"input not found: {uri}")


def run_main(prog: str, main: Any, argv: list[str] | None) -> int:
    """Run `main(argv)`; usage errors and unreadable input become one stderr line and exit status 2."""
    try:
        return int(main(sys.argv[1:] if argv is None else argv))
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from pyspark.errors import AnalysisException

        if isinstance(exc, AnalysisException):
            print(f"{prog}: error: cannot read input: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 2
        raise


def spark_session(app_name: str) -> Any:
    """The step's SparkSession: spark-submit's (EMR) or, under plain `python`, a local one."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not launched by spark-submit: pick a local master
        master = os.environ.get("MLPIPE_SPARK_MASTER", "local[*]")
        cores = master[len("local[") : -1] if master.startswith("local[") else "*"
        cores = str(os.cpu_count() or 2) if cores == "*" else cores
        builder = (
            builder.master(master)
            .config("spark.driver.memory", os.environ.get("MLPIPE_SPARK_DRIVER_MEMORY", "2g"))
            # the default 200 shuffle partitions are sized for clusters; locally a few per core
            .config("spark.sql.shuffle.partitions", str(4 * int(cores)))
        )
    spark = (
        builder.config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel(os.environ.get("MLPIPE_SPARK_LOG_LEVEL", "WARN"))
    return spark


def _fs(spark: Any, uri: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def exists(spark: Any, uri: str) -> bool:
    if is_local(uri):
        return local_path(uri).exists()
    fs, path = _fs(spark, uri)
    return bool(fs.exists(path))


def delete(spark: Any, uri: str) -> None:
    fs, path = _fs(spark, uri)
    if fs.exists(path):
        fs.delete(path, True)


def read_text(spark: Any, uri: str) -> str:
    if is_local(uri):
        path = local_path(uri)
        if not path.is_file():
            raise UsageError(f"not found: {uri}")
        return path.read_text()
    fs, path = _fs(spark, uri)
    if not fs.exists(path):
        raise UsageError(f"not found: {uri}")
    stream = fs.open(path)
    try:
        jvm = spark.sparkContext._jvm
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def write_json(spark: Any, uri: str, payload: dict[str, Any]) -> None:
    """Write JSON atomically: a local temporary file renamed into place, or one S3 object at close."""
    data = json.dumps(payload, indent=2) + "\n"
    if is_local(uri):
        path = local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(data)
        os.replace(tmp, path)
        return
    fs, path = _fs(spark, uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(data.encode()))
    finally:
        stream.close()


def shard_count(rows: int, bytes_per_row: float, target_bytes: float) -> int:
    return max(1, math.ceil(rows * bytes_per_row / target_bytes))


def write_shards(
    spark: Any, df: Any, *, rows: int, folder: str, staging: str, target_bytes: float, bytes_per_row: float
) -> list[dict[str, Any]]:
    """Write `df` as Parquet shards of about `target_bytes` named `folder/part-NNNNN.parquet`.

    Returns the shard entries of the manifest (`uri`, `rows`, `bytes`), in name order.
    """
    from pyspark.sql import functions as F

    delete(spark, folder)
    if rows == 0:
        return []
    df.repartition(shard_count(rows, bytes_per_row, target_bytes)).write.mode("overwrite").option(
        "compression", "snappy"
    ).parquet(staging)
    counts = {
        r["f"]: r["count"]
        for r in spark.read.parquet(staging).groupBy(F.input_file_name().alias("f")).count().collect()
    }
    fs, folder_path = _fs(spark, folder)
    fs.mkdirs(folder_path)
    jvm = spark.sparkContext._jvm
    shards = []
    for i, source in enumerate(sorted(counts)):
        target = join(folder, f"part-{i:05d}.parquet")
        src_path = jvm.org.apache.hadoop.fs.Path(source)
        if not fs.rename(src_path, jvm.org.apache.hadoop.fs.Path(target)):
            raise OSError(f"could not move {source} to {target}")
        size = int(fs.getFileStatus(jvm.org.apache.hadoop.fs.Path(target)).getLen())
        shards.append({"uri": target, "rows": int(counts[source]), "bytes": size})
    delete(spark, staging)
    if sum(s["rows"] for s in shards) != rows:
        raise RuntimeError(f"wrote {sum(s['rows'] for s in shards)} rows to {folder}, expected {rows}")
    return shards


def estimated_bytes_per_row(n_numeric: int, n_categorical: int) -> float:
    """Parquet bytes per shard row: float32 numerics, int32 buckets, a ~16-byte id, an int label."""
    return 4.0 * n_numeric + 3.0 * n_categorical + 18.0

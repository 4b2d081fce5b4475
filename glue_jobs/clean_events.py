"""Glue ETL job: validate raw JSON Lines event logs into curated Parquet, quarantining every rejected row.

One file, the raw schema included: Glue could take it from a module through --extra-py-files, but one file
is what the job's asset, the local runner and the tests all load as it is (tests/glue_jobs keeps the copy
equal to mlpipe/data/schema.py). The same file runs

- locally with plain PySpark: `python glue_jobs/clean_events.py --input DIR --output DIR --quarantine DIR
  --report FILE` (or through spark-submit);
- in AWS Glue 5.1 (Spark 3.5.6), where `awsglue` is importable: the input is read through a GlueContext
  source with a `transformation_ctx`, and `job.init`/`job.commit` make job bookmarks process only new files.

What it guarantees:

- Every input line is accounted for: rows_in = rows_curated + rows_quarantined + duplicates_removed. The job
  counts the curated and quarantine outputs back after writing them and fails if the identity breaks.
- Curated output is Parquet partitioned by `dt=YYYY-MM-DD` (UTC). Each run upserts by `event_id` into the
  partitions it touches (existing rows of those partitions are kept unless this run has the same event id)
  and replaces them with dynamic partition overwrite. A re-run on the same input therefore writes the same
  rows, and an incremental (bookmarked) run adds to a day without dropping what earlier runs wrote.
- Rejected rows go to `--quarantine` as Parquet: `reason`, `field`, `source_file` and the exact raw `line`
  bytes. Duplicates (same `event_id`) are not quarantined; the earliest is kept and the rest are counted.

Commit strategy. Spark's commit protocol stages task output and publishes it at job commit; nothing is
visible before. Locally the quarantine is written to a hidden sibling folder and renamed into place, and the
curated partitions are staged under `.spark-staging-*` and renamed by dynamic partition overwrite. On S3
each object appears atomically; dynamic partition overwrite replaces a touched partition at job commit
(delete, then copy from staging), so the pipeline runs consumers only after this job has succeeded. The
quarantine prefix is per run. The report is written last (a local rename, or one S3 PUT).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# --- The raw event schema (kept equal to mlpipe/data/schema.py by tests/glue_jobs) -----------------------
REQUIRED_FIELDS = (
    "event_id",
    "ts",
    "user_id",
    "item_id",
    "device",
    "country",
    "category",
    "price",
    "position",
    "label",
)
OPTIONAL_FIELDS = ("discount",)
DEVICES = ("mobile", "desktop", "tablet")
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "SE", "PL", "BR", "IN", "JP")
CATEGORIES = (
    "books",
    "electronics",
    "fashion",
    "home",
    "garden",
    "toys",
    "sports",
    "beauty",
    "grocery",
    "auto",
    "music",
    "movies",
    "games",
    "health",
    "office",
    "pets",
    "baby",
    "jewelry",
    "tools",
    "travel",
)
PRICE_RANGE = (0.0, 10_000.0)
POSITION_RANGE = (1, 50)
DISCOUNT_RANGE = (0.0, 0.9)
LABEL_VALUES = (0, 1)
TS_RANGE = ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
ID_PATTERNS = {
    "event_id": r"^[A-Za-z0-9_.:-]{1,128}$",
    "user_id": r"^u[0-9]{1,12}$",
    "item_id": r"^i[0-9]{1,12}$",
}

CURATED_COLUMNS = (
    "event_id",
    "ts",
    "user_id",
    "item_id",
    "device",
    "country",
    "category",
    "price",
    "position",
    "discount",
    "label",
)
QUARANTINE_COLUMNS = ("reason", "field", "source_file", "line")
REPORT_FORMAT = "mlpipe.clean_report.v1"

REQUIRED_ARGS = ("input", "output", "quarantine", "report")
# Optional arguments of this job; every other `--key value` (Glue adds --JOB_NAME, --TempDir,
# --job-bookmark-option, --enable-metrics, ...) is accepted and ignored.
OPTIONAL_ARGS = {"JOB_NAME": "clean_events", "max-rows-per-file": "2000000"}
PROG = "clean_events"


class UsageError(ValueError):
    """A bad invocation: one line on stderr and exit status 2."""


# --- Arguments ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> dict[str, str]:
    """Glue-style `--key value` (or `--key=value`) arguments; unknown keys are kept and ignored."""
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or len(token) == 2:
            raise UsageError(f"unexpected argument {token!r}: arguments are --key value pairs")
        key, has_value, value = token[2:].partition("=")
        if not has_value:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value = argv[i + 1]
                i += 1
            else:
                value = ""
        values[key] = value
        i += 1
    missing = [f"--{k}" for k in REQUIRED_ARGS if not values.get(k)]
    if missing:
        raise UsageError(
            f"missing required argument(s): {', '.join(missing)} "
            "(usage: --input URI --output URI --quarantine URI --report URI)"
        )
    for key, default in OPTIONAL_ARGS.items():
        values.setdefault(key, default)
    try:
        if int(values["max-rows-per-file"]) < 1:
            raise ValueError
    except ValueError:
        raise UsageError(  # noqa: B904 - the message says it all
            f"--max-rows-per-file must be a positive integer, got {values['max-rows-per-file']!r}"
        )
    targets = [values[k].rstrip("/") for k in ("input", "output", "quarantine", "report")]
    if len(set(targets)) != len(targets):
        raise UsageError("--input, --output, --quarantine and --report must be four different locations")
    return values


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri).absolute()


# --- Transformations (pure DataFrame functions) ------------------------------------------------------------
def raw_schema() -> Any:
    from pyspark.sql import types as T

    string_fields = ("event_id", "ts", "user_id", "item_id", "device", "country", "category")
    fields = [T.StructField(name, T.StringType()) for name in string_fields]
    fields += [
        T.StructField("price", T.DoubleType()),
        T.StructField("position", T.LongType()),
        T.StructField("discount", T.DoubleType()),
        T.StructField("label", T.LongType()),
        T.StructField("_corrupt", T.StringType()),
    ]
    return T.StructType(fields)


def classify(lines: Any) -> Any:
    """Parse and validate raw lines (`value`, `source_file`) into typed columns plus `reason` and `field`.

    `reason` is null for a valid row; otherwise the first failing check, in this order: invalid_utf8,
    malformed_json, missing_field, wrong_type, bad_timestamp, out_of_range, unknown_category. `field` names
    the offending field where there is one. Built-in functions only (no Python UDFs).
    """
    from pyspark.sql import functions as F

    value = F.col("value")
    parsed = lines.select(
        value,
        F.col("source_file"),
        F.from_json(
            value, raw_schema(), {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"}
        ).alias("j"),
    ).select("value", "source_file", F.col("j").isNull().alias("_null"), "j.*")
    # Parsed once into its own column: the checks below and the output read it (inlined, the cast ran up to
    # four times a row and was the most expensive part of the job).
    parsed = parsed.withColumn("_ts", F.expr("try_cast(ts AS TIMESTAMP)"))

    corrupt = F.col("_corrupt")

    def present(name: str) -> Any:  # evaluated only on the rare rows that need it (CASE WHEN is lazy)
        return value.rlike(f'"{name}"\\s*:')

    ts = F.col("_ts")
    # Strings holding bytes that are not UTF-8 do not survive a decode/encode round trip; a text reader
    # that already decoded them (Glue's) leaves U+FFFD behind instead.
    bad_utf8 = (F.encode(value, "UTF-8") != value.cast("binary")) | value.contains("\ufffd")
    all_null = F.coalesce(*(F.col(n).cast("string") for n in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS))).isNull()
    checks: list[tuple[Any, str]] = [
        (bad_utf8, "invalid_utf8:"),
        (F.col("_null") | (corrupt.isNotNull() & all_null), "malformed_json:"),
    ]
    for name in REQUIRED_FIELDS:
        checks.append((F.col(name).isNull() & (corrupt.isNull() | ~present(name)), f"missing_field:{name}"))
    for name in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS):
        checks.append((F.col(name).isNull() & corrupt.isNotNull() & present(name), f"wrong_type:{name}"))
    for name, pattern in ID_PATTERNS.items():
        checks.append((~F.col(name).rlike(pattern), f"wrong_type:{name}"))
    checks.append(
        (
            ts.isNull()
            | (ts < F.lit(TS_RANGE[0]).cast("timestamp"))
            | (ts >= F.lit(TS_RANGE[1]).cast("timestamp")),
            "bad_timestamp:ts",
        )
    )
    for name, (low, high) in (
        ("price", PRICE_RANGE),
        ("position", POSITION_RANGE),
        ("discount", DISCOUNT_RANGE),
    ):
        checks.append((~F.col(name).between(low, high), f"out_of_range:{name}"))  # NaN is out of range
    checks.append((~F.col("label").isin(*LABEL_VALUES), "out_of_range:label"))
    for name, allowed in (("device", DEVICES), ("country", COUNTRIES), ("category", CATEGORIES)):
        checks.append((~F.col(name).isin(*allowed), f"unknown_category:{name}"))

    # The first failing check wins. One CASE per group of checks under a COALESCE, rather than one CASE with
    # every branch: generated code stays in small methods that the JIT compiles (a single huge method runs
    # interpreted, ~20x slower).
    groups = [checks[i : i + 6] for i in range(0, len(checks), 6)]
    cases = []
    for group in groups:
        case = F.when(group[0][0], F.lit(group[0][1]))
        for condition, label in group[1:]:
            case = case.when(condition, F.lit(label))
        cases.append(case)
    problem = F.coalesce(*cases)
    return parsed.withColumn("_problem", problem).select(
        F.when(F.col("_problem").isNotNull(), value).alias("_line"),  # raw text is kept for rejects only
        F.xxhash64(value).alias("_line_hash"),
        "source_file",
        *(c for c in REQUIRED_FIELDS if c != "ts"),
        ts.alias("ts"),
        "discount",
        F.substring_index("_problem", ":", 1).alias("reason"),
        F.nullif(F.substring_index("_problem", ":", -1), F.lit("")).alias("field"),
    )


def repeated_ids(classified: Any) -> Any:
    """The event ids that more than one valid row carries (`event_id`, `_repeated`): a shuffle of one column."""
    from pyspark.sql import functions as F

    return (
        classified.where(F.col("reason").isNull())
        .groupBy("event_id")
        .count()
        .where(F.col("count") > 1)
        .select("event_id", F.lit(True).alias("_repeated"))
    )


def mark_duplicates(classified: Any, repeated: Any | None = None) -> Any:
    """Add `dup_rank`: 1 for the first valid row of each event_id (earliest ts, then source file, then a hash
    of the line, so that the choice is deterministic), 2+ for its duplicates, null for rejected rows.

    Duplicates are rare, so only the rows of repeated ids (`repeated_ids`, joined back: a broadcast join when
    they are few) go through the ranking window; every other valid row is first of its id. This shuffles one
    column of every row and the few repeated rows, instead of shuffling and sorting every row in full."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    joined = classified.join(
        repeated if repeated is not None else repeated_ids(classified), "event_id", "left"
    )
    contested = F.col("reason").isNull() & F.col("_repeated").isNotNull()
    window = Window.partitionBy("event_id").orderBy("ts", "source_file", "_line_hash")
    ranked = joined.where(contested).withColumn("dup_rank", F.row_number().over(window))
    single = joined.where(~contested).withColumn("dup_rank", F.when(F.col("reason").isNull(), F.lit(1)))
    return single.unionByName(ranked).drop("_repeated")


def curated_rows(marked: Any) -> Any:
    """The rows to publish: valid, first of their event id, with the `dt` partition (UTC date)."""
    from pyspark.sql import functions as F

    return (
        marked.where(F.col("reason").isNull() & (F.col("dup_rank") == 1))
        .select(
            *(F.col(c) for c in CURATED_COLUMNS[:-4]),
            F.col("price").cast("double"),
            F.col("position").cast("int"),
            F.col("discount").cast("double"),
            F.col("label").cast("int"),
        )
        .withColumn("dt", F.to_date("ts").cast("string"))
    )


def quarantine_rows(marked: Any) -> Any:
    from pyspark.sql import functions as F

    return marked.where(F.col("reason").isNotNull()).select(
        "reason", "field", "source_file", F.col("_line").cast("binary").alias("line")
    )


def upsert_partitions(new_rows: Any, existing: Any | None) -> Any:
    """New rows plus the existing rows of the same partitions whose event ids this run does not carry."""
    if existing is None:
        return new_rows
    kept = existing.join(new_rows.select("event_id"), "event_id", "left_anti")
    return kept.select(*new_rows.columns).unionByName(new_rows)


# --- I/O -------------------------------------------------------------------------------------------------
def read_lines_local(spark: Any, uri: str) -> Any:
    from pyspark.sql import functions as F

    return (
        spark.read.option("recursiveFileLookup", "true")
        .text(uri)
        .select("value", F.input_file_name().alias("source_file"))
    )


def read_lines_glue(glue_context: Any, uri: str) -> Any:
    """Raw lines through a bookmarked Glue source: CSV with a separator that cannot occur in JSON text
    (a raw U+0001 is invalid inside and between JSON tokens) and quoting off, so each line is one column."""
    from pyspark.sql import functions as F

    frame = glue_context.create_dynamic_frame.from_options(
        connection_type="s3",
        connection_options={"paths": [uri], "recurse": True, "groupFiles": "inPartition"},
        format="csv",
        format_options={"separator": "\u0001", "quoteChar": -1, "withHeader": False},
        transformation_ctx="raw_events",
    )
    df = frame.toDF()
    if not df.columns:  # nothing new since the last bookmark
        return glue_context.spark_session.createDataFrame([], "value string, source_file string")
    return df.select(
        F.col(df.columns[0]).cast("string").alias("value"), F.input_file_name().alias("source_file")
    )


def write_parquet_atomically(df: Any, uri: str) -> None:
    """Overwrite a whole dataset folder: a local hidden sibling renamed into place, or Spark's committer."""
    if not is_local(uri):
        df.write.mode("overwrite").parquet(uri)
        return
    final = local_path(uri)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    df.write.mode("overwrite").parquet(str(staging))
    trash = final.with_name(f".{final.name}.{uuid.uuid4().hex}.old")
    if final.exists():
        final.rename(trash)
    staging.rename(final)
    shutil.rmtree(trash, ignore_errors=True)


def write_json(uri: str, payload: dict[str, Any]) -> None:
    data = (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()
    if is_local(uri):
        path = local_path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return
    import boto3

    bucket, _, key = uri[len("s3://") :].partition("/")
    boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None).put_object(
        Bucket=bucket, Key=key, Body=data, ContentType="application/json"
    )


def existing_partitions(spark: Any, uri: str, dates: list[str]) -> Any | None:
    """Rows already curated in the given `dt` partitions, or None when there are none."""
    from pyspark.sql import functions as F

    if not dates:
        return None
    if is_local(uri):
        base = local_path(uri)
        paths = [str(base / f"dt={d}") for d in dates if (base / f"dt={d}").is_dir()]
        if not paths:
            return None
        reader = spark.read.option("basePath", str(base))
        return reader.parquet(*paths)
    try:
        df = spark.read.parquet(uri)
    except Exception as exc:  # the first run: nothing there yet
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            return None
        raise
    return df.where(F.col("dt").isin(*dates))


# --- The job -------------------------------------------------------------------------------------------
def run(spark: Any, args: dict[str, str], *, glue_context: Any = None) -> dict[str, Any]:
    """Clean `args['input']` into the curated, quarantine and report locations; returns the report."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    started = datetime.now(UTC)
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # dt is the UTC date
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    # Let adaptive execution size the shuffles inside the cached plan too (it is off for cached plans).
    spark.conf.set("spark.sql.optimizer.canChangeCachedPlanOutputPartitioning", "true")
    if is_local(args["input"]) and not local_path(args["input"]).exists():
        raise UsageError(f"input not found: {args['input']}")

    lines = (
        read_lines_glue(glue_context, args["input"])
        if glue_context
        else read_lines_local(spark, args["input"])
    )
    classified = classify(lines).persist(StorageLevel.MEMORY_AND_DISK)  # parsed once, read by every output
    repeated = repeated_ids(classified).persist(StorageLevel.MEMORY_AND_DISK)
    marked = mark_duplicates(classified, repeated)
    try:
        # One pass for the accounting and the dates to write: counts by reason, field, first-of-its-id and,
        # for the rows to publish, their `dt` partition (the same expression as curated_rows).
        first = F.col("dup_rank") == 1
        publish_dt = F.when(F.col("reason").isNull() & first, F.to_date("ts").cast("string"))
        groups = (
            marked.groupBy("reason", "field", first.alias("first"), publish_dt.alias("dt")).count().collect()
        )
        by_reason: dict[tuple[Any, Any, Any], int] = {}
        for r in groups:
            key = (r["reason"], r["field"], r["first"])
            by_reason[key] = by_reason.get(key, 0) + r["count"]
        dates = sorted({r["dt"] for r in groups if r["dt"] is not None})
        rows_in = sum(by_reason.values())
        expected_curated = sum(
            n for (reason, _, first), n in by_reason.items() if reason is None and first is True
        )
        duplicates = sum(
            n for (reason, _, first), n in by_reason.items() if reason is None and first is False
        )
        reasons: dict[str, int] = {}
        fields: dict[str, int] = {}
        for (reason, field, _), n in by_reason.items():
            if reason is not None:
                reasons[reason] = reasons.get(reason, 0) + n
                key = f"{reason}:{field}" if field else reason
                fields[key] = fields.get(key, 0) + n

        new_rows = curated_rows(marked)
        existing = existing_partitions(spark, args["output"], dates)
        merged = upsert_partitions(new_rows, existing)
        retained = merged.count() - expected_curated if existing is not None else 0
        max_rows = int(args["max-rows-per-file"])
        if dates:
            (
                # Hash-partitioned by date: each date is written by one task, as one file or, for a large
                # date, as files of at most max-rows-per-file rows. Sorted for byte-stable re-runs.
                merged.repartition("dt")
                .sortWithinPartitions("dt", "ts", "event_id")
                .write.mode("overwrite")
                .option("maxRecordsPerFile", max_rows)
                .partitionBy("dt")
                .parquet(args["output"])
            )
        write_parquet_atomically(quarantine_rows(marked), args["quarantine"])
    finally:
        repeated.unpersist()
        classified.unpersist()

    # Count what was written back from the outputs (Parquet footers), not from the plan.
    rows_quarantined = spark.read.parquet(args["quarantine"]).count()
    written = _read_partitions(spark, args["output"], dates).count() - retained if dates else 0
    balanced = rows_in == written + rows_quarantined + duplicates and written == expected_curated
    report = {
        "format": REPORT_FORMAT,
        "job": PROG,
        "started_at": started.isoformat().replace("+00:00", "Z"),
        "finished_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "input": args["input"],
        "output": args["output"],
        "quarantine": args["quarantine"],
        "rows_in": rows_in,
        "rows_curated": written,
        "rows_quarantined": rows_quarantined,
        "duplicates_removed": duplicates,
        "rows_retained_from_earlier_runs": retained,
        "balanced": balanced,
        "quarantine_reasons": dict(sorted(reasons.items())),
        "quarantine_fields": dict(sorted(fields.items())),
        "partitions": dates,
        "bookmarks": glue_context is not None,
    }
    write_json(args["report"], report)
    if not balanced:
        raise RuntimeError(
            f"accounting identity broken: rows_in={rows_in} != rows_curated={written} + "
            f"rows_quarantined={rows_quarantined} + duplicates_removed={duplicates} (see {args['report']})"
        )
    return report


def _read_partitions(spark: Any, uri: str, dates: list[str]) -> Any:
    from pyspark.sql import functions as F

    if is_local(uri):
        base = local_path(uri)
        return spark.read.option("basePath", str(base)).parquet(*(str(base / f"dt={d}") for d in dates))
    return spark.read.parquet(uri).where(F.col("dt").isin(*dates))


def _local_session() -> Any:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(PROG)
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # plain `python`: no spark-submit chose a master
        master = os.environ.get("MLPIPE_SPARK_MASTER", "local[*]")
        cores = master[len("local[") : -1] if master.startswith("local[") else "*"
        cores = str(os.cpu_count() or 2) if cores == "*" else cores
        builder = (
            builder.master(master)
            .config("spark.driver.memory", os.environ.get("MLPIPE_SPARK_DRIVER_MEMORY", "2g"))
            # 200 shuffle partitions (the default, sized for clusters) cost more in task overhead than they
            # save on a laptop; a few per core keep every core busy.
            .config("spark.sql.shuffle.partitions", str(4 * int(cores)))
        )
    return (
        builder.config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .getOrCreate()
    )


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if is_local(args["input"]) and not local_path(args["input"]).exists():
            raise UsageError(f"input not found: {args['input']}")  # before paying for a JVM
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        from awsglue.context import GlueContext  # type: ignore[import-not-found]
        from awsglue.job import Job  # type: ignore[import-not-found]
    except ImportError:
        GlueContext = None  # plain PySpark
    try:
        if GlueContext is None:
            spark = _local_session()
            spark.sparkContext.setLogLevel(os.environ.get("MLPIPE_SPARK_LOG_LEVEL", "WARN"))
            report = run(spark, args)
        else:
            from pyspark.context import SparkContext

            glue_context = GlueContext(SparkContext.getOrCreate())
            job = Job(glue_context)
            job.init(args["JOB_NAME"], args)
            report = run(glue_context.spark_session, args, glue_context=glue_context)
            job.commit()  # advance the bookmark only after every output is written
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from pyspark.errors import AnalysisException

        if isinstance(exc, AnalysisException):  # e.g. an input path that does not exist or cannot be read
            print(f"{PROG}: error: cannot read input: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 2
        raise
    print(
        json.dumps(
            {k: report[k] for k in ("rows_in", "rows_curated", "rows_quarantined", "duplicates_removed")}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

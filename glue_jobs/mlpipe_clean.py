"""mlpipe's Glue driver: clean a workload's raw records into curated Parquet, quarantining every rejected row.

The workload supplies a module (its `[clean] module`, shipped on `--extra-py-files`) with the raw record's
`SCHEMA` (a Spark DDL string), optionally `REQUIRED` (the fields that must be present; default all), and
`parse(records)`: native DataFrame functions that type the record's columns, add derived ones and set
`reject_reason` (and optionally `reject_field`), null for a valid record. `parse` may add, replace or drop
columns but not filter, join or aggregate rows, and it keeps mlpipe's own `_mlpipe_*` columns. This driver
does the rest:

- reading JSON Lines or CSV (`--format`; `.gz` objects are gunzipped), and the rejections every workload
  gets first: invalid_utf8, malformed_json / malformed_csv, missing_field, wrong_type;
- quarantine (`--quarantine`, Parquet: `reason`, `field`, `source_file` and the raw `line` bytes);
- dedupe on `--dedupe-key` (the row with the smallest `--order-by` value is kept, then by source file and
  line, so the choice is deterministic); duplicates are counted, not quarantined;
- curated Parquet under `--output`, partitioned by `--partition-column` when there is one: each run upserts
  by the dedupe key into the partitions it touches and replaces them with dynamic partition overwrite;
- the accounting report (`--report`, written last): rows_in = rows_curated + rows_quarantined +
  duplicates_removed, counted back from the outputs; the job fails when it breaks.

It runs in AWS Glue 5.1 (Spark 3.5.6), where `awsglue` is importable: the input is read through a GlueContext
source with a `transformation_ctx`, and `job.init`/`job.commit` make job bookmarks process only new files.
It runs the same way with plain PySpark, where it honours `--extra-py-files` itself:
`python glue_jobs/mlpipe_clean.py --input DIR --output DIR --quarantine DIR --report FILE --extra-py-files
WORKLOAD_DIR --workload-module MODULE --dedupe-key COLUMN[,COLUMN] [--order-by COLUMN] [--partition-column
COLUMN] [--format csv ...]`.

Commit strategy. Spark's commit protocol stages task output and publishes it at job commit; nothing is
visible before. Locally the quarantine is written to a hidden sibling folder and renamed into place, and the
curated partitions are staged under `.spark-staging-*` and renamed by dynamic partition overwrite. On S3
each object appears atomically; dynamic partition overwrite replaces a touched partition at job commit
(delete, then copy from staging), so the pipeline runs consumers only after this job has succeeded. The
quarantine prefix is per run. The report is written last (a local rename, or one S3 PUT).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

QUARANTINE_COLUMNS = ("reason", "field", "source_file", "line")
REPORT_FORMAT = "mlpipe.clean_report.v1"
OWN = "_mlpipe_"  # the prefix of the driver's columns, which parse() passes through
# Columns the driver adds after parse(): a workload column of one of these names would be lost.
INTERNAL_COLUMNS = frozenset(
    {"_line", "_line_hash", "source_file", "reason", "field", "dup_rank", "_repeated"}
)

REQUIRED_ARGS = ("input", "output", "quarantine", "report", "workload-module", "dedupe-key")
# Optional arguments of this job; every other `--key value` (Glue adds --JOB_NAME, --TempDir,
# --job-bookmark-option, --enable-metrics, ...) is accepted and ignored.
OPTIONAL_ARGS = {
    "JOB_NAME": "mlpipe_clean",
    "format": "jsonl",
    "csv-header": "true",
    "csv-delimiter": ",",
    "order-by": "",
    "partition-column": "",
    "extra-py-files": "",
    "max-rows-per-file": "2000000",
}
PROG = "mlpipe_clean"


class UsageError(ValueError):
    """A bad invocation or workload module: one line on stderr and exit status 2."""


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
            f"missing required argument(s): {', '.join(missing)} (usage: --input URI --output URI "
            "--quarantine URI --report URI --workload-module NAME --dedupe-key COLUMNS)"
        )
    for key, default in OPTIONAL_ARGS.items():
        values.setdefault(key, default)
    if values["format"] not in ("jsonl", "csv"):
        raise UsageError(f"--format must be jsonl or csv, got {values['format']!r}")
    if values["csv-header"] not in ("true", "false"):
        raise UsageError(f"--csv-header must be true or false, got {values['csv-header']!r}")
    if len(values["csv-delimiter"]) != 1:
        raise UsageError(f"--csv-delimiter must be one character, got {values['csv-delimiter']!r}")
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


def dedupe_key(args: dict[str, str]) -> list[str]:
    return [c.strip() for c in args["dedupe-key"].split(",") if c.strip()]


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri).absolute()


# --- The workload's module ---------------------------------------------------------------------------------
def add_extra_py_files(spec: str) -> None:
    """What Glue does with --extra-py-files, for plain PySpark: each comma-separated folder, .zip or .py (a
    local path, or an s3:// object fetched to a temporary folder) goes on sys.path."""
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if not is_local(item):
            import boto3

            bucket, _, key = item[len("s3://") :].partition("/")
            folder = Path(tempfile.mkdtemp(prefix="mlpipe-py-files-"))
            target = folder / Path(key).name
            client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
            target.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
            item = str(target)
        path = local_path(item)
        if not path.exists():
            raise UsageError(f"--extra-py-files: {item} does not exist")
        if path.suffix == ".zip" and not zipfile.is_zipfile(path):
            raise UsageError(f"--extra-py-files: {item} is not a zip file")
        sys.path.insert(0, str(path.parent if path.suffix == ".py" else path))


def load_workload(name: str) -> ModuleType:
    """The workload's clean module, checked for the contract's names."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise UsageError(
            f"--workload-module {name}: cannot import it ({exc}); ship it with --extra-py-files"
        ) from None
    if not isinstance(getattr(module, "SCHEMA", None), str) or not callable(getattr(module, "parse", None)):
        raise UsageError(f"--workload-module {name}: it needs SCHEMA (a Spark DDL string) and parse(records)")
    return module


def schema_of(module: ModuleType) -> Any:
    from pyspark.sql import types as T

    try:
        schema = T._parse_datatype_string(module.SCHEMA)
    except Exception as exc:
        raise UsageError(
            f"{module.__name__}.SCHEMA is not a Spark DDL schema: {str(exc).splitlines()[0]}"
        ) from None
    if not isinstance(schema, T.StructType) or not schema.fields:
        raise UsageError(f"{module.__name__}.SCHEMA must list fields, e.g. 'id STRING, value DOUBLE'")
    reserved = sorted(
        (set(schema.names) & {"_corrupt", "_null", "value"}) | {n for n in schema.names if n.startswith(OWN)}
    )
    if reserved:
        raise UsageError(f"{module.__name__}.SCHEMA names {reserved[0]!r}, a name the driver uses: rename it")
    required = tuple(getattr(module, "REQUIRED", schema.names))
    unknown = sorted(set(required) - set(schema.names))
    if unknown:
        raise UsageError(f"{module.__name__}.REQUIRED names {unknown[0]!r}, which SCHEMA does not have")
    return schema, required


# --- Transformations (pure DataFrame functions) ------------------------------------------------------------
def _first(checks: list[tuple[Any, str]]) -> Any:
    """The label of the first true condition, or null. One CASE per six checks under a COALESCE keeps the
    generated methods small enough for the JIT to compile (one huge CASE runs interpreted)."""
    from pyspark.sql import functions as F

    cases = []
    for group in (checks[i : i + 6] for i in range(0, len(checks), 6)):
        case = F.when(group[0][0], F.lit(group[0][1]))
        for condition, label in group[1:]:
            case = case.when(condition, F.lit(label))
        cases.append(case)
    return F.coalesce(*cases) if cases else F.lit(None).cast("string")


def records_of(lines: Any, schema: Any, required: tuple[str, ...], args: dict[str, str]) -> Any:
    """Raw lines (`value`, `source_file`) parsed into the schema's typed columns plus the driver's own: the
    raw line and its source, and the first generic problem (`_mlpipe_problem`, "reason:field") or null."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    value = F.col("value")
    # Bytes that are not UTF-8 do not survive a decode/encode round trip; a text reader that already decoded
    # them (Glue's) leaves U+FFFD behind instead.
    checks: list[tuple[Any, str]] = [
        ((F.encode(value, "UTF-8") != value.cast("binary")) | value.contains("\ufffd"), "invalid_utf8:")
    ]
    if args["format"] == "jsonl":
        with_corrupt = T.StructType([*schema.fields, T.StructField("_corrupt", T.StringType())])
        options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt"}
        parsed = lines.select(value, "source_file", F.from_json(value, with_corrupt, options).alias("j"))
        parsed = parsed.select(value, "source_file", F.col("j").isNull().alias("_null"), "j.*")
        corrupt = F.col("_corrupt")

        def present(name: str) -> Any:  # evaluated only on the rare rows that need it (CASE WHEN is lazy)
            return value.rlike(f'"{name}"\\s*:')

        all_null = F.coalesce(*(F.col(n).cast("string") for n in schema.names)).isNull()
        checks.append((F.col("_null") | (corrupt.isNotNull() & all_null), "malformed_json:"))
        for name in required:
            checks.append(
                (F.col(name).isNull() & (corrupt.isNull() | ~present(name)), f"missing_field:{name}")
            )
        for name in (*required, *(n for n in schema.names if n not in required)):  # required ones first
            checks.append((F.col(name).isNull() & corrupt.isNotNull() & present(name), f"wrong_type:{name}"))
        typed = [F.col(n) for n in schema.names]
    else:
        as_text = T.StructType([T.StructField(f.name, T.StringType()) for f in schema.fields])
        as_text = T.StructType([*as_text.fields, T.StructField("_corrupt", T.StringType())])
        options = {
            "mode": "PERMISSIVE",
            "columnNameOfCorruptRecord": "_corrupt",
            "sep": args["csv-delimiter"],
        }
        parsed = lines.select(
            value, "source_file", F.from_csv(value, as_text.simpleString(), options).alias("c")
        )
        parsed = parsed.select(value, "source_file", "c.*")
        checks.append((F.col("_corrupt").isNotNull(), "malformed_csv:"))
        typed = []
        for f in schema.fields:
            cast = F.expr(f"try_cast(`{f.name}` AS {f.dataType.simpleString()})")
            if f.name in required:
                checks.append(
                    (F.col(f.name).isNull() | (F.trim(F.col(f.name)) == ""), f"missing_field:{f.name}")
                )
            checks.append(
                (
                    F.col(f.name).isNotNull() & (F.trim(F.col(f.name)) != "") & cast.isNull(),
                    f"wrong_type:{f.name}",
                )
            )
            typed.append(cast.alias(f.name))
    return parsed.select(
        *typed,
        value.alias(f"{OWN}line"),
        F.col("source_file").alias(f"{OWN}source_file"),
        _first(checks).alias(f"{OWN}problem"),
    )


def classify(lines: Any, workload: ModuleType, args: dict[str, str]) -> Any:
    """Every raw line with the workload's columns, `reason` and `field` (null for a valid row), the raw text
    of rejected rows (`_line`), a hash of every line (`_line_hash`) and `source_file`."""
    from pyspark.sql import functions as F

    schema, required = schema_of(workload)
    parsed = workload.parse(records_of(lines, schema, required, args))
    columns = set(parsed.columns)
    lost = sorted(c for c in (f"{OWN}line", f"{OWN}source_file", f"{OWN}problem") if c not in columns)
    if lost or "reject_reason" not in columns:
        raise UsageError(
            f"{workload.__name__}.parse must keep the {OWN}* columns and add reject_reason"
            + (f" (it lost {lost[0]})" if lost else "")
        )
    clash = sorted(columns & INTERNAL_COLUMNS)
    if clash:
        raise UsageError(
            f"{workload.__name__}.parse returns the column {clash[0]!r}, a name the driver uses: rename it"
        )
    named = [("--dedupe-key", k) for k in dedupe_key(args)] + [
        (f"--{flag}", args[flag]) for flag in ("order-by", "partition-column") if args[flag]
    ]
    for flag, key in named:
        if key not in columns:
            raise UsageError(
                f"{workload.__name__}.parse does not return the column {key!r} that {flag} names "
                f"(the workload's clean.{flag[2:].replace('-', '_')})"
            )
    generic = F.col(f"{OWN}problem")
    own_field = F.substring_index(generic, ":", -1)
    their_field = F.col("reject_field") if "reject_field" in columns else F.lit(None).cast("string")
    reason = F.coalesce(F.substring_index(generic, ":", 1), F.col("reject_reason"))
    chosen = F.when(generic.isNotNull(), own_field).otherwise(their_field)
    field = F.when(chosen != "", chosen)  # "reason:" names no field
    line = F.col(f"{OWN}line")
    return parsed.select(
        *curated_columns(parsed),
        F.when(reason.isNotNull(), line).alias("_line"),  # raw text is kept for rejects only
        F.xxhash64(line).alias("_line_hash"),
        F.col(f"{OWN}source_file").alias("source_file"),
        reason.alias("reason"),
        field.alias("field"),
    )


def curated_columns(df: Any) -> list[str]:
    dropped = {"reject_reason", "reject_field", *INTERNAL_COLUMNS}
    return [c for c in df.columns if not c.startswith(OWN) and c not in dropped]


def repeated_keys(classified: Any, key: list[str]) -> Any:
    """The dedupe keys that more than one valid row carries (key columns, `_repeated`)."""
    from pyspark.sql import functions as F

    return (
        classified.where(F.col("reason").isNull())
        .groupBy(*key)
        .count()
        .where(F.col("count") > 1)
        .select(*key, F.lit(True).alias("_repeated"))
    )


def mark_duplicates(classified: Any, key: list[str], order_by: str, repeated: Any | None = None) -> Any:
    """Add `dup_rank`: 1 for the first valid row of each key (smallest `order_by`, then source file, then a
    hash of the line, so that the choice is deterministic), 2+ for its duplicates, null for rejected rows.

    Duplicates are rare, so only the rows of repeated keys (`repeated_keys`, joined back: a broadcast join
    when they are few) go through the ranking window; every other valid row is first of its key. This
    shuffles the key of every row and the few repeated rows, instead of shuffling and sorting every row."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    joined = classified.join(
        repeated if repeated is not None else repeated_keys(classified, key), key, "left"
    )
    contested = F.col("reason").isNull() & F.col("_repeated").isNotNull()
    order = [c for c in (order_by, "source_file", "_line_hash") if c]
    window = Window.partitionBy(*key).orderBy(*order)
    ranked = joined.where(contested).withColumn("dup_rank", F.row_number().over(window))
    single = joined.where(~contested).withColumn("dup_rank", F.when(F.col("reason").isNull(), F.lit(1)))
    return single.unionByName(ranked).drop("_repeated")


def curated_rows(marked: Any) -> Any:
    """The rows to publish: valid and first of their key, with the workload's columns."""
    from pyspark.sql import functions as F

    return marked.where(F.col("reason").isNull() & (F.col("dup_rank") == 1)).select(*curated_columns(marked))


def quarantine_rows(marked: Any) -> Any:
    from pyspark.sql import functions as F

    return marked.where(F.col("reason").isNotNull()).select(
        "reason", "field", "source_file", F.col("_line").cast("binary").alias("line")
    )


def upsert(new_rows: Any, existing: Any | None, key: list[str]) -> Any:
    """New rows plus the existing rows (of the same partitions) whose keys this run does not carry."""
    if existing is None:
        return new_rows
    kept = existing.join(new_rows.select(*key), key, "left_anti")
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
        transformation_ctx="raw_records",
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


def existing_rows(spark: Any, uri: str, partition: str, values: list[str]) -> Any | None:
    """Rows already curated in the given partitions (every row when there is no partition column), or None
    when there are none."""
    from pyspark.sql import functions as F

    if partition and not values:
        return None
    if is_local(uri):
        base = local_path(uri)
        if not partition:
            return spark.read.parquet(str(base)) if base.is_dir() else None
        paths = [str(base / f"{partition}={v}") for v in values if (base / f"{partition}={v}").is_dir()]
        return spark.read.option("basePath", str(base)).parquet(*paths) if paths else None
    try:
        df = spark.read.parquet(uri)
    except Exception as exc:  # the first run: nothing there yet
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            return None
        raise
    return df.where(F.col(partition).cast("string").isin(*values)) if partition else df


# --- The job -------------------------------------------------------------------------------------------
def run(
    spark: Any, args: dict[str, str], workload: ModuleType, *, glue_context: Any = None
) -> dict[str, Any]:
    """Clean `args['input']` into the curated, quarantine and report locations; returns the report."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    started = datetime.now(UTC)
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    # Let adaptive execution size the shuffles inside the cached plan too (it is off for cached plans).
    spark.conf.set("spark.sql.optimizer.canChangeCachedPlanOutputPartitioning", "true")
    if is_local(args["input"]) and not local_path(args["input"]).exists():
        raise UsageError(f"input not found: {args['input']}")
    key, order_by, partition = dedupe_key(args), args["order-by"], args["partition-column"]

    lines = (
        read_lines_glue(glue_context, args["input"])
        if glue_context
        else read_lines_local(spark, args["input"])
    )
    header_lines = 0
    if args["format"] == "csv" and args["csv-header"] == "true":
        schema, _ = schema_of(workload)
        header = args["csv-delimiter"].join(schema.names)
        is_header = F.trim(F.col("value")) == header
        header_lines = lines.where(is_header).count()
        lines = lines.where(~is_header)
    classified = classify(lines, workload, args).persist(StorageLevel.MEMORY_AND_DISK)  # read by every output
    repeated = repeated_keys(classified, key).persist(StorageLevel.MEMORY_AND_DISK)
    marked = mark_duplicates(classified, key, order_by, repeated)
    try:
        # One pass for the accounting and the partitions to write: counts by reason, field, first-of-its-key
        # and, for the rows to publish, their partition value.
        first = F.col("dup_rank") == 1
        publish = F.col(partition).cast("string") if partition else F.lit("")
        publish_at = F.when(F.col("reason").isNull() & first, publish)
        groups = (
            marked.groupBy("reason", "field", first.alias("first"), publish_at.alias("part"))
            .count()
            .collect()
        )
        by_reason: dict[tuple[Any, Any, Any], int] = {}
        for r in groups:
            group = (r["reason"], r["field"], r["first"])
            by_reason[group] = by_reason.get(group, 0) + r["count"]
        values = sorted({r["part"] for r in groups if r["part"] is not None})
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
                name = f"{reason}:{field}" if field else reason
                fields[name] = fields.get(name, 0) + n

        new_rows = curated_rows(marked)
        existing = existing_rows(spark, args["output"], partition, values if partition else [])
        merged = upsert(new_rows, existing, key)
        retained = merged.count() - expected_curated if existing is not None else 0
        order = [c for c in (partition, order_by, *key) if c]
        writer = (
            # Hash-partitioned by the partition column: each partition is written by one task, as one file
            # or, for a large one, as files of at most max-rows-per-file rows. Sorted for byte-stable re-runs.
            (merged.repartition(partition) if partition else merged.coalesce(1))
            .sortWithinPartitions(*order)
            .write.mode("overwrite")
            .option("maxRecordsPerFile", int(args["max-rows-per-file"]))
        )
        if partition and values:
            writer.partitionBy(partition).parquet(args["output"])
        elif not partition and expected_curated + retained > 0:
            if (
                existing is not None
            ):  # materialized first: an overwrite on S3 deletes what it would still read
                merged = merged.localCheckpoint(eager=True)
            write_parquet_atomically(merged.coalesce(1).sortWithinPartitions(*order), args["output"])
        write_parquet_atomically(quarantine_rows(marked), args["quarantine"])
    finally:
        repeated.unpersist()
        classified.unpersist()

    # Count what was written back from the outputs (Parquet footers), not from the plan.
    rows_quarantined = spark.read.parquet(args["quarantine"]).count()
    if partition:
        written = (
            _read_partitions(spark, args["output"], partition, values).count() - retained if values else 0
        )
    else:
        written = spark.read.parquet(args["output"]).count() - retained if expected_curated + retained else 0
    balanced = rows_in == written + rows_quarantined + duplicates and written == expected_curated
    report = {
        "format": REPORT_FORMAT,
        "job": PROG,
        "workload_module": workload.__name__,
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
        "header_lines": header_lines,
        "balanced": balanced,
        "quarantine_reasons": dict(sorted(reasons.items())),
        "quarantine_fields": dict(sorted(fields.items())),
        "partition_column": partition or None,
        "partitions": values if partition else [],
        "bookmarks": glue_context is not None,
    }
    write_json(args["report"], report)
    if not balanced:
        raise RuntimeError(
            f"accounting identity broken: rows_in={rows_in} != rows_curated={written} + "
            f"rows_quarantined={rows_quarantined} + duplicates_removed={duplicates} (see {args['report']})"
        )
    return report


def _read_partitions(spark: Any, uri: str, partition: str, values: list[str]) -> Any:
    from pyspark.sql import functions as F

    if is_local(uri):
        base = local_path(uri)
        return spark.read.option("basePath", str(base)).parquet(
            *(str(base / f"{partition}={v}") for v in values)
        )
    return spark.read.parquet(uri).where(F.col(partition).cast("string").isin(*values))


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
        from awsglue.context import GlueContext  # type: ignore[import-not-found]
        from awsglue.job import Job  # type: ignore[import-not-found]
        from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
    except ImportError:
        GlueContext = None  # plain PySpark
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        if is_local(args["input"]) and not local_path(args["input"]).exists():
            raise UsageError(f"input not found: {args['input']}")  # before paying for a JVM
        if GlueContext is None:
            add_extra_py_files(args["extra-py-files"])  # in Glue, the service does this with the argument
        workload = load_workload(args["workload-module"])
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        if GlueContext is None:
            spark = _local_session()
            spark.sparkContext.setLogLevel(os.environ.get("MLPIPE_SPARK_LOG_LEVEL", "WARN"))
            report = run(spark, args, workload)
        else:
            from pyspark.context import SparkContext

            glue_context = GlueContext(SparkContext.getOrCreate())
            job = Job(glue_context)
            # The job's own view of its arguments (job_bookmark_option, JOB_RUN_ID, ...): with any other
            # dictionary the bookmark is off and every run reads the whole input again.
            job.init(args["JOB_NAME"], getResolvedOptions([PROG, *argv], ["JOB_NAME"]))
            report = run(glue_context.spark_session, args, workload, glue_context=glue_context)
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

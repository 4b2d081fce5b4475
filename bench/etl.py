"""Benchmark of the data preparation: generator, Glue clean job and EMR feature step against DuckDB.

    .venv/bin/python bench/etl.py --rows 1000000,10000000 [--workdir DIR] [--cores 2] [--keep]

For each size: generate raw events, run the Glue job (`glue_jobs/mlpipe_clean.py` with the clickstream workload's clean module, plain PySpark on
local[cores]) and the same transformation in DuckDB (threads=cores), then the EMR feature step
(`emr_steps/build_features.py` with the clickstream workload's `features.py`) and the same features in DuckDB, each in its own child process. Prints rows/s,
wall time, CPU time and peak resident memory of each child's process tree (sampled from /proc), the
Spark/DuckDB time ratios and the growth from the smallest to the largest size. Spark times include the JVM
start, measured separately as `spark startup`. A benchmark prints figures; it asserts nothing.
"""

# ruff: noqa: S608 - the SQL below is built from this file's constants and the benchmark's own paths

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Measure:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    output: str


# The clickstream workload's Spark stages, as its workload.toml gives them to the drivers.
CLICKSTREAM_CLEAN = ["--extra-py-files", "examples/clickstream", "--workload-module", "clean", "--dedupe-key", "event_id",
                     "--order-by", "ts", "--partition-column", "dt"]  # fmt: skip
CLICKSTREAM_FEATURES = ["--workload-path", "examples/clickstream", "--workload-module", "features", "--id-column",
                        "event_id", "--label-column", "label", "--split-by", "time", "--time-column", "ts"]  # fmt: skip


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def measure(cmd: list[str], env: dict[str, str] | None = None) -> Measure:
    """Run `cmd`; sample RSS and CPU of its whole process tree (the JVM is a grandchild) every 0.2 s."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO_ROOT
    )
    peak, cpu = 0, {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            rss = 0
            for pid in _tree(proc.pid):
                try:
                    with open(f"/proc/{pid}/statm") as fh:
                        rss += int(fh.read().split()[1]) * PAGE
                    with open(f"/proc/{pid}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                    cpu[pid] = (int(fields[11]) + int(fields[12])) / TICK
                except (OSError, IndexError, ValueError):
                    continue
            peak = max(peak, rss)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    done.set()
    sampler.join()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{output[-3000:]}")
    return Measure(wall, sum(cpu.values()), peak / 2**20, output)


# --- DuckDB versions of the same transformations -----------------------------------------------------------
STRING_FIELDS = ("event_id", "ts", "user_id", "item_id", "device", "country", "category")


def duckdb_clean(raw: str, out: str, threads: int) -> dict[str, int]:
    """Validate, classify, deduplicate and write curated (partitioned by dt) and quarantine Parquet."""
    import duckdb

    sys.path.insert(0, str(REPO_ROOT / "examples" / "clickstream"))
    import event_schema as schema

    os.makedirs(out, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    con.execute(
        f"""CREATE TEMP TABLE raw AS SELECT line, filename AS source_file FROM read_csv('{raw}/*.jsonl*',
        columns={{'line': 'VARCHAR'}}, delim='\\x01', quote='', escape='', header=false, auto_detect=false,
        strict_mode=false, ignore_errors=true, store_rejects=true, filename=true)"""
    )  # invalid UTF-8 lines are rejected by the reader and kept in reject_errors
    paths = [f"$.{n}" for n in (*schema.REQUIRED_FIELDS, "discount")]
    names = [*schema.REQUIRED_FIELDS, "discount"]

    def q(values: tuple) -> str:
        return ", ".join(f"'{v}'" for v in values)

    checks = ["WHEN NOT ok THEN 'malformed_json|'"]
    checks += [f"WHEN t[{i + 1}] IS NULL OR t[{i + 1}] = 'NULL' THEN 'missing_field|{n}'"
               for i, n in enumerate(schema.REQUIRED_FIELDS)]  # fmt: skip
    for i, n in enumerate(names):
        allowed = (
            "('VARCHAR')" if n in STRING_FIELDS
            else "('DOUBLE', 'UBIGINT', 'BIGINT')" if n in ("price", "discount")
            else "('UBIGINT', 'BIGINT')"
        )  # fmt: skip
        checks.append(f"WHEN t[{i + 1}] IS NOT NULL AND t[{i + 1}] != 'NULL' AND t[{i + 1}] NOT IN {allowed} "
                      f"THEN 'wrong_type|{n}'")  # fmt: skip
    checks += [
        "WHEN NOT regexp_full_match(s[1], '[A-Za-z0-9_.:-]{1,128}') THEN 'wrong_type|event_id'",
        "WHEN NOT regexp_full_match(s[3], 'u[0-9]{1,12}') THEN 'wrong_type|user_id'",
        "WHEN NOT regexp_full_match(s[4], 'i[0-9]{1,12}') THEN 'wrong_type|item_id'",
        f"WHEN tsv IS NULL OR tsv NOT BETWEEN "
        f"TIMESTAMP '{schema.TS_RANGE[0][:10]}' AND TIMESTAMP '{schema.TS_RANGE[1][:10]}' - INTERVAL 1 MICROSECOND "
        "THEN 'bad_timestamp|ts'",
        f"WHEN NOT (TRY_CAST(s[8] AS DOUBLE) BETWEEN {schema.PRICE_RANGE[0]} AND {schema.PRICE_RANGE[1]}) "
        "THEN 'out_of_range|price'",
        f"WHEN NOT (TRY_CAST(s[9] AS BIGINT) BETWEEN {schema.POSITION_RANGE[0]} AND {schema.POSITION_RANGE[1]}) "
        "THEN 'out_of_range|position'",
        f"WHEN s[11] IS NOT NULL AND NOT (TRY_CAST(s[11] AS DOUBLE) BETWEEN {schema.DISCOUNT_RANGE[0]} AND "
        f"{schema.DISCOUNT_RANGE[1]}) THEN 'out_of_range|discount'",
        "WHEN TRY_CAST(s[10] AS BIGINT) NOT IN (0, 1) THEN 'out_of_range|label'",
        f"WHEN s[5] NOT IN ({q(schema.DEVICES)}) THEN 'unknown_category|device'",
        f"WHEN s[6] NOT IN ({q(schema.COUNTRIES)}) THEN 'unknown_category|country'",
        f"WHEN s[7] NOT IN ({q(schema.CATEGORIES)}) THEN 'unknown_category|category'",
    ]
    path_list = "[" + ", ".join(f"'{p}'" for p in paths) + "]"
    con.execute(
        f"""CREATE TEMP TABLE classified AS
        WITH parsed AS (
            SELECT line, source_file, coalesce(try(json_type(line)) = 'OBJECT', false) AS ok,
                   try(json_type(line, {path_list})) AS t,
                   try(json_extract_string(line, {path_list})) AS s
            FROM raw),
        typed AS (SELECT *, TRY_CAST(s[2] AS TIMESTAMP) AS tsv FROM parsed),
        c AS (SELECT *, CASE {" ".join(checks)} END AS problem FROM typed)
        SELECT CASE WHEN problem IS NOT NULL THEN line END AS line, hash(line) AS line_hash, source_file,
               split_part(problem, '|', 1) AS reason, nullif(split_part(problem, '|', 2), '')
               AS field, s[1] AS event_id, tsv AS ts, s[3] AS user_id, s[4] AS item_id,
               s[5] AS device, s[6] AS country, s[7] AS category, TRY_CAST(s[8] AS DOUBLE) AS price,
               TRY_CAST(s[9] AS INTEGER) AS position, TRY_CAST(s[11] AS DOUBLE) AS discount, TRY_CAST(s[10] AS INTEGER) AS label
        FROM c"""
    )
    # The Glue job's algorithm: the raw line is kept for rejected rows only, and only the rows of event ids
    # that repeat go through the ranking window (every other valid row is first of its id).
    con.execute(
        """CREATE TEMP TABLE marked AS
        WITH repeated AS (SELECT event_id FROM classified WHERE reason IS NULL GROUP BY event_id HAVING count(*) > 1)
        SELECT *, CASE WHEN reason IS NULL THEN 1 END AS dup_rank FROM classified
        WHERE reason IS NOT NULL OR event_id NOT IN (SELECT event_id FROM repeated)
        UNION ALL
        SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY ts, source_file, line_hash) AS dup_rank
        FROM classified WHERE reason IS NULL AND event_id IN (SELECT event_id FROM repeated)"""
    )
    con.execute(
        f"""COPY (SELECT event_id, ts, user_id, item_id, device, country, category, price, position, discount,
        label, CAST(CAST(ts AS DATE) AS VARCHAR) AS dt FROM marked WHERE reason IS NULL AND dup_rank = 1) TO '{out}/curated' (FORMAT parquet, PARTITION_BY (dt), OVERWRITE_OR_IGNORE)"""
    )
    con.execute(
        f"""COPY (SELECT reason, field, source_file, CAST(line AS BLOB) AS line FROM marked
        WHERE reason IS NOT NULL
        UNION ALL SELECT 'invalid_utf8', NULL, NULL, CAST(csv_line AS BLOB) FROM reject_errors)
        TO '{out}/quarantine.parquet' (FORMAT parquet)"""
    )
    counts = con.execute(
        """SELECT count(*) FILTER (WHERE reason IS NULL AND dup_rank = 1),
                  count(*) FILTER (WHERE reason IS NULL AND dup_rank > 1),
                  count(*) FILTER (WHERE reason IS NOT NULL), count(*) FROM marked"""
    ).fetchone()
    rejected = con.execute("SELECT count(*) FROM reject_errors").fetchone()[0]
    return {"rows_in": counts[3] + rejected, "rows_curated": counts[0], "duplicates_removed": counts[1],
            "rows_quarantined": counts[2] + rejected}  # fmt: skip


def duckdb_features(curated: str, out: str, threads: int) -> dict[str, int]:
    """The EMR step's windows, hashing, time split, train-only standardization and shard writes."""
    import duckdb

    sys.path.insert(0, str(REPO_ROOT / "examples" / "clickstream"))
    import features as f

    os.makedirs(out, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads={threads}")
    day = f.DAY_US
    con.execute(
        f"""CREATE TEMP TABLE ev AS SELECT *, epoch_us(ts) AS ts_us
        FROM read_parquet('{curated}/**/*.parquet', hive_partitioning = true)"""
    )

    def hist(key: str, p: str, recency: bool) -> str:
        w = f"PARTITION BY {key} ORDER BY ts_us RANGE BETWEEN"
        cols = [
            f"count(*) OVER ({w} {day} PRECEDING AND 1 PRECEDING) AS {p}_n1",
            f"count(*) OVER ({w} {7 * day} PRECEDING AND 1 PRECEDING) AS {p}_n7",
            f"coalesce(sum(label) OVER ({w} {7 * day} PRECEDING AND 1 PRECEDING), 0) AS {p}_c7",
            f"count(*) OVER ({w} UNBOUNDED PRECEDING AND 1 PRECEDING) AS {p}_n",
            f"coalesce(sum(label) OVER ({w} UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS {p}_c",
        ]
        if recency:
            cols.append(f"max(ts_us) OVER ({w} UNBOUNDED PRECEDING AND 1 PRECEDING) AS {p}_last")
        return ", ".join(cols)

    angle = "(hour(ts) + minute(ts) / 60.0) * (2 * pi() / 24)"
    raw = {
        "log_price": "ln(1 + price)", "log_position": "ln(position)", "discount": "coalesce(discount, 0)",
        "has_discount": "CAST(discount IS NOT NULL AS DOUBLE)", "hour_sin": f"sin({angle})",
        "hour_cos": f"cos({angle})", "user_events_1d": "ln(1 + u_n1)", "user_events_7d": "ln(1 + u_n7)",
        "user_events_all": "ln(1 + u_n)", "user_ctr_7d": "(u_c7 + 1) / (u_n7 + 10.0)",
        "user_ctr_all": "(u_c + 1) / (u_n + 10.0)",
        "user_log_hours_since_last": f"ln(1 + coalesce((ts_us - u_last) / 3.6e9, {f.NO_HISTORY_HOURS}))",
        "user_is_new": "CAST(u_last IS NULL AS DOUBLE)", "item_events_1d": "ln(1 + i_n1)",
        "item_events_7d": "ln(1 + i_n7)", "item_events_all": "ln(1 + i_n)",
        "item_ctr_7d": "(i_c7 + 1) / (i_n7 + 10.0)", "item_ctr_all": "(i_c + 1) / (i_n + 10.0)",
    }  # fmt: skip
    values = {"device": "device", "country": "country", "category": "category",
              "device_x_category": "device || '|' || category", "user_id": "user_id", "item_id": "item_id"}  # fmt: skip
    cats = ", ".join(
        f"CAST(hash('{n}', {values[n]}) % {b} AS INTEGER) AS cat_{n}"
        for n, b in f.CATEGORICAL_FEATURES.items()
    )
    bounds = con.execute("SELECT min(ts), max(ts) FROM ev").fetchone()
    span = bounds[1] - bounds[0]
    train_end = (bounds[0] + span * 0.8).replace(minute=0, second=0, microsecond=0)
    validation_end = (bounds[0] + span * 0.9).replace(minute=0, second=0, microsecond=0)
    con.execute(
        f"""CREATE TEMP TABLE feats AS
        SELECT event_id, label, {", ".join(f"CAST({e} AS DOUBLE) AS {n}" for n, e in raw.items())}, {cats},
               CASE WHEN ts < TIMESTAMP '{train_end}' THEN 'train' WHEN ts < TIMESTAMP '{validation_end}'
                    THEN 'validation' ELSE 'test' END AS split
        FROM (SELECT *, {hist("item_id", "i", False)} FROM (SELECT *, {hist("user_id", "u", True)} FROM ev))"""
    )
    stats = con.execute(
        "SELECT " + ", ".join(f"avg({n}), stddev_pop({n})" for n in f.NUMERIC_FEATURES)
        + " FROM feats WHERE split = 'train'"
    ).fetchone()  # fmt: skip
    standardized = ", ".join(
        f"CAST(({n} - {stats[2 * i] or 0.0}) / {stats[2 * i + 1] or 1.0} AS FLOAT) AS num_{n}"
        for i, n in enumerate(f.NUMERIC_FEATURES)
    )
    rows = {}
    categorical = ", ".join(f"cat_{n}" for n in f.CATEGORICAL_FEATURES)
    for split in ("train", "validation", "test"):
        con.execute(
            f"""COPY (SELECT event_id, label, {standardized}, {categorical} FROM feats
            WHERE split = '{split}') TO '{out}/{split}' (FORMAT parquet, FILE_SIZE_BYTES '128MB')"""
        )
        rows[split] = con.execute(f"SELECT count(*) FROM feats WHERE split = '{split}'").fetchone()[0]
    return rows


# --- The benchmark -------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated sizes")
    parser.add_argument("--cores", type=int, default=2, help="Spark local[cores] and DuckDB threads")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    parser.add_argument("--only", default="generate,glue,duckdb-clean,emr,duckdb-features")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.rows.split(",") if s]
    steps = set(args.only.split(","))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mlpipe-bench-etl-"))
    py = sys.executable
    env = {**os.environ, "MLPIPE_SPARK_MASTER": f"local[{args.cores}]", "MLPIPE_SPARK_DRIVER_MEMORY": args.driver_memory,
           "MLPIPE_SPARK_LOG_LEVEL": "ERROR"}  # fmt: skip
    results: dict[int, dict[str, Measure]] = {}

    startup = measure([py, "-c", "from pyspark.sql import SparkSession as S; "
                       f"S.builder.master('local[{args.cores}]').getOrCreate().stop()"], env)  # fmt: skip
    print(
        f"spark startup (JVM, session, stop): {startup.wall_s:.1f} s wall, {startup.peak_rss_mb:.0f} MB peak"
    )
    for n in sizes:
        d = work / f"n{n}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        r: dict[str, Measure] = {}
        r["generate"] = measure([py, "examples/clickstream/generate.py", "--rows", str(n), "--seed", "1",
                                 "--out", str(d)], env)  # fmt: skip
        if "glue" in steps or "emr" in steps:
            r["glue"] = measure([py, "glue_jobs/mlpipe_clean.py", "--input", str(d / "raw"), "--output",
                                 str(d / "curated"), "--quarantine", str(d / "quarantine"), "--report",
                                 str(d / "clean_report.json"), *CLICKSTREAM_CLEAN], env)  # fmt: skip
        if "duckdb-clean" in steps:
            r["duckdb-clean"] = measure([py, __file__, "_duckdb-clean", str(d / "raw"), str(d / "duck"),
                                         str(args.cores)], env)  # fmt: skip
        if "emr" in steps:
            r["emr"] = measure([py, "emr_steps/build_features.py", "--input", str(d / "curated"), "--output",
                                str(d / "features"), "--manifest", str(d / "features" / "manifest.json"),
                                *CLICKSTREAM_FEATURES], env)  # fmt: skip
        if "duckdb-features" in steps and (d / "curated").exists():
            r["duckdb-features"] = measure([py, __file__, "_duckdb-features", str(d / "curated"),
                                            str(d / "duck-features"), str(args.cores)], env)  # fmt: skip
        results[n] = r
        report = (
            json.loads((d / "clean_report.json").read_text()) if (d / "clean_report.json").exists() else {}
        )
        curated_rows = report.get("rows_curated", n)
        print(f"\n== {n:,} raw rows ({curated_rows:,} curated) ==")
        for name, m in r.items():
            rows = curated_rows if name in ("emr", "duckdb-features") else n
            print(f"{name:16s} {m.wall_s:8.1f} s wall {m.cpu_s:8.1f} s cpu {rows / m.wall_s:12,.0f} rows/s "
                  f"{m.peak_rss_mb:8.0f} MB peak")  # fmt: skip
            if name.startswith("duckdb"):
                print(f"{'':16s} {m.output.strip().splitlines()[-1]}")
        for spark_step, duck in (("glue", "duckdb-clean"), ("emr", "duckdb-features")):
            if spark_step in r and duck in r:
                print(f"ratio {spark_step}/{duck}: {r[spark_step].wall_s / r[duck].wall_s:.2f}x wall, "
                      f"{r[spark_step].cpu_s / r[duck].cpu_s:.2f}x cpu "
                      f"({(r[spark_step].wall_s - startup.wall_s) / r[duck].wall_s:.2f}x without the JVM start)")  # fmt: skip
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"\ngrowth {lo:,} -> {hi:,} rows ({hi / lo:.0f}x data):")
        for name in results[lo]:
            if name in results[hi]:
                print(f"  {name:16s} {results[hi][name].wall_s / results[lo][name].wall_s:6.2f}x time")
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("_duckdb-clean", "_duckdb-features"):
        fn = duckdb_clean if sys.argv[1] == "_duckdb-clean" else duckdb_features
        print(json.dumps(fn(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        sys.exit(0)
    sys.exit(main())

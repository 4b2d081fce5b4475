"""mlpipe's Glue driver on local Spark with the clickstream workload's clean module: every dirty-row kind,
accounting, idempotence, schema, arguments; a CSV workload; a workload module that breaks the contract."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

REPO_ROOT = Path(__file__).resolve().parents[2]
JOB_PATH = REPO_ROOT / "glue_jobs" / "mlpipe_clean.py"
CLICKSTREAM = REPO_ROOT / "examples" / "clickstream"
sys.path.insert(0, str(CLICKSTREAM))  # the example's modules, as the driver imports them from its package

import event_schema as schema  # noqa: E402
from generator import GeneratorConfig, generate  # noqa: E402


def _load(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


job = _load(JOB_PATH, "mlpipe_glue_clean")
clickstream = _load(CLICKSTREAM / "clean.py", "clickstream_clean")
WORKLOAD_ARGS = [
    "--workload-module",
    "clean",
    "--dedupe-key",
    "event_id",
    "--order-by",
    "ts",
    "--partition-column",
    "dt",
]


def _args(root: Path, input_dir: Path) -> dict[str, str]:
    return job.parse_args(
        ["--input", str(input_dir), "--output", str(root / "curated"), "--quarantine", str(root / "quarantine"),
         "--report", str(root / "report.json"), *WORKLOAD_ARGS]
    )  # fmt: skip


@pytest.fixture(scope="module")
def generated(spark, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """4000 raw lines with 16% dirty rows (2% of each kind), gzip, cleaned once."""
    root = tmp_path_factory.mktemp("clean")
    cfg = GeneratorConfig(rows=4_000, output=str(root / "raw"), seed=11, dirty_fraction=0.16, rows_per_file=1_500,
                          gzip=True, days=5)  # fmt: skip
    result = generate(cfg)
    args = _args(root, root / "raw")
    report = job.run(spark, args, clickstream)
    return {"root": root, "cfg": cfg, "result": result, "args": args, "report": report}


def test_the_schema_names_every_field_the_generator_writes() -> None:
    fields = tuple(f.split()[0] for f in clickstream.SCHEMA.split(","))
    assert sorted(fields) == sorted(schema.REQUIRED_FIELDS + schema.OPTIONAL_FIELDS)
    assert clickstream.REQUIRED == schema.REQUIRED_FIELDS


def test_accounting_identity_and_reasons_match_what_was_generated(generated) -> None:
    report, dirty = generated["report"], generated["result"].dirty_counts
    assert report["rows_in"] == generated["cfg"].rows
    assert (
        report["rows_in"]
        == report["rows_curated"] + report["rows_quarantined"] + report["duplicates_removed"]
    )
    assert report["balanced"] is True
    assert report["duplicates_removed"] == dirty["duplicate"]
    assert report["quarantine_reasons"] == {k: n for k, n in dirty.items() if k != "duplicate"}
    on_disk = json.loads(Path(generated["args"]["report"]).read_text())
    assert on_disk["rows_curated"] == report["rows_curated"]


def test_curated_rows_are_exactly_the_clean_events(spark, generated) -> None:
    truth = pq.read_table(generated["cfg"].truth_uri).to_pydict()
    clean = {
        e: label
        for e, label, d in zip(truth["event_id"], truth["label"], truth["dirty"], strict=True)
        if d is None
    }
    rows = spark.read.parquet(generated["args"]["output"]).select("event_id", "label").collect()
    assert len(rows) == len(clean)
    assert {r["event_id"]: r["label"] for r in rows} == clean


def test_output_schemas(spark, generated) -> None:
    curated = spark.read.parquet(generated["args"]["output"])
    assert dict(curated.dtypes) == {
        "event_id": "string", "ts": "timestamp", "user_id": "string", "item_id": "string", "device": "string",
        "country": "string", "category": "string", "price": "double", "position": "int", "discount": "double",
        "label": "int", "dt": "date",
    }  # fmt: skip
    mismatched = curated.where("to_date(ts) != dt").count()
    assert mismatched == 0
    partitions = sorted(
        p.name for p in Path(generated["args"]["output"]).iterdir() if p.name.startswith("dt=")
    )
    assert partitions == [f"dt=2026-01-0{d}" for d in range(1, 6)]
    quarantine = spark.read.parquet(generated["args"]["quarantine"])
    assert dict(quarantine.dtypes) == {
        "reason": "string",
        "field": "string",
        "source_file": "string",
        "line": "binary",
    }
    assert quarantine.where("source_file NOT LIKE '%part-s11-%.jsonl.gz'").count() == 0


def test_incremental_run_keeps_earlier_rows_and_a_rerun_changes_nothing(
    spark, generated, tmp_path: Path
) -> None:
    files = sorted((generated["root"] / "raw").iterdir())
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    shutil.copy(files[0], first)
    for f in files[1:]:
        shutil.copy(f, second)
    job.run(spark, _args(tmp_path, first), clickstream)
    report = job.run(
        spark, _args(tmp_path, second), clickstream
    )  # like a bookmarked run that sees only new files
    assert report["rows_retained_from_earlier_runs"] > 0
    incremental = sorted(tuple(r) for r in spark.read.parquet(str(tmp_path / "curated")).collect())
    full = sorted(tuple(r) for r in spark.read.parquet(generated["args"]["output"]).collect())
    assert incremental == full
    # Re-running on the same input rewrites the same rows and reports the same counts: no duplicates.
    again = job.run(spark, _args(tmp_path, second), clickstream)
    assert sorted(tuple(r) for r in spark.read.parquet(str(tmp_path / "curated")).collect()) == full
    counts = (
        "rows_in",
        "rows_curated",
        "rows_quarantined",
        "duplicates_removed",
        "rows_retained_from_earlier_runs",
    )
    assert {k: again[k] for k in counts} == {k: report[k] for k in counts}


HAND_MADE = [
    # (line, expected reason, expected field); a valid line has reason None
    (b'{"event_id":"e1","ts":"2026-01-02T03:04:05.006Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":9.5,"position":3,"label":1}', None, None),
    (b'{"event_id":"e2","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"tablet",'
     b'"country":"JP","category":"toys","price":0,"position":50,"discount":0.9,"label":0}', None, None),
    (b'{"event_id":"e1","ts":"2026-01-02T03:04:05.006Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":9.5,"position":3,"label":1}', "duplicate", None),
    (b'{"event_id":"e3","ts":"2026-01-02', "malformed_json", None),
    (b"<html>502 Bad Gateway</html>", "malformed_json", None),
    (b"[1, 2]", "malformed_json", None),
    (b"", "malformed_json", None),
    (b'{"event_id":"e4","user_id":"u1","item_id":"i1","device":"mobile","country":"US","category":"books",'
     b'"price":1,"position":1,"label":0}', "missing_field", "ts"),
    (b'{"event_id":"e5","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":null,"position":1,"label":0}', "missing_field", "price"),
    (b'{"event_id":"e6","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":"9.5","position":1,"label":0}', "wrong_type", "price"),
    (b'{"event_id":"e7","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":9.5,"position":2.5,"label":0}', "wrong_type", "position"),
    (b'{"event_id":"e8","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":9.5,"position":2,"label":true}', "wrong_type", "label"),
    (b'{"event_id":"e9","ts":"2026-01-02T03:04:05Z","user_id":12,"item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":9.5,"position":2,"label":0}', "wrong_type", "user_id"),
    (b'{"event_id":"e10","ts":"yesterday","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":9.5,"position":2,"label":0}', "bad_timestamp", "ts"),
    (b'{"event_id":"e11","ts":"1999-12-31T23:59:59Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":9.5,"position":2,"label":0}', "bad_timestamp", "ts"),
    (b'{"event_id":"e12","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":-1,"position":2,"label":0}', "out_of_range", "price"),
    (b'{"event_id":"e13","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":NaN,"position":2,"label":0}', "out_of_range", "price"),
    (b'{"event_id":"e14","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":1,"position":0,"label":0}', "out_of_range", "position"),
    (b'{"event_id":"e15","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":1,"position":1,"label":2}', "out_of_range", "label"),
    (b'{"event_id":"e16","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":1,"position":1,"discount":1.5,"label":0}', "out_of_range", "discount"),
    (b'{"event_id":"e17","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"smartwatch",'
     b'"country":"US","category":"books","price":1,"position":1,"label":0}', "unknown_category", "device"),
    (b'{"event_id":"e18","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"XX","category":"books","price":1,"position":1,"label":0}', "unknown_category", "country"),
    (b'{"event_id":"e19","ts":"2026-01-02T03:04:05Z","user_id":"u1","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"b\xff\xfeoks","price":1,"position":1,"label":0}', "invalid_utf8", None),
    (b'{"event_id":"e20","ts":"2026-01-02T03:04:05Z","user_id":"u\xc3\x28","item_id":"i1","device":"mobile",'
     b'"country":"US","category":"books","price":1,"position":1,"label":0}', "invalid_utf8", None),
]  # fmt: skip


def test_every_kind_of_dirty_row_gets_its_reason(spark, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "events.jsonl").write_bytes(b"\n".join(line for line, _, _ in HAND_MADE) + b"\n")
    report = job.run(spark, _args(tmp_path, raw), clickstream)
    quarantined = {
        bytes(r["line"]): (r["reason"], r["field"])
        for r in spark.read.parquet(str(tmp_path / "quarantine")).collect()
    }
    expected = {
        line: (reason, field) for line, reason, field in HAND_MADE if reason not in (None, "duplicate")
    }
    assert quarantined == expected
    assert sorted(r["event_id"] for r in spark.read.parquet(str(tmp_path / "curated")).collect()) == [
        "e1",
        "e2",
    ]
    assert (report["rows_in"], report["rows_curated"], report["duplicates_removed"]) == (len(HAND_MADE), 2, 1)


def test_glue_arguments_are_accepted_and_missing_ones_rejected() -> None:
    args = job.parse_args(
        ["--JOB_NAME", "clean", "--input", "s3://raw/events/", "--output", "s3://cur/events/", "--quarantine",
         "s3://cur/quarantine/r1/", "--report=s3://cur/reports/r1/clean_report.json", "--TempDir", "s3://tmp/",
         "--job-bookmark-option", "job-bookmark-enable", "--enable-metrics", "true", "--enable-glue-datacatalog",
         *WORKLOAD_ARGS]
    )  # fmt: skip
    assert args["report"] == "s3://cur/reports/r1/clean_report.json" and args["JOB_NAME"] == "clean"
    with pytest.raises(job.UsageError, match="missing required argument"):
        job.parse_args(["--input", "a", "--output", "b", "--JOB_NAME", "x"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--input", "x", "--TempDir", "s3://t/"],
            "missing required argument(s): --output, --quarantine, --report, --workload-module, --dedupe-key",
        ),
        (
            [
                "--input",
                "/no/such/dir",
                "--output",
                "a",
                "--quarantine",
                "b",
                "--report",
                "c",
                *WORKLOAD_ARGS,
            ],
            "input not found",
        ),
        (["stray", "--input", "a"], "unexpected argument 'stray'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(JOB_PATH), *argv], capture_output=True, text=True, cwd=tmp_path,
                          check=False)  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("mlpipe_clean: error: ") and message in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


CSV_WORKLOAD = """
from pyspark.sql import functions as F

SCHEMA = "house STRING, sold STRING, rooms INT, price DOUBLE, city STRING"
REQUIRED = ("house", "sold", "price")


def parse(records):
    sold = F.to_date("sold")
    problem = (
        F.when(sold.isNull(), F.lit("bad_date"))
        .when(F.col("price") <= 0, F.lit("out_of_range"))
    )
    field = F.when(sold.isNull(), F.lit("sold")).when(F.col("price") <= 0, F.lit("price"))
    return records.withColumns({"sold": sold, "year": F.year(sold), "reject_reason": problem, "reject_field": field})
"""


def test_a_csv_workload_with_its_own_rules_header_and_dedupe(spark, tmp_path: Path) -> None:
    module_path = tmp_path / "code" / "houses_clean.py"
    module_path.parent.mkdir()
    module_path.write_text(CSV_WORKLOAD)
    houses = _load(module_path, "houses_clean")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.csv").write_text(
        "house,sold,rooms,price,city\n"
        "h1,2024-03-01,3,250000,Leeds\n"
        "h2,2024-03-02,,310000.5,York\n"  # rooms is optional
        "h1,2024-05-01,3,260000,Leeds\n"  # the same house sold later: kept (order by sold, latest? no: smallest)
        'h3,2024-04-01,4,"199000",Hull\n'  # a quoted number is a number
        "h4,2024-04-02,four,180000,Hull\n"  # wrong_type: rooms
        "h5,,2,150000,Hull\n"  # missing_field: sold
        "h6,not a date,2,150000,Hull\n"  # the workload's rule
        "h7,2025-01-01,2,-5,Hull\n"  # the workload's rule
        'h8,2025-01-01,2,"150000,Hull\n'  # an unterminated quote
    )
    args = job.parse_args(
        ["--input", str(raw), "--output", str(tmp_path / "curated"), "--quarantine", str(tmp_path / "q"),
         "--report", str(tmp_path / "report.json"), "--workload-module", "houses_clean", "--format", "csv",
         "--dedupe-key", "house", "--order-by", "sold", "--partition-column", "year"]
    )  # fmt: skip
    report = job.run(spark, args, houses)
    assert report["header_lines"] == 1 and report["rows_in"] == 9 and report["balanced"] is True
    assert (report["rows_curated"], report["duplicates_removed"]) == (3, 1)
    quarantined = {
        bytes(r["line"]).split(b",")[0].decode(): (r["reason"], r["field"])
        for r in spark.read.parquet(str(tmp_path / "q")).collect()
    }
    assert quarantined == {
        "h4": ("wrong_type", "rooms"),
        "h5": ("missing_field", "sold"),
        "h6": ("bad_date", "sold"),
        "h7": ("out_of_range", "price"),
        "h8": ("malformed_csv", None),
    }
    curated = spark.read.parquet(str(tmp_path / "curated"))
    assert sorted((r["house"], str(r["sold"]), r["rooms"], r["year"]) for r in curated.collect()) == [
        ("h1", "2024-03-01", 3, 2024),  # the earliest sale of h1 is kept
        ("h2", "2024-03-02", None, 2024),
        ("h3", "2024-04-01", 4, 2024),
    ]
    assert report["partitions"] == ["2024"]


def test_without_a_partition_column_a_second_run_upserts_the_whole_output(spark, tmp_path: Path) -> None:
    module_path = tmp_path / "code" / "flat_clean.py"
    module_path.parent.mkdir()
    module_path.write_text(CSV_WORKLOAD)
    flat = _load(module_path, "flat_clean")
    header = "house,sold,rooms,price,city\n"
    for run, lines in enumerate((["h1,2024-03-01,3,250000,Leeds", "h2,2024-03-02,2,200000,York"],
                                 ["h2,2024-01-01,2,190000,York", "h3,2024-04-01,4,199000,Hull"])):  # fmt: skip
        raw = tmp_path / f"raw{run}"
        raw.mkdir()
        (raw / "a.csv").write_text(header + "\n".join(lines) + "\n")
        args = job.parse_args(
            ["--input", str(raw), "--output", str(tmp_path / "curated"), "--quarantine", str(tmp_path / f"q{run}"),
             "--report", str(tmp_path / f"r{run}.json"), "--workload-module", "flat_clean", "--format", "csv",
             "--dedupe-key", "house"]
        )  # fmt: skip
        report = job.run(spark, args, flat)
        assert report["balanced"] is True and report["partition_column"] is None
    assert report["rows_retained_from_earlier_runs"] == 1  # h1; h2 is this run's
    rows = spark.read.parquet(str(tmp_path / "curated")).collect()
    assert sorted((r["house"], str(r["sold"])) for r in rows) == [
        ("h1", "2024-03-01"),
        ("h2", "2024-01-01"),  # the second run's h2 replaced the first's
        ("h3", "2024-04-01"),
    ]


def _refusal(spark: Any, tmp_path: Path, module: str, flags: list[str]) -> str:
    """The one-line usage error of a run with the workload module `module` (its source) on one record, which
    writes nothing."""
    (tmp_path / "workload_clean.py").write_text(module)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text('{"id": "a"}\n')
    args = job.parse_args(
        ["--input", str(raw), "--output", str(tmp_path / "c"), "--quarantine", str(tmp_path / "q"), "--report",
         str(tmp_path / "r.json"), "--workload-module", "workload_clean", *flags]
    )  # fmt: skip
    with pytest.raises(job.UsageError) as refused:
        job.run(spark, args, _load(tmp_path / "workload_clean.py", "workload_clean"))
    assert not (tmp_path / "r.json").exists()
    return str(refused.value)


def test_a_workload_module_that_breaks_the_contract_is_refused(spark, tmp_path: Path) -> None:
    module = "SCHEMA = 'id STRING'\ndef parse(records):\n    return records.select('id')  # drops mlpipe's columns\n"
    message = _refusal(spark, tmp_path, module, ["--dedupe-key", "id"])
    assert "parse must keep the _mlpipe_* columns and add reject_reason" in message, message


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dedupe-key", "key"], "column 'key' that --dedupe-key names (the workload's clean.dedupe_key)"),
        (["--dedupe-key", "id", "--partition-column", "day"],
         "column 'day' that --partition-column names (the workload's clean.partition_column)"),
    ],
)  # fmt: skip
def test_a_column_the_job_names_that_parse_does_not_return_is_named_with_its_key(
    spark, tmp_path: Path, flags: list[str], message: str
) -> None:
    module = (
        "from pyspark.sql import functions as F\nSCHEMA = 'id STRING'\n"
        "def parse(records):\n    return records.withColumn('reject_reason', F.lit(None).cast('string'))\n"
    )
    assert _refusal(spark, tmp_path, module, flags) == f"workload_clean.parse does not return the {message}"


def test_a_workload_module_that_cannot_be_imported_is_one_line_and_exit_2(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text('{"id": "a"}\n')
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "half.py").write_text("SCHEMA = 'id STRING'\n")  # no parse()
    for module, message in (
        ("nowhere", "--workload-module nowhere: cannot import it"),
        ("half", "it needs SCHEMA"),
    ):
        proc = subprocess.run(
            [sys.executable, str(JOB_PATH), "--input", str(raw), "--output", str(tmp_path / "c"), "--quarantine",
             str(tmp_path / "q"), "--report", str(tmp_path / "r.json"), "--workload-module", module,
             "--dedupe-key", "id", "--extra-py-files", str(tmp_path / "code")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert message in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["code", "raw"]  # nothing written

"""mlpipe's Glue driver on its Glue path: `awsglue` importable (a test double of aws-glue-libs, in
awsglue_double/), so the input comes through a GlueContext source with a transformation context, and job
bookmarks decide what a run reads. The calls, their order and a re-run behind the bookmark are checked."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

REPO_ROOT = Path(__file__).resolve().parents[2]
CLICKSTREAM = REPO_ROOT / "examples" / "clickstream"
DOUBLE = Path(__file__).with_name("awsglue_double")
JOB_PATH = REPO_ROOT / "glue_jobs" / "mlpipe_clean.py"


@pytest.fixture
def glue(spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The driver with `awsglue` importable (on its path in Glue), the double's state under tmp_path."""
    monkeypatch.syspath_prepend(str(DOUBLE))
    monkeypatch.syspath_prepend(str(CLICKSTREAM))  # Glue puts --extra-py-files (the code package) on the path
    monkeypatch.setenv("AWSGLUE_DOUBLE_STATE", str(tmp_path / "glue-state"))
    monkeypatch.setenv("AWSGLUE_DOUBLE_WATCH", str(tmp_path / "out"))
    spec = importlib.util.spec_from_file_location("mlpipe_glue_clean_on_glue", JOB_PATH)
    assert spec is not None and spec.loader is not None
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    yield job
    for name in [m for m in sys.modules if m == "awsglue" or m.startswith("awsglue.")]:
        del sys.modules[name]  # the other tests run the driver's plain-PySpark path


def _generate(tmp_path: Path, day: str, rows: int, seed: int) -> None:
    from generator import GeneratorConfig, generate

    generate(GeneratorConfig(rows=rows, output=str(tmp_path / "raw" / day), seed=seed, dirty_fraction=0.0,
                             truth=str(tmp_path / f"truth-{day}.parquet"), rows_per_file=rows, days=2))  # fmt: skip


def _run(job: Any, tmp_path: Path, run: str) -> dict[str, Any]:
    out = tmp_path / "out"
    argv = [
        "--JOB_NAME", "mlpipe-dev-clean", "--JOB_RUN_ID", f"jr_{run}", "--job-bookmark-option", "job-bookmark-enable",
        "--TempDir", str(tmp_path / "tmp"), "--enable-metrics", "true",
        "--input", str(tmp_path / "raw"), "--output", str(out / "curated"), "--quarantine", str(out / "q" / run),
        "--report", str(out / "reports" / run / "clean_report.json"),
        "--workload-module", "clean", "--dedupe-key", "event_id", "--order-by", "ts", "--partition-column", "dt",
    ]  # fmt: skip
    assert job.main(argv) == 0
    return json.loads((out / "reports" / run / "clean_report.json").read_text())  # type: ignore[no-any-return]


def _calls(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "glue-state" / "calls.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _curated_rows(tmp_path: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in (tmp_path / "out" / "curated").rglob("*.parquet"))


def test_the_glue_path_reads_a_bookmarked_source_and_commits_after_every_output(
    glue: Any, tmp_path: Path
) -> None:
    _generate(tmp_path, "day1", rows=300, seed=1)
    report = _run(glue, tmp_path, "r1")
    assert report["rows_in"] == 300 and report["rows_curated"] == 300

    calls = _calls(tmp_path)
    assert [c["call"] for c in calls] == [
        "GlueContext",
        "Job",
        "Job.init",
        "create_dynamic_frame.from_options",
        "Job.commit",
    ]
    init, source, commit = calls[2], calls[3], calls[4]
    # what getResolvedOptions gives the job: bookmarks on, as the run asked
    assert init == {
        "call": "Job.init",
        "job_name": "mlpipe-dev-clean",
        "job_bookmark_option": "job-bookmark-enable",
    }
    assert source["transformation_ctx"] == "raw_records" and source["connection_type"] == "s3"
    assert source["connection_options"]["paths"] == [str(tmp_path / "raw")]
    assert source["connection_options"]["recurse"] is True
    # the commit comes last: the curated data, the quarantine and the report were all written before it
    written = commit["existing"]
    assert "reports/r1/clean_report.json" in written
    assert any(f.startswith("curated/dt=") and f.endswith(".parquet") for f in written)

    # A re-run with nothing new: the bookmark makes the source empty, the run succeeds, and the curated data
    # that the pipeline's next stages read (what its execution input names) is all still there.
    nothing = _run(glue, tmp_path, "r2")
    assert (nothing["rows_in"], nothing["rows_curated"]) == (0, 0)
    assert _curated_rows(tmp_path) == 300

    # A new object: only it is read, and it joins what was curated before.
    _generate(tmp_path, "day2", rows=200, seed=2)
    added = _run(glue, tmp_path, "r3")
    assert added["rows_in"] == 200
    assert _curated_rows(tmp_path) == 500
    reads = [c for c in _calls(tmp_path) if c["call"] == "create_dynamic_frame.from_options"]
    assert len(reads) == 3 and {c["transformation_ctx"] for c in reads} == {"raw_records"}

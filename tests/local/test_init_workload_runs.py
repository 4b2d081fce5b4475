"""The workload that `mlpipe workload init` writes runs green through the synthesized state machine on its own
sample (raw.sample, no --input), on a Spark host that its caller shares: every line of the sample is accounted
for, its two candidates train, the better one is selected on accuracy and passes the gate on the held-out test
split, and every curated record gets a prediction."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.local, pytest.mark.xdist_group("local")]

DIRTY = {"malformed_csv", "missing_field", "out_of_range", "unknown_category", "wrong_type"}  # one line each


def test_the_init_workload_runs_end_to_end_on_its_sample(
    tmp_path: Path, local_workloads: Any, spark_host: Any
) -> None:
    from mlpipe.local.mode import LocalRun, Options, Printer

    folder = local_workloads.churn  # as `mlpipe workload init` wrote it
    lines = (folder / "sample" / "customers.csv").read_text().splitlines()[1:]  # less the header
    gate = tomllib.loads((folder / "workload.toml").read_text())["metric"]["gate"]

    workdir = tmp_path / "run"
    said: list[str] = []
    run = LocalRun(
        workdir, printer=Printer(said.append), cdk_out=local_workloads.cdk_out, spark_host=spark_host
    )
    summary = run.run(Options(workload=folder, workdir=workdir))
    assert summary["status"] == "SUCCEEDED", json.dumps(summary.get("failure"), indent=2)

    # every line of the sample: one duplicate dropped, one dirty line of each kind quarantined
    duplicates = len(lines) - len(set(lines))
    assert duplicates == 1
    assert summary["rows_in"] == len(lines)
    assert summary["duplicates_removed"] == duplicates
    assert summary["rows_quarantined"] == len(DIRTY)
    assert summary["rows_curated"] == len(lines) - len(DIRTY) - duplicates
    report = next(workdir.glob("s3/*/reports/churn-demo/*/clean_report.json"))
    assert json.loads(report.read_text())["quarantine_reasons"] == dict.fromkeys(sorted(DIRTY), 1)
    # the Glue job and both EMR steps ran on the Spark host that the caller shared (each job's log names that
    # JVM's log), and the run left it running for the next
    spark_logs = [*workdir.glob("logs/glue/*.log"), *workdir.glob("logs/emr/*.log")]
    assert len(spark_logs) == 3
    assert all(f"(the JVM's log: {spark_host.log})" in log.read_text() for log in spark_logs)
    assert spark_host.process is not None and spark_host.process.poll() is None
    assert not (workdir / "logs" / "spark-host.log").exists()

    # the workload's candidates, selected on validation accuracy; the gate passed on the test figure
    assert summary["metric"] == "accuracy"
    assert {c["name"] for c in summary["candidates"]} == {"linear", "mlp"}
    best = max(summary["candidates"], key=lambda c: c["validation"])
    assert summary["best_candidate"] == best["name"]
    assert gate <= summary["test_value"] <= 1.0
    evaluation = json.loads((Path(summary["model_path"]).parents[2] / "evaluation.json").read_text())
    assert evaluation["passed"] and evaluation["value"] == summary["test_value"]

    # one prediction per curated record, each a probability with its 0/1 decision
    (predictions,) = Path(summary["predictions_path"]).glob("*.parquet")
    table = pq.read_table(predictions)
    assert table.num_rows == summary["rows_curated"]
    assert table.column_names == ["customer_id", "probability", "prediction"]
    assert len(set(table["customer_id"].to_pylist())) == table.num_rows

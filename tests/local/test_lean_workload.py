"""A workload with no Spark stage: the pipeline has no Glue or EMR state and no cluster, its jobs read the raw
input (and only it), and it runs green end to end through the synthesized state machine without a JVM, its
progress showing each state before the job it runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.local]

LEAN = Path(__file__).with_name("lean_workload")


def test_a_workload_without_spark_stages_runs_without_glue_or_emr(
    tmp_path: Path, local_workloads: Any
) -> None:
    from mlpipe.local.mode import LocalRun, Options, Printer

    cdk_out = local_workloads.cdk_out
    workdir = tmp_path / "run"
    lines: list[str] = []
    run = LocalRun(workdir, printer=Printer(lines.append), cdk_out=cdk_out)
    summary = run.run(Options(workload=LEAN, rows=2_000, workdir=workdir))
    assert summary["status"] == "SUCCEEDED", json.dumps(summary.get("failure"), indent=2)

    # the progress shows each state before the job it runs
    def first(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    for state, job in (
        ("TrainSingleNode", "-grid-"),
        ("EvaluateModel", "-evaluation:"),
        ("BatchInference", "-inference:"),
    ):
        assert first(f"start      {state}") < first(job), "\n".join(lines)

    # the search's two candidates, selected and gated on the workload's own held-out rows
    assert sorted(c["name"] for c in summary["candidates"]) == ["grid-0", "grid-1"]
    assert summary["metric"] == "rmse" and 0.08 < summary["test_value"] < 0.12  # the generator's noise: 0.1
    predictions = Path(summary["predictions_path"]) / "predictions.csv"
    assert len(predictions.read_text().splitlines()) == 1 + 2_000  # every raw row scored
    # no clean stage: the accounting's counts are there, and null
    rows = ("rows_in", "rows_curated", "rows_quarantined", "duplicates_removed")
    assert {key: summary[key] for key in rows} == dict.fromkeys(rows)
    states = {name.removeprefix("state:") for name in summary["seconds"] if name.startswith("state:")}
    assert not {s for s in states if "Clean" in s or "Cluster" in s or "Features" in s}, states
    assert not (workdir / "logs" / "spark-host.log").exists()  # and no JVM was started for it

    # the stack: no Glue job, no EMR role or step, and job roles that read the raw prefix alone
    template = json.loads((cdk_out / "MlpipeDev-Workload-lean.template.json").read_text())
    types = {r["Type"] for r in template["Resources"].values()}
    assert "AWS::Glue::Job" not in types and "AWS::IAM::InstanceProfile" not in types
    definition = json.dumps(
        next(r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine")
    )
    assert "elasticmapreduce" not in definition and "glue:" not in definition
    reads = json.dumps([r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"])
    assert "/lean/raw/*" in reads and "/features/lean/" not in reads and "/curated/lean/" not in reads
    # and the client checks a job's --input against that same prefix
    assert json.dumps(template["Outputs"]["JobInput"]["Value"]).endswith('/lean/raw/"]]}')

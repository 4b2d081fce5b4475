"""A workload whose Spark stages are whole scripts of its own: the Glue job and both EMR steps run them in place
of mlpipe's drivers, with the run's arguments, and mlpipe.tabular trains, gates and scores from the feature
manifests they write. It runs green end to end through the synthesized state machine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.local, pytest.mark.xdist_group("local")]

SCRIPTED = Path(__file__).with_name("script_workload")
ROWS = 2_000


def test_whole_glue_and_spark_scripts_run_in_place_of_the_drivers(
    tmp_path: Path, local_workloads: Any, spark_host: Any
) -> None:
    from mlpipe.local.assembly import CloudAssembly
    from mlpipe.local.jobs import asset_paths
    from mlpipe.local.mode import LocalRun, Options, Printer

    cdk_out = local_workloads.cdk_out
    workdir = tmp_path / "run"
    run = LocalRun(workdir, printer=Printer(lambda line: None), cdk_out=cdk_out, spark_host=spark_host)
    summary = run.run(Options(workload=SCRIPTED, rows=ROWS, workdir=workdir))
    assert summary["status"] == "SUCCEEDED", json.dumps(summary.get("failure"), indent=2)

    # the script's report, as the generator wrote the rows: one unparsable line and one repeat per hundred
    assert (summary["rows_in"], summary["rows_curated"]) == (ROWS + 40, ROWS)
    assert (summary["rows_quarantined"], summary["duplicates_removed"]) == (20, 20)
    artifacts = Path(summary["predictions_path"]).relative_to(workdir / "s3").parts[0]
    curated = workdir / "s3" / artifacts.replace("-artifacts-", "-curated-")
    quarantined = pq.read_table(curated / "quarantine" / "scripted" / summary["run_id"]).to_pylist()
    assert {r["reason"] for r in quarantined} == {"unparsable"} and len(quarantined) == 20
    # trained, selected and gated from the script's manifest; every curated row scored from the inference one
    assert summary["metric"] == "auc" and summary["test_value"] > 0.9
    predictions = sorted(Path(summary["predictions_path"]).glob("*.parquet"))
    assert sum(pq.read_metadata(p).num_rows for p in predictions) == ROWS

    # what ran is the workload's scripts, uploaded as the stack's assets; mlpipe's drivers are not deployed
    template = json.loads((cdk_out / "MlpipeDev-Workload-scripted.template.json").read_text())
    resources = template["Resources"].values()
    job = next(r["Properties"] for r in resources if r["Type"] == "AWS::Glue::Job")
    variables = {
        name: value
        for r in resources
        if r["Type"] == "AWS::Lambda::Function"
        for name, value in r["Properties"]["Environment"]["Variables"].items()
    }
    keys = {path.read_bytes(): key for key, path in asset_paths(cdk_out).items() if path.is_file()}

    assert keys[(SCRIPTED / "clean_job.py").read_bytes()] in json.dumps(job["Command"]["ScriptLocation"])
    # the raw records' format from workload.toml; none of the driver's own arguments
    assert job["DefaultArguments"]["--format"] == "csv" and job["DefaultArguments"]["--csv-delimiter"] == ","
    assert "--workload-module" not in job["DefaultArguments"]
    for variable, script in (
        ("FEATURES", "features_job.py"),
        ("INFERENCE_FEATURES", "inference_features_job.py"),
    ):
        assert keys[(SCRIPTED / script).read_bytes()] in json.dumps(variables[f"{variable}_SCRIPT_URI"]), (
            variable
        )
    # in its own stack or a shared one (the synth holds the other test workloads too, whose stacks do)
    repo = Path(__file__).resolve().parents[2]
    stacks = CloudAssembly.load(cdk_out).for_workload("scripted").stacks.values()
    deployed = json.dumps([stack.template for stack in stacks])
    for driver in (
        "glue_jobs/mlpipe_clean.py",
        "emr_steps/build_features.py",
        "emr_steps/inference_features.py",
    ):
        key = keys.get((repo / driver).read_bytes())
        assert key is None or key.split(".")[0] not in deployed, driver

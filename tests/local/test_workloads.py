"""Any workload runs locally through the synthesized state machine: `mlpipe local run --workload DIR --input PATH`
runs the regression example on its own CSV, its plain-PyTorch entrypoints from the code package (a two-node DDP
candidate included), selected and gated on RMSE; bad arguments are refused before any work."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.local, pytest.mark.xdist_group("local")]

REPO_ROOT = Path(__file__).resolve().parents[2]
REGRESSION = REPO_ROOT / "examples" / "regression"
ROWS = 8_000


def test_the_regression_example_runs_end_to_end_on_its_own_data(
    tmp_path: Path, local_workloads: Any, spark_host: Any
) -> None:
    from mlpipe.local.mode import LocalRun, Options, Printer

    data = tmp_path / "data"
    subprocess.run(
        [
            sys.executable,
            str(REGRESSION / "generate.py"),
            "--rows",
            str(ROWS),
            "--seed",
            "3",
            "--out",
            str(data),
        ],
        check=True,
        capture_output=True,
    )
    truth = json.loads((data / "truth.json").read_text())
    workdir = tmp_path / "run"
    lines: list[str] = []
    run = LocalRun(
        workdir, printer=Printer(lines.append), cdk_out=local_workloads.cdk_out, spark_host=spark_host
    )
    summary = run.run(Options(workload=REGRESSION, input=data / "raw", workdir=workdir, candidates=1))
    assert summary["status"] == "SUCCEEDED", json.dumps(summary.get("failure"), indent=2)

    # every line of the CSV is accounted for, as the generator made it
    assert summary["rows_in"] == truth["lines"]
    assert summary["duplicates_removed"] == truth["duplicates"]
    assert summary["rows_quarantined"] == sum(truth["dirty"].values())
    assert summary["rows_curated"] == truth["rows_valid"]

    # the workload's own candidates, its metric and direction; the gate passed on the evaluation job's figure
    assert [c["name"] for c in summary["candidates"]] == ["ddp-2"]  # --candidates 1: its first, the DDP one
    assert summary["metric"] == "rmse"
    best = min(summary["candidates"], key=lambda c: (c["validation"], c["name"]))
    assert summary["best_candidate"] == best["name"]
    assert truth["noise_sd"] * 0.9 < summary["test_value"] <= 0.625  # near the noise floor, under the gate
    run_id = summary["run_id"]
    evaluation = json.loads(
        (Path(summary["model_path"]).parents[2] / "evaluation.json").read_text()  # runs/<w>/<run>/
    )
    assert evaluation["value"] == summary["test_value"] and evaluation["direction"] == "minimize"

    # the DDP candidate ran as two nodes
    logs = workdir / "logs" / "batch"
    assert sorted(p.name for p in (logs / f"{run_id}-ddp-2").iterdir()) == [
        "attempt-1.node-0.log",
        "attempt-1.node-1.log",
    ]
    model = Path(summary["model_path"])
    assert sorted(p.name for p in model.iterdir()) == ["model.json", "model.pt"]
    tables = [pq.read_table(p) for p in sorted(Path(summary["predictions_path"]).glob("*.parquet"))]
    assert all(t.column_names == ["reading_id", "prediction"] for t in tables)
    predicted = {
        i: y
        for t in tables
        for i, y in zip(t["reading_id"].to_pylist(), t["prediction"].to_pylist(), strict=True)
    }
    assert len(predicted) == summary["rows_curated"]  # the inference input is every curated reading

    # evaluate.py and infer.py load the model the same way, and evaluate.py scored the test rows alone
    run = model.parents[2]
    manifest = json.loads(next(workdir.glob(f"s3/*/features/regression/{run_id}/manifest.json")).read_text())

    def rmse_of(split: str) -> float:  # inference's predictions of one split's rows, against their labels
        errors = []
        for shard in manifest["splits"][split]["shards"]:
            table = pq.read_table(shard["uri"], columns=["reading_id", "log_load"])
            ids, labels = table["reading_id"].to_pylist(), table["log_load"].to_pylist()
            errors += [predicted[i] - y for i, y in zip(ids, labels, strict=True)]
        return math.sqrt(sum(e * e for e in errors) / len(errors))

    tested = json.loads((run / "evaluation" / "metrics.json").read_text())
    assert tested["rows"] == manifest["splits"]["test"]["rows"]
    assert tested["test"]["rmse"] == pytest.approx(rmse_of("test"), rel=1e-6) == summary["test_value"]
    assert tested["test"]["rmse"] != pytest.approx(rmse_of("validation"), rel=1e-6)
    trained = json.loads((run / "candidates" / "ddp-2" / "metrics.json").read_text())
    assert trained["world_size"] == 2
    assert trained["validation"]["rmse"] == pytest.approx(rmse_of("validation"), rel=1e-4)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--workload", "{bare}"],
            "--input is needed: {bare}/workload.toml has neither raw.generator nor raw.sample",
        ),
        (["--workload", "examples/nowhere"], "examples/nowhere/workload.toml: no workload manifest here"),
        (["--input", "no/such/data"], "--input no/such/data: no such file"),
        (["--workload", "examples/regression", "--candidates", "4"], "--candidates must be 1 to 3"),
        (
            ["--workload", "{bare}", "--input", "README.md", "--workdir", "{bare}/run"],
            "--workdir {bare}/run is inside the workload folder",
        ),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    bare = tmp_path / "bare"  # the regression example without its generator
    shutil.copytree(REGRESSION, bare, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = bare / "workload.toml"
    manifest.write_text(manifest.read_text().replace('generator = "generate.py"\n', ""))
    args = [a.format(bare=bare) for a in args]
    message = message.format(bare=bare)
    done = subprocess.run(
        [sys.executable, "-m", "mlpipe", "local", "run", *args]
        + ([] if "--workdir" in args else ["--workdir", str(tmp_path / "w")]),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "w").exists()  # refused before any work

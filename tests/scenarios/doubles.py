"""Test doubles of the Batch, Glue and EMR executors: told per job to succeed (writing what the real job
writes, in the formats of docs/contracts.md), to fail, or to lose its Spot instance.

Succeeding doubles write small but real artifacts to (moto's) S3: the Glue job its report and a curated
Parquet file; the EMR feature step a `mlpipe.features.v1` manifest with test shards; the training job a
`mlpipe.model.v1` portable model and `metrics.json`; the inference job predictions and metrics. So the
Lambdas that read them (SelectModel, EvaluateModel, RegisterModel) run on real inputs.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlpipe.local import BatchJob, EmrStep, GlueJobRun, Invocation, LambdaInvoker, LambdaServiceError, Outcome

SPOT_RECLAIM = "Host EC2 (instance i-0123456789abcdef0) terminated."


def spot_reclaimed() -> Outcome:
    """What Batch reports when the Spot instance under an attempt is reclaimed (no container exit code)."""
    return Outcome.failure(SPOT_RECLAIM, exit_code=None)


def application_error(message: str = "Essential container in task exited") -> Outcome:
    """The container exited non-zero: the application failed."""
    return Outcome.failure(message, exit_code=1)


# Test split. Positives at x = 0.5, 2, 0 and negatives at x = -2, -1, 1: a model scoring sigmoid(2x) has AUC
# 7/9 = 0.778 on it, one scoring sigmoid(-2x) 2/9 (what the evaluation double reports for a poor model).
TEST_ROWS = {"x": [-2.0, -1.0, 0.5, 1.0, 2.0, 0.0], "c": [0, 1, 0, 1, 1, 0], "label": [0, 0, 1, 0, 1, 1]}
GOOD_TEST_AUC = 7 / 9


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def put(uri: str, body: bytes) -> None:
    bucket, key = _split(uri)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def parquet(columns: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


def _arg(args: Sequence[str], flag: str) -> str:
    return args[list(args).index(flag) + 1]


@dataclass
class _Script:
    """Per job: outcomes to give, attempt by attempt (the last one repeats); success by default."""

    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)

    def outcome(self, key: str, attempt: int) -> Outcome:
        for pattern, outcomes in self.outcomes.items():
            if pattern in key:
                return outcomes[min(attempt, len(outcomes)) - 1]
        return Outcome.success()


@dataclass
class FakeBatch:
    """Training and inference jobs. `script("baseline", [spot_reclaimed(), Outcome.success()])`."""

    validation_auc: dict[str, float] = field(default_factory=dict)  # candidate name -> AUC in metrics.json
    poor_models: set[str] = field(default_factory=set)  # candidates whose model ranks the test set backwards
    runs: list[BatchJob] = field(default_factory=list)
    _script: _Script = field(default_factory=_Script)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, job_name_contains: str, outcomes: list[Outcome]) -> FakeBatch:
        self._script.outcomes[job_name_contains] = outcomes
        return self

    def attempts(self, job_name_contains: str) -> list[BatchJob]:
        return [job for job in self.runs if job_name_contains in job.job_name]

    def run(self, job: BatchJob) -> Outcome:
        with self._lock:
            self.runs.append(job)
        outcome = self._script.outcome(job.job_name, job.attempt)
        if not outcome.succeeded:
            return outcome
        if "mlpipe_batch.train" in job.command:
            self._train(job)
        elif "mlpipe_batch.infer" in job.command:
            self._infer(job)
        else:
            raise AssertionError(f"unexpected Batch command {job.command}")
        return outcome

    def _train(self, job: BatchJob) -> None:
        output = job.parameters["output"]
        name = output.rstrip("/").rsplit("/", 1)[-1]
        put(f"{output}model/weights.bin", name.encode())
        metrics = {
            "validation": {"auc": self.validation_auc.get(name, 0.8), "log_loss": 0.5},
            "epochs": 1,
            "hyperparameters": json.loads(job.parameters["hyperparameters"]),
        }
        put(f"{output}metrics.json", json.dumps(metrics).encode())

    def _infer(self, job: BatchJob) -> None:
        output = job.parameters["output"]
        name = job.parameters["model"].rstrip("/").rsplit("/", 2)[-2]  # .../candidates/<name>/model/
        scores = [float(1 / (1 + np.exp(-2 * x))) for x in TEST_ROWS["x"]]
        ids = [f"e{i}" for i in range(len(scores))]
        put(f"{output}part-00000.parquet", parquet({"event_id": ids, "score": scores}))
        metrics: dict[str, Any] = {"rows": len(scores)}
        if "test" in job.command:  # the evaluation job: a poor model ranks the test rows backwards
            metrics["test"] = {"auc": 2 / 9 if name in self.poor_models else GOOD_TEST_AUC}
        put(f"{output}metrics.json", json.dumps(metrics).encode())


@dataclass
class FakeGlue:
    """The clean job: writes a curated Parquet file and the report, or fails with `fail_with`."""

    fail_with: str | None = None
    runs: list[GlueJobRun] = field(default_factory=list)

    def run(self, job: GlueJobRun) -> Outcome:
        self.runs.append(job)
        if self.fail_with is not None:
            return Outcome.failure(self.fail_with)
        args = job.arguments
        put(
            f"{args['--output']}dt=2026-01-01/part-00000.parquet", parquet({"event_id": ["e0"], "label": [0]})
        )
        report = {"run_id": job.run_id, "rows_in": 1, "rows_out": 1, "rows_quarantined": 0}
        put(args["--report"], json.dumps(report).encode())
        return Outcome.success()


@dataclass
class FakeEmr:
    """The feature steps: BuildFeatures writes the manifest and test shards; the inference step its own."""

    fail: dict[str, str] = field(default_factory=dict)  # step name -> failure message
    runs: list[EmrStep] = field(default_factory=list)

    def run(self, step: EmrStep) -> Outcome:
        self.runs.append(step)
        if step.name in self.fail:
            return Outcome.failure(self.fail[step.name])
        output, manifest_uri = _arg(step.args, "--output"), _arg(step.args, "--manifest")
        if "--training-manifest" in step.args:
            split, columns = "inference", {k: v for k, v in TEST_ROWS.items() if k != "label"}
        else:
            split, columns = "test", TEST_ROWS
        shard = f"{output}{split}/part-00000.parquet"
        body = parquet(
            {
                "event_id": [f"e{i}" for i in range(len(columns["x"]))],
                "x": pa.array(columns["x"], pa.float32()),
                "c": pa.array(columns["c"], pa.int32()),
                **({"label": pa.array(columns["label"], pa.int8())} if "label" in columns else {}),
            }
        )
        put(shard, body)
        listed = {
            "rows": len(columns["x"]),
            "shards": [{"uri": shard, "rows": len(columns["x"]), "bytes": len(body)}],
        }
        splits = (
            {split: listed}
            if split == "inference"
            else {
                "train": {"rows": 0, "shards": []},
                "validation": {"rows": 0, "shards": []},
                "test": listed,
            }
        )
        manifest = {
            "format": "mlpipe.features.v1",
            "run_id": _arg(step.args, "--run-id") if "--run-id" in step.args else "",
            "created_at": "2026-01-02T00:00:00Z",
            "id_column": "event_id",
            "label_column": "label",
            "numeric_features": ["x"],
            "categorical_features": [{"name": "c", "buckets": 2}],
            "splits": splits,
            "statistics": {},
            "split_boundaries": {},
        }
        put(manifest_uri, json.dumps(manifest).encode())
        return Outcome.success()


@dataclass
class ThrottledLambdas:
    """Wraps the in-process Lambda invoker: the first `times` invocations of functions whose name contains
    `function` are refused by the Lambda service with TooManyRequestsException (they never reach the code)."""

    inner: LambdaInvoker
    function: str
    times: int
    refused: list[str] = field(default_factory=list)
    reached: list[str] = field(default_factory=list)

    def invoke(self, function: str, payload: bytes) -> Invocation:
        if self.function in function and len(self.refused) < self.times:
            self.refused.append(function)
            raise LambdaServiceError("TooManyRequestsException", "Rate Exceeded.")
        self.reached.append(function)
        return self.inner.invoke(function, payload)

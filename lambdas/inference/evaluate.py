"""EvaluateModel: score the test split's first rows with the chosen model (numpy forward pass of
`mlpipe.model.v1`), compute AUC and log loss, write `runs/<run_id>/evaluation.json` and apply the quality
gate. Below the gate it raises `QualityGateFailed` after writing the evaluation (with `"passed": false`),
so the record of why the model was not registered exists while nothing marks the model published.

The sample: the test shards listed in the feature manifest, in order, read with pyarrow until `max_rows`
rows (SAMPLE_ROWS, default 20000). Each shard is downloaded whole (shards are sized by the EMR step)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq
from mlpipe_common.config import Buckets
from mlpipe_common.errors import EvaluationError, InvalidInput, ModelArtifactError, QualityGateFailed
from mlpipe_common.logs import get_logger
from mlpipe_common.metrics import log_loss, roc_auc
from mlpipe_common.portable_model import MODEL_JSON, WEIGHTS_NPZ, PortableModel
from mlpipe_common.s3 import S3ObjectNotFound, S3Uri, get_bytes, parse_in_buckets, put_json_atomic, read_json

EVALUATION_FORMAT = "mlpipe.evaluation.v1"
FEATURES_FORMAT = "mlpipe.features.v1"
BATCH_ROWS = 65_536
log = get_logger(__name__)


@dataclass(frozen=True)
class QualityGate:
    min_auc: float
    source: str  # "execution_input" or "QUALITY_GATE_MIN_AUC"


@dataclass(frozen=True)
class Sample:
    columns: dict[str, npt.NDArray[Any]]
    labels: npt.NDArray[np.int64]
    shards: list[str]

    @property
    def rows(self) -> int:
        return int(self.labels.size)


def quality_gate(plan: dict[str, Any], default_min_auc: float) -> QualityGate:
    """The run's override from the execution input (bounded by the schema), else the deployment's gate."""
    override = plan.get("quality_gate")
    if isinstance(override, dict) and "min_auc" in override:
        return QualityGate(float(override["min_auc"]), "execution_input")
    return QualityGate(default_min_auc, "QUALITY_GATE_MIN_AUC")


def _get(s3: Any, uri: S3Uri, what: str) -> bytes:
    try:
        return get_bytes(s3, uri)
    except S3ObjectNotFound as exc:
        raise ModelArtifactError(f"{what} {exc}") from None


def load_model(s3: Any, model_uri: S3Uri) -> PortableModel:
    return PortableModel.from_bytes(
        _get(s3, model_uri.join(MODEL_JSON), "model file"),
        _get(s3, model_uri.join(WEIGHTS_NPZ), "model file"),
    )


def read_sample(
    s3: Any, features: dict[str, Any], columns: list[str], *, max_rows: int, buckets: Buckets
) -> Sample:
    """Up to `max_rows` rows of the test split: the model's input columns and the labels."""
    label = features.get("label_column", "label")
    try:
        shards = [shard["uri"] for shard in features["splits"]["test"]["shards"]]
    except (KeyError, TypeError):
        raise ModelArtifactError(
            "the feature manifest lists no test split shards (splits.test.shards)"
        ) from None
    wanted = [*columns, label]
    batches: list[pa.RecordBatch] = []
    used: list[str] = []
    remaining = max_rows
    for shard in shards:
        if remaining <= 0:
            break
        uri = parse_in_buckets(shard, [buckets.curated], field="feature manifest shard")
        parquet = pq.ParquetFile(pa.BufferReader(_get(s3, uri, "test shard")))
        missing = [name for name in wanted if name not in parquet.schema_arrow.names]
        if missing:
            raise EvaluationError(f"test shard {uri} lacks the column(s) {missing} that the model reads")
        used.append(str(uri))
        for batch in parquet.iter_batches(batch_size=min(remaining, BATCH_ROWS), columns=wanted):
            batch = batch.slice(0, remaining)
            batches.append(batch)
            remaining -= batch.num_rows
            if remaining <= 0:
                break
    if not batches:
        raise EvaluationError("the test split has no rows to evaluate")
    table = pa.Table.from_batches(batches).combine_chunks()
    for name in wanted:
        if table.column(name).null_count:
            raise EvaluationError(f"column {name!r} of the test sample has null values")
    labels = table.column(label).to_numpy().astype(np.int64)
    return Sample({name: table.column(name).to_numpy() for name in columns}, labels, used)


def evaluate_model(
    s3: Any,
    plan: dict[str, Any],
    model_manifest_uri: S3Uri,
    *,
    buckets: Buckets,
    default_min_auc: float,
    max_rows: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Evaluate, write evaluation.json, apply the gate; return the EvaluateModel payload."""
    run_id = plan["run_id"]
    try:
        manifest = read_json(s3, model_manifest_uri)
    except S3ObjectNotFound as exc:
        raise InvalidInput(f"event.model_manifest_uri: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("run_id") != run_id:
        raise InvalidInput(
            f"event.model_manifest_uri: {model_manifest_uri} is not a model manifest of run {run_id!r}"
        )
    model_uri = parse_in_buckets(
        manifest.get("model_uri"), [buckets.artifacts], field="model manifest model_uri"
    )
    model = load_model(s3, model_uri)

    features_uri = S3Uri.parse(plan["uris"]["manifest"])
    try:
        features = read_json(s3, features_uri)
    except S3ObjectNotFound as exc:
        raise ModelArtifactError(f"feature manifest {exc}") from None
    if not isinstance(features, dict) or features.get("format") != FEATURES_FORMAT:
        raise ModelArtifactError(f"{features_uri} is not a {FEATURES_FORMAT} manifest")

    sample = read_sample(s3, features, list(model.input_columns), max_rows=max_rows, buckets=buckets)
    try:
        scores = model.predict_proba(sample.columns)
    except ValueError as exc:
        raise EvaluationError(f"cannot score the test sample: {exc}") from None
    if not np.all(np.isfinite(scores)):
        raise EvaluationError("the model produced non-finite scores on the test sample")
    try:
        auc = roc_auc(sample.labels, scores)
        loss = log_loss(sample.labels, scores)
    except ValueError as exc:
        raise EvaluationError(f"test sample of {sample.rows} rows: {exc}") from None

    gate = quality_gate(plan, default_min_auc)
    passed = auc >= gate.min_auc
    evaluation_uri = S3Uri.parse(plan["uris"]["evaluation"])
    put_json_atomic(
        s3,
        evaluation_uri,
        {
            "format": EVALUATION_FORMAT,
            "run_id": run_id,
            "created_at": (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model_manifest_uri": str(model_manifest_uri),
            "model_uri": str(model_uri),
            "best_candidate": manifest.get("best_candidate"),
            "split": "test",
            "rows": sample.rows,
            "positives": int(sample.labels.sum()),
            "shards": sample.shards,
            "auc": auc,
            "log_loss": loss,
            "threshold": gate.min_auc,
            "threshold_source": gate.source,
            "passed": passed,
        },
    )
    log.info(
        "model evaluated",
        extra={"run_id": run_id, "auc": auc, "log_loss": loss, "threshold": gate.min_auc, "passed": passed},
    )
    if not passed:
        raise QualityGateFailed(
            f"run {run_id}: test AUC {auc:.4f} of candidate {manifest.get('best_candidate')!r} is below the "
            f"quality gate {gate.min_auc:.4f} (from {gate.source}); the model is not registered. "
            f"Evaluation: {evaluation_uri}"
        )
    return {"evaluation_uri": str(evaluation_uri), "auc": auc, "passed": True}

"""A synthetic feature set in the `mlpipe.features.v1` layout whose true probability is known, so the
Bayes-optimal AUC is known exactly: for local runs, tests and benchmarks.

    python -m mlpipe_batch.synthetic --output /tmp/mlpipe-demo --train-rows 20000

The label is Bernoulli(sigmoid(f(x, c))) with f nonlinear in the numeric features (a sine, an interaction,
a square) plus one effect per category of two hashed categoricals, and x3 pure noise. `bayes_auc` is the
AUC that ranking by the true probability reaches in expectation over the labels, given the split's features
(the best any model can expect on that split).
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlpipe_batch import storage

NUMERIC = ("x0", "x1", "x2", "x3")
CATEGORICAL = (("c0", 16), ("c1", 64))
_EFFECT_SEED = 20_261_121  # the category effects are part of the function, not of the sample


def _effects() -> list[np.ndarray]:
    rng = np.random.default_rng(_EFFECT_SEED)
    return [
        rng.normal(0.0, 1.0 if i == 0 else 0.7, size=buckets) for i, (_, buckets) in enumerate(CATEGORICAL)
    ]


def true_logit(numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
    x0, x1, x2 = numeric[:, 0], numeric[:, 1], numeric[:, 2]
    effects = _effects()
    logit = 2.0 * np.sin(1.5 * x0) + 1.5 * x1 * x2 - 0.75 * x1**2 + 0.4
    for j, table in enumerate(effects):
        logit = logit + table[categorical[:, j]]
    return logit


def sample(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(numeric [rows, 4] float, categorical [rows, 2] int, labels [rows] int, true probability [rows])."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, len(NUMERIC)))
    categorical = np.stack([rng.integers(0, buckets, size=rows) for _, buckets in CATEGORICAL], axis=1)
    probability = 1.0 / (1.0 + np.exp(-true_logit(numeric, categorical)))
    labels = (rng.random(rows) < probability).astype(np.int64)
    return numeric, categorical, labels, probability


def expected_auc(probability: np.ndarray) -> float:
    """AUC of ranking by `probability` in expectation over labels ~ Bernoulli(probability): over ordered
    pairs i != j, weight p_i (1 - p_j) for "i positive, j negative", ties counting one half."""
    p = np.asarray(probability, dtype=np.float64)
    values, inverse = np.unique(p, return_inverse=True)
    pos = np.bincount(inverse, weights=p, minlength=values.size)
    neg = np.bincount(inverse, weights=1.0 - p, minlength=values.size)
    below = np.cumsum(neg) - neg
    self_pairs = float(np.sum(p * (1.0 - p)))
    numerator = float(np.sum(pos * below)) + 0.5 * (float(np.sum(pos * neg)) - self_pairs)
    denominator = float(p.sum() * (1.0 - p).sum()) - self_pairs
    return numerator / denominator


@dataclass
class SyntheticDataset:
    manifest_uri: str
    inference_manifest_uri: str | None
    bayes_auc: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def _shard_sizes(rows: int, shards: int, rng: np.random.Generator) -> list[int]:
    """Uneven shard sizes that add up to `rows` (the loader must not depend on even shards)."""
    if shards <= 1 or rows < shards:
        return [rows]
    weights = rng.uniform(0.5, 1.5, size=shards)
    sizes = np.floor(weights / weights.sum() * rows).astype(int)
    sizes[-1] += rows - sizes.sum()
    return [int(s) for s in sizes]


def _table(
    ids: list[str], numeric: np.ndarray, categorical: np.ndarray, labels: np.ndarray | None
) -> pa.Table:
    columns: dict[str, pa.Array] = {"row_id": pa.array(ids, pa.string())}
    for j, name in enumerate(NUMERIC):  # float64 and float32 columns: the manifest allows both
        columns[name] = pa.array(numeric[:, j], pa.float64() if j % 2 == 0 else pa.float32())
    for j, (name, _) in enumerate(CATEGORICAL):
        columns[name] = pa.array(categorical[:, j], pa.int32())
    if labels is not None:
        columns["label"] = pa.array(labels, pa.int64())
    return pa.table(columns)


def write_dataset(
    prefix: str,
    *,
    rows: dict[str, int] | None = None,
    shards: int = 3,
    seed: int = 0,
    inference_rows: int = 0,
    run_id: str = "r-synthetic",
) -> SyntheticDataset:
    """Write shards and `manifest.json` (and, with inference_rows, `inference_manifest.json`) under `prefix`."""
    rows = rows or {"train": 8000, "validation": 2000, "test": 2000}
    result = SyntheticDataset(storage.join(prefix, "manifest.json"), None)
    layout_rng = np.random.default_rng(seed + 1)
    splits: dict[str, dict[str, object]] = {}
    plan = [(split, n, True) for split, n in rows.items()]
    if inference_rows:
        plan.append(("inference", inference_rows, False))
    for index, (split, n, labelled) in enumerate(plan):
        numeric, categorical, labels, probability = sample(n, seed * 1000 + index)
        result.bayes_auc[split] = expected_auc(probability)
        result.rows[split] = n
        ids = [f"{split}-{i:08d}" for i in range(n)]
        entries = []
        start = 0
        for k, size in enumerate(_shard_sizes(n, shards, layout_rng)):
            part = slice(start, start + size)
            table = _table(ids[part], numeric[part], categorical[part], labels[part] if labelled else None)
            buffer = io.BytesIO()
            pq.write_table(table, buffer, row_group_size=max(1, min(size, 65_536)))
            uri = storage.join(prefix, split, f"part-{k:05d}.parquet")
            storage.write_bytes(uri, buffer.getvalue())
            entries.append({"uri": uri, "rows": size, "bytes": buffer.tell()})
            start += size
        splits[split] = {"rows": n, "shards": entries}

    def manifest(split_names: list[str]) -> bytes:
        doc = {
            "format": "mlpipe.features.v1",
            "run_id": run_id,
            "created_at": "2026-11-21T06:00:00Z",
            "id_column": "row_id",
            "label_column": "label",
            "numeric_features": list(NUMERIC),
            "categorical_features": [{"name": n, "buckets": b} for n, b in CATEGORICAL],
            "splits": {name: splits[name] for name in split_names},
            "statistics": {},
            "split_boundaries": {},
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    storage.write_bytes(result.manifest_uri, manifest(list(rows)))
    if inference_rows:
        result.inference_manifest_uri = storage.join(prefix, "inference_manifest.json")
        storage.write_bytes(result.inference_manifest_uri, manifest(["inference"]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlpipe_batch.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="prefix (s3:// or a local folder)")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--validation-rows", type=int, default=5_000)
    parser.add_argument("--test-rows", type=int, default=5_000)
    parser.add_argument("--inference-rows", type=int, default=5_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    dataset = write_dataset(
        args.output,
        rows={"train": args.train_rows, "validation": args.validation_rows, "test": args.test_rows},
        shards=args.shards,
        seed=args.seed,
        inference_rows=args.inference_rows,
    )
    print(
        json.dumps(
            {
                "manifest": dataset.manifest_uri,
                "inference_manifest": dataset.inference_manifest_uri,
                "bayes_auc": dataset.bayes_auc,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

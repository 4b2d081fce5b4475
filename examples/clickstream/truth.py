"""The Bayes-optimal AUC of the clickstream example, from the generator's truth file.

The truth file holds the true conversion probability `p` of every generated event. No model can rank
events better than `p` itself, so the AUC of `p` is the ceiling that training and evaluation compare with.

    python examples/clickstream/truth.py WORKDIR     # a finished `mlpipe local run`'s AUC against it
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlpipe.data.storage import local_copy


def read_truth(uri: str, event_ids: Iterable[str] | None = None, *, include_dirty: bool = False) -> pa.Table:
    """The truth rows (`event_id`, `p`, `label`, `dirty`), optionally restricted to `event_ids`.

    By default only clean events are kept: dirty ones never reach curated data.
    """
    with local_copy(uri) as path:
        table = pq.read_table(path)
    if not include_dirty:
        table = table.filter(pc.is_null(table["dirty"]))
    if event_ids is not None:
        wanted = pa.array(list(event_ids), pa.string())
        table = table.filter(pc.is_in(table["event_id"], value_set=wanted))
    return table


def expected_auc(p: np.ndarray) -> float:
    """The expected AUC of the score `p` when each label is drawn as Bernoulli(p) (ratio of expectations).

    E[pairs ranked right] / E[positive-negative pairs] = sum_{i != j} p_i (1 - p_j) [p_i > p_j] (ties 1/2)
    over sum_{i != j} p_i (1 - p_j); O(n log n) by sorting.
    """
    p = np.asarray(p, dtype=np.float64)
    if p.size < 2:
        raise ValueError("need at least two events")
    values, inverse = np.unique(p, return_inverse=True)
    neg_mass = np.bincount(inverse, weights=1.0 - p, minlength=len(values))  # sum of (1 - p) per value
    pos_mass = np.bincount(inverse, weights=p, minlength=len(values))
    below = np.cumsum(neg_mass) - neg_mass  # negatives strictly below each value
    # Ties: pairs of distinct events with the same p count 1/2; remove each event's pair with itself.
    tie_pairs = pos_mass * neg_mass - np.bincount(inverse, weights=p * (1.0 - p), minlength=len(values))
    numerator = float(np.sum(pos_mass * below) + 0.5 * np.sum(tie_pairs))
    denominator = float(p.sum() * (1.0 - p).sum() - np.sum(p * (1.0 - p)))
    return numerator / denominator


def realized_auc(score: np.ndarray, label: np.ndarray) -> float:
    """The AUC of `score` against 0/1 labels (Mann-Whitney, ties count 1/2)."""
    score = np.asarray(score, dtype=np.float64)
    label = np.asarray(label).astype(bool)
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("need both positive and negative labels")
    values, inverse = np.unique(score, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(values))
    ranks = np.cumsum(counts) - (counts - 1) / 2.0  # average 1-based rank of each distinct value
    return float((ranks[inverse][label].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def bayes_optimal_auc(
    truth_uri: str, event_ids: Iterable[str] | None = None, *, realized: bool = False
) -> float:
    """The Bayes-optimal AUC of the clean events in the truth file (or of `event_ids` among them).

    `realized=False` (default): the expected AUC of the true probability, independent of the label draw.
    `realized=True`: the AUC of the true probability against the labels actually drawn, which is what a
    perfect model would score on exactly these events.
    """
    table = read_truth(truth_uri, event_ids)
    p = table["p"].to_numpy()
    if realized:
        return realized_auc(p, table["label"].to_numpy())
    return expected_auc(p)


def local_run_quality(workdir: str | Path) -> dict[str, float]:
    """The chosen model of a finished `mlpipe local run` against the Bayes-optimal AUC on exactly its events:
    the evaluation job's test `auc` with `bayes_auc` and `auc_ratio`, and the chosen candidate's
    `validation_auc` with `bayes_validation_auc` and `validation_auc_ratio`. The truth is the one the
    generator wrote into the run (`<workdir>/data/truth.parquet`)."""
    workdir = Path(workdir)
    summary = json.loads((workdir / "summary.json").read_text())
    if summary.get("status") != "SUCCEEDED":
        raise ValueError(f"{workdir} holds no successful run")

    def local(uri: str) -> Path:
        return workdir / "s3" / uri.removeprefix("s3://") if uri.startswith("s3://") else Path(uri)

    run = Path(summary["model_path"]).parents[2]  # runs/<workload>/<run id>/
    manifest = json.loads((run / "model" / "manifest.json").read_text())
    features = json.loads(local(manifest["lineage"]["training_input_uri"]).read_text())

    def ids(split: str) -> list[str]:
        column = features["id_column"]
        tables = [
            pq.read_table(local(s["uri"]), columns=[column]) for s in features["splits"][split]["shards"]
        ]
        return [v for t in tables for v in t.column(0).to_pylist()]

    truth = str(workdir / "data" / "truth.parquet")
    auc = float(json.loads((run / "evaluation" / "metrics.json").read_text())["test"]["auc"])
    validation = float(manifest["metrics"]["validation"]["auc"])
    bayes, bayes_validation = (
        bayes_optimal_auc(truth, ids(s), realized=True) for s in ("test", "validation")
    )
    found = {
        "auc": auc,
        "bayes_auc": bayes,
        "auc_ratio": auc / bayes,
        "validation_auc": validation,
        "bayes_validation_auc": bayes_validation,
        "validation_auc_ratio": validation / bayes_validation,
    }
    return {k: round(v, 6) for k, v in found.items()}


if __name__ == "__main__":
    import sys

    print(json.dumps(local_run_quality(sys.argv[1]), indent=2) if len(sys.argv) == 2 else __doc__)

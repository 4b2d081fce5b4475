"""Batch inference entry point: `python -m mlpipe_batch.infer --manifest M --model MODEL --output O [--split S]`.

Scores every row of a split (default `inference`, the split of an inference manifest; `--split validation` or
`test` with a training manifest) with a portable model (mlpipe.model.v1; MODEL is its folder or a training
output prefix). Writes one Parquet file per input shard, `part-NNNNN.parquet`, with one row per input row: the
manifest's id column, `score` (probability) and the label where the shard has one. Then `metrics.json`,
written last as the commit marker: row count, the files and, when every shard had labels,
`{<split>: {"auc", "log_loss", "positive_rate"}}`; with `--split test` that is the quality gate's evaluation
(docs/workloads.md). Each file is written atomically; a rerun first removes the old `metrics.json`, then
replaces the files and removes stale ones.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from mlpipe_batch import data, manifest, storage
from mlpipe_batch.errors import DataError, OneLineArgumentParser, UsageError, fail
from mlpipe_batch.metrics import classification_report
from mlpipe_batch.model import PortableModel, PortableScorer, load_portable

PROG = "mlpipe_batch.infer"
METRICS_FORMAT = "mlpipe.inference_metrics.v1"
_PART = re.compile(r"^part-\d{5}\.parquet$")

log = logging.getLogger("mlpipe_batch")


@dataclass(frozen=True)
class InferenceJob:
    manifest: manifest.FeatureManifest
    split: str
    model: PortableModel
    output: str
    columns: data.Columns
    batch_size: int
    device: torch.device
    prefetch_shards: int = 2


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--manifest", required=True, help="feature manifest URI (inference or training manifest)"
    )
    parser.add_argument("--model", required=True, help="portable model prefix (model/ or a training output)")
    parser.add_argument("--output", required=True, help="output prefix for the predictions and metrics.json")
    parser.add_argument("--split", help="split to score (default: inference)")
    parser.add_argument(
        "--batch-size", type=int, default=65_536, help="rows per scoring batch (default 65536)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    parser.add_argument("--prefetch-shards", type=int, default=2, help="shards read ahead (default 2)")
    args = parser.parse_args(argv)
    for name in ("manifest", "model", "output"):
        if not getattr(args, name).strip():
            raise UsageError(f"--{name} is empty: pass a URI (s3://bucket/prefix or a local path)")
    if not 1 <= args.batch_size <= 1 << 24:
        raise UsageError(f"--batch-size must be in [1, 16777216], got {args.batch_size}")
    if not 1 <= args.prefetch_shards <= 64:
        raise UsageError(f"--prefetch-shards must be in [1, 64], got {args.prefetch_shards}")
    return args


def preflight(argv: Sequence[str], environ: Mapping[str, str]) -> InferenceJob:
    args = parse_args(argv)
    feature_manifest = manifest.load(args.manifest)
    split = args.split or "inference"
    if split not in feature_manifest.splits:
        hint = "" if args.split else "; pass --split to score another split"
        raise UsageError(
            f"manifest {feature_manifest.uri} has no split {split!r} "
            f"(it has: {', '.join(sorted(feature_manifest.splits))}){hint}"
        )
    model = load_portable(args.model)
    numeric = set(feature_manifest.numeric_features)
    missing = [name for name in model.numeric_features if name not in numeric]
    buckets = {c.name: c.buckets for c in feature_manifest.categorical_features}
    for feature in model.categorical_features:
        if feature["name"] not in buckets:
            missing.append(feature["name"])
        elif buckets[feature["name"]] != feature["buckets"]:
            raise UsageError(
                f"categorical feature {feature['name']} has {buckets[feature['name']]} buckets in the manifest "
                f"but {feature['buckets']} in the model"
            )
    if missing:
        raise UsageError(f"the model needs feature(s) {', '.join(missing)} that the manifest does not list")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA device is available")
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    columns = data.Columns(
        numeric=tuple(model.numeric_features),
        categorical=tuple(f["name"] for f in model.categorical_features),
        buckets=tuple(int(f["buckets"]) for f in model.categorical_features),
        label=feature_manifest.label_column,
        id=feature_manifest.id_column,
        label_optional=True,
    )
    return InferenceJob(
        manifest=feature_manifest,
        split=split,
        model=model,
        output=args.output,
        columns=columns,
        batch_size=args.batch_size,
        device=torch.device("cuda") if use_cuda else torch.device("cpu"),
        prefetch_shards=args.prefetch_shards,
    )


@torch.inference_mode()
def score(scorer: PortableScorer, decoded: data.Decoded, batch_size: int, device: torch.device) -> np.ndarray:
    out = np.empty(len(decoded), dtype=np.float32)
    numeric, categorical = torch.from_numpy(decoded.numeric), torch.from_numpy(decoded.categorical)
    for start in range(0, len(decoded), batch_size):
        stop = min(start + batch_size, len(decoded))
        logits = scorer(numeric[start:stop].to(device), categorical[start:stop].to(device))
        out[start:stop] = torch.sigmoid(logits.float()).cpu().numpy()
    return out


def run(job: InferenceJob) -> dict[str, Any]:
    """Score every shard of the split, write the parts, then metrics.json; return the metrics."""
    split = job.manifest.split(job.split)
    scorer = PortableScorer(job.model).to(job.device).eval()
    metrics_uri = storage.join(job.output, "metrics.json")
    storage.delete(metrics_uri)  # uncommit the previous output while its files are replaced
    pieces = [data.Piece(i, shard, 0, shard.rows) for i, shard in enumerate(split.shards)]
    files, scores, labels = [], [], []
    labelled = True
    started = time.perf_counter()
    for piece, decoded in data.prefetched(pieces, job.columns, job.prefetch_shards):
        probabilities = score(scorer, decoded, job.batch_size, job.device)
        assert decoded.ids is not None
        columns: dict[str, pa.Array] = {
            job.manifest.id_column: decoded.ids,
            "score": pa.array(probabilities, pa.float32()),
        }
        if decoded.label is not None:
            columns[job.manifest.label_column] = pa.array(decoded.label.astype(np.int8), pa.int8())
            labels.append(decoded.label)
            scores.append(probabilities)
        else:
            labelled = False
        table = pa.table(columns)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        name = f"part-{piece.index:05d}.parquet"
        storage.write_bytes(storage.join(job.output, name), buffer.getvalue())
        files.append(
            {"uri": storage.join(job.output, name), "rows": table.num_rows, "shard": piece.shard.uri}
        )
        log.info("scored %s: %d rows -> %s", piece.shard.uri, table.num_rows, name)
    seconds = time.perf_counter() - started
    written = {f["uri"].rsplit("/", 1)[-1] for f in files}
    for name in storage.list_names(job.output):
        if _PART.match(name) and name not in written:
            storage.delete(storage.join(job.output, name))  # a stale part of an earlier, larger run
    rows = sum(f["rows"] for f in files)
    metrics: dict[str, Any] = {
        "format": METRICS_FORMAT,
        "rows": rows,
        "split": job.split,
        "manifest": job.manifest.uri,
        "model": job.model.uri,
        "labelled": labelled and bool(files),
        "files": files,
        "throughput_rows_per_s": rows / seconds if seconds > 0 else None,
        "device": job.device.type,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if metrics["labelled"]:
        report = classification_report(np.concatenate(labels), np.concatenate(scores))
        # As a workload's evaluation entrypoint reports its metric: {"test": {"auc": …}} for --split test.
        metrics[job.split] = {k: report[k] for k in ("auc", "log_loss", "positive_rate")}
    storage.write_bytes(metrics_uri, (json.dumps(metrics, indent=2) + "\n").encode())
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        job = preflight(argv, os.environ)
    except UsageError as exc:
        fail(PROG, exc)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        metrics = run(job)
    except DataError as exc:
        fail(PROG, exc)
    auc = metrics.get(job.split, {}).get("auc")
    log.info("wrote %d predictions under %s (AUC %s)", metrics["rows"], job.output, auc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

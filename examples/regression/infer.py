"""Inference for the regression example: the selected model on new readings' features.

Run by mlpipe's launcher (mlpipe_batch.run) with MLPIPE_INPUT = the inference feature manifest (what
emr_steps/inference_features.py writes: one `inference` split, no label) and MLPIPE_MODEL_DIR = the files
train.py wrote under `model/`. Writes `MLPIPE_OUTPUT_DIR/part-NNNNN.parquet`, one per input
shard, each with the manifest's id column (string) and `prediction` (double, in the label's units), then
`MLPIPE_OUTPUT_DIR/metrics.json` = `{"rows": int}`, the rows predicted. Rank 0 does the work; other ranks,
if any, exit 0 at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import scoring
import torch


def main() -> int:
    if scoring.single_rank():
        return 0
    manifest = scoring.load_manifest(os.environ["MLPIPE_INPUT"])
    model, spec = scoring.load_model(os.environ["MLPIPE_MODEL_DIR"], manifest)
    (split_name,) = manifest["splits"]  # an inference manifest has exactly one split
    output = Path(os.environ["MLPIPE_OUTPUT_DIR"])
    predictions = output  # the pipeline's output prefix is already the run's predictions/
    id_column, rows = manifest["id_column"], 0
    # Shard by shard: the memory stays one shard's, and part i of the output is shard i of the input.
    for i, shard in enumerate(manifest["splits"][split_name]["shards"]):
        one = {**manifest, "splits": {split_name: {"shards": [shard]}}}
        split = scoring.read_split(one, split_name, label=False, ids=True)
        predicted = scoring.predict(model, spec, split, torch.device("cpu"))
        table = pa.table({id_column: pa.array(split.ids, pa.string()), "prediction": pa.array(predicted)})
        pq.write_table(table, predictions / f"part-{i:05d}.parquet")
        rows += table.num_rows
    (output / "metrics.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    scoring.exit_now(main())

"""Evaluation for the regression example: the selected model on the held-out test split.

Run by mlpipe's launcher (mlpipe_batch.run) with MLPIPE_INPUT = the training feature manifest
(mlpipe.features.v1) and MLPIPE_MODEL_DIR = the files train.py wrote under `model/`. It loads the model as
infer.py does (scoring.py), scores every row of the manifest's `test` split (rows that neither training
nor model selection saw) and writes `MLPIPE_OUTPUT_DIR/metrics.json` =
`{"test": {"rmse": float}, "rows": int}`: the figure the quality gate compares with `metric.gate`.
Rank 0 does the work; other ranks, if any, exit 0 at once.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import scoring
import torch


def main() -> int:
    if scoring.single_rank():
        return 0
    manifest = scoring.load_manifest(os.environ["MLPIPE_INPUT"])
    model, spec = scoring.load_model(os.environ["MLPIPE_MODEL_DIR"], manifest)
    test = scoring.read_split(manifest, "test")
    assert test.label is not None
    if len(test.label) == 0:
        print("evaluate: the manifest's test split is empty", file=sys.stderr)
        return 1
    error = scoring.predict(model, spec, test, torch.device("cpu")) - test.label.astype(np.float64)
    metrics = {
        "test": {"rmse": math.sqrt(float(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))},
        "rows": len(error),
    }
    output = Path(os.environ["MLPIPE_OUTPUT_DIR"])
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    scoring.exit_now(main())

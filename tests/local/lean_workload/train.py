"""Ridge regression on the rows that are not held out; validation RMSE on a tenth of them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import data
import numpy as np


def main() -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    ridge = float(json.loads(os.environ["MLPIPE_HYPERPARAMETERS"]).get("ridge", 0.0))
    ids, x, y = data.read(os.environ["MLPIPE_INPUT"])
    keep = ~data.held_out(ids)
    validation = keep & (ids % 10 == 1)
    fit = keep & ~validation
    a = np.column_stack([x[fit], np.ones(fit.sum())])
    weights = np.linalg.solve(a.T @ a + ridge * np.eye(3), a.T @ y[fit])
    model = Path(os.environ["MLPIPE_OUTPUT_DIR"]) / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "model.json").write_text(json.dumps({"weights": weights.tolist()}))
    error = data.predict(str(model), x[validation]) - y[validation]
    data.write_metrics("validation", {"rmse": float(np.sqrt(np.mean(error**2)))})


if __name__ == "__main__":
    main()

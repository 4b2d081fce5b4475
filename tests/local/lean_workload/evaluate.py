"""The selected model's RMSE on the held-out rows: the quality gate's figure."""

from __future__ import annotations

import os

import data
import numpy as np


def main() -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    ids, x, y = data.read(os.environ["MLPIPE_INPUT"])
    test = data.held_out(ids)
    error = data.predict(os.environ["MLPIPE_MODEL_DIR"], x[test]) - y[test]
    data.write_metrics("test", {"rmse": float(np.sqrt(np.mean(error**2))), "rows": int(test.sum())})


if __name__ == "__main__":
    main()

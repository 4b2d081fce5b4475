"""Raw CSV for the lean test workload: id, x1, x2, y = 2 x1 - x2 + 0.5 + noise (sd 0.1)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.rows, 2))
    y = 2 * x[:, 0] - x[:, 1] + 0.5 + rng.normal(scale=0.1, size=args.rows)
    raw = args.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    lines = [
        "id,x1,x2,y",
        *(
            f"{i},{a:.6f},{b:.6f},{c:.6f}"
            for i, (a, b, c) in enumerate(zip(x[:, 0], x[:, 1], y, strict=True))
        ),
    ]
    (raw / "part-0.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

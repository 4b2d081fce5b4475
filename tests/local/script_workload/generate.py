"""Raw CSV for the scripted test workload: id, a, b, grp, label = [a - b + 0.5 * (grp is odd) + noise > 0],
with one unparsable line and one repeated id per hundred rows."""

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
    a, b = rng.normal(size=(2, args.rows))
    grp = rng.integers(0, 6, size=args.rows)
    label = (a - b + 0.5 * (grp % 2) + rng.normal(scale=0.3, size=args.rows) > 0).astype(int)
    lines = ["id,a,b,grp,label"]
    for i in range(args.rows):
        lines.append(f"r{i},{a[i]:.5f},{b[i]:.5f},g{grp[i]},{label[i]}")
        if i % 100 == 50:
            lines.append(f"bad{i},not-a-number,{b[i]:.5f},g{grp[i]},{label[i]}")
        if i % 100 == 70:
            lines.append(lines[-1])  # the same record delivered twice
    raw = args.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "part-0.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

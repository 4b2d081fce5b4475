"""Synthetic click events for the clickstream example, and the truth they were drawn from.

    python examples/clickstream/generate.py --rows N --seed S --out DIR [--gzip] [--dirty-fraction F] ...

Writes the raw JSON Lines files under DIR/raw/ and DIR/truth.parquet (each event's true conversion
probability and its label), then prints a JSON summary. `mlpipe local run` calls it (workload.toml's
`raw.generator`) with --rows, --seed and --out when it is given no raw files. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from generator import GeneratorConfig, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="generate.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="raw lines to write (dirty rows included)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="folder: DIR/raw/ and DIR/truth.parquet are written")
    parser.add_argument("--dirty-fraction", type=float, default=0.02)
    parser.add_argument("--rows-per-file", type=int, default=250_000)
    parser.add_argument("--gzip", action="store_true", help="write .jsonl.gz files")
    parser.add_argument("--users", type=int, default=None, help="distinct users (default: rows/20, capped)")
    parser.add_argument("--items", type=int, default=None, help="distinct items (default: rows/100, capped)")
    parser.add_argument("--start", default="2026-01-01T00:00:00Z", help="time of the first event (UTC)")
    parser.add_argument("--days", type=int, default=28, help="time span of the events")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        config = GeneratorConfig(
            rows=args.rows,
            output=str(out / "raw"),
            seed=args.seed,
            truth=str(out / "truth.parquet"),
            dirty_fraction=args.dirty_fraction,
            rows_per_file=args.rows_per_file,
            gzip=args.gzip,
            n_users=args.users,
            n_items=args.items,
            start=args.start,
            days=args.days,
        )
        started = time.perf_counter()
        result = generate(config)
    except ValueError as exc:
        print(f"generate.py: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    summary = {
        "rows": result.rows,
        "events": result.events,
        "files": len(result.files),
        "truth": result.truth,
        "dirty": result.dirty_counts,
        "seconds": round(seconds, 3),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

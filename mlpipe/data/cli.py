"""`mlpipe data ...`: the dataset subcommands, registered on the top-level CLI by `mlpipe.cli`."""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(parser: argparse.ArgumentParser) -> None:
    """Add the `data` subcommands to `parser` (the `mlpipe data` parser)."""
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    gen = sub.add_parser(
        "generate",
        help="write synthetic raw event logs (JSON Lines) and their truth file",
        description="Write deterministic synthetic raw event logs for the reference workload.",
    )
    gen.add_argument("--rows", type=int, required=True, help="raw lines to write (dirty rows included)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--output", required=True, help="folder: local path or s3://bucket/prefix/")
    gen.add_argument("--truth", default=None, help="truth Parquet file (default: <output>_truth.parquet)")
    gen.add_argument("--dirty-fraction", type=float, default=0.02)
    gen.add_argument("--rows-per-file", type=int, default=250_000)
    gen.add_argument("--gzip", action="store_true", help="write .jsonl.gz files")
    gen.add_argument("--users", type=int, default=None, help="distinct users (default: rows/20, capped)")
    gen.add_argument("--items", type=int, default=None, help="distinct items (default: rows/100, capped)")
    gen.add_argument("--start", default="2026-01-01T00:00:00Z", help="time of the first event (UTC)")
    gen.add_argument("--days", type=int, default=28, help="time span of the events")
    gen.set_defaults(handler=_generate)

    auc = sub.add_parser("bayes-auc", help="print the Bayes-optimal AUC from a truth file")
    auc.add_argument("--truth", required=True)
    auc.add_argument("--realized", action="store_true", help="AUC against the drawn labels")
    auc.set_defaults(handler=_bayes_auc)


def _generate(args: argparse.Namespace) -> int:
    from mlpipe.data.generator import GeneratorConfig, generate

    cfg = GeneratorConfig(
        rows=args.rows,
        output=args.output,
        seed=args.seed,
        truth=args.truth,
        dirty_fraction=args.dirty_fraction,
        rows_per_file=args.rows_per_file,
        gzip=args.gzip,
        n_users=args.users,
        n_items=args.items,
        start=args.start,
        days=args.days,
    )
    started = time.perf_counter()
    result = generate(cfg)
    seconds = time.perf_counter() - started
    summary = {
        "rows": result.rows,
        "events": result.events,
        "files": len(result.files),
        "truth": result.truth,
        "dirty": result.dirty_counts,
        "seconds": round(seconds, 3),
        "rows_per_s": round(result.rows / seconds),
    }
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0


def _bayes_auc(args: argparse.Namespace) -> int:
    from mlpipe.data.truth import bayes_optimal_auc

    print(f"{bayes_optimal_auc(args.truth, realized=args.realized):.6f}")
    return 0

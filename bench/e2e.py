"""End-to-end benchmark of local mode: `mlpipe local run` at several sizes, time and peak memory.

    .venv/bin/python bench/e2e.py                                  # 100k, 1M and 10M rows (tens of minutes)
    .venv/bin/python bench/e2e.py --rows 100000,1000000 --candidates 2
    .venv/bin/python bench/e2e.py --workload examples/regression --rows 120000   # its own candidates
    .venv/bin/python bench/e2e.py --workload init      # what `mlpipe workload init` writes, on its sample

Each size is one `mlpipe local run` in a fresh work folder (the app is synthesized once, before any
timing, and reused by every run). Prints, per size: wall time, peak resident memory of the whole process tree (the CLI, the
moto server thread, Spark's JVMs, the PyTorch workers; sampled every 0.2 s from /proc), the chosen model's
test figure against what the example's generator knows (clickstream: the Bayes-optimal AUC on the same test
events; regression: the noise floor of the RMSE), and the share of each stage; then the growth of time and memory from one size to the next
against the growth of rows (time growing no faster than linearly: a ratio of at most 1.0). Writes everything
to bench/results/e2e.json. It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
# Stages in pipeline order: the run's own, then the state machine's top-level states.
STAGES = ("synth", "generate", "stage input", "provision", "upload", "state:Plan", "state:PrepareData",
          "state:BuildFeatures", "state:ExpandCandidates", "state:TrainAndPrepareInference", "state:SelectModel",
          "state:EvaluateModel", "state:QualityGate", "state:Publish", "state:Summarize", "snapshot")  # fmt: skip


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            statm = Path(f"/proc/{entry}/statm").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        rss[int(entry)] = int(statm.split()[1]) * PAGE
    total, todo = 0, [root]
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def quality(workload: Path, workdir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The test figure against the generator's truth, for the two examples; the figure alone otherwise."""
    found: dict[str, Any] = {"metric": summary["metric"], "test_value": summary["test_value"]}
    if workload.name == "clickstream":
        sys.path.insert(0, str(workload))
        from truth import local_run_quality

        found.update(local_run_quality(workdir))
        found["floor"], found["ratio"] = found["bayes_auc"], found["auc_ratio"]
    elif workload.name == "regression":
        floor = json.loads((workdir / "data" / "truth.json").read_text())["noise_sd"]
        found["floor"], found["ratio"] = floor, round(summary["test_value"] / floor, 4)
    return found


def run(
    workload: Path, rows: int, candidates: int | None, workdir: Path, cdk_out: Path, log: Path
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "mlpipe", "local", "run", "--workload", str(workload), "--rows", str(rows),
            "--workdir", str(workdir), "--cdk-out", str(cdk_out)]  # fmt: skip
    if candidates is not None:
        argv += ["--candidates", str(candidates)]
    peak = 0
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.2):
                peak = max(peak, tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"mlpipe local run --rows {rows} failed ({code}); see {log}")
    summary = json.loads((workdir / "summary.json").read_text())
    seconds = summary["seconds"]
    return {
        "workload": workload.name,
        "rows": rows,
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(peak / 2**30, 2),
        "rows_in": summary["rows_in"],
        "rows_curated": summary["rows_curated"],
        "rows_quarantined": summary["rows_quarantined"],
        "duplicates_removed": summary["duplicates_removed"],
        **quality(workload, workdir, summary),
        "stages_s": {stage: seconds.get(stage, 0.0) for stage in STAGES},
        "state_s": {k: v for k, v in seconds.items() if k.startswith("state:")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000,10000000", help="comma-separated sizes")
    parser.add_argument(
        "--workload",
        type=Path,
        default=REPO / "examples" / "clickstream",
        help="a workload folder, or `init`: a new workload written by `mlpipe workload init`",
    )
    parser.add_argument("--candidates", type=int, default=None, help="the workload's first K (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.rows.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="mlpipe-e2e-"))
    cdk_out = scratch / "cdk.out"
    results = []
    try:
        from mlpipe.local.mode import synthesize

        workload = args.workload.absolute()
        if str(args.workload) == "init":
            workload = scratch / "init-workload"
            subprocess.run([sys.executable, "-m", "mlpipe", "workload", "init", str(workload)], check=True)
        synthesize(cdk_out, [workload])  # once, before the clock: every run below reuses it
        for rows in sizes:
            print(f"mlpipe local run --workload {args.workload} --rows {rows:,} ...", flush=True)
            log = scratch / f"run-{rows}.log"
            result = run(workload, rows, args.candidates, scratch / f"run-{rows}", cdk_out, log)
            results.append(result)
            print(
                f"  {result['wall_s']:8.1f} s wall, peak RSS {result['peak_rss_gib']:.2f} GiB, "
                f"{result['rows_in']:,} rows in = {result['rows_curated']:,} curated + "
                f"{result['rows_quarantined']:,} quarantined + {result['duplicates_removed']:,} duplicates; "
                f"test {result['metric']} {result['test_value']:.4f} = {result.get('ratio')} x the floor "
                f"{result.get('floor')} (validation AUC ratio: {result.get('validation_auc_ratio', '-')})",
                flush=True,
            )
            if not args.keep:
                shutil.rmtree(scratch / f"run-{rows}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(cdk_out, ignore_errors=True)
    print("\nshare of wall time per stage (%):")
    print(f"{'stage':34}" + "".join(f"{r['rows']:>12,}" for r in results))
    for stage in STAGES:
        print(f"{stage:34}" + "".join(f"{100 * r['stages_s'][stage] / r['wall_s']:12.1f}" for r in results))
    print(f"{'wall s':34}" + "".join(f"{r['wall_s']:12.1f}" for r in results))
    print(f"{'peak RSS GiB':34}" + "".join(f"{r['peak_rss_gib']:12.2f}" for r in results))
    growth = []
    for small, large in itertools.pairwise(results):
        rows_x = large["rows"] / small["rows"]
        time_x = large["wall_s"] / small["wall_s"]
        growth.append(
            {
                "from": small["rows"],
                "to": large["rows"],
                "rows_x": rows_x,
                "time_x": round(time_x, 2),
                "time_x_over_rows_x": round(time_x / rows_x, 3),
                "memory_x": round(large["peak_rss_gib"] / small["peak_rss_gib"], 2),
            }
        )
        print(
            f"{small['rows']:,} -> {large['rows']:,}: rows x{rows_x:g}, time x{time_x:.2f} "
            f"(time growth / row growth = {time_x / rows_x:.3f}), memory x{growth[-1]['memory_x']}"
        )
    out = REPO / "bench" / "results" / f"e2e-{args.workload.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"machine_cpus": os.cpu_count(), "runs": results, "growth": growth}, indent=2) + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

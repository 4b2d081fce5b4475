"""Local runs in one process, each on a Spark host of its own or all on one host that their caller shares.

    .venv/bin/python bench/shared_spark.py                     # the `init` workload, 3 runs each way
    .venv/bin/python bench/shared_spark.py --workload examples/regression --rows 8000 --runs 2

The app is synthesized once, before any timing, and one run on the shared host starts it (not counted). Then
the runs alternate, one on a host of its own (what `mlpipe local run` does) and one on the shared host, so
that load on the machine hits both alike. Prints, per run: its wall time and the machine's busy CPU seconds
over it (/proc/stat: the JVM and the job processes included, so run it on an otherwise idle machine), split
into this process's (the harness, moto's server, the Lambdas), its reaped children's (the Batch job processes,
and the Python side of a host of the run's own) and the rest (Spark's JVM, which no process of the run reaps);
then the medians and the ratios. It asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from suite import busy_seconds  # noqa: E402  (bench/ leads sys.path: this script's folder)

from mlpipe.commands.workload import init_workload  # noqa: E402
from mlpipe.local.jobs import SparkHost  # noqa: E402
from mlpipe.local.mode import LocalRun, Printer, spark_driver, synthesize  # noqa: E402
from mlpipe.local.options import Options  # noqa: E402


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def one_run(folder: Path, workdir: Path, cdk_out: Path, rows: int, host: SparkHost | None) -> list[float]:
    """Wall time, busy CPU, this process's CPU and its reaped children's over one run."""
    shutil.rmtree(workdir, ignore_errors=True)
    busy, started = busy_seconds(), time.perf_counter()
    own, children = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    run = LocalRun(workdir, printer=Printer(lambda line: None), cdk_out=cdk_out, spark_host=host)
    summary = run.run(Options(workload=folder, workdir=workdir, rows=rows))
    if summary["status"] != "SUCCEEDED":
        raise SystemExit(f"the run in {workdir} ended {summary['status']}: {summary.get('failure')}")
    return [
        time.perf_counter() - started,
        busy_seconds() - busy,
        cpu(resource.RUSAGE_SELF) - own,
        cpu(resource.RUSAGE_CHILDREN) - children,
    ]


def line(run: list[float]) -> str:
    wall, busy, own, children = run
    return (
        f"{wall:6.1f} s  {busy:6.1f} CPU s: this process {own:4.1f}, the job processes {children:4.1f},"
        f" the rest (Spark's JVM) {busy - own - children:4.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="init", help="a workload folder, or init (default)")
    parser.add_argument("--rows", type=int, default=20_000, help="rows for the workload's generator")
    parser.add_argument("--runs", type=int, default=3, help="runs each way (default 3)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-") as tmp:
        root = Path(tmp)
        if args.workload == "init":
            folder = root / "churn-demo"
            init_workload(folder)
        else:
            folder = Path(args.workload).resolve()
        cdk_out = root / "cdk.out"
        synthesize(cdk_out, [folder])
        host = SparkHost(spark_driver(args.rows), log=root / "spark-host.log", scratch=root / "spark-scratch")
        try:
            one_run(folder, root / "warm-up", cdk_out, args.rows, host)
            figures: dict[str, list[list[float]]] = {"own host": [], "shared host": []}
            for i in range(args.runs):
                for label, given in (("own host", None), ("shared host", host)):
                    run = one_run(folder, root / f"run-{i}", cdk_out, args.rows, given)
                    figures[label].append(run)
                    print(f"run {i + 1}  {label:<12} {line(run)}", flush=True)
        finally:
            host.close()
    print(f"workload    {args.workload}, {args.runs} runs each way; load {os.getloadavg()[0]:.2f} at the end")
    medians = {
        label: [statistics.median(f[k] for f in runs) for k in range(4)] for label, runs in figures.items()
    }
    for label, run in medians.items():
        print(f"median      {label:<12} {line(run)}")
    (own_wall, own_cpu, *_), (shared_wall, shared_cpu, *_) = medians["own host"], medians["shared host"]
    print(f"shared/own  {shared_wall / own_wall:.2f} of the wall time, {shared_cpu / own_cpu:.2f} of the CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())

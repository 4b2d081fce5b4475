"""The test suite's wall time and the CPU it used, in one run, with a reading of the machine's speed.

The suite runs as `make test` runs it (`pytest -n 2 --dist loadgroup --no-loadscope-reorder`, after setup),
quietly (`-q`) and without pytest's cache, so that one run does not reorder the next, and like `make test` with
Python's compiled modules kept (PYTHONDONTWRITEBYTECODE removed from the environment).
Its wall time is pytest's own figure. Its CPU is every process's, the JVMs and job processes included: the
machine's busy time (/proc/stat) over the run, so run it on an otherwise idle machine. The speed reading is
the median time of `import torch` in a new process, before and after: on this kind of shared VM it has moved
from about 2.5 s to 7 s within an hour, and the suite with it.
Then where the CPU went: by xdist group and for the costliest tests, each test with its worker's CPU and its
descendant processes' while it ran (bench/plugins/cpu_per_test.py). The rest of the busy time is the workers'
start-up and collection, and what runs between tests.

    .venv/bin/python bench/suite.py [pytest arguments, e.g. tests/local]
"""

from __future__ import annotations

import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTEST = [
    "-m",
    "pytest",
    "-n",
    "2",
    "--dist",
    "loadgroup",
    "--no-loadscope-reorder",
    "-q",
    "-p",
    "no:cacheprovider",
]


def busy_seconds() -> float:
    """CPU seconds that the machine has spent busy since boot: user, nice, system, irq and softirq time."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    )
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def import_torch_seconds(repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str]) -> int:
    before = import_torch_seconds()
    load = os.getloadavg()[0]
    busy, started = busy_seconds(), time.perf_counter()
    # As `make test`, which unexports it: without compiled modules every process compiles mlpipe again.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    # The plugin's folder holds nothing else: every process the tests start inherits the path.
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "bench" / "plugins"), env.get("PYTHONPATH")])
    )
    with tempfile.TemporaryDirectory(prefix="mlpipe-suite-") as folder:
        log = Path(folder) / "cpu.jsonl"
        env["BENCH_TEST_CPU_LOG"] = str(log)
        command = [sys.executable, *PYTEST, "-p", "cpu_per_test", *argv]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        tests = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    wall, cpu = time.perf_counter() - started, busy_seconds() - busy
    after = import_torch_seconds()
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    reported = re.search(r" in ([\d.]+)s", last)
    if done.returncode != 0 or reported is None:
        print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
        print(f"bench/suite.py: the suite failed ({done.returncode})", file=sys.stderr)
        return 1
    print(f"suite       {last.strip('= ')}")
    print(f"wall        {float(reported.group(1)):.1f} s (pytest), {wall:.1f} s with start-up")
    print(
        f"cpu         {cpu:.0f} s busy on {os.cpu_count()} cores ({cpu / wall / (os.cpu_count() or 1):.0%} of them)"
    )
    print(f"speed       import torch {before:.2f} s before, {after:.2f} s after (median of 3)")
    print(f"load        {load:.2f} before the run")
    print_per_test(tests, cpu)
    return 0


def print_per_test(tests: list[dict[str, Any]], busy: float, top: int = 16) -> None:
    total = sum(t["cpu"] for t in tests)
    print(
        f"tests       {total:.0f} CPU s in the tests, their processes included ({total / busy:.0%} of busy)"
    )
    groups: collections.Counter[str] = collections.Counter()
    for test in tests:
        groups[test["group"] or "(no group)"] += test["cpu"]
    print("by group    " + ", ".join(f"{name} {cpu:.0f}" for name, cpu in groups.most_common()))
    for test in sorted(tests, key=lambda t: -t["cpu"])[:top]:
        print(f"{test['cpu']:8.1f} s  {test['test']}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

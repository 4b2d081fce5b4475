"""Synth time of the whole mlpipe app against a minimal one-stack app (the jsii floor), in one run.

Both are synthesized through the pinned CDK CLI (`cdk synth`, what `make synth` runs) and as the bare app
process (`python app.py`), alternately, several times; the medians and their ratio are printed.
Budget: full app at most 2.5x the minimal app through the CLI. Also printed: the ratio against a minimal app
that, like the full app, validates its templates in a process of its own (bench/minimal_app.py).

    .venv/bin/python bench/synth.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CDK = ROOT / "node_modules" / ".bin" / "cdk"


def _cdk_synth(out: str) -> list[str]:
    """`cdk synth` into `out`, quiet and offline (the app from cdk.json unless `-a` follows)."""
    return [str(CDK), "synth", "--quiet", "--no-notices", "--no-version-reporting", "--ci", "-o", out]


def _env(context: dict[str, object] | None, outdir: str, validation: str = "") -> dict[str, str]:
    env = {
        **os.environ,
        "MLPIPE_BENCH_VALIDATION": validation,  # bench/minimal_app.py: "process" for the second floor
        "PATH": f"{ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}",
        "CDK_DISABLE_CLI_TELEMETRY": "1",
        "CDK_OUTDIR": outdir,
        "JSII_NODE": str(ROOT / "scripts" / "jsii-node"),  # both apps on the jsii node that app.py uses
    }
    if context is not None:  # the bare app process, given cdk.json's context as the CLI passes it
        env["CDK_CONTEXT_JSON"] = json.dumps(context)
    return env


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (the process tree's user + system time: steadier on a busy machine)."""
    start, cpu = time.perf_counter(), _cpu()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench/synth.py: {' '.join(cmd[:3])} failed:\n{result.stderr[-2000:]}")
    return elapsed, _cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant (default 3)")
    args = parser.parse_args()
    if not CDK.exists():
        sys.exit("bench/synth.py: node_modules/.bin/cdk is missing: run `make setup` first")
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    python = sys.executable
    variants = {
        "minimal (cdk synth)": lambda out: _timed(
            [*_cdk_synth(out), "-a", f"{python} bench/minimal_app.py"], _env(None, out)
        ),
        "full app (cdk synth)": lambda out: _timed(_cdk_synth(out), _env(None, out)),
        "minimal, validating apart": lambda out: _timed(
            [*_cdk_synth(out), "-a", f"{python} bench/minimal_app.py"], _env(None, out, "process")
        ),
        "minimal (app process)": lambda out: _timed([python, "bench/minimal_app.py"], _env({}, out)),
        "full app (app process)": lambda out: _timed([python, "app.py"], _env(context, out)),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-synth-") as tmp:
        for i in range(args.repeat):
            for name, run in variants.items():  # alternate, so machine noise hits every variant alike
                wall, cpu = run(str(Path(tmp) / f"{i}-{len(times[name])}-{name.split()[0]}"))
                times[name].append(wall)
                cpus[name].append(cpu)
    median = {name: statistics.median(t) for name, t in times.items()}
    cpu = {name: statistics.median(t) for name, t in cpus.items()}
    load = os.getloadavg()[0]
    print(f"synth time, median of {args.repeat} runs on {os.cpu_count()} cores (load average {load:.1f})")
    for name, t in times.items():
        print(
            f"  {name:28s} wall {median[name]:6.2f} s  cpu {cpu[name]:6.2f} s   walls: {', '.join(f'{x:.2f}' for x in t)}"
        )
    for label, full, minimal in (
        ("through the CLI", "full app (cdk synth)", "minimal (cdk synth)"),
        ("app process", "full app (app process)", "minimal (app process)"),
        ("CLI, both apart", "full app (cdk synth)", "minimal, validating apart"),
    ):
        print(
            f"ratio full/minimal {label:16s} wall {median[full] / median[minimal]:.2f}x  "
            f"cpu {cpu[full] / cpu[minimal]:.2f}x"
            + ("   (budget: wall <= 2.5x)" if label == "through the CLI" else "")
        )
    print(
        "  (the full app validates its templates in a process of its own, on the second core; 'both apart' is the\n"
        "   ratio against a minimal app that does the same (cdk synth): the full app's extra work, without that gain)"
    )


if __name__ == "__main__":
    main()

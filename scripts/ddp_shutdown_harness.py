"""Two-node gloo training runs on 127.0.0.1, to reproduce node 1's abort at exit and to soak the shutdown.

    python scripts/ddp_shutdown_harness.py inject --runs 10 [--ref HEAD | --src DIR]
    python scripts/ddp_shutdown_harness.py soak --runs 200 --load 2 [--ref HEAD | --src DIR]

Each run is `python -m mlpipe_batch.train` twice, as an AWS Batch multi-node parallel job of two nodes (the
environment of tests/batch_containers/test_batch_distributed.py, local files instead of S3), on a small
synthetic feature set. A run counts as an abort when a node prints "terminate called" or dies of SIGABRT.

The abort: a gloo worker thread ("pt_gloo_runloop") that finishes a collective drops its reference to the
collective's tensors after the caller has returned. When Python already let go of them, the last reference is
the worker's, and freeing the tensor takes the GIL (c10::TensorImpl::~TensorImpl -> decref_pyobject ->
pybind11::gil_scoped_acquire). If the process group is still alive when the interpreter finalizes (before the
fix it was: destroy_process_group() dropped only torch's own references, while DDP's reducer and the default
arguments of torch.distributed.nn.functional kept it), and the worker gets the GIL then, CPython 3.11 ends the
thread with pthread_exit inside that noexcept destructor: std::terminate, "terminate called without an active
exception". Once destroy_process_group() frees the group, its workers are joined before exit, and the hold
below only delays destroy_process_group() by up to --hold-ms.

inject: on node 1 only, a preloaded shim (compiled here from the C below) holds the gloo worker that finished
the last all_gather before it drops that work, until the interpreter starts to exit (or --hold-ms pass): the
timing of a worker descheduled on a loaded machine. A sitecustomize on node 1's PYTHONPATH arms the hold
before every all_gather, and lets a held worker go before the next collective other than a barrier, so only
the last one (before the final barrier) is still held at exit; its last atexit callback releases it and keeps
the GIL a moment, so the worker waits for the GIL while the interpreter finalizes. The product code is
unchanged; only node 1's environment differs.

soak: plain runs (no shim) while --load busy-loop processes compete for the CPUs.

--ref REF exports batch_containers/src at a git revision (git archive; the working tree is not touched), so
the code before a fix can be run beside the working tree's. Prints counts and seconds only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "batch_containers" / "src"
HP = {
    "epochs": 4,
    "batch_size": 128,
    "lr": 0.01,
    "hidden": [64, 32],
    "embedding_dim": 8,
    "log_every_steps": 0,
}
ROWS = {"train": 6000, "validation": 2000, "test": 1000}

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

extern int __pthread_mutex_lock(pthread_mutex_t *);

static atomic_int armed;
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;
static unsigned long release_seq;
static int exiting;
static __thread int in_shim;
static __thread int gloo_worker = -1;

static void hold(void) {
    const char *env = getenv("MLPIPE_HARNESS_HOLD_MS");
    long ms = env ? atol(env) : 5000;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    __pthread_mutex_lock(&hold_mu);
    unsigned long seq = release_seq;
    int timed_out = 0;
    while (release_seq == seq && !timed_out)
        timed_out = pthread_cond_timedwait(&hold_cv, &hold_mu, &deadline) == ETIMEDOUT;
    int at_exit = exiting;
    pthread_mutex_unlock(&hold_mu);
    if (timed_out || at_exit)
        fprintf(stderr, "harness-shim: held gloo worker goes on (%s)\n", timed_out ? "hold timed out" : "at exit");
}

/* Hold a gloo worker at the lock it takes right after finishing a work, before it drops the work. */
int pthread_mutex_lock(pthread_mutex_t *mutex) {
    if (atomic_load_explicit(&armed, memory_order_relaxed) && !in_shim) {
        in_shim = 1;
        if (gloo_worker < 0) {
            char name[16] = {0};
            prctl(PR_GET_NAME, name);
            gloo_worker = strcmp(name, "pt_gloo_runloop") == 0;
        }
        Dl_info info;
        if (gloo_worker && dladdr(__builtin_return_address(0), &info) && info.dli_sname &&
            strcmp(info.dli_sname, "_ZN4c10d16ProcessGroupGloo7runLoopEi") == 0) {
            int expected = 1;
            if (atomic_compare_exchange_strong(&armed, &expected, 0)) hold();
        }
        in_shim = 0;
    }
    return __pthread_mutex_lock(mutex);
}

void harness_arm(void) { atomic_store(&armed, 1); }

void harness_release(void) {
    atomic_store(&armed, 0);
    __pthread_mutex_lock(&hold_mu);
    release_seq++;
    pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
}

/* Called as the last atexit callback, with the GIL held: release the held worker and keep the GIL a while,
   so that the worker waits for it while the interpreter finalizes. */
int harness_release_at_exit(void) {
    __pthread_mutex_lock(&hold_mu);
    exiting = 1;
    pthread_mutex_unlock(&hold_mu);
    harness_release();
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do clock_gettime(CLOCK_MONOTONIC, &now);
    while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < 200);
    return 0;
}
"""

SITECUSTOMIZE = """
import atexit, ctypes, os

_shim = ctypes.PyDLL(os.environ["MLPIPE_HARNESS_SHIM"])
atexit.register(_shim.harness_release_at_exit)  # registered first, so it runs last

import torch.distributed as _dist


def _wrap(name, arm):
    original = getattr(_dist, name)

    def wrapper(*args, **kwargs):
        _shim.harness_release()
        if arm:
            _shim.harness_arm()
        return original(*args, **kwargs)

    setattr(_dist, name, wrapper)


for _name in ("all_reduce", "broadcast", "broadcast_object_list"):
    _wrap(_name, False)
_wrap("all_gather", True)
"""


@dataclass
class Run:
    codes: list[int | None]
    aborted: bool
    hung: bool
    held: bool
    """inject: node 1's gloo worker was still held when the process group was torn down or the process exited."""
    seconds: float
    logs: list[str]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(src: Path, extra: dict[str, str]) -> dict[str, str]:
    """As tests/batch_containers/conftest.py's child_env: no outer AWS Batch or torchrun variables."""
    drop = (
        "AWS_BATCH_",
        "MLPIPE_",
        "RANK",
        "LOCAL_RANK",
        "WORLD_SIZE",
        "MASTER_",
        "AWS_ENDPOINT_URL",
        "LD_PRELOAD",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(PYTHONPATH=str(src), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    env.update(extra)
    return env


def build_injection(work: Path) -> tuple[Path, Path]:
    """The shim (compiled with the C compiler found here) and the folder holding node 1's sitecustomize."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise SystemExit("inject needs a C compiler (cc or gcc) to build its shim")
    (work / "shim.c").write_text(SHIM_C)
    shim = work / "shim.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(shim), str(work / "shim.c"), "-ldl", "-pthread"],
        check=True,
    )
    site = work / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return shim, site


def export_ref(ref: str, work: Path) -> Path:
    target = work / "ref"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "batch_containers/src"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "batch_containers" / "src"


def write_dataset(src: Path, work: Path) -> str:
    code = (
        "import sys; from mlpipe_batch import synthetic; "
        f"d = synthetic.write_dataset(sys.argv[1], rows={ROWS!r}, shards=3, seed=7); print(d.manifest_uri)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(work / "features")],
        env=child_env(src, {}),
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def two_node_run(
    index: int,
    src: Path,
    manifest: str,
    work: Path,
    timeout: float,
    injection: tuple[Path, Path] | None,
    hold_ms: int,
) -> Run:
    out = work / f"run-{index:04d}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    common = {
        "AWS_BATCH_JOB_NUM_NODES": "2",
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
        "MLPIPE_MASTER_PORT": str(free_port()),
    }
    node1 = {
        **common,
        "AWS_BATCH_JOB_NODE_INDEX": "1",
        "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "127.0.0.1",
    }
    envs = [child_env(src, {**common, "AWS_BATCH_JOB_NODE_INDEX": "0"}), child_env(src, node1)]
    if injection is not None:
        shim, site = injection
        envs[1].update(
            PYTHONPATH=f"{site}{os.pathsep}{src}",
            LD_PRELOAD=str(shim),
            MLPIPE_HARNESS_SHIM=str(shim),
            MLPIPE_HARNESS_HOLD_MS=str(hold_ms),
        )
    argv = [
        sys.executable, "-m", "mlpipe_batch.train",
        "--manifest", manifest,
        "--output", str(out / "output"),
        "--checkpoint", str(out / "checkpoints"),
        "--hyperparameters", json.dumps(HP),
    ]  # fmt: skip
    started = time.monotonic()
    logs = [(out / f"node{i}.log").open("w+b") for i in range(2)]
    procs: list[subprocess.Popen[bytes]] = []
    hung = False
    try:
        for env, log in zip(envs, logs, strict=True):
            procs.append(
                subprocess.Popen(argv, env=env, stdout=log, stderr=log, cwd=out, start_new_session=True)
            )
        deadline = started + timeout
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                hung = True
                break
            time.sleep(0.05)
    finally:
        for proc in procs:
            kill_group(proc)
    seconds = time.monotonic() - started
    texts = []
    for log in logs:
        log.seek(0)
        texts.append(log.read().decode(errors="replace"))
        log.close()
    codes = [p.returncode for p in procs]
    aborted = any("terminate called" in t for t in texts) or -signal.SIGABRT in codes
    held = "harness-shim: held gloo worker goes on" in texts[1]
    return Run(codes, aborted, hung, held, seconds, texts)


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """`processes` busy loops for the duration of the block, each stopped by its process id at the end."""
    loads = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(processes)
    ]
    try:
        yield
    finally:
        for proc in loads:
            kill_group(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("inject", "soak"))
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes during the runs")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--src", type=Path, default=SRC, help="folder holding mlpipe_batch (default: this tree)"
    )
    where.add_argument("--ref", help="git revision whose batch_containers/src to run instead")
    parser.add_argument("--hold-ms", type=int, default=5000, help="inject: longest hold of the gloo worker")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per two-node run")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600.0, help="no new run after this")
    parser.add_argument("--keep", type=Path, help="copy the logs of the runs that did not exit 0 here")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below

    with contextlib.ExitStack() as stack:
        if args.work:
            work = args.work
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ddp-harness-")))
        src = export_ref(args.ref, work) if args.ref else args.src.resolve()
        manifest = write_dataset(src, work)
        injection = build_injection(work) if args.mode == "inject" else None
        stack.enter_context(cpu_load(args.load))
        started = time.monotonic()
        done = aborts = hangs = failures = held = 0
        for index in range(args.runs):
            if time.monotonic() - started > args.max_seconds:
                break
            run = two_node_run(index, src, manifest, work, args.timeout, injection, args.hold_ms)
            done += 1
            aborts += run.aborted
            hangs += run.hung
            held += run.held
            bad = run.hung or run.aborted or run.codes != [0, 0]
            failures += bad and not (run.aborted or run.hung)
            print(
                f"run {index + 1}/{args.runs}: exit codes {run.codes}, "
                f"{'abort' if run.aborted else 'hang' if run.hung else 'ok' if not bad else 'failed'}, "
                f"{run.seconds:.1f} s",
                flush=True,
            )
            if bad and args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for i, text in enumerate(run.logs):
                    (args.keep / f"run-{index:04d}-node{i}.log").write_text(text)
            shutil.rmtree(work / f"run-{index:04d}", ignore_errors=True)
        elapsed = time.monotonic() - started
    engaged = f", worker held at teardown in {held}" if args.mode == "inject" else ""
    print(
        f"{args.mode}: {done} runs, {aborts} aborts, {hangs} hangs, {failures} other failures{engaged}, "
        f"load {args.load}, {elapsed:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

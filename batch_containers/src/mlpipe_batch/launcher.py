"""Where this process sits in the job, and the launcher of local workers (no PyTorch import here, so usage
errors are reported at once).

One command, three modes (docs/training.md):

- single process: no distributed environment and one local device (one GPU, or the CPU);
- worker: launched by torchrun or by our launcher (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
  are set), or one process per node in an AWS Batch multi-node parallel job;
- launcher: several local devices (one node with several GPUs, or a multi-node job with several GPUs per
  node): start one worker per local device and supervise them.

AWS Batch multi-node parallel jobs give every node AWS_BATCH_JOB_NUM_NODES, AWS_BATCH_JOB_NODE_INDEX and
AWS_BATCH_JOB_MAIN_NODE_INDEX; only the other nodes get AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS (the main
node does not: it hosts the rendezvous itself). The main node becomes node rank 0, whatever its index.

Our own launcher rather than torch.distributed.run: the elastic agent of the PyTorch versions in the Deep
Learning Containers sends SIGKILL 30 s after forwarding SIGTERM, which can cut a checkpoint upload short
inside Spot's two-minute notice. Ours forwards the signal and waits for the workers' coordinated stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlpipe_batch.errors import EXIT_STOPPED, UsageError

log = logging.getLogger("mlpipe_batch")

DEFAULT_MASTER_PORT = 29500
LAUNCH_GRACE_S = 110.0
"""How long the launcher waits for its workers after forwarding a stop signal or after a worker fails."""


@dataclass(frozen=True)
class Topology:
    mode: str  # "single" | "worker" | "launcher"
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    node_rank: int
    num_nodes: int
    master_addr: str
    master_port: int

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(environ: Mapping[str, str], name: str, default: int | None = None, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        if default is None:
            raise UsageError(f"environment variable {name} is required here but is not set")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise UsageError(f"environment variable {name}={value} must be >= {minimum}")
    return value


def local_device_count(environ: Mapping[str, str]) -> int:
    """Workers to run on this node: MLPIPE_NPROC_PER_NODE, else one per visible GPU, else one."""
    if environ.get("MLPIPE_NPROC_PER_NODE"):
        return _env_int(environ, "MLPIPE_NPROC_PER_NODE", minimum=1)
    import torch

    return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1


def detect(environ: Mapping[str, str], nproc_per_node: int) -> Topology:
    port = _env_int(environ, "MASTER_PORT", _env_int(environ, "MLPIPE_MASTER_PORT", DEFAULT_MASTER_PORT), 1)
    if "RANK" in environ and "WORLD_SIZE" in environ:  # torchrun, or our launcher
        world_size = _env_int(environ, "WORLD_SIZE", minimum=1)
        local_world = _env_int(environ, "LOCAL_WORLD_SIZE", 1, 1)
        return Topology(
            mode="worker",
            rank=_env_int(environ, "RANK"),
            local_rank=_env_int(environ, "LOCAL_RANK", 0),
            world_size=world_size,
            local_world_size=local_world,
            node_rank=_env_int(environ, "GROUP_RANK", 0),
            num_nodes=max(1, world_size // local_world),
            master_addr=environ.get("MASTER_ADDR") or "127.0.0.1",
            master_port=port,
        )
    num_nodes = _env_int(environ, "AWS_BATCH_JOB_NUM_NODES", 1, 1)
    node_rank, master_addr = 0, "127.0.0.1"
    if num_nodes > 1:
        node_index = _env_int(environ, "AWS_BATCH_JOB_NODE_INDEX")
        main_index = _env_int(environ, "AWS_BATCH_JOB_MAIN_NODE_INDEX", 0)
        if node_index >= num_nodes or main_index >= num_nodes:
            raise UsageError(
                f"AWS_BATCH_JOB_NODE_INDEX={node_index} / AWS_BATCH_JOB_MAIN_NODE_INDEX={main_index} "
                f"out of range for AWS_BATCH_JOB_NUM_NODES={num_nodes}"
            )
        node_rank = (node_index - main_index) % num_nodes
        if node_rank != 0:
            master_addr = environ.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", "")
            if not master_addr:
                raise UsageError(
                    "this is a child node of a multi-node job but AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is unset"
                )
    if num_nodes == 1 and nproc_per_node == 1:
        return Topology("single", 0, 0, 1, 1, 0, 1, master_addr, port)
    mode = "worker" if nproc_per_node == 1 else "launcher"
    return Topology(
        mode=mode,
        rank=node_rank * nproc_per_node,
        local_rank=0,
        world_size=num_nodes * nproc_per_node,
        local_world_size=nproc_per_node,
        node_rank=node_rank,
        num_nodes=num_nodes,
        master_addr=master_addr,
        master_port=port,
    )


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def launch(topology: Topology, module: str, argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Run one `python -m module argv` worker per local device (launch_command)."""
    return launch_command(topology, [sys.executable, "-m", module, *argv], environ)


def launch_command(
    topology: Topology,
    command: Sequence[str],
    environ: Mapping[str, str],
    *,
    cwd: str | None = None,
    grace_s: float = LAUNCH_GRACE_S,
) -> int:
    """Run `command` once per local device; forward SIGTERM/SIGINT; return an exit code.

    Workers get torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, GROUP_RANK,
    MASTER_ADDR, MASTER_PORT). When one fails, the others are stopped (SIGTERM, then SIGKILL after
    `grace_s`) and its exit code is returned; after a forwarded signal they get `grace_s` to exit.
    """
    nproc = topology.local_world_size
    threads = environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // nproc))
    procs: list[subprocess.Popen[bytes]] = []
    for local_rank in range(nproc):
        env = dict(environ)
        env.update(
            RANK=str(topology.node_rank * nproc + local_rank),
            LOCAL_RANK=str(local_rank),
            WORLD_SIZE=str(topology.world_size),
            LOCAL_WORLD_SIZE=str(nproc),
            GROUP_RANK=str(topology.node_rank),
            MASTER_ADDR=topology.master_addr,
            MASTER_PORT=str(topology.master_port),
            OMP_NUM_THREADS=threads,
        )
        procs.append(
            subprocess.Popen(
                list(command),
                env=env,
                cwd=cwd,
                start_new_session=True,  # terminal signals reach the launcher only; it forwards them once
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        )
    log.info("launched %d local workers (node rank %d of %d)", nproc, topology.node_rank, topology.num_nodes)

    forwarded: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if forwarded:  # second signal: no more waiting
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            return
        forwarded.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        cause: int | None = None  # the failure the others were stopped for, when no signal came before it
        deadline: float | None = None
        while True:
            states = [proc.poll() for proc in procs]  # poll every worker (any() would stop at the first)
            codes = [state for state in states if state not in (None, 0)]
            if codes and deadline is None:
                if not forwarded:
                    cause = first_failure(codes)
                    log.error("a worker exited with code %s: stopping the others", cause)
                    for proc in procs:
                        if proc.poll() is None:
                            proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + grace_s
            if all(state is not None for state in states):
                break
            if forwarded and deadline is None:
                deadline = time.monotonic() + grace_s
            if deadline is not None and time.monotonic() > deadline:
                for proc in procs:
                    if proc.poll() is None:
                        proc.kill()
            time.sleep(0.1)
        codes = [proc.returncode for proc in procs]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return node_status(codes, cause)


def first_failure(codes: Sequence[int]) -> int:
    """Which of the non-zero statuses first seen together caused the others: a worker killed by a signal (the
    OOM killer's -9) before one that failed, whose collective may have failed for it; a stop (143) last."""
    return min(codes, key=lambda code: (code >= 0, code == EXIT_STOPPED))


def node_status(codes: Sequence[int], cause: int | None) -> int:
    """The node's exit status from its workers' `codes`: the `cause` the others were stopped for, unless that
    was itself a stop (a stop agreed on another node); else the first real failure; else a stop's status."""
    bad = [c for c in codes if c != 0]
    if not bad:
        return 0
    if cause is not None and cause not in (EXIT_STOPPED, -signal.SIGTERM):
        code = cause
    else:
        real = [c for c in bad if c not in (EXIT_STOPPED, -signal.SIGTERM, -signal.SIGKILL)]
        code = real[0] if real else bad[0]
    return code if code > 0 else 128 - code

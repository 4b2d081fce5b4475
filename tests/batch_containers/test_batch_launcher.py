"""Where a process sits in a job (AWS Batch multi-node, torchrun, one node) and the launcher of local workers:
their environment, a failing worker, and SIGTERM forwarding. Workers here are tiny scripts, not training."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlpipe_batch.errors import UsageError
from mlpipe_batch.launcher import detect, first_failure, launch, node_status

WORKER = """
import json, os, signal, sys, time
mode, out = sys.argv[1], sys.argv[2]
rank = int(os.environ["RANK"])
keys = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT"]
with open(f"{out}/env-{rank}.json", "w") as f:
    json.dump({k: os.environ.get(k) for k in keys}, f)
if mode == "ok":
    sys.exit(0)
if mode in ("fail", "killed") and os.environ["LOCAL_RANK"] == "1":
    deadline = time.monotonic() + 20
    while not os.path.exists(f"{out}/ready-0") and time.monotonic() < deadline:
        time.sleep(0.02)  # fail once the healthy worker is up, so it sees a SIGTERM, not a startup kill
    if mode == "killed":  # as the OOM killer ends a process
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(7)
def stop(signum, frame):
    open(f"{out}/stopped-{rank}", "w").close()
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
open(f"{out}/ready-{rank}", "w").close()
time.sleep(60)
"""

MULTI_NODE_CHILD = {
    "AWS_BATCH_JOB_NUM_NODES": "3",
    "AWS_BATCH_JOB_NODE_INDEX": "0",
    "AWS_BATCH_JOB_MAIN_NODE_INDEX": "1",
    "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.0.5",
}


def test_multi_node_main_node_is_rank_zero_whatever_its_index() -> None:
    main = {k: v for k, v in MULTI_NODE_CHILD.items() if "ADDRESS" not in k} | {
        "AWS_BATCH_JOB_NODE_INDEX": "1"
    }
    top = detect(main, nproc_per_node=1)
    assert (top.mode, top.rank, top.node_rank, top.world_size, top.master_addr) == (
        "worker",
        0,
        0,
        3,
        "127.0.0.1",
    )
    child = detect(MULTI_NODE_CHILD, nproc_per_node=4)  # node index 0 comes after main node 1
    assert (child.mode, child.node_rank, child.rank, child.world_size) == ("launcher", 2, 8, 12)
    assert (child.master_addr, child.master_port) == ("10.0.0.5", 29500)
    assert detect({"MLPIPE_MASTER_PORT": "31000"}, nproc_per_node=1).mode == "single"
    assert detect({"MLPIPE_MASTER_PORT": "31000"}, nproc_per_node=2).master_port == 31000


def test_torchrun_environment_makes_a_worker() -> None:
    env = {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "1"}
    top = detect(
        {**env, "MASTER_ADDR": "10.1.1.1", "MASTER_PORT": "29400", **MULTI_NODE_CHILD}, nproc_per_node=4
    )
    assert (top.mode, top.rank, top.local_rank, top.world_size, top.num_nodes) == ("worker", 5, 1, 8, 2)
    assert (top.master_addr, top.master_port) == ("10.1.1.1", 29400)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {**MULTI_NODE_CHILD, "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": ""},
            "MAIN_NODE_PRIVATE_IPV4_ADDRESS is unset",
        ),
        ({**MULTI_NODE_CHILD, "AWS_BATCH_JOB_NODE_INDEX": "3"}, "out of range for AWS_BATCH_JOB_NUM_NODES=3"),
        ({"AWS_BATCH_JOB_NUM_NODES": "two"}, "AWS_BATCH_JOB_NUM_NODES='two' is not an integer"),
        ({"AWS_BATCH_JOB_NUM_NODES": "2"}, "AWS_BATCH_JOB_NODE_INDEX is required"),
    ],
)
def test_broken_batch_environment_is_a_usage_error(env: dict[str, str], needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        detect(env, nproc_per_node=1)


@pytest.fixture
def worker_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "fake_worker.py").write_text(WORKER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return "fake_worker"


def _launch(env: dict[str, str], mode: str, out: Path, module: str) -> int:
    import os

    top = detect(env, nproc_per_node=2)
    return launch(top, module, [mode, str(out)], {**os.environ, **env})


def test_launcher_gives_each_worker_torchruns_environment(worker_module: str, tmp_path: Path) -> None:
    assert _launch(MULTI_NODE_CHILD, "ok", tmp_path, worker_module) == 0
    envs = [json.loads((tmp_path / f"env-{rank}.json").read_text()) for rank in (4, 5)]
    assert envs == [
        {"RANK": str(rank), "LOCAL_RANK": str(rank - 4), "WORLD_SIZE": "6", "LOCAL_WORLD_SIZE": "2",
         "GROUP_RANK": "2", "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29500"}
        for rank in (4, 5)
    ]  # fmt: skip


@pytest.mark.parametrize(("mode", "code"), [("fail", 7), ("killed", 128 + signal.SIGKILL)])
def test_launcher_stops_the_others_when_a_worker_fails(
    mode: str, code: int, worker_module: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    # the failed worker's status, not the 143 of the worker stopped for it
    assert _launch({}, mode, tmp_path, worker_module) == code
    assert time.monotonic() - started < 20
    assert (tmp_path / "stopped-0").exists()  # the healthy worker got SIGTERM, not SIGKILL


@pytest.mark.parametrize(
    ("seen", "cause"),
    [
        ([7], 7),
        ([1, -9], -9),  # a rank's collective failed because its peer was killed at the same time
        ([143, 1], 1),
        ([143, -15], -15),
        ([143], 143),
    ],
)
def test_the_cause_among_failures_seen_together(seen: list[int], cause: int) -> None:
    assert first_failure(seen) == cause


@pytest.mark.parametrize(
    ("codes", "cause", "status"),
    [
        ([0, 0], None, 0),
        ([7, 143], 7, 7),  # the failure, not the stop of the sibling stopped for it
        ([-9, 143], -9, 137),  # killed (the OOM killer), and the sibling stopped for it
        ([143, -9], -9, 137),  # the same on the other local rank
        ([143, 143], None, 143),  # Batch's SIGTERM, forwarded: every rank stopped
        ([143, -9], None, 143),  # forwarded; one rank outlived the grace period and was killed
        ([143, 1], None, 1),  # forwarded; one rank failed while stopping
        ([143, 1], 143, 1),  # a stop agreed with another node came first; then a real failure
    ],
)
def test_the_node_exits_with_the_cause_of_its_failure(
    codes: list[int], cause: int | None, status: int
) -> None:
    assert node_status(codes, cause) == status


def test_launcher_forwards_sigterm_and_reports_the_stop(
    worker_module: str, tmp_path: Path, child_env: Any
) -> None:
    code = (
        "import os, sys; from mlpipe_batch.launcher import detect, launch; "
        f"sys.exit(launch(detect({{}}, 2), {worker_module!r}, ['wait', {str(tmp_path)!r}], os.environ))"
    )
    env = child_env({"PYTHONPATH": f"{child_env()['PYTHONPATH']}:{tmp_path}"})
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 20
    while not all((tmp_path / f"ready-{r}").exists() for r in (0, 1)) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    assert (tmp_path / "stopped-0").exists() and (tmp_path / "stopped-1").exists()

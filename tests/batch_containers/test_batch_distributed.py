"""The training entry point as AWS Batch runs it, in subprocesses: a two-node multi-node parallel job emulated on
127.0.0.1 reading and writing S3 (a moto server): a SIGTERM to both nodes mid-training, then a second attempt
that resumes from the checkpoint, each node freeing its gloo process group before the interpreter exits; two
nodes of two workers stopped by SIGTERM, resumed as attempt 2, then one worker killed, which fails the whole
job; and bad hyperparameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlpipe_batch import storage, synthetic
from mlpipe_batch.model import load_portable

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]

# The entry point's main(), then the threads left once it has returned, then main()'s exit status. A gloo
# thread still alive at interpreter exit can abort the process ("terminate called without an active
# exception"; scripts/ddp_shutdown_harness.py reproduces that abort).
_DRIVER = """
import json, os, sys
from mlpipe_batch import train
code = train.main(sys.argv[1:])
names = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
print(json.dumps({"code": code, "threads": names}))
sys.exit(code)
"""


@pytest.fixture(scope="module")
def s3_dataset(moto_server: str, dataset: synthetic.SyntheticDataset) -> dict[str, Any]:
    """The synthetic feature set on the moto server: bucket `curated`, prefix features/r-ddp/."""
    import boto3

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", moto_server)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.setenv(name, "testing")
        storage.reset_clients()
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="curated")
        rows = {split: dataset.rows[split] for split in ("train", "validation", "test")}
        on_s3 = synthetic.write_dataset("s3://curated/features/r-ddp", rows=rows, shards=3, seed=7)
    storage.reset_clients()
    return {"endpoint": moto_server, "dataset": on_s3}


def _read_s3(endpoint: str, uri: str) -> bytes:
    import boto3

    loc = storage.parse_s3(uri)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return client.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()


def _train_args(manifest: str, output: str, checkpoint: str, hp: dict[str, Any]) -> list[str]:
    return [
        "--manifest",
        manifest,
        "--output",
        output,
        "--checkpoint",
        checkpoint,
        "--hyperparameters",
        json.dumps(hp),
    ]


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """The node processes a test starts: killed when it ends (a failed assertion), or after 180 s (a hang: the
    test then fails on what they wrote instead of waiting on them). Their workers die with them."""
    procs: list[subprocess.Popen[str]] = []

    def kill() -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    watchdog = threading.Timer(180, kill)
    watchdog.start()
    yield procs
    watchdog.cancel()
    kill()
    for proc in procs:
        proc.wait()


def _start_nodes(
    started: list[subprocess.Popen[str]],
    child_env: Any,
    endpoint: str,
    argv: list[str],
    port: str,
    attempt: int,
    workers: int = 1,
) -> list[subprocess.Popen[str]]:
    """Both nodes of a two-node multi-node parallel job, as Batch starts them: with more than one worker per
    node (GPUs, here CPU processes) the entry point launches them."""
    common = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_BATCH_JOB_NUM_NODES": "2",
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
        "AWS_BATCH_JOB_ATTEMPT": str(attempt),
        "MLPIPE_MASTER_PORT": port,
        "MLPIPE_NPROC_PER_NODE": str(workers),
    }
    nodes = [
        child_env({**common, "AWS_BATCH_JOB_NODE_INDEX": "0"}),  # the main node has no main-node address
        child_env(
            {
                **common,
                "AWS_BATCH_JOB_NODE_INDEX": "1",
                "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "127.0.0.1",
            }
        ),
    ]
    for env in nodes:
        started.append(
            subprocess.Popen(
                [sys.executable, "-c", _DRIVER, *argv],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return started[-2:]


def _read_until(main: subprocess.Popen[str], *texts: str) -> str:
    """The main node's log up to the line that holds the last of `texts`, each found in a later line than the
    one before; the test fails if its log ends first."""
    assert main.stderr is not None
    seen, wanted = [], list(texts)
    for line in main.stderr:
        seen.append(line)
        if wanted[0] in line:
            wanted.pop(0)
            if not wanted:
                return "".join(seen)
    pytest.fail(f"no {wanted[0]!r} in the main node's log: {''.join(seen)[-3000:]}")


def _stop_after_epoch_1(nodes: list[subprocess.Popen[str]], epochs: int) -> tuple[str, list[tuple[str, str]]]:
    """SIGTERM to every node once rank 0 has finished epoch 1, as Spot reclaims every instance: each node exits
    143 within 30 s. Returns the main node's log and each node's stdout and stderr."""
    seen = _read_until(nodes[0], f"epoch 1/{epochs} done")  # rank 0 logs on the main node
    for proc in nodes:
        proc.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert nodes[0].stderr is not None
    logs = seen + nodes[0].stderr.read()  # the rest, through the stream that read the first lines
    results = [proc.communicate(timeout=60) for proc in nodes]
    assert [proc.returncode for proc in nodes] == [143, 143], logs[-3000:] + results[1][1][-3000:]
    assert time.monotonic() - signalled < 30
    assert "stop signal: stopping at epoch" in logs
    return logs, results


def _stopped_checkpoint(endpoint: str, output: str, checkpoint: str) -> tuple[str, dict[str, Any]]:
    """After a stop: nothing committed under `output`; the name of the newest checkpoint's .json and what it
    says."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        storage.reset_clients()
        assert storage.list_names(output) == []  # a stopped run commits nothing
        last = [n for n in storage.list_names(checkpoint) if n.endswith(".json")][-1]
        stopped_at = json.loads(storage.read_bytes(checkpoint + last))
    storage.reset_clients()
    return last, stopped_at


def _threads_left(out: str) -> list[str]:
    """The gloo and TCPStore threads a node's process still had once main() returned."""
    report = json.loads(out.strip().splitlines()[-1])
    return [name for name in report["threads"] if name.startswith(("pt_gloo", "gloo_", "pt_tcpstore"))]


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists threads through /proc")
def test_two_node_job_over_s3_stops_on_sigterm_then_attempt_2_resumes(
    s3_dataset: dict[str, Any],
    trained: dict[str, Any],
    fast_hp: dict[str, Any],
    child_env: Any,
    free_port: Any,
    started: list[subprocess.Popen[str]],
) -> None:
    """Spot reclaims both instances of a two-node job mid-training: both workers stop at the same step, rank 0
    checkpoints to S3, both nodes exit 143 with nothing committed; attempt 2 resumes from that checkpoint and
    commits what one process would. Every node frees its process group before exit, stopped or not."""
    endpoint, dataset = s3_dataset["endpoint"], s3_dataset["dataset"]
    hp = {**fast_hp, "epochs": 12}
    output, checkpoint = "s3://curated/candidates/ddp/", "s3://curated/checkpoints/ddp/"
    argv = _train_args(dataset.manifest_uri, output, checkpoint, hp)
    steps = -(-(dataset.rows["train"] // 2) // hp["batch_size"])  # per epoch, on each of the 2 workers

    first = _start_nodes(started, child_env, endpoint, argv, str(free_port()), attempt=1)
    logs, results = _stop_after_epoch_1(first, hp["epochs"])
    assert "worker: 2 worker(s) on 2 node(s)" in logs
    assert [_threads_left(out) for out, _ in results] == [[], []]
    _, stopped_at = _stopped_checkpoint(endpoint, output, checkpoint)
    assert stopped_at["epoch"] >= 1 and stopped_at["global_step"] < hp["epochs"] * steps

    second = _start_nodes(started, child_env, endpoint, argv, str(free_port()), attempt=2)
    results = [proc.communicate(timeout=120) for proc in second]
    assert [proc.returncode for proc in second] == [0, 0], [err[-3000:] for _, err in results]
    assert [_threads_left(out) for out, _ in results] == [[], []]
    metrics = json.loads(_read_s3(endpoint, output + "metrics.json"))
    assert metrics["resumed_from"] == {
        "checkpoint": f"{checkpoint}ckpt-{stopped_at['global_step']:012d}.pt",
        "epoch": stopped_at["epoch"],
        "step_in_epoch": stopped_at["step_in_epoch"],
        "global_step": stopped_at["global_step"],
        "attempt": 2,
    }
    assert set(metrics) == set(trained["metrics"])  # the same result shape as one process
    assert (metrics["world_size"], metrics["num_nodes"]) == (2, 2)
    assert metrics["steps_per_epoch"] == steps == 24
    assert metrics["global_steps"] == hp["epochs"] * steps and len(metrics["history"]) == hp["epochs"]
    assert metrics["validation"]["auc"] >= 0.9 * dataset.bayes_auc["validation"]
    assert metrics["model_uri"] == output + "model/"
    single_spec = json.loads((trained["output"] / "model" / "model.json").read_text())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        storage.reset_clients()
        assert load_portable(output + "model").spec == single_spec
        last_step = hp["epochs"] * steps
        assert storage.list_names(checkpoint)[-2:] == [
            f"ckpt-{last_step:012d}.json",
            f"ckpt-{last_step:012d}.pt",
        ]
    storage.reset_clients()


def _worker_of_rank(launcher: int, rank: int) -> int:
    """The pid of the launcher's worker that has RANK=`rank` (read from /proc)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == launcher and f"RANK={rank}".encode() in environ:
            return int(entry)
    raise AssertionError(f"no worker of rank {rank} under {launcher}")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads the process tree from /proc")
def test_two_nodes_of_two_workers_stop_on_sigterm_resume_as_attempt_2_and_fail_at_once_when_one_is_killed(
    s3_dataset: dict[str, Any],
    fast_hp: dict[str, Any],
    child_env: Any,
    free_port: Any,
    started: list[subprocess.Popen[str]],
) -> None:
    """Two nodes of two workers each. Spot reclaims both instances after epoch 1: the four workers stop at the
    same step, rank 0 checkpoints, both nodes exit 143 with nothing committed. Attempt 2 resumes from that
    checkpoint on four workers; then the kernel kills rank 3 (as the OOM killer would). Its node stops its
    sibling and fails with the killed worker's status; node 0's workers do not wait for it until the process
    group's timeout: they fail at their next collective."""
    endpoint, dataset = s3_dataset["endpoint"], s3_dataset["dataset"]
    output, checkpoint = "s3://curated/candidates/lost/", "s3://curated/checkpoints/lost/"
    argv = _train_args(dataset.manifest_uri, output, checkpoint, {**fast_hp, "epochs": 12})

    first = _start_nodes(started, child_env, endpoint, argv, str(free_port()), attempt=1, workers=2)
    logs, _ = _stop_after_epoch_1(first, 12)  # each node forwards the SIGTERM to its workers
    assert "worker: 4 worker(s) on 2 node(s)" in logs
    last, stopped_at = _stopped_checkpoint(endpoint, output, checkpoint)
    assert stopped_at["world_size"] == 4 and stopped_at["epoch"] >= 1

    main, other = _start_nodes(started, child_env, endpoint, argv, str(free_port()), attempt=2, workers=2)
    resumed = f"resuming from {checkpoint}{last.removesuffix('.json')}.pt"
    seen = _read_until(main, "worker: 4 worker(s) on 2 node(s)", resumed, "/12 done")  # an epoch after it
    os.kill(_worker_of_rank(other.pid, 3), signal.SIGKILL)
    killed = time.monotonic()
    assert main.stderr is not None
    rest = main.stderr.read()  # through the stream that read the first lines
    main.wait(timeout=60)
    node1 = other.communicate(timeout=60)[1]
    assert time.monotonic() - killed < 30
    # node 1 stops the killed worker's sibling and exits with the killed worker's status (128 + SIGKILL)
    assert "a worker exited with code -9: stopping the others" in node1, node1[-3000:]
    assert other.returncode == 137, node1[-3000:]
    assert main.returncode not in (0, 143), seen[-3000:] + rest[-3000:]  # failed at its next collective


def test_bad_hyperparameters_exit_2_before_any_work(
    dataset: synthetic.SyntheticDataset, child_env: Any, run_module: Any, tmp_path: Path
) -> None:
    argv = _train_args(
        dataset.manifest_uri, str(tmp_path / "out"), str(tmp_path / "ck"), {"epochs": 3, "lr": "high"}
    )
    result = run_module("mlpipe_batch.train", argv, child_env())
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "mlpipe_batch.train: error: hyperparameter lr='high' from --hyperparameters has the wrong type: "
        "a number in (0, 10]"
    ]
    assert result.stdout == "" and not (tmp_path / "out").exists() and not (tmp_path / "ck").exists()

"""The training entry point as AWS Batch runs it, in subprocesses: a two-node multi-node parallel job emulated on
127.0.0.1 reading and writing S3 (a moto server), which frees its gloo process group before the interpreter
exits; a SIGTERM mid-training followed by a second attempt that resumes from the checkpoint; and bad
hyperparameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlpipe_batch import storage, synthetic
from mlpipe_batch.model import load_portable

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]

# The entry point's main(), then the threads left once it has returned: a gloo thread still alive at
# interpreter exit can abort the process ("terminate called without an active exception";
# scripts/ddp_shutdown_harness.py reproduces that abort).
_DRIVER = """
import json, os, sys
from mlpipe_batch import train
code = train.main(sys.argv[1:])
names = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
print(json.dumps({"code": code, "threads": names}))
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


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists threads through /proc")
def test_two_node_multi_node_parallel_job_over_s3(
    s3_dataset: dict[str, Any],
    trained: dict[str, Any],
    fast_hp: dict[str, Any],
    child_env: Any,
    free_port: Any,
    tmp_path: Path,
) -> None:
    endpoint, dataset = s3_dataset["endpoint"], s3_dataset["dataset"]
    port = str(free_port())
    rows = dataset.rows["train"]
    common = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_BATCH_JOB_NUM_NODES": "2",
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
    }
    common["MLPIPE_MASTER_PORT"] = port
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
    output, checkpoint = "s3://curated/candidates/ddp/", "s3://curated/checkpoints/ddp/"
    argv = _train_args(dataset.manifest_uri, output, checkpoint, fast_hp)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _DRIVER, *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for env in nodes
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err[-3000:] for _, err in results]
    assert "worker: 2 worker(s) on 2 node(s)" in results[0][1]
    for out, _ in results:  # each node freed its process group and joined its threads before exiting
        report = json.loads(out.strip().splitlines()[-1])
        left = [name for name in report["threads"] if name.startswith(("pt_gloo", "gloo_", "pt_tcpstore"))]
        assert report["code"] == 0 and left == [], report["threads"]

    metrics = json.loads(_read_s3(endpoint, output + "metrics.json"))
    single = trained["metrics"]
    assert set(metrics) == set(single)  # the same result shape as one process
    assert (metrics["world_size"], metrics["num_nodes"]) == (2, 2)
    assert metrics["steps_per_epoch"] == -(-(rows // 2) // fast_hp["batch_size"]) == 24
    assert metrics["global_steps"] == fast_hp["epochs"] * 24
    assert metrics["validation"]["auc"] >= 0.9 * dataset.bayes_auc["validation"]
    assert metrics["model_uri"] == output + "model/"

    single_spec = json.loads((trained["output"] / "model" / "model.json").read_text())
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        storage.reset_clients()
        assert load_portable(output + "model").spec == single_spec
        assert storage.list_names(checkpoint)[-2:] == ["ckpt-000000000096.json", "ckpt-000000000096.pt"]
    storage.reset_clients()


def test_sigterm_checkpoints_and_the_next_attempt_resumes(
    dataset: synthetic.SyntheticDataset, child_env: Any, run_module: Any, tmp_path: Path
) -> None:
    hp = {
        "epochs": 12,
        "batch_size": 256,
        "lr": 0.01,
        "hidden": [32],
        "embedding_dim": 4,
        "log_every_steps": 0,
    }
    argv = _train_args(dataset.manifest_uri, str(tmp_path / "out"), str(tmp_path / "ck"), hp)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlpipe_batch.train", *argv],
        env=child_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "epoch 2/12 done" in line:
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            break
    rest = proc.stderr.read()
    code = proc.wait(timeout=60)
    assert code == 143, "".join(seen) + rest
    assert time.monotonic() - signalled < 30
    assert "stop signal: stopping at epoch" in rest
    assert not (tmp_path / "out").exists()  # stopped runs commit nothing
    stopped_at = json.loads(sorted((tmp_path / "ck").glob("ckpt-*.json"))[-1].read_text())
    assert stopped_at["epoch"] >= 2 and stopped_at["global_step"] < 12 * 24

    again = run_module("mlpipe_batch.train", argv, child_env({"AWS_BATCH_JOB_ATTEMPT": "2"}))
    assert again.returncode == 0, again.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["resumed_from"] == {
        "checkpoint": str(tmp_path / "ck" / f"ckpt-{stopped_at['global_step']:012d}.pt"),
        "epoch": stopped_at["epoch"],
        "step_in_epoch": stopped_at["step_in_epoch"],
        "global_step": stopped_at["global_step"],
        "attempt": 2,
    }
    assert metrics["epochs"] == 12 and metrics["global_steps"] == 12 * 24 and len(metrics["history"]) == 12
    assert metrics["validation"]["auc"] >= 0.85 * dataset.bayes_auc["validation"]


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

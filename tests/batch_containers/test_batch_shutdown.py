"""Shutdown of the training entry point: no loader thread outlives its stream, and a two-node run frees its
gloo process group (and joins the group's threads) before the interpreter exits. A gloo thread still alive at
interpreter exit can abort the process ("terminate called without an active exception");
scripts/ddp_shutdown_harness.py reproduces that abort."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from mlpipe_batch import data, manifest, synthetic

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]

# Runs the entry point's main() in-process, then reports the threads left once it has returned.
_DRIVER = """
import json, os, sys
from mlpipe_batch import train
code = train.main(sys.argv[1:])
names = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
print(json.dumps({"code": code, "threads": names}))
"""


def _stream(dataset: synthetic.SyntheticDataset) -> data.BatchStream:
    loaded = manifest.load(dataset.manifest_uri)
    return data.training_stream(
        loaded, split="train", epoch=0, rank=0, world_size=1, batch_size=64, seed=1, prefetch_batches=2
    )


def test_a_stream_joins_its_thread_however_it_ends(dataset: synthetic.SyntheticDataset) -> None:
    before = set(threading.enumerate())
    stream = _stream(dataset)
    assert not stream._thread.daemon  # joined, never left running into interpreter exit
    assert len(list(stream)) == stream.num_batches
    assert not stream._thread.is_alive()

    with _stream(dataset) as stream:
        batches = iter(stream)
        next(batches)  # then abandoned while the producer waits on its full queue
    assert not stream._thread.is_alive()
    del batches

    stream = _stream(dataset)
    stream.close()  # never iterated
    stream.close()
    assert not stream._thread.is_alive()
    assert {t for t in threading.enumerate() if t.name.startswith("mlpipe-")} <= before


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists threads through /proc")
def test_two_node_run_frees_its_process_group_before_exit(
    dataset: synthetic.SyntheticDataset,
    fast_hp: dict[str, Any],
    child_env: Any,
    free_port: Any,
    tmp_path: Path,
) -> None:
    common = {
        "AWS_BATCH_JOB_NUM_NODES": "2",
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
        "MLPIPE_MASTER_PORT": str(free_port()),
    }
    nodes = [
        child_env({**common, "AWS_BATCH_JOB_NODE_INDEX": "0"}),
        child_env(
            {
                **common,
                "AWS_BATCH_JOB_NODE_INDEX": "1",
                "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "127.0.0.1",
            }
        ),
    ]
    argv = [
        "--manifest", dataset.manifest_uri,
        "--output", str(tmp_path / "out"),
        "--hyperparameters", json.dumps({**fast_hp, "epochs": 1}),
    ]  # fmt: skip
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
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err[-3000:]
        report = json.loads(out.strip().splitlines()[-1])
        assert report["code"] == 0
        left = [name for name in report["threads"] if name.startswith(("pt_gloo", "gloo_", "pt_tcpstore"))]
        assert left == [], report["threads"]

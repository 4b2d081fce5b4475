"""Local mode's Batch executor shares the machine's cores among the Batch nodes of a run that may run at once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlpipe.local import jobs
from mlpipe.local.executors import BatchJob, BatchJobDefinition, RetryStrategy
from mlpipe.local.jobs import Children, Context, Journal, LocalBatch
from mlpipe.local.mirror import Mirror

PRINT_THREADS = (sys.executable, "-c", "import os; print('threads', os.environ['OMP_NUM_THREADS'])")


def _job(name: str, nodes: int) -> BatchJob:
    definition = BatchJobDefinition(
        arn=f"arn:aws:batch:us-east-1:123456789012:job-definition/{name}:1", name=name,
        type="multinode" if nodes > 1 else "container", parameters={}, command=PRINT_THREADS, environment={},
        retry_strategy=RetryStrategy(), num_nodes=nodes,
    )  # fmt: skip
    return BatchJob(job_id=f"id-{name}", job_name=name, queue_arn="arn:aws:batch:us-east-1:123456789012:job-queue/q",
                    definition=definition, parameters={}, command=PRINT_THREADS, environment={}, num_nodes=nodes,
                    attempt=1)  # fmt: skip


@pytest.mark.parametrize(
    ("at_once", "nodes", "threads"),
    [(1, 1, "8"), (3, 1, "2"), (3, 2, "2"), (1, 2, "4"), (16, 1, "1")],
)
def test_each_node_gets_its_share_of_the_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at_once: int, nodes: int, threads: str
) -> None:
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 8)
    ctx = Context(workdir=tmp_path, mirror=Mirror(tmp_path / "s3"), children=Children(),
                  journal=Journal(tmp_path / "journal.jsonl"), batch_nodes_at_once=at_once)  # fmt: skip
    assert LocalBatch(ctx).run(_job("train", nodes)).succeeded
    logs = sorted((tmp_path / "logs" / "batch" / "train").glob("attempt-1*.log"))
    assert len(logs) == nodes
    assert [log.read_text().split() for log in logs] == [["threads", threads]] * nodes

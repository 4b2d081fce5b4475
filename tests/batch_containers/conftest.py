"""Fixtures of the Batch container tests: the package on sys.path, small synthetic feature sets with a known
Bayes-optimal AUC, a moto S3 server for subprocesses, and a runner for the entry points as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "batch_containers" / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from mlpipe_batch import storage, synthetic  # noqa: E402

ROWS = {"train": 6000, "validation": 2000, "test": 1000}
"""Small enough for a few seconds of CPU training, large enough for a stable AUC."""


@pytest.fixture(scope="session")
def fast_hp() -> dict[str, Any]:
    """Hyperparameters that train the synthetic set well in a few CPU seconds."""
    return {
        "epochs": 4,
        "batch_size": 128,
        "lr": 0.01,
        "hidden": [64, 32],
        "embedding_dim": 8,
        "log_every_steps": 0,
    }


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> synthetic.SyntheticDataset:
    """A local synthetic feature set: manifest.json, inference_manifest.json and uneven shards."""
    root = tmp_path_factory.mktemp("features")
    return synthetic.write_dataset(str(root), rows=ROWS, shards=3, seed=7, inference_rows=700)


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """One intra-op thread for in-process training (the suite shares two cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def s3_mock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """In-process moto S3 with one bucket, `features`; the module's cached clients are reset around it."""
    import boto3
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    storage.reset_clients()
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="features")
        yield client
    storage.reset_clients()


@pytest.fixture
def child_env() -> Any:
    """Builds the environment of an entry point run as a subprocess: the package on PYTHONPATH, one thread,
    faulthandler on (as the job definitions have it), no AWS Batch or torchrun variables from the outer
    environment, plus `extra`."""

    def build(extra: Mapping[str, str] | None = None) -> dict[str, str]:
        drop = ("AWS_BATCH_", "MLPIPE_", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_", "AWS_ENDPOINT_URL")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
        env.update(extra or {})
        return env

    return build


@pytest.fixture
def run_module() -> Any:
    """Runs `python -m <module> <args>` to completion; returns the CompletedProcess (text output)."""

    def run(
        module: str, args: list[str], env: Mapping[str, str], timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def trained(
    dataset: synthetic.SyntheticDataset, fast_hp: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One in-process, single-process training run on the synthetic set: its output prefix and metrics."""
    import json
    import signal

    import torch
    from mlpipe_batch import train

    out = tmp_path_factory.mktemp("trained")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = train.main(
            [
                "--manifest", dataset.manifest_uri,
                "--output", str(out / "output"),
                "--checkpoint", str(out / "checkpoints"),
                "--hyperparameters", json.dumps(fast_hp),
                "--device", "cpu",
            ]
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert code == 0
    metrics = json.loads((out / "output" / "metrics.json").read_text())
    return {"output": out / "output", "checkpoints": out / "checkpoints", "metrics": metrics}

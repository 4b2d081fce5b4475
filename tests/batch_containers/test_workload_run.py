"""The workload launcher (mlpipe_batch.run) running a workload's own plain-PyTorch script as AWS Batch
would: two nodes of two ranks over gloo on 127.0.0.1, the code package, checkpoints and outputs on S3 (a
moto server); a SIGTERM, then attempt 2 resuming; one failing rank failing the whole job; bad input refused
before any rank starts."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlpipe import code_package

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "regression"
HP = {"epochs": 10, "batch_size": 64, "hidden": [16], "lr": 0.01}


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small regression feature set in the feature manifest's form: y = 2*f0 - f1 + noise."""
    root = tmp_path_factory.mktemp("regression-features")
    rng = np.random.default_rng(3)
    splits = {}
    for split, rows in (("train", 4000), ("validation", 500)):
        x = rng.normal(size=(rows, 3))
        y = 2 * x[:, 0] - x[:, 1] + rng.normal(scale=0.1, size=rows)
        path = root / f"{split}.parquet"
        pq.write_table(
            pa.table(
                {"id": [f"r{i}" for i in range(rows)], "f0": x[:, 0], "f1": x[:, 1], "f2": x[:, 2], "y": y}
            ),
            path,
        )
        splits[split] = {"rows": rows, "shards": [{"uri": str(path), "rows": rows}]}
    manifest = {
        "id_column": "id",
        "label_column": "y",
        "numeric_features": ["f0", "f1", "f2"],
        "splits": splits,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root / "manifest.json"


FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def s3(moto_server: str) -> Any:
    import boto3

    with pytest.MonkeyPatch.context() as env:
        for name, value in FAKE_AWS.items():
            env.setenv(name, value)
        client = boto3.client("s3", endpoint_url=moto_server)
    client.create_bucket(Bucket="artifacts")
    return client


def upload_package(s3: Any, folder: Path, key: str) -> code_package.CodePackage:
    package = code_package.build(folder)
    s3.put_object(Bucket="artifacts", Key=key, Body=package.data)
    return package


def upload_with_double(s3: Any, tmp_path: Path, double: str, key: str) -> str:
    """A code package of the regression example's train.py and a test double (tests/batch_containers/<double>)
    as its entrypoint `double.py`; returns the package's SHA-256."""
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "train.py").write_bytes((EXAMPLE / "train.py").read_bytes())
    (folder / "double.py").write_bytes((Path(__file__).parent / double).read_bytes())
    return upload_package(s3, folder, key).sha256


def start_nodes(
    child_env: Any, free_port: Any, tmp_path: Path, moto_server: str, args: list[str], attempt: int = 1
) -> list[subprocess.Popen[str]]:
    """Both nodes of a two-node multi-node parallel job, two ranks each, as Batch would start them."""
    port = str(free_port())
    common = {
        **FAKE_AWS,
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_BATCH_JOB_NUM_NODES": "2",
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
        "AWS_BATCH_JOB_ATTEMPT": str(attempt),
        "MLPIPE_MASTER_PORT": port,
        "MLPIPE_NPROC_PER_NODE": "2",
    }
    procs = []
    for node in (0, 1):
        work = tmp_path / f"attempt{attempt}-node{node}"
        work.mkdir()
        extra = {**common, "AWS_BATCH_JOB_NODE_INDEX": str(node), "MLPIPE_WORKDIR": str(work)}
        if node:
            extra["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = "127.0.0.1"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "mlpipe_batch.run", *args],
                env=child_env(extra),
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return procs


def finish(procs: list[subprocess.Popen[str]], timeout: float = 120) -> list[tuple[int, str]]:
    results = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
        results.append((proc.returncode, err))
    return results


def run_one_node(
    args: list[str], child_env: Any, moto_server: str, work: Path
) -> subprocess.CompletedProcess[str]:
    """The launcher on one CPU node, to completion."""
    env = child_env(
        {
            **FAKE_AWS,
            "AWS_ENDPOINT_URL": moto_server,
            "MLPIPE_NPROC_PER_NODE": "1",
            "MLPIPE_WORKDIR": str(work),
        }
    )
    command = [sys.executable, "-m", "mlpipe_batch.run", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def run_args(features: Path, code: str, sha256: str, entrypoint: str = "train.py") -> list[str]:
    return [
        "--code", code, "--code-sha256", sha256, "--entrypoint", entrypoint, "--input", str(features),
        "--output", "s3://artifacts/runs/r1/candidates/ddp/", "--checkpoint", "s3://artifacts/checkpoints/r1/ddp/",
        "--hyperparameters", json.dumps(HP),
    ]  # fmt: skip


def test_two_nodes_of_two_ranks_stop_on_sigterm_then_attempt_2_resumes(
    features: Path, s3: Any, moto_server: str, child_env: Any, free_port: Any, tmp_path: Path
) -> None:
    sha256 = upload_with_double(s3, tmp_path, "slow_first_attempt_double.py", "code/regression-slow.zip")
    args = run_args(features, "s3://artifacts/code/regression-slow.zip", sha256, entrypoint="double.py")

    first = start_nodes(child_env, free_port, tmp_path, moto_server, args)
    deadline = time.monotonic() + 90
    while not list(tmp_path.glob("attempt1-node0/mlpipe-run-*/checkpoint/checkpoint.pt")):  # epoch 1 is done
        assert time.monotonic() < deadline and all(p.poll() is None for p in first), finish(first, 5)
        time.sleep(0.05)
    for proc in first:  # Spot reclaims the instances: every node's container gets SIGTERM
        proc.send_signal(signal.SIGTERM)
    results = finish(first)
    assert [code for code, _ in results] == [143, 143], results
    saved = s3.get_object(Bucket="artifacts", Key="checkpoints/r1/ddp/checkpoint.pt")["Body"].read()
    assert saved and "Contents" not in s3.list_objects_v2(
        Bucket="artifacts", Prefix="runs/r1/"
    )  # nothing committed

    second = finish(start_nodes(child_env, free_port, tmp_path, moto_server, args, attempt=2))
    assert [code for code, _ in second] == [0, 0], second
    metrics = json.loads(
        s3.get_object(Bucket="artifacts", Key="runs/r1/candidates/ddp/metrics.json")["Body"].read()
    )
    assert metrics["world_size"] == 4 and metrics["resumed_from_epoch"] >= 1
    assert metrics["validation"]["rmse"] < 0.3  # the noise is 0.1: the model learned y = 2*f0 - f1
    model = s3.get_object(Bucket="artifacts", Key="runs/r1/candidates/ddp/model/model.pt")["Body"].read()
    import torch

    assert set(torch.load(io.BytesIO(model), weights_only=True)) == {
        "mlp.0.weight",
        "mlp.0.bias",
        "mlp.2.weight",
        "mlp.2.bias",
    }


def test_one_failing_rank_fails_the_whole_job(
    features: Path, s3: Any, moto_server: str, child_env: Any, free_port: Any, tmp_path: Path
) -> None:
    sha256 = upload_with_double(s3, tmp_path, "failing_rank_double.py", "code/failing.zip")
    args = run_args(features, "s3://artifacts/code/failing.zip", sha256, entrypoint="double.py")
    args[args.index("--output") + 1] = "s3://artifacts/runs/r2/"
    args[args.index("--checkpoint") + 1] = "s3://artifacts/checkpoints/r2/"
    started = time.monotonic()
    results = finish(start_nodes(child_env, free_port, tmp_path, moto_server, args), timeout=90)
    assert results[1][0] != 0 and "a worker exited with code" in results[1][1], results  # siblings stopped
    assert results[0][0] != 0, results  # node 0's ranks lost their peers: the main node fails too
    assert time.monotonic() - started < 90
    assert "Contents" not in s3.list_objects_v2(Bucket="artifacts", Prefix="runs/r2/")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--code-sha256": "0" * 64}, "has SHA-256"),
        ({"--entrypoint": "missing.py"}, "--entrypoint 'missing.py' is not in the code package"),
        ({"--entrypoint": "../train.py"}, "must be a path inside the code package"),
        ({"--hyperparameters": "[1]"}, "--hyperparameters must be a JSON object"),
        ({"--code": "s3://artifacts/code/none.zip"}, "cannot read the code package"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_rank(
    change: dict[str, str],
    message: str,
    features: Path,
    s3: Any,
    moto_server: str,
    child_env: Any,
    tmp_path: Path,
) -> None:
    package = upload_package(s3, EXAMPLE, "code/regression.zip")
    args = run_args(features, "s3://artifacts/code/regression.zip", package.sha256)
    for flag, value in change.items():
        args[args.index(flag) + 1] = value
    result = run_one_node(args, child_env, moto_server, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []  # the work folder was removed; no rank ran


@pytest.mark.parametrize(
    ("member", "message"),
    [("../outside.py", "must be a path inside the code package"), ("link.py", "holds a symbolic link")],
)
def test_a_package_that_would_write_outside_its_folder_is_refused(
    member: str, message: str, s3: Any, moto_server: str, child_env: Any, tmp_path: Path
) -> None:
    import hashlib
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("train.py", "print('hi')\n")
        info = zipfile.ZipInfo(member)
        if member == "link.py":
            info.external_attr = 0o120777 << 16  # a symbolic link to /etc/passwd
        archive.writestr(info, "/etc/passwd" if member == "link.py" else "x = 1\n")
    data = buffer.getvalue()
    s3.put_object(Bucket="artifacts", Key="code/crafted.zip", Body=data)
    args = ["--code", "s3://artifacts/code/crafted.zip", "--code-sha256", hashlib.sha256(data).hexdigest(),
            "--entrypoint", "train.py"]  # fmt: skip
    result = run_one_node(args, child_env, moto_server, tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "outside.py").exists()


def test_the_code_package_is_reproducible_and_leaves_out_caches(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    (folder / "pkg" / "__pycache__").mkdir(parents=True)
    (folder / "train.py").write_text("print('hi')\n")
    (folder / "pkg" / "util.py").write_text("X = 1\n")
    (folder / "pkg" / "__pycache__" / "util.cpython-311.pyc").write_bytes(b"\0")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref\n")
    first = code_package.build(folder)
    assert first.files == ("pkg/util.py", "train.py")
    (folder / "train.py").touch()  # a new modification time alone changes nothing
    assert code_package.build(folder).sha256 == first.sha256
    (folder / "train.py").write_text("print('bye')\n")
    assert code_package.build(folder).sha256 != first.sha256

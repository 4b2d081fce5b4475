"""Batch inference: one prediction per input row keyed by event id, metrics when labels are present, stale
output removed on a rerun, usage errors as one line, and the same run against S3 (moto)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlpipe_batch import infer, storage, synthetic

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]


def _input_ids(manifest_uri: str, split: str) -> list[str]:
    doc = json.loads(Path(manifest_uri).read_text())
    return [
        i
        for s in doc["splits"][split]["shards"]
        for i in pq.read_table(s["uri"]).column("row_id").to_pylist()
    ]


def _predictions(folder: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted(folder.glob("part-*.parquet")))


def test_one_prediction_per_input_row(
    dataset: synthetic.SyntheticDataset, trained: dict[str, Any], tmp_path: Path, torch_threads: None
) -> None:
    assert dataset.inference_manifest_uri is not None
    out = tmp_path / "pred"
    argv = [
        "--manifest",
        dataset.inference_manifest_uri,
        "--model",
        str(trained["output"]),
        "--output",
        str(out),
    ]
    assert infer.main([*argv, "--batch-size", "100"]) == 0
    table = _predictions(out)
    assert table.column_names == ["row_id", "score"]  # no label in an inference split
    assert table.column("row_id").to_pylist() == _input_ids(dataset.inference_manifest_uri, "inference")
    scores = table.column("score").to_numpy()
    assert table.num_rows == 700 and np.all((scores > 0) & (scores < 1)) and scores.std() > 0.05
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == 700 and metrics["labelled"] is False and "inference" not in metrics
    assert [f["rows"] for f in metrics["files"]] == [
        pq.read_metadata(f["uri"]).num_rows for f in metrics["files"]
    ]


def test_labelled_split_gets_metrics_and_stale_parts_go(
    dataset: synthetic.SyntheticDataset, trained: dict[str, Any], tmp_path: Path, torch_threads: None
) -> None:
    out = tmp_path / "pred"
    out.mkdir()
    (out / "part-00042.parquet").write_bytes(b"left over by an earlier, larger run")
    (out / "notes.txt").write_text("not ours: kept")
    argv = [
        "--manifest",
        dataset.manifest_uri,
        "--model",
        str(trained["output"] / "model"),
        "--output",
        str(out),
    ]
    assert infer.main([*argv, "--split", "validation"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.json",
        "notes.txt",
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    table = _predictions(out)
    assert table.column_names == ["row_id", "score", "label"]
    assert table.column("row_id").to_pylist() == _input_ids(dataset.manifest_uri, "validation")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == 2000 and metrics["labelled"] is True
    assert metrics["validation"]["auc"] == pytest.approx(trained["metrics"]["validation"]["auc"], abs=1e-6)
    assert metrics["validation"]["log_loss"] == pytest.approx(
        trained["metrics"]["validation"]["log_loss"], abs=1e-5
    )


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--split", "holdout"], "has no split 'holdout' (it has: test, train, validation)"),
        (
            [],
            "has no split 'inference' (it has: test, train, validation); pass --split to score another split",
        ),
        (["--split", "test", "--batch-size", "0"], "--batch-size must be in [1, 16777216], got 0"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str],
    needle: str,
    dataset: synthetic.SyntheticDataset,
    trained: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = [
        "--manifest",
        dataset.manifest_uri,
        "--model",
        str(trained["output"]),
        "--output",
        str(tmp_path / "o"),
    ]
    with pytest.raises(SystemExit) as caught:
        infer.main([*base, *argv])
    lines = capsys.readouterr().err.splitlines()
    assert caught.value.code == 2 and len(lines) == 1 and lines[0].startswith("mlpipe_batch.infer: error: ")
    assert needle in lines[0]
    assert not (tmp_path / "o").exists()


def test_model_missing_a_feature_is_refused(
    dataset: synthetic.SyntheticDataset,
    trained: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    spec = json.loads((trained["output"] / "model" / "model.json").read_text())
    spec["numeric_features"][0] = "price_z"
    (model / "model.json").write_text(json.dumps(spec))
    (model / "weights.npz").write_bytes((trained["output"] / "model" / "weights.npz").read_bytes())
    argv = [
        "--manifest",
        dataset.manifest_uri,
        "--model",
        str(model),
        "--output",
        str(tmp_path / "o"),
        "--split",
        "test",
    ]
    with pytest.raises(SystemExit) as caught:
        infer.main(argv)
    assert caught.value.code == 2
    assert "the model needs feature(s) price_z that the manifest does not list" in capsys.readouterr().err


def test_inference_reads_and_writes_s3(s3_mock: Any, trained: dict[str, Any], torch_threads: None) -> None:
    on_s3 = synthetic.write_dataset(
        "s3://features/r1", rows={"train": 10, "validation": 10}, inference_rows=300, seed=3
    )
    for name in ("model.json", "weights.npz"):
        storage.write_bytes(
            f"s3://features/models/m1/model/{name}", (trained["output"] / "model" / name).read_bytes()
        )
    assert on_s3.inference_manifest_uri is not None
    job = infer.preflight(
        [
            "--manifest",
            on_s3.inference_manifest_uri,
            "--model",
            "s3://features/models/m1",
            "--output",
            "s3://features/pred/",
        ],
        {},
    )
    metrics = infer.run(job)
    assert metrics["rows"] == 300
    names = storage.list_names("s3://features/pred/")
    assert names == ["metrics.json", "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    rows = sum(
        pq.read_metadata(pa.BufferReader(storage.read_bytes(f"s3://features/pred/{n}"))).num_rows
        for n in names[1:]
    )
    assert rows == 300

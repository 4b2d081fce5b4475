"""mlpipe's EMR feature driver on local Spark with the clickstream workload's feature module: no leakage,
statistics from training only, shards and manifests; a ratio split; a module that breaks the contract."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import build_features
import inference_features
import mlpipe_features as driver
import pyarrow.parquet as pq
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

EMR_STEPS = Path(__file__).resolve().parents[2] / "emr_steps"
CLICKSTREAM = Path(__file__).resolve().parents[2] / "examples" / "clickstream"
WORKLOAD_ARGS = ["--workload-module", "features", "--workload-path", str(CLICKSTREAM), "--id-column", "event_id",
                 "--label-column", "label", "--split-by", "time", "--time-column", "ts"]  # fmt: skip


@pytest.fixture(scope="module")
def clickstream() -> driver.FeatureModule:
    sys.path.insert(0, str(CLICKSTREAM))
    try:
        return driver.load_module("features")
    finally:
        sys.path.remove(str(CLICKSTREAM))


T0 = datetime(2026, 1, 10, 12, 0, 0)
EVENT_COLUMNS = ("event_id string, ts timestamp, user_id string, item_id string, device string, country string, "
                 "category string, price double, position int, discount double, label int")  # fmt: skip


def _event(
    event_id: str, ts: datetime, user: str, item: str, label: int, discount: float | None = None
) -> tuple:
    return (event_id, ts, user, item, "mobile", "US", "books", 12.5, 3, discount, label)


def _curated(spark, tmp_path: Path, rows: list[tuple]) -> str:
    """Write events as the Glue job does: Parquet partitioned by dt."""
    path = tmp_path / "curated"
    spark.createDataFrame(rows, EVENT_COLUMNS).selectExpr("*", "to_date(ts) AS dt").write.partitionBy(
        "dt"
    ).parquet(str(path))
    return str(path)


def _raw(spark, clickstream, rows: list[tuple]) -> dict[str, dict[str, Any]]:
    df = spark.createDataFrame(rows, EVENT_COLUMNS)
    return {r["event_id"]: r.asDict() for r in clickstream.features(df).collect()}


def test_history_windows_see_only_strictly_earlier_events(spark, clickstream) -> None:
    rows = [
        _event("a", T0, "u1", "i1", 1),
        _event("b", T0 + timedelta(hours=1), "u1", "i2", 1),
        _event("c", T0 + timedelta(hours=1), "u1", "i1", 0),  # the same instant as b
        _event("d", T0 + timedelta(days=2), "u1", "i1", 0),
        _event("e", T0 + timedelta(days=9), "u1", "i1", 1),
        _event("x", T0 + timedelta(minutes=30), "u2", "i1", 1),  # another user, same item
    ]
    f = _raw(spark, clickstream, rows)
    # a: the user's first event, nothing before it
    assert f["a"]["user_events_all"] == 0.0 and f["a"]["user_is_new"] == 1.0
    assert f["a"]["user_ctr_all"] == pytest.approx(1 / 10)
    # b and c happen at the same instant: each sees only a, never the other nor itself
    for e in ("b", "c"):
        assert f[e]["user_events_all"] == pytest.approx(math.log1p(1))
        assert f[e]["user_ctr_all"] == pytest.approx((1 + 1) / (1 + 10))
        assert f[e]["user_log_hours_since_last"] == pytest.approx(math.log1p(1.0))
    # d, two days later: nothing in the last day, a, b, c in the last week
    assert f["d"]["user_events_1d"] == 0.0
    assert f["d"]["user_events_7d"] == pytest.approx(math.log1p(3))
    assert f["d"]["user_ctr_7d"] == pytest.approx((2 + 1) / (3 + 10))
    # e, nine days after a: a, b, c left the 7-day window; d (label 0) remains
    assert f["e"]["user_events_7d"] == pytest.approx(math.log1p(1))
    assert f["e"]["user_ctr_7d"] == pytest.approx((0 + 1) / (1 + 10))
    assert f["e"]["user_events_all"] == pytest.approx(math.log1p(4))
    # item i1 history: a (t0), x (t0+30m) before c
    assert f["c"]["item_events_all"] == pytest.approx(math.log1p(2))
    assert f["c"]["item_ctr_all"] == pytest.approx((2 + 1) / (2 + 10))


def test_a_rows_own_and_later_labels_never_change_its_features(spark, clickstream) -> None:
    rows = [_event(f"e{i}", T0 + timedelta(hours=i), "u1", "i1", i % 2) for i in range(6)]
    flipped = [(*r[:-1], 1 - r[-1]) if r[0] in ("e3", "e4", "e5") else r for r in rows]
    before, after = _raw(spark, clickstream, rows), _raw(spark, clickstream, flipped)
    for e in ("e0", "e1", "e2", "e3"):  # e3's own label changed, and later ones: its features must not
        assert {k: v for k, v in before[e].items() if k != "label"} == {
            k: v for k, v in after[e].items() if k != "label"
        }
    assert before["e4"]["user_ctr_all"] != after["e4"]["user_ctr_all"]  # sees e3's flipped label


@pytest.fixture(scope="module")
def built(spark, clickstream, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Curated events over 10 days (3 users x 2 items, hourly), built into shards."""
    root = tmp_path_factory.mktemp("features")
    rows = [
        _event(f"e{i:04d}", T0 + timedelta(minutes=37 * i), f"u{i % 3}", f"i{i % 2}", int(i % 7 == 0),
               0.1 if i % 5 == 0 else None)
        for i in range(400)
    ]  # fmt: skip
    curated = _curated(spark, root, rows)
    args = build_features.parse_args(
        ["--input", curated, "--output", str(root / "features"), "--manifest", str(root / "features" / "manifest.json"),
         "--run-id", "r-test", "--target-shard-mb", "0.004", "--validation-fraction", "0.1",
         "--test-fraction", "0.1", *WORKLOAD_ARGS]
    )  # fmt: skip
    manifest = build_features.build(spark, args, clickstream)
    return {"root": root, "rows": rows, "curated": curated, "manifest": manifest, "args": args}


def test_manifest_is_mlpipe_features_v1(built, clickstream) -> None:
    manifest = json.loads(Path(built["args"].manifest).read_text())
    assert manifest == built["manifest"]
    assert set(manifest) == {"format", "run_id", "created_at", "id_column", "label_column", "numeric_features",
                             "categorical_features", "splits", "statistics", "split", "split_boundaries"}  # fmt: skip
    assert manifest["format"] == "mlpipe.features.v1" and manifest["run_id"] == "r-test"
    assert (manifest["id_column"], manifest["label_column"]) == ("event_id", "label")
    assert set(manifest["splits"]) == {"train", "validation", "test"}
    assert sum(s["rows"] for s in manifest["splits"].values()) == len(built["rows"])
    assert set(manifest["statistics"]) == set(clickstream.numeric)
    assert manifest["numeric_features"] == [f"num_{n}" for n in clickstream.numeric]
    assert manifest["split_boundaries"] == {
        "train_end": "2026-01-18T16:00:00Z",
        "validation_end": "2026-01-19T17:00:00Z",
    }


def test_shards_have_the_contract_schema_and_counts(built) -> None:
    manifest = built["manifest"]
    buckets = {c["name"]: c["buckets"] for c in manifest["categorical_features"]}
    for name, split in manifest["splits"].items():
        assert split["rows"] == sum(s["rows"] for s in split["shards"])
        assert [Path(s["uri"]).name for s in split["shards"]] == [
            f"part-{i:05d}.parquet" for i in range(len(split["shards"]))
        ]
        for shard in split["shards"]:
            table = pq.read_table(shard["uri"])
            assert table.num_rows == shard["rows"] and Path(shard["uri"]).stat().st_size == shard["bytes"]
            types = {f.name: str(f.type) for f in table.schema}
            assert types == {"event_id": "string", "label": "int32",
                             **dict.fromkeys(manifest["numeric_features"], "float"), **dict.fromkeys(buckets, "int32")}, name  # fmt: skip
            for column, n in buckets.items():
                values = table[column].to_pylist()
                assert min(values) >= 0 and max(values) < n
    assert len(manifest["splits"]["train"]["shards"]) > 1  # the tiny target size forces several shards
    assert all(s["bytes"] < 3 * 0.004 * 1024 * 1024 for s in manifest["splits"]["train"]["shards"])


def test_time_split_and_training_only_statistics(built) -> None:
    manifest, rows = built["manifest"], built["rows"]
    ts = {r[0]: r[1] for r in rows}
    ends = {k: datetime.fromisoformat(v.replace("Z", "")) for k, v in manifest["split_boundaries"].items()}
    for name, split in manifest["splits"].items():
        ids = [i for s in split["shards"] for i in pq.read_table(s["uri"])["event_id"].to_pylist()]
        times = [ts[i] for i in ids]
        if name == "train":
            assert max(times) < ends["train_end"]
        elif name == "validation":
            assert ends["train_end"] <= min(times) and max(times) < ends["validation_end"]
        else:
            assert min(times) >= ends["validation_end"]
    train = pq.ParquetDataset([s["uri"] for s in manifest["splits"]["train"]["shards"]]).read()
    test = pq.ParquetDataset([s["uri"] for s in manifest["splits"]["test"]["shards"]]).read()
    for column in ("num_hour_sin", "num_user_events_all", "num_item_ctr_all"):
        values = train[column].to_numpy()
        assert values.mean() == pytest.approx(0.0, abs=1e-4) and values.std() == pytest.approx(1.0, abs=1e-3)
    # all-time counts keep growing after the training period, so the test split is not centred
    assert test["num_user_events_all"].to_numpy().mean() > 1.0


def test_inference_features_apply_the_training_statistics(spark, clickstream, built) -> None:
    root = built["root"]
    args = inference_features.parse_args(
        ["--input", built["curated"], "--training-manifest", built["args"].manifest, "--output",
         str(root / "inference"), "--manifest", str(root / "inference_manifest.json"), "--since", "2026-01-18T00:00:00Z",
         "--workload-module", "features"]
    )  # fmt: skip
    manifest = inference_features.build(spark, args, clickstream)
    assert list(manifest["splits"]) == ["inference"]
    assert manifest["statistics"] == built["manifest"]["statistics"]
    table = pq.ParquetDataset([s["uri"] for s in manifest["splits"]["inference"]["shards"]]).read()
    assert "label" not in table.column_names
    expected_ids = {r[0] for r in built["rows"] if r[1] >= datetime(2026, 1, 18)}
    assert set(table["event_id"].to_pylist()) == expected_ids
    # the same event gets the same features as in the test split (history over all input events)
    test = pq.ParquetDataset([s["uri"] for s in built["manifest"]["splits"]["test"]["shards"]]).read()
    one = test["event_id"][0].as_py()
    row = table["event_id"].to_pylist().index(one)
    expected = test["event_id"].to_pylist().index(one)
    assert {c: table[c][row].as_py() for c in manifest["numeric_features"]} == {
        c: test[c][expected].as_py() for c in manifest["numeric_features"]
    }


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        ("build_features.py", ["--input", "/no/such", "--output", "o", "--manifest", "m", *WORKLOAD_ARGS],
         "input not found: /no/such"),
        ("build_features.py", ["--input", "i", "--output", "o", *WORKLOAD_ARGS], "required: --manifest"),
        ("build_features.py", ["--input", "i", "--output", "o", "--manifest", "m", "--target-shard-mb", "0",
                               *WORKLOAD_ARGS], "--target-shard-mb must be positive"),
        ("build_features.py", ["--input", ".", "--output", "o", "--manifest", "m", *WORKLOAD_ARGS[:2]],
         "required: --id-column, --label-column"),
        ("build_features.py", ["--input", ".", "--output", "o", "--manifest", "m", *WORKLOAD_ARGS[:-2]],
         "--split-by time needs --time-column"),
        ("build_features.py", ["--input", ".", "--output", "o", "--manifest", "m", *WORKLOAD_ARGS[2:],
                               "--workload-module", "nowhere"], "--workload-module nowhere: cannot import it"),
        ("inference_features.py", ["--input", "i", "--training-manifest", "m", "--output", "o", "--manifest", "x",
                                   "--workload-module", "features", "--since", "soon"],
         "--since is not an ISO-8601 timestamp"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_one_line(
    script: str, argv: list[str], message: str, tmp_path: Path
) -> None:
    proc = subprocess.run([sys.executable, str(EMR_STEPS / script), *argv], capture_output=True, text=True,
                          cwd=tmp_path, check=False)  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_ratio_split_is_by_a_seeded_hash_of_the_id(spark, clickstream, built, tmp_path: Path) -> None:
    def split_ids(folder: Path) -> dict[str, set[str]]:
        args = build_features.parse_args(
            ["--input", built["curated"], "--output", str(folder), "--manifest", str(folder / "manifest.json"),
             *WORKLOAD_ARGS[:-4], "--split-by", "ratio", "--validation-fraction", "0.2", "--test-fraction", "0.2"]
        )  # fmt: skip
        manifest = build_features.build(spark, args, clickstream)
        assert (
            manifest["split"] == {"by": "ratio", "time_column": None} and manifest["split_boundaries"] == {}
        )
        return {
            name: {i for s in split["shards"] for i in pq.read_table(s["uri"])["event_id"].to_pylist()}
            for name, split in manifest["splits"].items()
        }

    first, again = split_ids(tmp_path / "a"), split_ids(tmp_path / "b")
    assert first == again  # the same rows in the same splits, run after run
    assert set.union(*first.values()) == {r[0] for r in built["rows"]}
    assert 40 <= len(first["validation"]) <= 120 and 40 <= len(first["test"]) <= 120  # 20% of 400 each


def test_a_feature_module_that_breaks_the_contract_is_refused(spark, built, tmp_path: Path) -> None:
    (tmp_path / "thin_features.py").write_text(
        "NUMERIC_FEATURES = ('price', 'missing')\n"
        "CATEGORICAL_FEATURES = {}\n"
        "def features(records):\n"
        "    return records.select('event_id', 'ts', 'label', 'price')\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        module = driver.load_module("thin_features")
    finally:
        sys.path.remove(str(tmp_path))
    args = build_features.parse_args(
        ["--input", built["curated"], "--output", str(tmp_path / "out"), "--manifest", str(tmp_path / "m.json"),
         *WORKLOAD_ARGS]
    )  # fmt: skip
    with pytest.raises(
        build_features.io.UsageError, match=r"thin_features\.features returned no column 'missing'"
    ):
        build_features.build(spark, args, module)
    assert not (tmp_path / "m.json").exists()

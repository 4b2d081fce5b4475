"""The containers' plain-Python parts: metrics, hyperparameter validation, the manifest, storage on S3."""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pytest
from mlpipe_batch import hyperparams, manifest, metrics, storage, synthetic
from mlpipe_batch.errors import UsageError


def brute_force_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_pairwise_definition_with_ties() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(size=300) + labels, 1)  # rounding makes many ties
    assert metrics.roc_auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores), abs=1e-12)
    assert metrics.roc_auc(labels, -scores) == pytest.approx(1 - brute_force_auc(labels, scores), abs=1e-12)
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert math.isnan(metrics.roc_auc([1, 1], [0.3, 0.4]))


def test_log_loss_is_mean_cross_entropy_and_clipped() -> None:
    assert metrics.log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert math.isfinite(metrics.log_loss([1, 0], [0.0, 1.0]))


def test_expected_bayes_auc_matches_sampled_labels() -> None:
    """The synthetic set's exact Bayes AUC agrees with the AUC of the true probability on drawn labels."""
    _, _, labels, probability = synthetic.sample(40_000, seed=11)
    assert synthetic.expected_auc(probability) == pytest.approx(
        metrics.roc_auc(labels, probability), abs=0.01
    )
    assert 0.8 < synthetic.expected_auc(probability) < 0.95


def test_hyperparameter_precedence_defaults_env_json_flags() -> None:
    hp, sources = hyperparams.resolve(
        environ={"MLPIPE_HP_LR": "0.5", "MLPIPE_HP_EPOCHS": "7", "MLPIPE_HP_SEED": "9", "PATH": "/bin"},
        json_text='{"lr": 0.25, "epochs": 3, "hidden": "32,16"}',
        flags={"epochs": "2"},
    )
    assert (hp.lr, hp.epochs, hp.seed, hp.hidden, hp.batch_size) == (0.25, 2, 9, (32, 16), 1024)
    assert sources["lr"] == "json" and sources["epochs"] == "flag" and sources["seed"] == "env"
    assert sources["batch_size"] == "default"
    hp, _ = hyperparams.resolve(json_text='{"hidden": [8], "dropout": 0}')
    assert hp.hidden == (8,) and hp.dropout == 0.0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (
            {"json_text": '{"learning_rate": 0.1}'},
            "unknown hyperparameter 'learning_rate' in --hyperparameters (did you mean 'lr'?)",
        ),
        ({"json_text": '{"epochs": 2.5}'}, "epochs=2.5 from --hyperparameters has the wrong type"),
        ({"json_text": '{"epochs": true}'}, "epochs=true from --hyperparameters has the wrong type"),
        ({"json_text": '{"lr": "fast"}'}, "lr='fast' from --hyperparameters has the wrong type"),
        ({"json_text": '{"lr": 0}'}, "lr=0.0 from --hyperparameters is out of range: a number in (0, 10]"),
        ({"json_text": '{"dropout": 1}'}, "dropout=1.0 from --hyperparameters is out of range"),
        ({"json_text": '{"hidden": [64, 0]}'}, "hidden=0 from --hyperparameters is out of range"),
        (
            {"json_text": '{"precision": "fp16"}'},
            'precision="fp16" from --hyperparameters: one of bf16, fp32',
        ),
        ({"json_text": "[1, 2]"}, "--hyperparameters must be a JSON object, got list"),
        ({"json_text": "{oops"}, "--hyperparameters is not valid JSON"),
        ({"json_text": ""}, "--hyperparameters is empty"),
        (
            {"environ": {"MLPIPE_HP_BATCHSIZE": "3"}},
            "unknown hyperparameter 'batchsize' in environment variable",
        ),
        (
            {"environ": {"MLPIPE_HP_BATCH_SIZE": "0"}},
            "batch_size=0 from environment variable MLPIPE_HP_BATCH_SIZE",
        ),
        ({"flags": {"epochs": "ten"}}, "epochs='ten' from flag --epochs has the wrong type"),
    ],
)
def test_bad_hyperparameters_are_one_clear_usage_error(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        hyperparams.resolve(**kwargs)  # type: ignore[arg-type]
    assert needle in str(caught.value)


def _manifest_doc() -> dict[str, object]:
    return {
        "format": "mlpipe.features.v1",
        "run_id": "r1",
        "id_column": "event_id",
        "label_column": "label",
        "numeric_features": ["a"],
        "categorical_features": [{"name": "c", "buckets": 4}],
        "splits": {"train": {"rows": 3, "shards": [{"uri": "part-0.parquet", "rows": 3, "bytes": 10}]}},
    }


def test_manifest_parses_and_resolves_relative_shards() -> None:
    parsed = manifest.parse(json.dumps(_manifest_doc()).encode(), "s3://b/features/r1/manifest.json")
    assert parsed.split("train").shards[0].uri == "s3://b/features/r1/part-0.parquet"
    assert parsed.categorical_features[0].buckets == 4
    with pytest.raises(UsageError, match="has no split 'validation'"):
        parsed.split("validation")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"format": "mlpipe.features.v0"}, "format is 'mlpipe.features.v0'"),
        ({"numeric_features": [], "categorical_features": []}, "it lists no features"),
        ({"categorical_features": [{"name": "c", "buckets": 0}]}, "c.buckets must be an integer >= 1"),
        (
            {"splits": {"train": {"rows": 5, "shards": [{"uri": "x", "rows": 3}]}}},
            "rows is 5 but its shards hold 3",
        ),
        ({"numeric_features": ["c"]}, "a feature name appears twice"),
    ],
)
def test_bad_manifests_are_usage_errors(change: dict[str, object], needle: str) -> None:
    doc = {**_manifest_doc(), **change}
    with pytest.raises(UsageError) as caught:
        manifest.parse(json.dumps(doc).encode(), "m.json")
    assert needle in str(caught.value)


def test_storage_round_trip_on_s3(s3_mock: object) -> None:
    uri = "s3://features/run/a/b.json"
    storage.write_bytes(uri, b"one")
    storage.write_bytes(uri, b"two")
    storage.write_bytes("s3://features/run/a/c.bin", b"x")
    storage.write_bytes("s3://features/run/a/deeper/d.bin", b"x")
    assert storage.read_bytes(uri) == b"two"
    assert storage.exists(uri) and not storage.exists("s3://features/run/a/missing")
    assert storage.list_names("s3://features/run/a") == ["b.json", "c.bin"]
    storage.delete(uri)
    storage.delete(uri)  # deleting a missing object is fine
    assert storage.list_names("s3://features/run/a/") == ["c.bin"]
    with pytest.raises(storage.StorageError, match="NoSuchKey"):
        storage.read_bytes(uri)
    with pytest.raises(
        UsageError, match=re.escape("cannot read the manifest: cannot read s3://features/nope.json")
    ):
        manifest.load("s3://features/nope.json")


def test_local_write_is_atomic_rename(tmp_path: object) -> None:
    from pathlib import Path

    target = Path(str(tmp_path)) / "out" / "m.json"
    storage.write_bytes(str(target), b"1")
    storage.write_bytes(str(target), b"22")
    assert target.read_bytes() == b"22"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.json"]  # no temporary left behind

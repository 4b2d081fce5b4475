"""The clickstream example's generator: determinism, layout, dirty rows of every kind, truth, CLI and S3
output."""

from __future__ import annotations

import gzip
import json
import math
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLICKSTREAM = REPO_ROOT / "examples" / "clickstream"
sys.path.insert(0, str(CLICKSTREAM))  # the example's modules, as its scripts import them

import event_schema as schema  # noqa: E402
from generator import GeneratorConfig, generate  # noqa: E402
from truth import bayes_optimal_auc, expected_auc, realized_auc  # noqa: E402

TS_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def _lines(folder: Path) -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(folder.iterdir()):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        out += data.splitlines()
    return out


def reference_kind(line: bytes) -> str | None:
    """An independent, plain-Python reading of the raw schema: which kind of dirty is this line?"""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    try:
        record = json.loads(text)
    except ValueError:
        return "malformed_json"
    if not isinstance(record, dict):
        return "malformed_json"
    if any(record.get(name) is None for name in schema.REQUIRED_FIELDS):
        return "missing_field"
    number = (int, float)
    if (
        not isinstance(record["price"], number)
        or isinstance(record["price"], bool)
        or type(record["position"]) is not int
        or type(record["label"]) is not int
        or ("discount" in record and not isinstance(record["discount"], number))
        or not all(isinstance(record[n], str) for n in ("event_id", "ts", "user_id", "item_id"))
        or not re.fullmatch(r"u\d+", record["user_id"])
        or not re.fullmatch(r"i\d+", record["item_id"])
    ):
        return "wrong_type"
    if not TS_PATTERN.match(record["ts"]) or not ("2000" <= record["ts"][:4] < "2100"):
        return "bad_timestamp"
    try:
        datetime.fromisoformat(record["ts"].replace("Z", "+00:00"))
    except ValueError:
        return "bad_timestamp"
    low, high = schema.PRICE_RANGE
    if (
        not low <= record["price"] <= high
        or not schema.POSITION_RANGE[0] <= record["position"] <= schema.POSITION_RANGE[1]
        or record["label"] not in schema.LABEL_VALUES
        or not schema.DISCOUNT_RANGE[0] <= record.get("discount", 0.0) <= schema.DISCOUNT_RANGE[1]
    ):
        return "out_of_range"
    if (
        record["device"] not in schema.DEVICES
        or record["country"] not in schema.COUNTRIES
        or record["category"] not in schema.CATEGORIES
    ):
        return "unknown_category"
    return None


@pytest.fixture(scope="module")
def dirty_set(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("gen") / "events"
    cfg = GeneratorConfig(rows=16_000, output=str(folder), seed=5, dirty_fraction=0.4, rows_per_file=5_000)
    return cfg, generate(cfg)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    def run(name: str, seed: int) -> dict[str, bytes]:
        cfg = GeneratorConfig(
            rows=3_000, output=str(tmp_path / name), seed=seed, rows_per_file=1_000, gzip=True
        )
        generate(cfg)
        files = {p.name.replace(f"-s{seed}-", "-"): p.read_bytes() for p in (tmp_path / name).iterdir()}
        files["truth"] = Path(cfg.truth_uri).read_bytes()
        return files

    first, again, other = run("a", 1), run("b", 1), run("c", 2)
    assert first == again
    assert (
        first.keys()
        == other.keys()
        == {"part-00000.jsonl.gz", "part-00001.jsonl.gz", "part-00002.jsonl.gz", "truth"}
    )
    assert all(first[name] != other[name] for name in first)


def test_layout_truth_and_no_probability_in_the_logs(dirty_set) -> None:
    cfg, result = dirty_set
    files = sorted(Path(cfg.output).iterdir())
    assert [p.name for p in files] == [f"part-s5-{i:05d}.jsonl" for i in range(4)]
    assert [len(p.read_bytes().splitlines()) for p in files] == [5_000, 5_000, 5_000, 1_000]
    assert not [p for p in Path(cfg.output).parent.rglob("*.tmp")]  # nothing left half-written
    truth = pq.read_table(cfg.truth_uri)
    assert truth.num_rows == result.events == cfg.rows - result.dirty_counts["duplicate"]
    assert len(set(truth["event_id"].to_pylist())) == truth.num_rows
    p = truth["p"].to_numpy()
    assert ((p > 0) & (p < 1)).all()
    clean_keys = {
        tuple(sorted(json.loads(line)))
        for line in _lines(Path(cfg.output))[:2000]
        if reference_kind(line) is None
    }
    assert clean_keys <= {
        tuple(sorted(schema.REQUIRED_FIELDS)),
        tuple(sorted((*schema.REQUIRED_FIELDS, "discount"))),
    }


def test_every_dirty_line_is_the_kind_the_truth_says(dirty_set) -> None:
    cfg, result = dirty_set
    truth = pq.read_table(cfg.truth_uri).to_pydict()
    kind_of = dict(zip(truth["event_id"], truth["dirty"], strict=True))
    ids = iter(truth["event_id"])  # events appear in id order; a duplicate repeats an earlier clean line
    seen: set[bytes] = set()
    found = Counter()
    for line in _lines(Path(cfg.output)):
        if line in seen and reference_kind(line) is None:  # clean lines are unique but for duplicates
            found["duplicate"] += 1
            continue
        seen.add(line)
        event_id = next(ids)
        kind = reference_kind(line)
        assert kind == kind_of[event_id], (event_id, line)
        found[kind] += 1
    assert {k: found[k] for k in schema.DIRTY_KINDS} == result.dirty_counts
    assert set(result.dirty_counts) == set(schema.DIRTY_KINDS)


def test_dirty_fractions_follow_the_setting(dirty_set, tmp_path: Path) -> None:
    cfg, result = dirty_set
    share = cfg.dirty_fraction / len(schema.DIRTY_KINDS)  # 5% of lines per kind
    for kind, count in result.dirty_counts.items():
        assert abs(count / cfg.rows - share) < 4 * math.sqrt(share * (1 - share) / cfg.rows), kind
    clean = generate(GeneratorConfig(rows=2_000, output=str(tmp_path / "clean"), dirty_fraction=0.0))
    assert sum(clean.dirty_counts.values()) == 0
    assert all(reference_kind(line) is None for line in _lines(tmp_path / "clean"))


def test_expected_auc_matches_brute_force_and_sampling() -> None:
    rng = np.random.default_rng(0)
    p = np.round(rng.random(300), 2)  # with ties
    num = den = 0.0
    for i in range(len(p)):
        for j in range(len(p)):
            if i != j:
                w = p[i] * (1 - p[j])
                den += w
                num += w * (1.0 if p[i] > p[j] else 0.5 if p[i] == p[j] else 0.0)
    assert expected_auc(p) == pytest.approx(num / den, rel=1e-12)
    big = rng.beta(1, 4, 200_000)
    assert realized_auc(big, rng.random(big.size) < big) == pytest.approx(expected_auc(big), abs=0.005)
    assert realized_auc(np.array([0.1, 0.9, 0.5, 0.5]), np.array([0, 1, 1, 0])) == pytest.approx(0.875)


def test_bayes_optimal_auc_of_the_workload(dirty_set) -> None:
    cfg, _ = dirty_set
    expected = bayes_optimal_auc(cfg.truth_uri)
    realized = bayes_optimal_auc(cfg.truth_uri, realized=True)
    assert 0.7 < expected < 0.95
    assert realized == pytest.approx(expected, abs=0.03)
    some = pq.read_table(cfg.truth_uri)["event_id"].to_pylist()[:3000]
    assert bayes_optimal_auc(cfg.truth_uri, some) != expected


def test_cli_writes_raw_files_and_truth_and_rejects_bad_arguments(tmp_path: Path) -> None:
    def generate_py(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(CLICKSTREAM / "generate.py"), *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)

    done = generate_py("--rows", "500", "--seed", "3", "--out", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 500 and (tmp_path / "data" / "truth.parquet").exists()
    assert len(_lines(tmp_path / "data" / "raw")) == 500
    for args, message in (
        (["--rows", "0"], "generate.py: error: --rows must be at least 1, got 0"),
        (
            ["--rows", "10", "--dirty-fraction", "1.5"],
            "generate.py: error: --dirty-fraction must be in [0, 1), got 1.5",
        ),
    ):
        done = generate_py(*args, "--out", str(tmp_path / "bad"))
        assert done.returncode == 2 and done.stderr.strip() == message


def test_writes_to_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="raw")
        result = generate(
            GeneratorConfig(rows=1_500, output="s3://raw/events/", seed=4, rows_per_file=1_000, gzip=True)
        )
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="raw")["Contents"])
        assert keys == [
            "events/part-s4-00000.jsonl.gz",
            "events/part-s4-00001.jsonl.gz",
            "events_truth.parquet",
        ]
        body = s3.get_object(Bucket="raw", Key=keys[1])["Body"].read()
        assert len(gzip.decompress(body).splitlines()) == 500
        assert 0.5 < bayes_optimal_auc(result.truth) < 1.0

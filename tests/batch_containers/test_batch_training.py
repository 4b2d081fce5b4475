"""Training in one process: quality against the Bayes-optimal AUC, the portable model's parity with PyTorch,
exact resumption from a mid-epoch checkpoint, and the refusal of bad input before any work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from mlpipe_batch import data, synthetic, train, trainer
from mlpipe_batch.distributed import Dist, StopSignal
from mlpipe_batch.launcher import detect
from mlpipe_batch.metrics import roc_auc
from mlpipe_batch.model import TabularModel, write_portable

pytestmark = [pytest.mark.torch, pytest.mark.xdist_group("torch")]

REPO = Path(__file__).resolve().parents[2]


def test_single_process_reaches_bayes_optimal_auc(
    trained: dict[str, Any], dataset: synthetic.SyntheticDataset
) -> None:
    metrics = trained["metrics"]
    bayes = dataset.bayes_auc["validation"]
    validation = metrics["validation"]
    assert validation["auc"] >= 0.9 * bayes, (validation["auc"], bayes)
    assert validation["auc"] <= bayes + 0.03  # above the Bayes AUC would mean a leak
    assert "test" not in metrics and "test_auc" not in metrics  # the test split is the evaluation job's
    assert metrics["epochs"] == 4 and metrics["global_steps"] == 4 * metrics["steps_per_epoch"] == 4 * 47
    assert metrics["resumed_from"] is None and metrics["world_size"] == 1
    assert metrics["throughput_samples_per_s"] > 0 and 0 < validation["log_loss"] < 0.6931
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3, 4]
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"]


def test_model_folder_follows_the_portable_contract(trained: dict[str, Any]) -> None:
    model_dir = trained["output"] / "model"
    spec = json.loads((model_dir / "model.json").read_text())
    assert spec == {
        "format": "mlpipe.model.v1",
        "numeric_features": list(synthetic.NUMERIC),
        "categorical_features": [{"name": n, "buckets": b, "dim": 8} for n, b in synthetic.CATEGORICAL],
        "layers": [
            {"weight": "dense0.weight", "bias": "dense0.bias", "activation": "relu"},
            {"weight": "dense1.weight", "bias": "dense1.bias", "activation": "relu"},
            {"weight": "dense2.weight", "bias": "dense2.bias", "activation": "none"},
        ],
        "output": "sigmoid",
    }
    with np.load(model_dir / "weights.npz", allow_pickle=False) as npz:
        shapes = {k: npz[k].shape for k in npz.files}
        assert all(npz[k].dtype == np.float32 for k in npz.files)
    assert shapes == {
        "embedding.c0": (16, 8),
        "embedding.c1": (64, 8),
        "dense0.weight": (64, 4 + 2 * 8),
        "dense0.bias": (64,),
        "dense1.weight": (32, 64),
        "dense1.bias": (32,),
        "dense2.weight": (1, 32),
        "dense2.bias": (1,),
    }
    assert sorted(p.name for p in trained["output"].iterdir()) == ["metrics.json", "model"]


def own_numpy_logits(model_dir: Path, columns: dict[str, np.ndarray]) -> np.ndarray:
    """An independent reading of mlpipe.model.v1 (contracts.md), numpy only."""
    spec = json.loads((model_dir / "model.json").read_text())
    with np.load(model_dir / "weights.npz", allow_pickle=False) as npz:
        weights = {k: npz[k].astype(np.float64) for k in npz.files}
    parts = [np.stack([columns[n] for n in spec["numeric_features"]], axis=1).astype(np.float64)]
    parts += [weights[f"embedding.{f['name']}"][columns[f["name"]]] for f in spec["categorical_features"]]
    x = np.concatenate(parts, axis=1)
    for layer in spec["layers"]:
        x = x @ weights[layer["weight"]].T + weights[layer["bias"]]
        if layer["activation"] == "relu":
            x = np.maximum(x, 0.0)
    return x[:, 0]


SCORERS = {"own-numpy": own_numpy_logits}


@pytest.mark.parametrize("scorer", SCORERS)
def test_exported_model_scores_like_torch(scorer: str, tmp_path: Path, torch_threads: None) -> None:
    torch.manual_seed(5)
    model = TabularModel(["a", "b", "c"], [("u", 7), ("v", 3)], embedding_dim=4, hidden=[16, 8]).eval()
    with torch.no_grad():  # weights far from their initial values, so every layer matters
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    rng = np.random.default_rng(0)
    numeric = rng.normal(size=(500, 3)).astype(np.float32)
    categorical = np.stack([rng.integers(0, 7, 500), rng.integers(0, 3, 500)], axis=1)
    with torch.no_grad():
        expected = model(torch.from_numpy(numeric), torch.from_numpy(categorical)).double().numpy()
    write_portable(model, str(tmp_path / "model"))
    columns = {
        "a": numeric[:, 0],
        "b": numeric[:, 1],
        "c": numeric[:, 2],
        "u": categorical[:, 0],
        "v": categorical[:, 1],
    }
    got = SCORERS[scorer](tmp_path / "model", columns)
    assert expected.std() > 0.5  # a meaningful spread of logits, not a constant
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scorer", SCORERS)
def test_trained_model_reproduces_its_validation_auc_without_torch(
    scorer: str, trained: dict[str, Any], dataset: synthetic.SyntheticDataset
) -> None:
    manifest = json.loads(Path(dataset.manifest_uri).read_text())
    tables = [pq.read_table(s["uri"]) for s in manifest["splits"]["validation"]["shards"]]
    columns = {
        name: np.concatenate([t.column(name).to_numpy() for t in tables]) for name in tables[0].column_names
    }
    logits = SCORERS[scorer](trained["output"] / "model", columns)
    assert roc_auc(columns["label"], logits) == pytest.approx(
        trained["metrics"]["validation"]["auc"], abs=1e-4
    )


def _job(
    dataset: synthetic.SyntheticDataset, hp: dict[str, Any], output: Path, checkpoint: Path | None
) -> train.Job:
    argv = ["--manifest", dataset.manifest_uri, "--output", str(output), "--hyperparameters", json.dumps(hp)]
    argv += ["--device", "cpu"] + (["--checkpoint", str(checkpoint)] if checkpoint else [])
    job, topology = train.preflight(argv, {})
    assert topology.mode == "single"
    return job


def test_resume_from_mid_epoch_checkpoint_is_exact(
    dataset: synthetic.SyntheticDataset, fast_hp: dict[str, Any], tmp_path: Path, torch_threads: None
) -> None:
    hp = {**fast_hp, "epochs": 2, "dropout": 0.0}
    single = Dist(detect({}, 1), torch.device("cpu"), 60)

    straight = trainer.Trainer(_job(dataset, hp, tmp_path / "a", None), single, StopSignal())
    straight.fit()

    stop = StopSignal()
    job = _job(dataset, hp, tmp_path / "b", tmp_path / "ckpt")
    first = trainer.Trainer(job, single, stop)
    source = first.batches

    def batches_then_signal(epoch: int, skip: int) -> Any:
        for i, batch in enumerate(source(epoch, skip)):
            if epoch == 1 and i == 20:
                stop.signum = 15  # as the SIGTERM handler does
            yield batch

    first.batches = batches_then_signal
    with pytest.raises(trainer.Stopped):
        first.fit()
    assert first.step_in_epoch == 24 and first.epoch == 1  # the next stop check (every 8 steps) after 21

    resumed_job = _job(dataset, hp, tmp_path / "b", tmp_path / "ckpt")
    assert resumed_job.resume is not None and resumed_job.resume["reason"] == "signal"
    second = trainer.Trainer(resumed_job, single, StopSignal())
    assert second.resumed_from is not None
    assert (second.resumed_from["epoch"], second.resumed_from["step_in_epoch"]) == (1, 24)
    assert second.resumed_from["global_step"] == 47 + 24
    second.fit()
    assert second.global_step == straight.global_step == 2 * 47
    for name, tensor in straight.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
    assert second.history[0] == straight.history[0]
    for key in (
        "validation_auc",
        "validation_log_loss",
    ):  # train_loss of a resumed epoch covers its rest only
        assert second.history[1][key] == straight.history[1][key]


def _main_exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as caught:
        train.main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return int(caught.value.code), lines  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--hyperparameters", '{"lr": -1}'], "lr=-1.0 from --hyperparameters is out of range"),
        (
            ["--hyperparameters", '{"epoch": 3}'],
            "unknown hyperparameter 'epoch' in --hyperparameters (did you mean 'epochs'?)",
        ),
        (
            ["--hyperparameters", '{"batch_size": "big"}'],
            "batch_size='big' from --hyperparameters has the wrong type",
        ),
        (["--hyperparameters", "{}", "--epochs=0"], "epochs=0 from flag --epochs is out of range"),
        (["--hyperparameters", ""], "--hyperparameters is empty"),
        (["--checkpoint", ""], "--checkpoint is empty"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    extra: list[str],
    needle: str,
    dataset: synthetic.SyntheticDataset,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    argv = ["--manifest", dataset.manifest_uri, "--output", str(out), "--checkpoint", str(ckpt), *extra]
    code, lines = _main_exit(argv, capsys)
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("mlpipe_batch.train: error: "), lines
    assert needle in lines[0]
    assert not out.exists() and not ckpt.exists()


def test_missing_and_empty_paths_exit_2(
    dataset: synthetic.SyntheticDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _main_exit(["--manifest", dataset.manifest_uri], capsys)
    assert code == 2 and lines == [
        "mlpipe_batch.train: error: the following arguments are required: --output"
    ]
    code, lines = _main_exit(["--manifest", " ", "--output", str(tmp_path / "o")], capsys)
    assert code == 2 and lines == [
        "mlpipe_batch.train: error: --manifest is empty: pass a URI (s3://bucket/prefix or a local path)"
    ]
    code, lines = _main_exit(
        ["--manifest", str(tmp_path / "none.json"), "--output", str(tmp_path / "o")], capsys
    )
    assert code == 2 and "cannot read the manifest" in lines[0] and "no such file" in lines[0]
    assert not (tmp_path / "o").exists()


def test_bad_environment_hyperparameter_exits_2(
    dataset: synthetic.SyntheticDataset,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLPIPE_HP_DROPOUT", "1.5")
    code, lines = _main_exit(["--manifest", dataset.manifest_uri, "--output", str(tmp_path / "o")], capsys)
    assert code == 2 and len(lines) == 1
    assert (
        "dropout=1.5 from environment variable MLPIPE_HP_DROPOUT is out of range: a number in [0, 1)"
        in lines[0]
    )


def test_checkpoint_of_other_hyperparameters_is_refused(
    trained: dict[str, Any],
    fast_hp: dict[str, Any],
    dataset: synthetic.SyntheticDataset,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hp = json.dumps({**fast_hp, "lr": 0.02, "log_every_steps": 5})
    argv = [
        "--manifest",
        dataset.manifest_uri,
        "--output",
        str(tmp_path / "o"),
        "--checkpoint",
        str(trained["checkpoints"]),
    ]
    code, lines = _main_exit([*argv, "--hyperparameters", hp], capsys)
    assert code == 2 and len(lines) == 1
    assert (
        "was trained with other hyperparameters (lr: 0.01 -> 0.02)" in lines[0]
    )  # log_every_steps may change
    assert not (tmp_path / "o").exists()


def test_shard_that_contradicts_the_manifest_exits_3(
    dataset: synthetic.SyntheticDataset,
    fast_hp: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    torch_threads: None,
) -> None:
    doc = json.loads(Path(dataset.manifest_uri).read_text())
    doc["categorical_features"][1]["buckets"] = 8  # the shards hold c1 values up to 63
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(doc))
    argv = [
        "--manifest",
        str(manifest_path),
        "--output",
        str(tmp_path / "o"),
        "--hyperparameters",
        json.dumps(fast_hp),
    ]
    code, lines = _main_exit(argv, capsys)
    errors = [line for line in lines if "error" in line]
    assert code == 3
    assert errors == [line for line in lines if line.startswith("mlpipe_batch.train: error: ")]
    assert "column c1 has values in [0, 63], outside the manifest's [0, 8)" in errors[0]
    assert not (tmp_path / "o").exists()


def test_loader_gives_every_rank_the_same_number_of_batches(dataset: synthetic.SyntheticDataset) -> None:
    from mlpipe_batch import manifest

    loaded = manifest.load(dataset.manifest_uri)
    for world in (1, 2, 3, 5):
        counts, seen = [], []
        for rank in range(world):
            stream = data.training_stream(
                loaded, split="train", epoch=1, rank=rank, world_size=world, batch_size=100, seed=3
            )
            batches = list(stream)
            counts.append(len(batches))
            seen.append(np.concatenate([b.numeric.numpy() for b in batches]))
        assert len(set(counts)) == 1 and counts[0] == data.steps_per_epoch(loaded, "train", world, 100)
        everything = np.concatenate(seen)
        assert (
            len(np.unique(everything, axis=0)) == len(everything) == (6000 // world) * world
        )  # disjoint ranks


def test_skipping_batches_resumes_the_same_sequence(dataset: synthetic.SyntheticDataset) -> None:
    from mlpipe_batch import manifest

    loaded = manifest.load(dataset.manifest_uri)
    kwargs: dict[str, Any] = {
        "split": "train",
        "epoch": 2,
        "rank": 1,
        "world_size": 2,
        "batch_size": 64,
        "seed": 9,
    }
    full = [b.numeric.clone() for b in data.training_stream(loaded, **kwargs)]
    tail = [b.numeric.clone() for b in data.training_stream(loaded, skip_batches=17, **kwargs)]
    assert len(tail) == len(full) - 17
    for a, b in zip(full[17:], tail, strict=True):
        assert torch.equal(a, b)
    other_epoch = next(iter(data.training_stream(loaded, **{**kwargs, "epoch": 3})))
    assert not torch.equal(other_epoch.numeric, full[0])  # shuffled anew each epoch

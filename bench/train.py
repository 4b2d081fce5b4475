"""Benchmark of the training container's code: throughput, input-pipeline overhead, DDP scaling, GPU path.

    .venv/bin/python bench/train.py                 # CPU: figures and ratios, about a minute
    .venv/bin/python bench/train.py --device cuda   # adds samples/s, GPU utilization, bf16 vs fp32

Prints figures and ratios and writes them to bench/results/train.json; it asserts nothing about time.

- samples/s: training steps only (no evaluation, no checkpoints), as metrics.json reports them.
- loader overhead: step time with the real loader (Parquet shards on S3, a moto server in its own process)
  over step time with the very same batches already in memory; the goal is at most 1.10. The same with local
  shards isolates the loader's own cost (the moto server shares the machine's cores; S3 would not).
- DDP scaling on CPU: the entry point with 2 gloo workers (the launcher) against 1 worker, same batch per
  worker (weak scaling), local shards; efficiency = samples/s(2) / (2 x samples/s(1)).
- GPU (--device cuda): samples/s with bf16 autocast and with fp32, and GPU utilization polled with pynvml or
  nvidia-smi while training. Skipped, with a message, when there is no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "batch_containers" / "src"
sys.path.insert(0, str(SRC))

import torch  # noqa: E402
from mlpipe_batch import data, storage, synthetic, train  # noqa: E402
from mlpipe_batch.distributed import Dist, StopSignal  # noqa: E402
from mlpipe_batch.trainer import Trainer  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hyperparameters(args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    hp = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": 0.003,
        "hidden": [256, 128],
        "embedding_dim": 16,
        "log_every_steps": 0,
        "checkpoint_interval_s": 0,
    }
    return {**hp, **overrides}


def entry_argv(manifest_uri: str, hp: dict[str, Any], device: str, out: Path) -> list[str]:
    """The training entry point's arguments."""
    return [
        "--manifest",
        manifest_uri,
        "--output",
        str(out),
        "--hyperparameters",
        json.dumps(hp),
        "--device",
        device,
    ]


def make_trainer(manifest_uri: str, hp: dict[str, Any], device: str, out: Path) -> Trainer:
    argv = entry_argv(manifest_uri, hp, device, out)
    job, topology = train.preflight(argv, {})
    return Trainer(job, Dist(topology, torch.device(job.device), 600), StopSignal())


def step_seconds(trainer: Trainer) -> float:
    trainer.fit()
    return trainer.train_seconds / max(1, trainer.global_step)


def loader_overhead(args: argparse.Namespace, manifest_uri: str, work: Path) -> dict[str, Any]:
    """Step time with the streaming S3 loader over step time with the same batches in memory. The two runs of
    each trial alternate in order (a loaded machine drifts); the median and the best-of ratios are reported."""
    import statistics

    hp = hyperparameters(args)
    real, memory = [], []
    steps = 0
    for trial in range(args.trials):
        for kind in ("streaming", "memory") if trial % 2 == 0 else ("memory", "streaming"):
            trainer = make_trainer(manifest_uri, hp, args.device, work / f"{kind}{trial}")
            if kind == "memory":
                epochs = [
                    list(trainer.batches(epoch, 0)) for epoch in range(hp["epochs"])
                ]  # read before timing
                trainer.batches = lambda epoch, skip, epochs=epochs: epochs[epoch][skip:]
            (real if kind == "streaming" else memory).append(step_seconds(trainer))
            steps = trainer.global_step
    ratios = [r / m for r, m in zip(real, memory, strict=True)]
    return {
        "steps_timed": steps,
        "batch_size": hp["batch_size"],
        "step_ms_streaming": 1000 * statistics.median(real),
        "step_ms_in_memory": 1000 * statistics.median(memory),
        "loader_overhead_ratio": statistics.median(ratios),
        "loader_overhead_ratio_best_of": min(real) / min(memory),
        "samples_per_s_streaming": hp["batch_size"] / statistics.median(real),
        "trials_ms": {"streaming": [1000 * t for t in real], "memory": [1000 * t for t in memory]},
    }


def loader_only(manifest_uri: str, batch_size: int) -> dict[str, float]:
    """Rows/s of the loader alone (S3 GET, Parquet decode, shuffle, batching), nothing consuming."""
    from mlpipe_batch import manifest

    loaded = manifest.load(manifest_uri)
    started = time.perf_counter()
    rows = sum(len(b) for b in data.training_stream(loaded, split="train", epoch=0, rank=0, world_size=1,
                                                    batch_size=batch_size, seed=1))  # fmt: skip
    return {"loader_rows_per_s": rows / (time.perf_counter() - started)}


def run_entry_point(manifest_uri: str, hp: dict[str, Any], out: Path, env: dict[str, str]) -> dict[str, Any]:
    argv = entry_argv(manifest_uri, hp, "cpu", out)
    result = subprocess.run(
        [sys.executable, "-m", "mlpipe_batch.train", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"training exited {result.returncode}: {result.stderr[-2000:]}")
    return json.loads((out / "metrics.json").read_text())


def ddp_scaling(args: argparse.Namespace, manifest_uri: str, work: Path, endpoint: str) -> dict[str, Any]:
    hp = hyperparameters(args)
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_BATCH_", "MLPIPE_", "RANK", "WORLD_"))
    }
    base.update(PYTHONPATH=str(SRC), OMP_NUM_THREADS=str(args.threads), AWS_ENDPOINT_URL=endpoint)
    one = run_entry_point(manifest_uri, hp, work / "ddp1", base)
    two = run_entry_point(
        manifest_uri,
        hp,
        work / "ddp2",
        {**base, "MLPIPE_NPROC_PER_NODE": "2", "MLPIPE_MASTER_PORT": str(free_port())},
    )
    sps1, sps2 = one["throughput_samples_per_s"], two["throughput_samples_per_s"]
    return {
        "workers_1_samples_per_s": sps1,
        "workers_2_samples_per_s": sps2,
        "speedup": sps2 / sps1,
        "efficiency": sps2 / (2 * sps1),
        "validation_auc_1": one["validation_auc"],
        "validation_auc_2": two["validation_auc"],
        "threads_per_worker": args.threads,
        "cpu_cores": os.cpu_count(),
    }


class GpuPoller:
    """Samples GPU utilization (percent) every 0.2 s with pynvml, or nvidia-smi when pynvml is missing."""

    def __init__(self, index: int = 0) -> None:
        self.index, self.samples = index, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.source = "none"

    def _read(self) -> float | None:
        try:
            import pynvml

            if self.source != "pynvml":
                pynvml.nvmlInit()
                self.source = "pynvml"
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            return float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except Exception:  # no pynvml: nvidia-smi
            if shutil.which("nvidia-smi") is None:
                return None
            self.source = "nvidia-smi"
            out = subprocess.run(
                ["nvidia-smi", f"--id={self.index}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            return float(out.stdout.strip() or "nan")

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            value = self._read()
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> GpuPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def gpu_path(args: argparse.Namespace, manifest_uri: str, work: Path) -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"skipped": f"no CUDA device (torch {torch.__version__}, CUDA build: {torch.version.cuda})"}
    out: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0)}
    for precision in ("bf16", "fp32"):
        hp = hyperparameters(args, precision=precision, batch_size=args.gpu_batch_size)
        trainer = make_trainer(manifest_uri, hp, "cuda", work / f"gpu-{precision}")
        with GpuPoller() as poller:
            trainer.fit()
        busy = sorted(poller.samples)
        out[precision] = {
            "samples_per_s": trainer.train_samples / trainer.train_seconds,
            "batch_size": hp["batch_size"],
            "gpu_util_mean_pct": sum(busy) / len(busy) if busy else None,
            "gpu_util_median_pct": busy[len(busy) // 2] if busy else None,
            "util_source": poller.source,
            "precision_used": "bf16" if trainer.use_bf16 else "fp32",
        }
    out["bf16_over_fp32"] = out["bf16"]["samples_per_s"] / out["fp32"]["samples_per_s"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--rows", type=int, default=120_000, help="training rows (default 120000)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--gpu-batch-size", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--trials", type=int, default=4, help="repetitions of the loader comparison (default 4)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    parser.add_argument("--output", default=str(REPO / "bench" / "results" / "train.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # The S3 endpoint runs in its own process, as S3 does: in this one, its Python request handling would
    # compete with training for the GIL and inflate the loader's overhead.
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the moto S3 server did not start") from None
            time.sleep(0.1)
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_DEFAULT_REGION="us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    storage.reset_clients()
    results: dict[str, Any] = {"device": args.device, "torch": torch.__version__, "cpu_cores": os.cpu_count()}
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench")
        rows = {"train": args.rows, "validation": args.rows // 10, "test": args.rows // 10}
        dataset = synthetic.write_dataset("s3://bench/features", rows=rows, shards=args.shards, seed=1)
        results["data"] = {
            "rows": rows,
            "shards": args.shards,
            "bayes_auc_validation": dataset.bayes_auc["validation"],
        }
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            print(f"data: {rows} rows in {args.shards} shards per split on a local moto S3 ({endpoint})")
            results["loader_only"] = loader_only(dataset.manifest_uri, args.batch_size)
            print(f"loader alone, S3 (moto): {results['loader_only']['loader_rows_per_s']:,.0f} rows/s")
            local = synthetic.write_dataset(str(work / "features"), rows=rows, shards=args.shards, seed=1)
            results["loader_only_local"] = loader_only(local.manifest_uri, args.batch_size)
            print(
                f"loader alone, local shards: {results['loader_only_local']['loader_rows_per_s']:,.0f} rows/s"
            )
            # The moto server shares this machine's cores (S3 would not): the local-shard figure isolates the
            # loader's own cost; the S3 one adds the server's.
            for key, uri, where in (("loader", dataset.manifest_uri, "S3 (moto)"), ("loader_local", local.manifest_uri,
                                    "local shards")):  # fmt: skip
                results[key] = loader_overhead(args, uri, work)
                lo = results[key]
                print(
                    f"single process on {args.device} ({args.threads} CPU thread), {where}: "
                    f"{lo['samples_per_s_streaming']:,.0f} samples/s, step {lo['step_ms_streaming']:.2f} ms "
                    f"streaming vs {lo['step_ms_in_memory']:.2f} ms in memory (medians of {args.trials}): loader "
                    f"overhead ratio {lo['loader_overhead_ratio']:.3f} median, "
                    f"{lo['loader_overhead_ratio_best_of']:.3f} best-of (goal <= 1.10)"
                )
            if args.device == "cpu":
                results["ddp_cpu"] = ddp_scaling(
                    args, local.manifest_uri, work, endpoint
                )  # no S3 server on the cores
                d = results["ddp_cpu"]
                print(
                    f"DDP on CPU (gloo): 1 worker {d['workers_1_samples_per_s']:,.0f} samples/s, 2 workers "
                    f"{d['workers_2_samples_per_s']:,.0f} samples/s: speedup {d['speedup']:.2f}, "
                    f"efficiency {d['efficiency']:.2f} ({os.cpu_count()} cores on this machine)"
                )
            results["gpu"] = gpu_path(args, dataset.manifest_uri, work)
            if "skipped" in results["gpu"]:
                print(
                    f"GPU path skipped: {results['gpu']['skipped']}; run with --device cuda on a GPU machine"
                )
            else:
                g = results["gpu"]
                for precision in ("bf16", "fp32"):
                    p = g[precision]
                    print(
                        f"GPU {g['gpu']} {precision}: {p['samples_per_s']:,.0f} samples/s, utilization mean "
                        f"{p['gpu_util_mean_pct']}% ({p['util_source']})"
                    )
                print(f"bf16 / fp32 throughput: {g['bf16_over_fp32']:.2f}")
    finally:
        server.terminate()
        server.wait(timeout=10)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

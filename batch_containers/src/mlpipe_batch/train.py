"""Training entry point: `python -m mlpipe_batch.train --manifest M --output O [--checkpoint C]
[--hyperparameters JSON]`, one process, one node with several GPUs, or an AWS Batch multi-node parallel job.

Everything a user can get wrong (arguments, hyperparameters, manifest, an incompatible checkpoint) is checked
first and reported as one line with exit code 2, before anything is written. SIGTERM stops every rank at the
same step; rank 0 writes a checkpoint and the process exits 143. After a Spot reclaim (two minutes' notice)
Batch retries the job and that attempt resumes from the checkpoint. A Batch timeout also sends SIGTERM (then
SIGKILL 30 s later), but Batch never retries a timed-out attempt: the job ends FAILED, and a new job given the
same --checkpoint prefix resumes. Outputs under --output: `model/` (mlpipe.model.v1), then `metrics.json`,
written last as the commit marker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlpipe_batch import hyperparams, manifest
from mlpipe_batch.checkpoint import CheckpointStore, check_compatible
from mlpipe_batch.errors import EXIT_STOPPED, DataError, OneLineArgumentParser, UsageError, fail
from mlpipe_batch.hyperparams import HyperParameters
from mlpipe_batch.launcher import Topology, detect, launch, local_device_count

PROG = "mlpipe_batch.train"

log = logging.getLogger("mlpipe_batch")


@dataclass(frozen=True)
class Job:
    manifest: manifest.FeatureManifest
    output: str
    checkpoint: str | None
    hp: HyperParameters
    hp_sources: dict[str, str]
    device: str
    """"cpu" or "cuda:<local rank>"."""
    attempt: int
    dist_timeout_s: float
    resume: dict[str, Any] | None


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = OneLineArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", required=True, help="feature manifest URI (s3:// or a local path)")
    parser.add_argument("--output", required=True, help="output prefix: model/ and metrics.json go under it")
    parser.add_argument("--checkpoint", help="checkpoint prefix; training resumes from the newest one there")
    parser.add_argument("--hyperparameters", help="JSON object of hyperparameters (the Batch job parameter)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    parser.add_argument(
        "--dist-timeout-s",
        type=float,
        default=1800.0,
        help="rendezvous and collective timeout (default 1800)",
    )
    hyperparams.add_flags(parser)
    args = parser.parse_args(argv)
    for name in ("manifest", "output", "checkpoint"):
        value = getattr(args, name)
        if value is not None and not value.strip():
            raise UsageError(f"--{name} is empty: pass a URI (s3://bucket/prefix or a local path)")
    if not 0 < args.dist_timeout_s <= 86_400:
        raise UsageError(f"--dist-timeout-s must be in (0, 86400], got {args.dist_timeout_s}")
    return args


def pick_device(choice: str, topology: Topology) -> str:
    if choice == "cpu":
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        if choice == "cuda":
            raise UsageError("--device cuda was asked for but no CUDA device is available")
        return "cpu"
    if topology.local_rank >= torch.cuda.device_count():
        raise UsageError(f"local rank {topology.local_rank} has no GPU ({torch.cuda.device_count()} visible)")
    return f"cuda:{topology.local_rank}"


def preflight(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[Job, Topology]:
    """Check everything a user controls; UsageError on the first problem. Reads, never writes."""
    args = parse_args(argv)
    hp, sources = hyperparams.resolve(
        json_text=args.hyperparameters, environ=environ, flags=hyperparams.flags_from(args)
    )
    device_choice = args.device
    nproc = (
        1
        if device_choice == "cpu" and not environ.get("MLPIPE_NPROC_PER_NODE")
        else local_device_count(environ)
    )
    topology = detect(environ, nproc)
    feature_manifest = manifest.load(args.manifest)
    train_rows = feature_manifest.split("train").rows
    if train_rows < topology.world_size:
        raise UsageError(
            f"the train split has {train_rows} rows, fewer than the {topology.world_size} workers"
        )
    if feature_manifest.split("validation").rows == 0:
        raise UsageError(f"the validation split of {feature_manifest.uri} is empty")
    attempt = int(environ.get("AWS_BATCH_JOB_ATTEMPT") or 1)
    resume = None
    if args.checkpoint:
        store = CheckpointStore(args.checkpoint, hp.keep_checkpoints)
        try:
            resume = store.latest()
        except Exception as exc:  # a missing bucket, no permission: the user's to fix
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            raise UsageError(f"cannot read checkpoints under {args.checkpoint}: {code}") from exc
        if resume is not None:
            check_compatible(resume, hp, feature_manifest.fingerprint, args.checkpoint)
    device = pick_device(device_choice, topology) if topology.mode != "launcher" else "cpu"
    job = Job(
        manifest=feature_manifest,
        output=args.output,
        checkpoint=args.checkpoint,
        hp=hp,
        hp_sources=sources,
        device=device,
        attempt=attempt,
        dist_timeout_s=args.dist_timeout_s,
        resume=resume,
    )
    return job, topology


def configure_logging(rank: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s rank{rank}: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        job, topology = preflight(argv, os.environ)
    except UsageError as exc:
        fail(PROG, exc)
    configure_logging(topology.rank)
    if topology.mode == "launcher":
        return launch(topology, "mlpipe_batch.train", argv, os.environ)
    import torch

    from mlpipe_batch.distributed import Dist, StopSignal
    from mlpipe_batch.trainer import Stopped, Trainer

    stop = StopSignal().install()
    device = torch.device(job.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if topology.rank == 0:
        changed = {k: v for k, v in job.hp.to_dict().items() if job.hp_sources[k] != "default"}
        log.info(
            "%s: %d worker(s) on %d node(s), device %s, attempt %d; hyperparameters set: %s",
            topology.mode,
            topology.world_size,
            topology.num_nodes,
            device.type,
            job.attempt,
            json.dumps(changed),
        )
    dist = Dist(topology, device, job.dist_timeout_s)
    trainer: Trainer | None = None
    try:
        trainer = Trainer(job, dist, stop)
        trainer.fit()
        trainer.finish()
    except Stopped:
        return EXIT_STOPPED
    except (DataError, UsageError) as exc:
        fail(PROG, exc)
    finally:
        # The shutdown order: every loader thread was joined as its stream closed, then came the last barrier
        # (finish() or the stop's); now DDP lets go of the process group so that destroy_process_group frees it.
        if trainer is not None:
            trainer.close()
        dist.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

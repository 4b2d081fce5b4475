"""One rank's training: the model, the optimizer, the epoch loop with its coordinated stop, evaluation,
checkpoints, and the committed outputs (model/ first, metrics.json last)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from mlpipe_batch import data, storage
from mlpipe_batch.checkpoint import CheckpointStore
from mlpipe_batch.distributed import Dist, StopSignal
from mlpipe_batch.metrics import classification_report
from mlpipe_batch.model import TabularModel, write_portable

if TYPE_CHECKING:
    from mlpipe_batch.train import Job

METRICS_FORMAT = "mlpipe.training_metrics.v2"
STOP_CHECK_STEPS = 8
"""Ranks agree on a stop every this many steps (and at each epoch's last step): one tiny gloo all-reduce."""

log = logging.getLogger("mlpipe_batch")

BatchSource = Callable[[int, int], Iterable[data.Batch]]
"""(epoch, batches to skip) -> this rank's batches of that epoch."""


class Stopped(Exception):
    """Training stopped on a signal after its checkpoint was written."""


class Trainer:
    """One rank's training: model, optimizer, the epoch loop, evaluation, checkpoints and outputs."""

    def __init__(self, job: Job, dist: Dist, stop: StopSignal, batches: BatchSource | None = None) -> None:
        self.job, self.dist, self.stop = job, dist, stop
        hp, device = job.hp, torch.device(job.device)
        self.hp, self.device = hp, device
        self.world_size = dist.world_size
        self.steps_per_epoch = data.steps_per_epoch(job.manifest, "train", self.world_size, hp.batch_size)
        self.total_steps = self.steps_per_epoch * hp.epochs
        self.batches = batches or self._stream
        self.use_bf16 = device.type == "cuda" and hp.precision == "bf16"
        if self.use_bf16 and not torch.cuda.is_bf16_supported():
            log.warning("this GPU has no bf16 support: training in fp32")
            self.use_bf16 = False

        torch.manual_seed(hp.seed)
        np.random.seed(hp.seed)
        self.model = TabularModel(
            job.manifest.numeric_features,
            [(c.name, c.buckets) for c in job.manifest.categorical_features],
            embedding_dim=hp.embedding_dim,
            hidden=hp.hidden,
            dropout=hp.dropout,
        ).to(device)
        fused = {"fused": True} if device.type == "cuda" else {}
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, **fused
        )
        self.loss_fn = torch.nn.BCEWithLogitsLoss()

        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.train_seconds = 0.0
        self.train_samples = 0
        self.history: list[dict[str, Any]] = []
        self.resumed_from: dict[str, Any] | None = None
        self.store = CheckpointStore(job.checkpoint, hp.keep_checkpoints) if job.checkpoint else None
        self.last_saved_step = -1
        self.last_saved_at = time.monotonic()
        if job.resume is not None:
            self._restore(job.resume)
        elif job.attempt > 1:
            log.warning(
                "attempt %d found no checkpoint under %s: starting from scratch", job.attempt, job.checkpoint
            )
        self.net: torch.nn.Module = self.model
        if dist.topology.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids, gradient_as_bucket_view=True)

    # -- data ---------------------------------------------------------------------------------------------
    def _stream(self, epoch: int, skip_batches: int) -> Iterable[data.Batch]:
        return data.training_stream(
            self.job.manifest,
            split="train",
            epoch=epoch,
            rank=self.dist.rank,
            world_size=self.world_size,
            batch_size=self.hp.batch_size,
            seed=self.hp.seed,
            skip_batches=skip_batches,
            pin_memory=self.device.type == "cuda",
            prefetch_batches=self.hp.prefetch_batches,
            prefetch_shards=self.hp.prefetch_shards,
        )

    # -- checkpoints --------------------------------------------------------------------------------------
    def _restore(self, meta: dict[str, Any]) -> None:
        state = CheckpointStore.load(meta)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step_in_epoch = int(meta["epoch"]), int(meta["step_in_epoch"])
        self.global_step = int(meta["global_step"])
        self.train_seconds = float(meta.get("train_seconds", 0.0))
        self.train_samples = int(meta.get("train_samples", 0))
        self.history = list(meta.get("history", []))
        if int(meta["world_size"]) != self.world_size and self.step_in_epoch:
            log.warning(
                "checkpoint written by %s workers, resuming with %s: epoch %d restarts from its beginning",
                meta["world_size"],
                self.world_size,
                self.epoch,
            )
            self.step_in_epoch = 0
            self.global_step = self.epoch * self.steps_per_epoch
        self.resumed_from = {
            "checkpoint": meta["uri"],
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "attempt": self.job.attempt,
        }
        self.last_saved_step = self.global_step
        log.info("resuming from %s (epoch %d, step %d)", meta["uri"], self.epoch, self.step_in_epoch)

    def checkpoint(self, reason: str) -> None:
        """Rank 0 writes a checkpoint of where training stands (unless nothing changed since the last)."""
        if self.store is None:
            if reason == "signal" and self.dist.is_main:
                log.warning("stopping without a checkpoint: no --checkpoint prefix was given")
            return
        if self.global_step == self.last_saved_step:
            return
        if self.dist.is_main:
            started = time.monotonic()
            meta = {
                "reason": reason,
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step,
                "steps_per_epoch": self.steps_per_epoch,
                "world_size": self.world_size,
                "train_seconds": self.train_seconds,
                "train_samples": self.train_samples,
                "history": self.history,
                "hyperparameters": self.hp.to_dict(),
                "manifest_fingerprint": self.job.manifest.fingerprint,
                "manifest_run_id": self.job.manifest.run_id,
            }
            state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
            uri = self.store.save(state, meta)
            log.info(
                "checkpoint (%s) at step %d: %s (%.2f s)",
                reason,
                self.global_step,
                uri,
                time.monotonic() - started,
            )
        self.last_saved_step = self.global_step
        self.last_saved_at = time.monotonic()

    def _stop_now(self) -> None:
        if self.dist.is_main:
            log.warning("stop signal: stopping at epoch %d step %d", self.epoch, self.step_in_epoch)
        self.checkpoint("signal")
        self.dist.barrier()
        raise Stopped

    # -- training -----------------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.use_bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _lr(self, step: int) -> float:
        if self.hp.lr_schedule == "constant" or self.total_steps == 0:
            return self.hp.lr
        return self.hp.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, self.total_steps) / self.total_steps))

    def fit(self) -> None:
        hp = self.hp
        while self.epoch < hp.epochs:
            torch.manual_seed(hp.seed * 7919 + self.dist.rank * 104_729 + self.global_step)  # dropout masks
            self.net.train()
            loss_sum = torch.zeros((), device=self.device)
            losses = 0
            samples = 0
            started = time.perf_counter()
            stopping = False
            with _closing(self.batches(self.epoch, self.step_in_epoch)) as batches:
                for batch in batches:
                    batch = batch.to(self.device)
                    for group in self.optimizer.param_groups:
                        group["lr"] = self._lr(self.global_step)
                    with self._autocast():
                        logits = self.net(batch.numeric, batch.categorical)
                    loss = self.loss_fn(logits.float(), batch.label)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                    loss_sum += loss.detach()
                    losses += 1
                    samples += len(batch)
                    self.step_in_epoch += 1
                    self.global_step += 1
                    if (
                        hp.log_every_steps
                        and self.global_step % hp.log_every_steps == 0
                        and self.dist.is_main
                    ):
                        log.info(
                            "epoch %d step %d/%d loss %.5f",
                            self.epoch + 1,
                            self.step_in_epoch,
                            self.steps_per_epoch,
                            loss_sum.item() / losses,
                        )
                    at_check = (
                        self.step_in_epoch % STOP_CHECK_STEPS == 0
                        or self.step_in_epoch == self.steps_per_epoch
                    )
                    if at_check and self.dist.any(self.stop.requested):
                        stopping = True
                        break
                    if hp.checkpoint_every_steps and self.global_step % hp.checkpoint_every_steps == 0:
                        self.checkpoint("steps")
                    elif (
                        hp.checkpoint_interval_s
                        and time.monotonic() - self.last_saved_at >= hp.checkpoint_interval_s
                    ):
                        self.checkpoint("interval")  # rank 0 decides alone: only it writes
                self._account(started, samples)
            if stopping:  # only now that the stream's thread is joined: the stop ends with a barrier
                self._stop_now()
            loss_total, loss_count = self.dist.sum([loss_sum.item(), float(losses)])
            validation = self.evaluate("validation")
            record = {
                "epoch": self.epoch + 1,
                "train_loss": loss_total / loss_count if loss_count else None,
                "validation_auc": validation["auc"],
                "validation_log_loss": validation["log_loss"],
            }
            self.history.append(record)
            if self.dist.is_main:
                log.info(
                    "epoch %d/%d done: train loss %s, validation AUC %s, log loss %s",
                    self.epoch + 1,
                    hp.epochs,
                    _fmt(record["train_loss"]),
                    _fmt(record["validation_auc"]),
                    _fmt(record["validation_log_loss"]),
                )
            self.epoch += 1
            self.step_in_epoch = 0
            self.checkpoint("epoch")
            if self.epoch < hp.epochs and self.dist.any(self.stop.requested):
                self._stop_now()

    def _account(self, started: float, samples: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.train_seconds += time.perf_counter() - started
        self.train_samples += samples * self.world_size

    @torch.no_grad()
    def evaluate(self, split: str) -> dict[str, Any]:
        """Metrics of the current model on every row of `split` (the ranks share the work)."""
        self.model.eval()
        probabilities, labels = [], []
        with data.evaluation_stream(
            self.job.manifest,
            split=split,
            rank=self.dist.rank,
            world_size=self.world_size,
            batch_size=self.hp.eval_batch_size,
            pin_memory=self.device.type == "cuda",
            prefetch_shards=self.hp.prefetch_shards,
        ) as stream:
            for batch in stream:
                batch = batch.to(self.device)
                with self._autocast():
                    logits = self.model(batch.numeric, batch.categorical)
                probabilities.append(torch.sigmoid(logits.float()).cpu().numpy())
                labels.append(batch.label.cpu().numpy() if batch.label is not None else np.empty(0))
        p = self.dist.gather(np.concatenate(probabilities) if probabilities else np.empty(0))
        y = self.dist.gather(np.concatenate(labels) if labels else np.empty(0))
        return classification_report(y, p)

    def metrics(self) -> dict[str, Any]:
        job = self.job
        last = self.history[-1] if self.history else {}
        # Selection reads validation.<metric> (docs/workloads.md); the test split is the evaluation job's alone.
        out: dict[str, Any] = {
            "format": METRICS_FORMAT,
            "validation": {
                "auc": last.get("validation_auc"),
                "log_loss": last.get("validation_log_loss"),
                "rows": job.manifest.split("validation").rows,
            },
        }
        out.update(
            {
                "train_rows": job.manifest.split("train").rows,
                "epochs": self.epoch,
                "global_steps": self.global_step,
                "steps_per_epoch": self.steps_per_epoch,
                "throughput_samples_per_s": self.train_samples / self.train_seconds
                if self.train_seconds
                else None,
                "train_seconds": self.train_seconds,
                "resumed_from": self.resumed_from,
                "attempt": job.attempt,
                "world_size": self.world_size,
                "num_nodes": self.dist.topology.num_nodes,
                "device": self.device.type,
                "precision": "bf16" if self.use_bf16 else "fp32",
                "hyperparameters": self.hp.to_dict(),
                "manifest": job.manifest.uri,
                "run_id": job.manifest.run_id,
                "model_uri": storage.join(job.output, "model/"),
                "history": self.history,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        )
        return out

    def finish(self) -> dict[str, Any]:
        """Rank 0 commits: model/ first, metrics.json last."""
        metrics = self.metrics()
        if self.dist.is_main:
            metrics_uri = storage.join(self.job.output, "metrics.json")
            storage.delete(metrics_uri)  # uncommit an older output before replacing its model
            write_portable(self.model, storage.join(self.job.output, "model"))
            storage.write_bytes(metrics_uri, (json.dumps(metrics, indent=2) + "\n").encode())
            log.info(
                "done: validation AUC %s, %.0f samples/s; wrote %s",
                _fmt(metrics["validation"]["auc"]),
                metrics["throughput_samples_per_s"] or 0.0,
                metrics_uri,
            )
        self.dist.barrier()
        return metrics

    def close(self) -> None:
        """Drop the DDP wrapper: its reducer holds the process group, which Dist.close() must be able to free."""
        self.net = self.model


@contextlib.contextmanager
def _closing(batches: Iterable[data.Batch]) -> Iterator[Iterable[data.Batch]]:
    """`batches`, closed however the block ends (a BatchStream stops and joins its thread)."""
    try:
        yield batches
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"

"""Streaming input: Parquet shards from S3 or local paths, split by rank, decoded and batched ahead of use.

Every rank sees the same number of batches per epoch (DDP hangs otherwise). Rows, not shards, are split:
each epoch the shards are put in a seeded order (the same on every rank), and rank r takes rows
[r * per_rank, (r + 1) * per_rank) of that sequence with per_rank = total // world_size; it reads only
the shards that overlap its range. Uneven shards, or fewer shards than ranks, cost nothing but the
total % world_size rows left out of each epoch (different ones each epoch).

A background pool downloads and decodes `prefetch_shards` shards in parallel while a background thread cuts
the current one into batches (views, no copies; in pinned memory on the GPU) into a bounded queue, so the
training loop only takes ready tensors from it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from mlpipe_batch import storage
from mlpipe_batch.errors import DataError
from mlpipe_batch.manifest import FeatureManifest, Shard


@dataclass(frozen=True)
class Columns:
    """Which columns to read and how: numeric features, categorical features with their bucket counts."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    buckets: tuple[int, ...]
    label: str | None
    id: str | None = None
    label_optional: bool = False
    """Read the label where a shard has it (inference); otherwise a shard without it is a DataError."""

    @classmethod
    def for_training(cls, manifest: FeatureManifest) -> Columns:
        return cls(
            numeric=manifest.numeric_features,
            categorical=tuple(c.name for c in manifest.categorical_features),
            buckets=tuple(c.buckets for c in manifest.categorical_features),
            label=manifest.label_column,
        )


@dataclass(frozen=True)
class Piece:
    """Rows [start, stop) of one shard; `index` is the shard's position in its split."""

    index: int
    shard: Shard
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class Decoded:
    numeric: np.ndarray  # float32 [n, F]
    categorical: np.ndarray  # int64 [n, C]
    label: np.ndarray | None  # float32 [n]
    ids: pa.Array | None

    def __len__(self) -> int:
        return int(self.numeric.shape[0])

    def take(self, order: np.ndarray) -> Decoded:
        return Decoded(
            self.numeric[order],
            self.categorical[order],
            None if self.label is None else self.label[order],
            None if self.ids is None else self.ids.take(pa.array(order)),
        )

    def tail(self, skip: int) -> Decoded:
        return Decoded(
            self.numeric[skip:],
            self.categorical[skip:],
            None if self.label is None else self.label[skip:],
            None if self.ids is None else self.ids.slice(skip),
        )


@dataclass
class Batch:
    numeric: torch.Tensor
    categorical: torch.Tensor
    label: torch.Tensor | None

    def __len__(self) -> int:
        return int(self.numeric.shape[0])

    def to(self, device: torch.device) -> Batch:
        if device.type == "cpu":
            return self
        return Batch(
            self.numeric.to(device, non_blocking=True),
            self.categorical.to(device, non_blocking=True),
            None if self.label is None else self.label.to(device, non_blocking=True),
        )


def rank_range(total: int, world_size: int, rank: int, *, equal: bool) -> tuple[int, int]:
    """Rows [start, stop) of `total` for `rank`. equal=True: every rank gets total // world_size rows (the
    rest is left out); equal=False: all rows are covered, the first total % world_size ranks get one more."""
    if equal:
        per_rank = total // world_size
        return rank * per_rank, (rank + 1) * per_rank
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def plan_pieces(shards: Sequence[Shard], order: Sequence[int], start: int, stop: int) -> list[Piece]:
    """The pieces of the shards (taken in `order`) that cover rows [start, stop) of their concatenation."""
    pieces = []
    offset = 0
    for index in order:
        shard = shards[index]
        lo, hi = max(start, offset), min(stop, offset + shard.rows)
        if lo < hi:
            pieces.append(Piece(index, shard, lo - offset, hi - offset))
        offset += shard.rows
        if offset >= stop:
            break
    return pieces


def epoch_order(num_shards: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    if not shuffle:
        return list(range(num_shards))
    return [int(i) for i in np.random.default_rng([seed, epoch, 0x5A4D]).permutation(num_shards)]


def read_piece(piece: Piece, columns: Columns) -> Decoded:
    """Download and decode one piece of a shard; a shard that disagrees with the manifest is a DataError."""
    uri = piece.shard.uri
    try:
        raw = storage.read_bytes(uri)
    except storage.StorageError as exc:
        raise DataError(str(exc)) from exc
    try:
        parquet = pq.ParquetFile(pa.BufferReader(raw))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"shard {uri} is not a Parquet file: {exc}") from exc
    present = set(parquet.schema_arrow.names)
    wanted = [*columns.numeric, *columns.categorical]
    if columns.label and (columns.label in present or not columns.label_optional):
        wanted.append(columns.label)
    if columns.id:
        wanted.append(columns.id)
    missing = [name for name in wanted if name not in present]
    if missing:
        raise DataError(f"shard {uri} lacks the column(s) {', '.join(missing)} that the manifest lists")
    if parquet.metadata.num_rows != piece.shard.rows:
        raise DataError(
            f"shard {uri} holds {parquet.metadata.num_rows} rows but the manifest says {piece.shard.rows}"
        )
    table = parquet.read(columns=wanted).slice(piece.start, piece.rows)
    n = table.num_rows
    try:
        numeric = np.empty((n, len(columns.numeric)), dtype=np.float32)
        for j, name in enumerate(columns.numeric):
            column = pc.fill_null(table.column(name).cast(pa.float32()), 0.0)
            numeric[:, j] = column.to_numpy()
        categorical = np.empty((n, len(columns.categorical)), dtype=np.int64)
        for j, name in enumerate(columns.categorical):
            column = pc.fill_null(table.column(name).cast(pa.int64()), 0)
            values = column.to_numpy()
            if n and (values.min() < 0 or values.max() >= columns.buckets[j]):
                raise DataError(
                    f"shard {uri}: column {name} has values in [{values.min()}, {values.max()}], "
                    f"outside the manifest's [0, {columns.buckets[j]})"
                )
            categorical[:, j] = values
        label = None
        if columns.label and columns.label in present:
            column = table.column(columns.label)
            if column.null_count:
                raise DataError(f"shard {uri}: column {columns.label} has {column.null_count} null label(s)")
            label = np.array(column.cast(pa.float32()).to_numpy(), dtype=np.float32)  # writable copy
            if n and not np.isin(label, (0.0, 1.0)).all():
                raise DataError(f"shard {uri}: column {columns.label} holds values other than 0 and 1")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"shard {uri}: a column has the wrong type: {exc}") from exc
    ids = table.column(columns.id).combine_chunks() if columns.id else None
    return Decoded(numeric, categorical, label, ids)


def prefetched(pieces: Sequence[Piece], columns: Columns, workers: int) -> Iterator[tuple[Piece, Decoded]]:
    """Decode `pieces` in order, keeping up to `workers` downloads and decodes running ahead."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlpipe-shard") as pool:
        pending: deque[tuple[Piece, Future[Decoded]]] = deque()
        upcoming = iter(pieces)
        try:
            for piece in upcoming:
                pending.append((piece, pool.submit(read_piece, piece, columns)))
                if len(pending) >= workers:
                    break
            while pending:
                piece, future = pending.popleft()
                decoded = future.result()
                for nxt in upcoming:
                    pending.append((nxt, pool.submit(read_piece, nxt, columns)))
                    break
                yield piece, decoded
        finally:
            for _, future in pending:
                future.cancel()


_END = object()


class BatchStream:
    """One epoch of one rank's batches, produced by a background thread. Iterate it once; close() (or the end
    of a `with` block) stops the thread and joins it.

    shuffle_seed: None keeps the row order; otherwise each piece's rows are permuted with a generator seeded
    by (shuffle_seed, shard index), the same whichever rank reads it. skip_rows drops the first rows of the
    stream (after shuffling), so a resumed epoch continues exactly where the interrupted one stopped.
    """

    def __init__(
        self,
        pieces: Sequence[Piece],
        columns: Columns,
        batch_size: int,
        *,
        shuffle_seed: int | None = None,
        skip_rows: int = 0,
        pin_memory: bool = False,
        prefetch_batches: int = 16,
        prefetch_shards: int = 2,
    ) -> None:
        self.pieces = list(pieces)
        self.columns = columns
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed
        self.skip_rows = skip_rows
        self.pin_memory = pin_memory
        self.prefetch_shards = prefetch_shards
        rows = max(0, sum(p.rows for p in self.pieces) - skip_rows)
        self.num_batches = -(-rows // batch_size)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=prefetch_batches)
        self._stop = threading.Event()
        # Not a daemon: a daemon thread still inside torch or Arrow code when the interpreter finalizes is
        # ended by pthread_exit, which aborts the process (std::terminate) in a noexcept C++ frame.
        self._thread = threading.Thread(target=self._produce, name="mlpipe-batches")
        self._thread.start()

    def __len__(self) -> int:
        return self.num_batches

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _put(self, item: object) -> bool:
        # A stream its owner failed to close must not keep the process alive after the main thread ends.
        while not self._stop.is_set() and threading.main_thread().is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _tensors(self, decoded: Decoded) -> Batch:
        numeric = torch.from_numpy(decoded.numeric)
        categorical = torch.from_numpy(decoded.categorical)
        label = None if decoded.label is None else torch.from_numpy(decoded.label)
        if self.pin_memory:  # one pinned copy per piece; batches are views of it
            numeric, categorical = numeric.pin_memory(), categorical.pin_memory()
            label = None if label is None else label.pin_memory()
        return Batch(numeric, categorical, label)

    def _produce(self) -> None:
        pieces = prefetched(self.pieces, self.columns, self.prefetch_shards)
        try:
            skip = self.skip_rows
            carry: Batch | None = None
            b = self.batch_size
            for piece, decoded in pieces:
                if self._stop.is_set():
                    return
                if self.shuffle_seed is not None:
                    rng = np.random.default_rng([self.shuffle_seed, piece.index, piece.start])
                    decoded = decoded.take(rng.permutation(len(decoded)))
                if skip:
                    dropped = min(skip, len(decoded))
                    decoded, skip = decoded.tail(dropped), skip - dropped
                if not len(decoded):
                    continue
                rows = self._tensors(decoded)
                start = 0
                if carry is not None:
                    start = min(b - len(carry), len(rows))
                    carry = _concat(carry, _slice(rows, 0, start))
                    if len(carry) < b:
                        continue
                    if not self._put(carry):
                        return
                    carry = None
                while start + b <= len(rows):
                    if not self._put(_slice(rows, start, start + b)):
                        return
                    start += b
                if start < len(rows):
                    carry = _slice(rows, start, len(rows))
            if carry is not None and not self._put(carry):
                return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)
        finally:
            pieces.close()  # its decoding threads end before this one does

    def __iter__(self) -> Iterator[Batch]:
        produced = 0
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                produced += 1
                yield item  # type: ignore[misc]
        finally:
            self.close()
        if produced != self.num_batches:  # the manifest's row counts were checked shard by shard
            raise RuntimeError(f"produced {produced} batches, expected {self.num_batches}")

    def close(self) -> None:
        """Stop the producer and wait for it to end (after the piece it is decoding). Idempotent."""
        self._stop.set()
        # Room in the queue: a producer blocked on a full queue puts its item and then sees the stop.
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join()


def _slice(batch: Batch, start: int, stop: int) -> Batch:
    return Batch(
        batch.numeric[start:stop],
        batch.categorical[start:stop],
        None if batch.label is None else batch.label[start:stop],
    )


def _concat(a: Batch, b: Batch) -> Batch:
    return Batch(
        torch.cat([a.numeric, b.numeric]),
        torch.cat([a.categorical, b.categorical]),
        None if a.label is None or b.label is None else torch.cat([a.label, b.label]),
    )


def training_stream(
    manifest: FeatureManifest,
    *,
    split: str,
    epoch: int,
    rank: int,
    world_size: int,
    batch_size: int,
    seed: int,
    skip_batches: int = 0,
    pin_memory: bool = False,
    prefetch_batches: int = 16,
    prefetch_shards: int = 2,
) -> BatchStream:
    """A rank's shuffled batches of `split` for `epoch`: the same count on every rank."""
    shards = manifest.split(split).shards
    total = sum(s.rows for s in shards)
    start, stop = rank_range(total, world_size, rank, equal=True)
    pieces = plan_pieces(shards, epoch_order(len(shards), seed, epoch, shuffle=True), start, stop)
    return BatchStream(
        pieces,
        Columns.for_training(manifest),
        batch_size,
        shuffle_seed=seed * 10_007 + epoch,
        skip_rows=skip_batches * batch_size,
        pin_memory=pin_memory,
        prefetch_batches=prefetch_batches,
        prefetch_shards=prefetch_shards,
    )


def steps_per_epoch(manifest: FeatureManifest, split: str, world_size: int, batch_size: int) -> int:
    rows = manifest.split(split).rows // world_size
    return -(-rows // batch_size)


def evaluation_stream(
    manifest: FeatureManifest,
    *,
    split: str,
    rank: int,
    world_size: int,
    batch_size: int,
    pin_memory: bool = False,
    prefetch_shards: int = 2,
) -> BatchStream:
    """A rank's share of every row of `split`, in order (shares differ by at most one row)."""
    shards = manifest.split(split).shards
    start, stop = rank_range(sum(s.rows for s in shards), world_size, rank, equal=False)
    pieces = plan_pieces(shards, range(len(shards)), start, stop)
    return BatchStream(
        pieces,
        Columns.for_training(manifest),
        batch_size,
        pin_memory=pin_memory,
        prefetch_shards=prefetch_shards,
    )

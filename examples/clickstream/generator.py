"""Synthetic event logs for the clickstream example (conversion prediction): run it with generate.py.

`generate(GeneratorConfig(...))` writes raw JSON Lines files (optionally gzip) and a truth file. It streams:
events are produced in fixed-size chunks, vectorized with numpy and pyarrow, and handed to a writer thread;
memory is bounded by the chunk size and the (capped) numbers of users and items, not by the row count.
Output is a pure function of the configuration: chunk `k` draws from `default_rng([seed, k])`.

The label of each event is drawn from `p = sigmoid(logit)`, a known nonlinear function of the event's
fields, latent user and item effects, and the user's and item's history (events strictly before it). `p`
goes to the truth file only (Parquet: `event_id`, `p`, `label`, `dirty`), never into the logs.
"""

from __future__ import annotations

import json
import queue
import threading
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import event_schema as schema
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlpipe.data.storage import atomic_output, join

CHUNK_ROWS = 1 << 17  # lines per chunk; part of the output's definition, so not configurable
_STATIC_STREAM = 1 << 40  # SeedSequence key of the per-dataset draws (latent effects, catalogs)
_DISCOUNT_LEVELS = np.array([0.05, 0.1, 0.2, 0.3, 0.5])
_NON_DUP_KINDS = tuple(k for k in schema.DIRTY_KINDS if k != "duplicate")
_NO_HISTORY_HOURS = 24.0 * 30
_TABLE_SIZE = 1 << 20
_DIGITS5 = pa.array([f"{i:05d}" for i in range(100_000)])
_SMALL_INTS2 = pa.array([f"{i:02d}" for i in range(100)])
_CENTS = pa.array([f".{i:02d}" for i in range(100)])
_POSITION_TEXT = pa.array([f',"position":{i}' for i in range(101)])
# ,"discount":<level> (absent for index 0) and ,"label":<0|1>}\n, indexed by (discount level + 1) * 2 + label
_TAIL_TEXT = pa.array(
    [
        f'{d},"label":{label}}}\n'
        for d in ["", *(f',"discount":{v}' for v in _DISCOUNT_LEVELS.tolist())]
        for label in (0, 1)
    ]
)
_RENDER_THREADS = 2


@dataclass(frozen=True)
class GeneratorConfig:
    rows: int  # raw lines written, duplicates and other dirty rows included
    output: str  # folder (local path or s3:// prefix) for the JSON Lines files
    seed: int = 0
    truth: str | None = None  # Parquet truth file; default: `<output>_truth.parquet` next to the folder
    dirty_fraction: float = 0.02  # share of lines that are dirty, split evenly over schema.DIRTY_KINDS
    rows_per_file: int = 250_000
    gzip: bool = False
    n_users: int | None = None  # default: rows // 20, between 50 and 100_000
    n_items: int | None = None  # default: rows // 100, between 20 and 20_000
    start: str = "2026-01-01T00:00:00Z"
    days: int = 28  # time span of the events

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ValueError(f"--rows must be at least 1, got {self.rows}")
        if not 0.0 <= self.dirty_fraction < 1.0:
            raise ValueError(f"--dirty-fraction must be in [0, 1), got {self.dirty_fraction}")
        if self.rows_per_file < 1:
            raise ValueError(f"--rows-per-file must be at least 1, got {self.rows_per_file}")
        if self.days < 1:
            raise ValueError(f"--days must be at least 1, got {self.days}")
        if not self.output:
            raise ValueError("--output must not be empty")
        try:
            _parse_ts(self.start)
        except ValueError as exc:
            raise ValueError(f"--start is not an ISO-8601 timestamp: {self.start!r}") from exc

    @property
    def truth_uri(self) -> str:
        return self.truth or self.output.rstrip("/") + "_truth.parquet"

    @property
    def users(self) -> int:
        return self.n_users or int(np.clip(self.rows // 20, 50, 100_000))

    @property
    def items(self) -> int:
        return self.n_items or int(np.clip(self.rows // 100, 20, 20_000))


@dataclass(frozen=True)
class GenerateResult:
    rows: int
    events: int
    files: list[str]
    truth: str
    dirty_counts: dict[str, int] = field(default_factory=dict)


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _zipf_table(n: int, exponent: float, offset: float) -> np.ndarray:
    """Ranks filling _TABLE_SIZE equally likely slots, P(rank) proportional to (rank + offset)^-exponent."""
    weights = 1.0 / np.power(np.arange(n) + offset, exponent)
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, (np.arange(_TABLE_SIZE) + 0.5) / _TABLE_SIZE).astype(np.int64)


class _World:
    """Per-dataset draws: catalogs, latent effects, and the streaming user/item history."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        rng = np.random.default_rng([cfg.seed, _STATIC_STREAM])
        n_users, n_items = cfg.users, cfg.items
        n_cat = len(schema.CATEGORIES)
        # Zipf-like activity, drawn through lookup tables (a uniform integer picks a table slot).
        self.user_table = _zipf_table(n_users, 1.05, 10.0)
        self.item_table = _zipf_table(n_items, 1.1, 5.0)
        # Shuffle which ids are heavy so that activity is not ordered by id.
        self.user_perm = rng.permutation(n_users)
        self.item_perm = rng.permutation(n_items)
        self.user_latent = rng.normal(0.0, 0.8, n_users)
        self.user_device = rng.integers(0, len(schema.DEVICES), n_users)
        self.user_country = rng.choice(
            len(schema.COUNTRIES), n_users, p=_normalized(np.arange(len(schema.COUNTRIES), 0, -1))
        )
        self.item_latent = rng.normal(0.0, 0.6, n_items)
        self.item_category = rng.integers(0, n_cat, n_items)
        self.category_log_price = rng.uniform(1.5, 6.0, n_cat)  # the category's price sweet spot
        self.item_base_price = np.exp(
            self.category_log_price[self.item_category] + rng.normal(0, 0.7, n_items)
        )
        self.device_category = rng.normal(0.0, 0.4, (len(schema.DEVICES), n_cat))
        self.country_effect = rng.normal(0.0, 0.2, len(schema.COUNTRIES))
        self.user_ids = _ids('","user_id":"u', n_users, 7)
        self.item_ids = _ids('","item_id":"i', n_items, 6)
        self.context_text = pa.array(
            [
                f'","device":"{dv}","country":"{co}","category":"{ca}","price":'
                for dv in schema.DEVICES
                for co in schema.COUNTRIES
                for ca in schema.CATEGORIES
            ]
        )
        self.devices = pa.array(schema.DEVICES)
        self.countries = pa.array(schema.COUNTRIES)
        self.categories = pa.array(schema.CATEGORIES)
        # Timestamp text from lookup tables (pc.strftime per row is far slower): date, second of day, millisecond.
        self.day0 = int(_parse_ts(cfg.start).timestamp() * 1000) // 86_400_000
        self.day_text = pa.array(
            [
                datetime.fromtimestamp((self.day0 + d) * 86_400, UTC).strftime('","ts":"%Y-%m-%dT')
                for d in range(cfg.days + 2)
            ]
        )
        self.second_text = pa.array(
            [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}." for s in range(86_400)]
        )
        self.milli_text = pa.array([f"{ms:03d}Z" for ms in range(1000)])
        # History state: events so far and the last event's time (ms; -1 when none).
        self.user_count = np.zeros(n_users, dtype=np.int64)
        self.user_last = np.full(n_users, -1, dtype=np.int64)
        self.item_count = np.zeros(n_items, dtype=np.int64)


def _ids(prefix: str, n: int, width: int) -> pa.StringArray:
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _normalized(weights: np.ndarray) -> np.ndarray:
    w = weights.astype(np.float64)
    return np.asarray(w / w.sum())


def _history(
    keys: np.ndarray, ts: np.ndarray, count: np.ndarray, last: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """For each event: the key's events strictly before it, and the previous event's time (or -1).

    Events arrive in time order; a stable sort by key keeps that order inside each key. Updates the
    streaming state in place.
    """
    m = len(keys)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    new_group = np.ones(m, dtype=bool)
    new_group[1:] = sk[1:] != sk[:-1]
    idx = np.arange(m)
    cum = idx - np.maximum.accumulate(np.where(new_group, idx, 0))
    prior = np.empty(m, dtype=np.int64)
    prior[order] = count[sk] + cum
    count += np.bincount(keys, minlength=len(count))
    if last is None:
        return prior, None
    sts = ts[order]
    prev_sorted = np.empty(m, dtype=np.int64)
    prev_sorted[1:] = sts[:-1]
    prev_sorted = np.where(new_group, last[sk], prev_sorted)
    prev = np.empty(m, dtype=np.int64)
    prev[order] = prev_sorted
    is_last = np.ones(m, dtype=bool)
    is_last[:-1] = new_group[1:]
    last[sk[is_last]] = sts[is_last]
    return prior, prev


def true_logit(
    world: _World,
    users: np.ndarray,
    items: np.ndarray,
    device: np.ndarray,
    price: np.ndarray,
    position: np.ndarray,
    discount: np.ndarray,
    user_prior: np.ndarray,
    hours_since_user_last: np.ndarray,
    item_prior: np.ndarray,
) -> np.ndarray:
    """The workload's known log-odds of conversion (nonlinear in price, position and history)."""
    category = world.item_category[items]
    price_gap = (np.log(np.maximum(price, 0.01)) - world.category_log_price[category]) / 0.8
    logit = (
        -1.6
        + world.user_latent[users]
        + world.item_latent[items]
        + world.device_category[device, category]
        + world.country_effect[world.user_country[users]]
        - 0.6 * price_gap**2
        - 0.35 * np.log(position)
        + 2.0 * discount
        + 0.7 * np.tanh(user_prior / 8.0)
        - 0.2 * np.log1p(hours_since_user_last)
        + 0.4 * np.tanh(np.log1p(item_prior) / 4.0)
    )
    return np.asarray(logit)


@dataclass
class _Chunk:
    runs: list[tuple[int, Any]]  # (lines, bytes-like): never crossing a file boundary
    truth: pa.RecordBatch
    dirty_counts: dict[str, int]


@dataclass
class _Draws:
    """Every random draw of one chunk; `p` and `label` are filled in by `_label`."""

    first_line: int
    first_event: int
    ts: np.ndarray
    users: np.ndarray
    items: np.ndarray
    device: np.ndarray
    price: np.ndarray
    position: np.ndarray
    has_discount: np.ndarray
    discount_level: np.ndarray
    discount: np.ndarray
    label_draw: np.ndarray  # uniform draws; label = label_draw < p
    p: np.ndarray
    label: np.ndarray
    dirty_idx: np.ndarray
    dirty_kinds: np.ndarray
    dirty_variants: np.ndarray
    dup_src: np.ndarray
    dup_pos: np.ndarray


def _draw(cfg: GeneratorConfig, world: _World, k: int, first_line: int, n: int) -> _Draws:
    """Every random draw of chunk `k`; reads only static state, so chunks draw in parallel threads."""
    rng = np.random.default_rng([cfg.seed, k])
    f = cfg.dirty_fraction
    n_dup = int(rng.binomial(n, f / len(schema.DIRTY_KINDS))) if f > 0 and n > 1 else 0
    m = n - n_dup

    start_ms = int(_parse_ts(cfg.start).timestamp() * 1000)
    span_ms = cfg.days * 86_400_000
    line_pos = first_line + np.arange(m) * (n / m) + rng.random(m)
    ts = start_ms + np.floor(line_pos * (span_ms / cfg.rows)).astype(np.int64)

    users = world.user_perm[world.user_table[rng.integers(0, _TABLE_SIZE, m)]]
    items = world.item_perm[world.item_table[rng.integers(0, _TABLE_SIZE, m)]]
    device = np.where(rng.random(m) < 0.8, world.user_device[users], rng.integers(0, len(schema.DEVICES), m))
    price = np.round(np.clip(world.item_base_price[items] * np.exp(rng.normal(0, 0.1, m)), 0.01, 9999.0), 2)
    position = np.minimum(rng.geometric(0.15, m), schema.POSITION_RANGE[1])
    has_discount = rng.random(m) < 0.3
    discount_level = rng.integers(0, len(_DISCOUNT_LEVELS), m)
    discount = np.where(has_discount, _DISCOUNT_LEVELS[discount_level], 0.0)

    label_draw = rng.random(m)

    share = f * len(_NON_DUP_KINDS) / len(schema.DIRTY_KINDS)
    dirty_idx = np.flatnonzero(rng.random(m) < share) if f > 0 else np.zeros(0, dtype=np.int64)
    dirty_kinds = rng.integers(0, len(_NON_DUP_KINDS), len(dirty_idx))
    dirty_variants = rng.integers(0, 1 << 30, len(dirty_idx))
    # At-least-once delivery: a clean event is written again a little later (or the first, if none is clean).
    clean = np.ones(m, dtype=bool)
    clean[dirty_idx] = False
    clean_idx = np.flatnonzero(clean) if clean.any() else np.zeros(1, dtype=np.int64)
    dup_src = rng.choice(clean_idx, n_dup)
    dup_pos = np.minimum(dup_src + rng.integers(1, 200, n_dup), m)
    return _Draws(
        first_line, -1, ts, users, items, device, price, position, has_discount, discount_level,
        discount, label_draw, np.zeros(0), np.zeros(0, dtype=np.int8), dirty_idx, dirty_kinds, dirty_variants,
        dup_src, dup_pos,
    )  # fmt: skip


def _label(world: _World, d: _Draws, first_event: int) -> None:
    """The sequential step: history, true probability and label, in event order across chunks."""
    user_prior, user_prev = _history(d.users, d.ts, world.user_count, world.user_last)
    item_prior, _ = _history(d.items, d.ts, world.item_count, None)
    assert user_prev is not None  # asked for, with world.user_last
    hours = np.where(user_prev >= 0, (d.ts - user_prev) / 3_600_000.0, _NO_HISTORY_HOURS)
    logit = true_logit(
        world, d.users, d.items, d.device, d.price, d.position, d.discount, user_prior, hours, item_prior
    )
    d.first_event = first_event
    d.p = 1.0 / (1.0 + np.exp(-logit))
    d.label = (d.label_draw < d.p).astype(np.int8)


def _render(cfg: GeneratorConfig, world: _World, d: _Draws) -> _Chunk:
    """The JSON lines and truth rows of drawn events: pure, so chunks render in parallel threads."""
    m = len(d.ts)
    # Numbers become text through small lookup tables: much faster than casting each value.
    high, low = np.divmod(d.first_event + np.arange(m), 100_000)
    event_ids = pc.binary_join_element_wise(
        f"e{cfg.seed}-", pc.take(_DIGITS5, pa.array(high)), pc.take(_DIGITS5, pa.array(low)), ""
    )
    whole, cents = np.divmod(np.round(d.price * 100).astype(np.int64), 100)
    day, ms_of_day = np.divmod(d.ts, 86_400_000)
    # Neighbouring fields come from one table each (keys included), so a single join builds the line.
    context = (d.device * len(schema.COUNTRIES) + world.user_country[d.users]) * len(
        schema.CATEGORIES
    ) + world.item_category[d.items]
    tail = np.where(d.has_discount, d.discount_level + 1, 0) * 2 + d.label
    lines = pc.binary_join_element_wise(
        '{"event_id":"',
        event_ids,
        pc.take(world.day_text, pa.array(day - world.day0)),
        pc.take(world.second_text, pa.array(ms_of_day // 1000)),
        pc.take(world.milli_text, pa.array(ms_of_day % 1000)),
        pc.take(world.user_ids, pa.array(d.users)),
        pc.take(world.item_ids, pa.array(d.items)),
        pc.take(world.context_text, pa.array(context)),
        pc.cast(pa.array(whole), pa.string()),
        pc.take(_CENTS, pa.array(cents)),
        pc.take(_POSITION_TEXT, pa.array(d.position)),
        pc.take(_TAIL_TEXT, pa.array(tail)),
        "",
    ).cast(pa.binary())

    counts = dict.fromkeys(schema.DIRTY_KINDS, 0)
    dirty_kind: list[str | None] = [None] * m
    is_dirty = np.zeros(m, dtype=bool)
    is_dirty[d.dirty_idx] = True
    replacement: dict[int, bytes] = {}
    for i, kind_no, variant in zip(
        d.dirty_idx.tolist(), d.dirty_kinds.tolist(), d.dirty_variants.tolist(), strict=True
    ):
        kind = _NON_DUP_KINDS[kind_no]
        replacement[i] = _corrupt(lines[i].as_py(), kind, variant)
        dirty_kind[i] = kind
        counts[kind] += 1
    counts["duplicate"] = len(d.dup_src)

    # The output is runs of consecutive clean lines (zero-copy slices of the rendered buffer) broken by
    # dirty lines, duplicates and file boundaries; copying 25 MB per chunk would cost more than rendering.
    order = np.insert(np.arange(m), d.dup_pos, d.dup_src)
    n = len(order)
    breaks = np.zeros(n, dtype=bool)
    breaks[0] = True
    breaks[1:] = (order[1:] != order[:-1] + 1) | is_dirty[order[1:]] | is_dirty[order[:-1]]
    file_starts = np.arange(-d.first_line % cfg.rows_per_file, n, cfg.rows_per_file)
    breaks[file_starts] = True
    starts = np.flatnonzero(breaks)
    stops = np.append(starts[1:], n)
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=m + 1 + lines.offset)[lines.offset :]
    data = memoryview(lines.buffers()[2])
    runs: list[tuple[int, Any]] = []
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        first = int(order[start])
        if first in replacement:
            runs.append((1, replacement[first]))
        else:
            runs.append((stop - start, data[offsets[first] : offsets[int(order[stop - 1]) + 1]]))
    truth = pa.RecordBatch.from_arrays(
        [event_ids, pa.array(d.p), pa.array(d.label), pa.array(dirty_kind, pa.string())],
        names=["event_id", "p", "label", "dirty"],
    )
    return _Chunk(runs=runs, truth=truth, dirty_counts=counts)


def _corrupt(line: bytes, kind: str, v: int) -> bytes:
    """One clean JSON line made dirty in the way `kind` names; `v` picks the variant."""
    record: dict[str, Any] = json.loads(line)
    changes: tuple[tuple[str, Any], ...] = ()
    if kind == "malformed_json":
        text = line.rstrip(b"\n")
        broken = (
            text[: max(1, len(text) // 2)],  # truncated write
            text[:-1],  # missing closing brace
            text.replace(b'":', b"\":'", 1),  # stray quote
            b"<html>502 Bad Gateway</html>",  # a proxy error page in the log
            b"[" + text + b"]",  # not an object
        )
        return broken[v % len(broken)] + b"\n"
    if kind == "missing_field":
        name = schema.REQUIRED_FIELDS[v % len(schema.REQUIRED_FIELDS)]
        if (v // 16) % 2:
            record[name] = None
        else:
            del record[name]
    elif kind == "wrong_type":
        changes = (
            ("price", str(record["price"])),
            ("position", record["position"] + 0.5),
            ("label", "yes"),
            ("label", True),
            ("user_id", int(record["user_id"][1:])),
            ("item_id", {"id": record["item_id"]}),
        )
        name, value = changes[v % len(changes)]
        record[name] = value
    elif kind == "out_of_range":
        changes = (
            ("price", -abs(record["price"]) - 1.0),
            ("price", 1.0e7),
            ("position", 0),
            ("position", 500),
            ("label", 2),
            ("discount", 1.5),
        )
        name, value = changes[v % len(changes)]
        record[name] = value
    elif kind == "bad_timestamp":
        options_ts = ("2026-13-45T99:00:00Z", "yesterday", "", "1999-12-31T23:59:59Z", "3026-01-01T00:00:00Z")
        record["ts"] = options_ts[v % len(options_ts)]
    elif kind == "unknown_category":
        changes = (("device", "smartwatch"), ("country", "XX"), ("category", "weapons"), ("device", "Mobile"))
        name, value = changes[v % len(changes)]
        record[name] = value
    elif kind == "invalid_utf8":
        target = ("user_id", "item_id", "category", "device")[v % 4]
        raw = json.dumps(record, separators=(",", ":")).encode()
        needle = f'"{target}":"'.encode()
        at = raw.index(needle) + len(needle) + 1
        bad = (b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82")[(v // 4) % 4]
        return raw[:at] + bad + raw[at:] + b"\n"
    else:
        raise ValueError(f"unknown dirty kind {kind!r}")
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


class _Writer(threading.Thread):
    """Writes the files in the background, so that generation, compression and I/O overlap.

    Jobs are `(file_no, parts, last)`: bytes to append to file `file_no`, closing it when `last`. The queue
    is short, so memory stays bounded by a few chunks. `None` ends the thread; a file still open then is
    discarded (the producer failed), never published.
    """

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__(name="mlpipe-generate-writer", daemon=True)
        self.cfg = cfg
        self.jobs: queue.Queue[tuple[int, list[Any], bool] | None] = queue.Queue(maxsize=3)
        self.files: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        stack: ExitStack | None = None
        job: tuple[int, list[Any], bool] | None = None
        fh: Any = None
        comp: Any = None
        try:
            while (job := self.jobs.get()) is not None:
                file_no, parts, last = job
                if stack is None:
                    suffix = ".jsonl.gz" if self.cfg.gzip else ".jsonl"
                    uri = join(self.cfg.output, f"part-s{self.cfg.seed}-{file_no:05d}{suffix}")
                    stack = ExitStack()
                    fh = stack.enter_context(atomic_output(uri))
                    # gzip level 1: compression must keep up with generation
                    comp = zlib.compressobj(1, zlib.DEFLATED, 31) if self.cfg.gzip else None
                for part in parts:
                    fh.write(comp.compress(part) if comp else part)
                if last:
                    if comp:
                        fh.write(comp.flush())
                    stack.close()
                    stack = None
                    self.files.append(uri)
            if stack is not None:
                raise RuntimeError("generation stopped before the file was complete")
        except BaseException as exc:  # reported by the caller after join()
            if stack is not None:
                stack.__exit__(type(exc), exc, exc.__traceback__)  # removes the temporary file
            self.error = exc
            while job is not None:  # drain so the producer never blocks
                job = self.jobs.get()


def generate(cfg: GeneratorConfig) -> GenerateResult:
    """Write `cfg.rows` raw event lines under `cfg.output` and the truth file; deterministic in `cfg`.

    The draws of each chunk run in order on this thread (they carry the history state); rendering to
    text runs on a small thread pool (pyarrow and numpy release the GIL) and a writer thread does I/O.
    """
    world = _World(cfg)
    writer = _Writer(cfg)
    writer.start()
    counts = dict.fromkeys(schema.DIRTY_KINDS, 0)
    events = 0
    state = {"file_no": 0, "file_rows": 0}
    truth_schema = pa.schema(
        [("event_id", pa.string()), ("p", pa.float64()), ("label", pa.int8()), ("dirty", pa.string())]
    )

    def emit(chunk: _Chunk, truth_writer: pq.ParquetWriter) -> None:
        for kind, c in chunk.dirty_counts.items():
            counts[kind] += c
        truth_writer.write_batch(chunk.truth)
        parts: list[Any] = []
        for n_lines, data in chunk.runs:
            parts.append(data)
            state["file_rows"] += n_lines
            if state["file_rows"] == cfg.rows_per_file:
                _submit(writer, (state["file_no"], parts, True))
                state.update(file_no=state["file_no"] + 1, file_rows=0)
                parts = []
        if parts:
            _submit(writer, (state["file_no"], parts, False))

    try:
        with (
            atomic_output(cfg.truth_uri) as truth_fh,
            pq.ParquetWriter(truth_fh, truth_schema, compression="zstd") as truth_writer,
            ThreadPoolExecutor(_RENDER_THREADS, thread_name_prefix="mlpipe-generate-render") as pool,
        ):
            plan, line = [], 0
            for k in range((cfg.rows + CHUNK_ROWS - 1) // CHUNK_ROWS):
                plan.append((k, line, min(CHUNK_ROWS, cfg.rows - line)))
                line += plan[-1][2]
            drawing: deque[Future[_Draws]] = deque()
            pending: deque[Future[_Chunk]] = deque()
            for k in range(len(plan)):
                while len(drawing) <= _RENDER_THREADS and len(drawing) + k < len(plan):
                    drawing.append(pool.submit(_draw, cfg, world, *plan[k + len(drawing)]))
                draws = drawing.popleft().result()
                _label(world, draws, events)
                events += len(draws.ts)
                pending.append(pool.submit(_render, cfg, world, draws))
                if len(pending) > _RENDER_THREADS:
                    emit(pending.popleft().result(), truth_writer)
            while pending:
                emit(pending.popleft().result(), truth_writer)
            if state["file_rows"]:
                _submit(writer, (state["file_no"], [], True))
    finally:
        writer.jobs.put(None)
        writer.join()
    if writer.error is not None:
        raise writer.error
    return GenerateResult(
        rows=cfg.rows, events=events, files=sorted(writer.files), truth=cfg.truth_uri, dirty_counts=counts
    )


def _submit(writer: _Writer, job: tuple[int, list[Any], bool]) -> None:
    if writer.error is not None:
        raise writer.error
    writer.jobs.put(job)

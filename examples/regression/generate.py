"""Synthetic raw data of the regression example: hourly energy readings of buildings, as gzipped CSV.

    python examples/regression/generate.py --rows 120000 --seed 7 --out /tmp/regression

writes `OUT/raw/part-NNNNN.csv.gz` (a header line, then one reading per line) and `OUT/truth.json`:

- `noise_sd`: the standard deviation of the Gaussian noise added to the target, the RMSE floor: no model
  of the inputs can do better in expectation;
- `rows`: the distinct readings (`rows_valid` of them clean, the rest dirty); `lines`: the data lines
  written (rows plus exact duplicates; header lines not counted); `header_lines`: one per part;
- `dirty`: the dirty lines by `reason:field`, as mlpipe's clean report names them (`quarantine_fields`),
  and `dirty_by_reason`; `duplicates`: the exact copies of clean lines (the clean stage drops them).

The same seed writes the same bytes (gzip without a timestamp). Columns: `reading_id`, `ts` (ISO-8601 UTC),
`site` (12 sites), `building_type` (4 types), `floor_area` (m2, log-normal: heavily skewed), `occupancy`
(people), `temperature_c` and the target `log_load` (the log of the hourly load, in arbitrary units):

    log_load = 1.1 log(floor_area) + BASE[type] + AMP[type] cos(2 pi (hour - PEAK[type]) / 24)
               + 0.006 (temperature_c - 18)^2 + 0.35 log1p(occupancy) + SITE[site] + N(0, noise_sd)

so a model needs the log of a skewed column, a cyclic function of the hour whose phase and amplitude depend
on the building type (an interaction), a U-shaped temperature effect and two categorical effects.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

HEADER = ("reading_id", "ts", "site", "building_type", "floor_area", "occupancy", "temperature_c", "log_load")
SITES = tuple(f"site-{i:02d}" for i in range(1, 13))
BUILDING_TYPES = ("residential", "office", "retail", "industrial")
TYPE_SHARES = (0.4, 0.3, 0.2, 0.1)
# The target's constants are fixed (not drawn from the seed): every seed samples the same function.
BASE = {"residential": 0.0, "office": 0.8, "retail": 0.5, "industrial": 1.6}
AMP = {"residential": 1.2, "office": 1.6, "retail": 1.0, "industrial": 0.3}  # daily swing
PEAK = {"residential": 19.0, "office": 13.0, "retail": 16.0, "industrial": 4.0}  # hour of the peak
SITE_EFFECT = dict(zip(SITES, np.linspace(-0.6, 0.6, len(SITES)).round(3).tolist(), strict=True))
SITE_CLIMATE = dict(zip(SITES, np.linspace(4.0, 24.0, len(SITES)).round(1).tolist(), strict=True))
OCCUPANCY_SCALE = {"residential": 3.0, "office": 60.0, "retail": 25.0, "industrial": 40.0}
NOISE_SD = 0.5
START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 181

# Dirty line kinds: `reason:field` as the clean report counts them, and the share of rows corrupted so.
DIRTY_SHARES = {
    "wrong_type:floor_area": 0.004,  # an unparseable number
    "wrong_type:occupancy": 0.002,
    "missing_field:temperature_c": 0.003,  # an empty required field
    "missing_field:site": 0.002,
    "out_of_range:floor_area": 0.002,  # the workload's rules (clean.py)
    "out_of_range:temperature_c": 0.002,
    "out_of_range:log_load": 0.001,
    "unknown_category:building_type": 0.002,
    "unknown_category:site": 0.001,
    "bad_timestamp:ts": 0.002,
    "malformed_csv": 0.001,  # an unterminated quote: the line is not CSV
}
DUPLICATE_SHARE = 0.005  # exact copies of clean lines, as an at-least-once producer resends them


def target(
    area: np.ndarray,
    hour: np.ndarray,
    kind: np.ndarray,
    temperature: np.ndarray,
    occupancy: np.ndarray,
    site: np.ndarray,
) -> np.ndarray:
    """The noiseless target (the conditional mean) of each reading; `kind` and `site` are label arrays."""
    base = np.array([BASE[k] for k in kind])
    amp = np.array([AMP[k] for k in kind])
    peak = np.array([PEAK[k] for k in kind])
    return (
        1.1 * np.log(area)
        + base
        + amp * np.cos(2 * np.pi * (hour - peak) / 24.0)
        + 0.006 * (temperature - 18.0) ** 2
        + 0.35 * np.log1p(occupancy)
        + np.array([SITE_EFFECT[s] for s in site])
    )


def _dirty(field_values: dict[str, str], kind: str, rng: np.random.Generator) -> None:
    """Corrupt one field of a reading's CSV fields, in place, as `kind` (`reason:field`) says."""
    reason, _, field = kind.partition(":")
    if reason == "wrong_type":
        field_values[field] = str(rng.choice(["n/a", "12..5", "about 300", "many", "?"]))
    elif reason == "missing_field":
        field_values[field] = ""
    elif reason == "out_of_range":
        field_values[field] = {
            "floor_area": str(rng.choice(["-120.5", "0", "2500000"])),
            "temperature_c": str(rng.choice(["99.0", "-80.5", "450"])),
            "log_load": str(rng.choice(["-99.0", "1000"])),
        }[field]
    elif reason == "unknown_category":
        field_values[field] = {"building_type": "warehouse", "site": "site-99"}[field]
    elif reason == "bad_timestamp":
        field_values[field] = str(rng.choice(["2025-13-40T25:00:00Z", "yesterday", "1999-01-01T00:00:00Z"]))
    elif reason == "malformed_csv":
        field_values["site"] = '"' + field_values["site"]  # the quote never closes
    else:
        raise ValueError(f"unknown dirty kind {kind!r}")


def generate(rows: int, seed: int, out: Path, rows_per_part: int = 50_000) -> dict[str, Any]:
    """Write `rows` readings (some dirty) plus exact duplicates under `out/raw/` and `out/truth.json`."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    rng = np.random.default_rng(seed)
    kind = rng.choice(np.array(BUILDING_TYPES), size=rows, p=TYPE_SHARES)
    site = rng.choice(np.array(SITES), size=rows)
    seconds = rng.integers(0, DAYS * 86_400, size=rows)
    hour = (seconds % 86_400) / 3600.0
    area = np.clip(np.exp(rng.normal(np.log(800.0), 0.9, size=rows)), 20.0, 60_000.0).round(1)
    occupancy = rng.poisson(np.array([OCCUPANCY_SCALE[k] for k in kind]))
    temperature = (np.array([SITE_CLIMATE[s] for s in site]) + rng.normal(0.0, 8.0, size=rows)).round(1)
    signal = target(area, hour, kind, temperature, occupancy, site)
    load = (signal + rng.normal(0.0, NOISE_SD, size=rows)).round(4)

    # Each dirty row gets one kind; the kinds are spread over the rows at random.
    counts = {k: round(share * rows) for k, share in DIRTY_SHARES.items()}
    total_dirty = sum(counts.values())
    if total_dirty > rows:
        raise ValueError("too few rows for the dirty shares")
    order = rng.permutation(rows)
    dirty_kind: dict[int, str] = {}
    at = 0
    for k, n in counts.items():
        for i in order[at : at + n]:
            dirty_kind[int(i)] = k
        at += n
    clean_rows = order[total_dirty:]
    n_duplicates = min(round(DUPLICATE_SHARE * rows), len(clean_rows))
    duplicated = set(rng.choice(clean_rows, size=n_duplicates, replace=False).tolist())

    lines: list[str] = []
    for i in range(rows):
        ts = datetime.fromtimestamp(START.timestamp() + int(seconds[i]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields = {
            "reading_id": f"r{seed:04d}-{i:08d}",
            "ts": ts,
            "site": str(site[i]),
            "building_type": str(kind[i]),
            "floor_area": f"{area[i]:.1f}",
            "occupancy": str(int(occupancy[i])),
            "temperature_c": f"{temperature[i]:.1f}",
            "log_load": f"{load[i]:.4f}",
        }
        if i in dirty_kind:
            _dirty(fields, dirty_kind[i], rng)
        line = ",".join(fields[h] for h in HEADER)
        lines.append(line)
        if i in duplicated:
            lines.append(line)  # right after: a resend; the clean stage keeps one

    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for old in raw.glob("part-*.csv.gz"):
        old.unlink()
    parts = 0
    for start in range(0, len(lines), rows_per_part):
        body = io.BytesIO()
        # mtime=0: the same seed writes the same bytes
        with gzip.GzipFile(fileobj=body, mode="wb", mtime=0) as gz:
            gz.write(
                (",".join(HEADER) + "\n" + "\n".join(lines[start : start + rows_per_part]) + "\n").encode()
            )
        (raw / f"part-{parts:05d}.csv.gz").write_bytes(body.getvalue())
        parts += 1

    by_reason: dict[str, int] = {}
    for k, n in counts.items():
        if n:
            reason = k.partition(":")[0]
            by_reason[reason] = by_reason.get(reason, 0) + n
    truth = {
        "seed": seed,
        "noise_sd": NOISE_SD,
        "rows": rows,
        "rows_valid": rows - total_dirty,
        "lines": len(lines),
        "header_lines": parts,
        "duplicates": n_duplicates,
        "dirty": {k: n for k, n in sorted(counts.items()) if n},
        "dirty_by_reason": dict(sorted(by_reason.items())),
        "signal_sd": float(np.std(signal)),
        "target_sd": float(np.std(load)),
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=120_000, help="distinct readings (default 120000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True, help="folder for raw/ and truth.json")
    parser.add_argument("--rows-per-part", type=int, default=50_000, help="lines per .csv.gz part")
    args = parser.parse_args(argv)
    truth = generate(args.rows, args.seed, args.out, args.rows_per_part)
    print(json.dumps({k: truth[k] for k in ("rows", "lines", "duplicates", "noise_sd")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

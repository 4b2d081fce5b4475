"""A workload: the folder a team owns, declared by one `workload.toml`, read and validated here alone.

The manifest names the workload's raw input, the optional Spark stages (a Glue clean stage and an EMR feature
stage, each either the workload's small columnar functions run by mlpipe's driver or a whole script that keeps
the driver's contract), the training and inference entrypoints, the metric with its direction and quality
gate, the candidates, and the wheels each stage needs. Paths in it are relative to the workload folder and
must stay inside it. Every problem raises WorkloadError with one line that names the key, for example
`workload.toml: metric.direction: required key is missing`.

Plain Python (the standard library's tomllib): the CLI, the stacks and local mode all read workloads through
this module.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from mlpipe.config import NOT_A_KEY, ConfigError, build_dataclass

MANIFEST = "workload.toml"
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
CANDIDATE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")  # as the execution input's schema
# S3's safe key characters that SageMaker's registry metadata also takes (no IAM wildcard: * or ?).
PREFIX = re.compile(r"^[A-Za-z0-9_.=+@-]+(/[A-Za-z0-9_.=+@-]+)*/$")
TABULAR_METRICS = {"auc": "maximize", "log_loss": "minimize"}
"""What mlpipe.tabular reports, with each figure's direction."""
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_NODES = 16
MAX_GPUS = 8
MAX_CANDIDATES = 64
TABULAR_TRAINER = "mlpipe.tabular"
"""mlpipe's own tabular trainer and inference (batch_containers/): a workload may name it instead of code."""


class WorkloadError(ConfigError):
    """A workload manifest is invalid; the message names the key."""


@dataclass(frozen=True)
class RawInput:
    format: Literal["jsonl", "csv"]
    """How the raw records are written: JSON Lines or CSV. Objects ending in `.gz` are read as gzip."""
    prefix: str = ""
    """Where the raw objects sit in the raw bucket (ends with `/`). Default: `<name>/raw/`."""
    csv_header: bool = True
    """csv only: the first line of each object names the columns."""
    csv_delimiter: str = ","
    """csv only: the one-character field separator."""
    generator: str = ""
    """A script of the workload that writes a synthetic raw dataset: `python <generator> --rows N --seed S
    --out DIR` writes the raw files under DIR/raw/ (and whatever truth it keeps beside them). `mlpipe local
    run` uses it when given no `--input`."""
    sample: str = ""
    """A folder of the workload with a small raw dataset: what `mlpipe local run` runs on when given no
    `--input` and the workload has no `generator`."""


@dataclass(frozen=True)
class CleanStage:
    """The Glue stage. `module` (the workload's columnar functions, run by mlpipe's Glue driver) or `script`
    (a whole Glue script that keeps the driver's argument and report contract)."""

    module: str = ""
    """A .py file of the workload with `SCHEMA` and `parse(records)`, run by mlpipe's Glue driver."""
    script: str = ""
    """A whole Glue script instead of `module`: it gets the run's `--input`, `--output`, `--quarantine` and
    `--report` and writes what the driver writes (docs/workloads.md#whole-scripts)."""
    dedupe_key: tuple[str, ...] = ()
    """module only, and required with it: the columns that identify a record; duplicates are counted and
    dropped."""
    order_by: str = ""
    """module only: of duplicates, the row with the smallest value of this column is kept (default: any)."""
    partition_column: str = ""
    """module only: the curated data is partitioned by this column of `parse`'s output (default: none)."""


@dataclass(frozen=True)
class FeatureStage:
    """The EMR stage. `module` (the workload's feature functions, run by mlpipe's EMR driver) or `script`."""

    module: str = ""
    """A .py file of the workload with `NUMERIC_FEATURES`, `CATEGORICAL_FEATURES` and `features(records)`."""
    script: str = ""
    """A whole Spark script instead of `module`: the training step, which writes the feature manifest
    (docs/workloads.md#whole-scripts)."""
    inference_script: str = ""
    """script only: the whole Spark script of the inference step, which writes the inference manifest."""
    id_column: str = ""
    """module only: the column that identifies a row in predictions."""
    label_column: str = ""
    """module only: the target column (absent from inference data)."""
    split_by: Literal["time", "ratio"] = "ratio"
    """module only: time: by `time_column`, the earliest rows train, the next validate and the latest test;
    ratio: a seeded hash of `id_column`."""
    time_column: str = ""
    """split_by time only: the column that orders the rows."""
    validation_fraction: float = 0.1
    """module only: the share for validation (model selection), in (0, 0.5): of the rows (ratio), or of the
    time span from the first row to the last, rounded down to a whole hour when that is an hour or more in
    (time)."""
    test_fraction: float = 0.1
    """module only: the share for the held-out evaluation that the quality gate reads, as
    `validation_fraction`; the two together below 0.9."""


@dataclass(frozen=True)
class Training:
    entrypoint: str = ""
    """A .py file of the workload that mlpipe's launcher runs on every rank (docs/training.md)."""
    trainer: str = ""
    """Instead of `entrypoint`: `mlpipe.tabular`, mlpipe's own tabular trainer."""
    dockerfile: str = ""
    """A Dockerfile of the workload whose only FROM line is `FROM mlpipe` (mlpipe's image), built from the
    workload's folder at deploy; its training, evaluation and inference jobs run in it (default: mlpipe's image)."""


@dataclass(frozen=True)
class Inference:
    entrypoint: str = ""
    """A .py file of the workload that scores the inference data with the selected model (a Batch job)."""
    trainer: str = ""
    """Instead of `entrypoint`: `mlpipe.tabular`."""


@dataclass(frozen=True)
class Evaluation:
    entrypoint: str = ""
    """A .py file of the workload that loads the selected model as inference does and scores the held-out test
    data: the figure the quality gate compares (a Batch job)."""
    trainer: str = ""
    """Instead of `entrypoint`: `mlpipe.tabular`."""


@dataclass(frozen=True)
class Metric:
    name: str
    """The metric's name as the entrypoints report it, e.g. `auc` or `rmse`."""
    direction: Literal["maximize", "minimize"]
    """Whether larger or smaller is better: selection and the quality gate follow it."""
    gate: float
    """The quality gate: the held-out figure must be at least (maximize) or at most (minimize) this."""


@dataclass(frozen=True)
class Candidate:
    name: str
    """1 to 32 lowercase letters, digits and `-` (S3 keys and Batch job names); unique within the workload."""
    nodes: int = 1
    """More than 1: a Batch multi-node parallel job (DDP across nodes)."""
    gpus: int = 1
    """GPUs per node: one rank per GPU (local mode: one rank per node, whatever GPUs the host has)."""
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    """Passed to the entrypoint as JSON."""


@dataclass(frozen=True)
class Search:
    kind: Literal["grid", "random"]
    """grid: every combination of `space`, in order (`grid-0`, `grid-1`, ...); random: `count` distinct
    combinations drawn with `seed` (`random-0`, ...). The same manifest always makes the same candidates."""
    space: Mapping[str, Any]
    """hyperparameter -> list of values."""
    count: int = 0
    """random only: how many candidates to draw."""
    seed: int = 0
    """random only: the draws' seed."""
    nodes: int = 1
    """Nodes of every candidate the search makes."""
    gpus: int = 1
    """GPUs per node of every candidate the search makes."""


@dataclass(frozen=True)
class Dependencies:
    spark: tuple[str, ...] = ()
    """Pure-Python wheel files of the workload for its Glue and EMR code, staged in S3 as zips on the Python
    path (Glue's `--extra-py-files`, EMR's `--py-files`): nothing is installed or downloaded."""
    batch: tuple[str, ...] = ()
    """Wheel files of the workload installed with its code package in the training and inference jobs."""


@dataclass(frozen=True)
class Workload:
    name: str
    """2 to 32 lowercase letters, digits and `-`, starting with a letter and not ending with `-`: names the
    workload's pipeline and resources."""
    raw: RawInput
    train: Training
    infer: Inference
    evaluate: Evaluation
    metric: Metric
    description: str = ""
    """One line for people: shown by `mlpipe workload check`."""
    clean: CleanStage | None = None
    """Absent: no Glue stage; training or the feature stage reads the raw input."""
    features: FeatureStage | None = None
    """Absent: no EMR stage; training reads the curated data (or the raw input without a clean stage)."""
    candidates: tuple[Candidate, ...] = ()
    """The default candidates; a run's input may name others."""
    search: Search | None = None
    """Instead of `candidates`: a search space that makes them."""
    dependencies: Dependencies = field(default_factory=Dependencies)
    root: Path = field(default=Path(), compare=False, metadata={NOT_A_KEY: True})
    """The workload folder (not a manifest key)."""

    @property
    def raw_prefix(self) -> str:
        return self.raw.prefix or f"{self.name}/raw/"

    @property
    def spark_stages(self) -> bool:
        return self.clean is not None or self.features is not None

    def stages(self) -> list[str]:
        """The Spark stages the pipeline runs, in order: `clean` (Glue) and `features` (EMR)."""
        return [name for name in ("clean", "features") if getattr(self, name) is not None]

    def path(self, relative: str) -> Path:
        return self.root / relative

    def all_candidates(self) -> tuple[Candidate, ...]:
        """`candidates`, or the ones `search` makes: every combination of its space in order (grid), or `count`
        distinct combinations drawn with its seed (random). The same manifest always gives the same list."""
        s = self.search
        if s is None:
            return self.candidates
        names = list(s.space)
        combinations = list(itertools.product(*(s.space[n] for n in names)))
        if s.kind == "random":
            combinations = random.Random(s.seed).sample(combinations, s.count)
        width = len(str(len(combinations) - 1))
        return tuple(
            Candidate(
                name=f"{s.kind}-{i:0{width}d}",
                nodes=s.nodes,
                gpus=s.gpus,
                hyperparameters=dict(zip(names, values, strict=True)),
            )
            for i, values in enumerate(combinations)
        )

    def execution_candidates(self) -> list[dict[str, Any]]:
        """The candidates as the execution input writes them (nodes and GPUs only where not 1)."""
        out: list[dict[str, Any]] = []
        for c in self.all_candidates():
            candidate: dict[str, Any] = {"name": c.name, "hyperparameters": dict(c.hyperparameters)}
            candidate.update({k: v for k, v in (("nodes", c.nodes), ("gpus", c.gpus)) if v != 1})
            out.append(candidate)
        return out


def load(folder: str | Path) -> Workload:
    """The workload in `folder` (or the folder of a `workload.toml` path), validated."""
    root = Path(folder)
    manifest = root if root.name == MANIFEST else root / MANIFEST
    root = manifest.parent.resolve()
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkloadError(f"{manifest}: no workload manifest here") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"{manifest}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError(f"{manifest}: not valid TOML: {exc}") from None
    return parse(data, root, source=MANIFEST)


def parse(data: Mapping[str, Any], root: Path, *, source: str = MANIFEST) -> Workload:
    """Build and check a Workload from a manifest's data; paths are checked against `root`."""
    try:
        workload: Workload = build_dataclass(Workload, data, source)
    except WorkloadError:
        raise
    except ConfigError as exc:
        raise WorkloadError(_relabel(str(exc), source)) from None
    workload = _with_root(workload, root)
    _check(workload, source)
    if workload.raw.format != "csv":  # a key that would change nothing is refused, not ignored
        for key in ("csv_header", "csv_delimiter"):
            _require(
                key not in data["raw"],
                source,
                f"raw.{key}",
                f"csv only: raw.format is {workload.raw.format!r}",
            )
    return workload


def check_deployable(w: Workload, source: str = MANIFEST) -> None:
    """What this version's pipeline runs: refuse, naming the key, a valid manifest that asks for more.

    The pipeline runs the workload's Glue and EMR stages (each optional, with mlpipe's drivers or the
    workload's whole scripts), then trains, evaluates and scores with the workload's entrypoints (or
    mlpipe.tabular) on Batch.
    """
    not_yet = "is not deployed by this version of mlpipe's pipeline"
    if w.features is not None:
        _require(
            w.clean is not None,
            source,
            "features",
            f"reads the curated data: without a [clean] stage it {not_yet}",
        )


def load_all(folders: Sequence[str], base: Path) -> tuple[Workload, ...]:
    """The workloads that cdk.json lists (folders relative to `base`), each validated, their names unique."""
    workloads = []
    for i, folder in enumerate(folders):
        try:
            workloads.append(load(base / folder))
        except WorkloadError as exc:
            raise WorkloadError(f"workloads[{i}] ({folder}): {exc}") from None
    check_unique(workloads)
    return tuple(workloads)


def share_identifier(name: str) -> str:
    """The workload's fair-share identifier on the Batch queues: Batch takes letters and digits only."""
    return name.replace("-", "")


def check_unique(workloads: Sequence[Workload], path: str = "workloads") -> None:
    """Two workloads with one name, or one share identifier, would share resources: refuse them."""
    seen: dict[str, int] = {}
    shares: dict[str, int] = {}
    for i, workload in enumerate(workloads):
        if workload.name in seen:
            raise WorkloadError(
                f"{path}[{i}]: workload name {workload.name!r} is also the name of {path}[{seen[workload.name]}] "
                f"({workloads[seen[workload.name]].root})"
            )
        share = share_identifier(workload.name)
        if share in shares:
            other = workloads[shares[share]].name
            raise WorkloadError(
                f"{path}[{i}]: workload name {workload.name!r} and {other!r} ({path}[{shares[share]}]) give one "
                f"Batch share identifier, {share!r} (names without '-'): rename one"
            )
        seen[workload.name] = i
        shares[share] = i


def _relabel(message: str, source: str) -> str:
    # build_dataclass names keys from `source.`; a manifest's keys read better as `source: key`.
    prefix = f"{source}."
    return f"{source}: {message[len(prefix) :]}" if message.startswith(prefix) else message


def _with_root(workload: Workload, root: Path) -> Workload:
    values = {f.name: getattr(workload, f.name) for f in fields(workload)}
    values["root"] = root
    return Workload(**values)


def _fail(source: str, key: str, message: str) -> None:
    raise WorkloadError(f"{source}: {key}: {message}")


def _require(condition: bool, source: str, key: str, message: str) -> None:
    if not condition:
        _fail(source, key, message)


def _check_file(workload: Workload, source: str, key: str, relative: str, suffix: str | None = ".py") -> None:
    path = (workload.root / relative).resolve()
    _require(path.is_relative_to(workload.root), source, key, f"{relative!r} is outside the workload folder")
    _require(path.is_file(), source, key, f"{relative!r} does not exist in {workload.root}")
    if suffix:
        _require(path.suffix == suffix, source, key, f"{relative!r} is not a {suffix} file")


def _one_of(
    workload: Workload, source: str, section: str, values: dict[str, str], *, allowed_trainer: bool = False
) -> None:
    given = {k: v for k, v in values.items() if v}
    _require(len(given) == 1, source, section, f"give exactly one of {', '.join(values)}")
    ((key, value),) = given.items()
    if key == "trainer":
        _require(
            allowed_trainer and value == TABULAR_TRAINER,
            source,
            f"{section}.trainer",
            f"unknown trainer {value!r} (known: {TABULAR_TRAINER})",
        )
    else:
        _check_file(workload, source, f"{section}.{key}", value)


def _check_column(source: str, key: str, value: str) -> None:
    _require(COLUMN.fullmatch(value) is not None, source, key, f"{value!r} is not a column name")


def _check(w: Workload, source: str) -> None:
    _require(
        NAME.fullmatch(w.name) is not None, source, "name", "use 2 to 32 lowercase letters, digits and '-'"
    )
    raw = w.raw
    if raw.prefix:
        _require(
            PREFIX.fullmatch(raw.prefix) is not None,
            source,
            "raw.prefix",
            "must be a key prefix ending in '/' of letters, digits and _.=+@-",
        )
    if raw.format == "csv":
        _require(len(raw.csv_delimiter) == 1, source, "raw.csv_delimiter", "must be one character")
    if raw.generator:
        _check_file(w, source, "raw.generator", raw.generator)
    if raw.sample:
        sample = (w.root / raw.sample).resolve()
        _require(
            sample.is_relative_to(w.root),
            source,
            "raw.sample",
            f"{raw.sample!r} is outside the workload folder",
        )
        _require(sample.is_dir(), source, "raw.sample", f"{raw.sample!r} is not a folder of {w.root}")

    if w.clean is not None:
        c = w.clean
        _one_of(w, source, "clean", {"module": c.module, "script": c.script})
        if c.module:
            _require(
                bool(c.dedupe_key), source, "clean.dedupe_key", "name the columns that identify a record"
            )
            for i, column in enumerate(c.dedupe_key):
                _check_column(source, f"clean.dedupe_key[{i}]", column)
            for key in ("order_by", "partition_column"):
                if getattr(c, key):
                    _check_column(source, f"clean.{key}", getattr(c, key))
        else:
            for key in ("dedupe_key", "order_by", "partition_column"):
                _require(not getattr(c, key), source, f"clean.{key}", "applies to clean.module only")

    if w.features is not None:
        f = w.features
        _one_of(w, source, "features", {"module": f.module, "script": f.script})
        if f.module:
            for key in ("id_column", "label_column"):
                _require(bool(getattr(f, key)), source, f"features.{key}", "required with features.module")
                _check_column(source, f"features.{key}", getattr(f, key))
            if f.split_by == "time":
                _require(
                    bool(f.time_column), source, "features.time_column", "required with split_by = 'time'"
                )
                _check_column(source, "features.time_column", f.time_column)
            for key in ("validation_fraction", "test_fraction"):
                _require(0 < getattr(f, key) < 0.5, source, f"features.{key}", "must be in (0, 0.5)")
            _require(
                f.validation_fraction + f.test_fraction < 0.9,
                source,
                "features.test_fraction",
                "validation and test together must leave at least 10% for training",
            )
            _require(
                not f.inference_script, source, "features.inference_script", "applies to features.script only"
            )
        else:
            _require(
                bool(f.inference_script), source, "features.inference_script", "required with features.script"
            )
            _check_file(w, source, "features.inference_script", f.inference_script)
            defaults = FeatureStage()
            for key in (
                "id_column",
                "label_column",
                "split_by",
                "time_column",
                "validation_fraction",
                "test_fraction",
            ):
                _require(
                    getattr(f, key) == getattr(defaults, key),
                    source,
                    f"features.{key}",
                    "applies to features.module only",
                )

    _one_of(
        w,
        source,
        "train",
        {"entrypoint": w.train.entrypoint, "trainer": w.train.trainer},
        allowed_trainer=True,
    )
    if w.train.dockerfile:
        _check_file(w, source, "train.dockerfile", w.train.dockerfile, suffix=None)
        froms = [
            line.split()
            for line in w.path(w.train.dockerfile).read_text(errors="replace").splitlines()
            if line.strip().upper().startswith("FROM ")
        ]
        _require(
            len(froms) == 1 and [part.lower() for part in froms[0][1:2]] == ["mlpipe"],
            source,
            "train.dockerfile",
            "build one stage on mlpipe's image: its only FROM line is `FROM mlpipe`",
        )
    _one_of(
        w,
        source,
        "infer",
        {"entrypoint": w.infer.entrypoint, "trainer": w.infer.trainer},
        allowed_trainer=True,
    )
    _one_of(
        w,
        source,
        "evaluate",
        {"entrypoint": w.evaluate.entrypoint, "trainer": w.evaluate.trainer},
        allowed_trainer=True,
    )
    for section in ("infer", "evaluate"):
        _require(
            (w.train.trainer == TABULAR_TRAINER) == (getattr(w, section).trainer == TABULAR_TRAINER),
            source,
            f"{section}.trainer",
            f"{TABULAR_TRAINER} trains, infers and evaluates together: name it in train, infer and evaluate, "
            "or in none",
        )

    _require(
        re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", w.metric.name) is not None,
        source,
        "metric.name",
        "use 1 to 64 letters, digits and '_', starting with a letter",
    )
    _require(math.isfinite(w.metric.gate), source, "metric.gate", "must be a finite number")
    if w.train.trainer == TABULAR_TRAINER:
        reported = ", ".join(f"{name} ({direction})" for name, direction in TABULAR_METRICS.items())
        _require(
            TABULAR_METRICS.get(w.metric.name) == w.metric.direction,
            source,
            "metric",
            f"{TABULAR_TRAINER} reports {reported}: name one of them with its direction",
        )
        _require(
            w.features is not None,
            source,
            "train.trainer",
            f"{TABULAR_TRAINER} reads the feature stage's manifest: add a [features] stage, or name an entrypoint",
        )

    _require(
        bool(w.candidates) != (w.search is not None),
        source,
        "candidates",
        "give candidates or search, not both or neither",
    )
    _require(len(w.candidates) <= MAX_CANDIDATES, source, "candidates", f"at most {MAX_CANDIDATES}")
    names: set[str] = set()
    for i, candidate in enumerate(w.candidates):
        key = f"candidates[{i}]"
        _require(
            CANDIDATE_NAME.fullmatch(candidate.name) is not None,
            source,
            f"{key}.name",
            "use 1 to 32 lowercase letters, digits and '-'",
        )
        _require(candidate.name not in names, source, f"{key}.name", f"{candidate.name!r} is used twice")
        names.add(candidate.name)
        _check_shape(source, key, candidate.nodes, candidate.gpus)
    if w.search is not None:
        s = w.search
        _require(bool(s.space), source, "search.space", "name at least one hyperparameter")
        for name, values in s.space.items():
            _require(
                isinstance(values, list) and len(values) > 0,
                source,
                f"search.space.{name}",
                "must be a non-empty list of values",
            )
        combinations = 1
        for values in s.space.values():
            combinations *= len(values)
        if s.kind == "grid":
            _require(s.count == 0, source, "search.count", "applies to kind = 'random' only")
            _require(
                combinations <= MAX_CANDIDATES,
                source,
                "search.space",
                f"makes {combinations} candidates; at most {MAX_CANDIDATES}",
            )
        else:
            _require(1 <= s.count <= MAX_CANDIDATES, source, "search.count", f"must be 1 to {MAX_CANDIDATES}")
            _require(
                s.count <= combinations,
                source,
                "search.count",
                f"draws {s.count} distinct candidates from a space of {combinations} combinations",
            )
        _check_shape(source, "search", s.nodes, s.gpus)

    for stage in ("spark", "batch"):
        for i, wheel in enumerate(getattr(w.dependencies, stage)):
            _check_file(w, source, f"dependencies.{stage}[{i}]", wheel, suffix=".whl")
    if w.dependencies.spark:
        _require(w.spark_stages, source, "dependencies.spark", "the workload has no Spark stage")
    for i, wheel in enumerate(w.dependencies.spark):
        _require(
            wheel.endswith("-none-any.whl"),
            source,
            f"dependencies.spark[{i}]",
            f"{wheel!r} is not a pure-Python wheel (…-none-any.whl): Glue and EMR import Spark dependencies from "
            "zips on the Python path, which cannot load compiled code",
        )


def _check_shape(source: str, key: str, nodes: int, gpus: int) -> None:
    _require(1 <= nodes <= MAX_NODES, source, f"{key}.nodes", f"must be 1 to {MAX_NODES}")
    _require(1 <= gpus <= MAX_GPUS, source, f"{key}.gpus", f"must be 1 to {MAX_GPUS}")

"""Training hyperparameters: one table of names, types, defaults and ranges; three ways to set them.

Precedence, lowest first: the defaults below; environment variables `MLPIPE_HP_<NAME>` (e.g. set in the
job definition); the `--hyperparameters` JSON object (the Batch job parameter, per submission); CLI flags
(`--lr 0.01`, for local runs). Every value is validated before any work starts; a bad one is a UsageError.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from mlpipe_batch.errors import UsageError

ENV_PREFIX = "MLPIPE_HP_"


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str  # "int" | "float" | "choice" | "int_list"
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be > low, not >= low
    high_open: bool = False
    choices: tuple[str, ...] = ()
    max_len: int = 0

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        span = f"{lo}{_fmt(self.low)}, {_fmt(self.high)}{hi}"
        if self.kind == "int_list":
            return f"a list of 0 to {self.max_len} integers in {span}"
        return f"{'an integer' if self.kind == 'int' else 'a number'} in {span}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "inf"
    return str(int(value)) if float(value).is_integer() else repr(value)


SPECS: tuple[Spec, ...] = (
    Spec("epochs", "int", 5, "passes over the training split", 1, 10_000),
    Spec(
        "batch_size",
        "int",
        1024,
        "examples per step per worker (global batch = batch_size x workers)",
        1,
        1 << 20,
    ),
    Spec("lr", "float", 1e-3, "AdamW learning rate", 0.0, 10.0, low_open=True),
    Spec(
        "lr_schedule",
        "choice",
        "cosine",
        "learning-rate schedule over all steps",
        choices=("constant", "cosine"),
    ),
    Spec("weight_decay", "float", 0.0, "AdamW weight decay", 0.0, 1.0),
    Spec("embedding_dim", "int", 16, "embedding width of every categorical feature", 1, 1024),
    Spec("hidden", "int_list", (256, 128), "widths of the hidden ReLU layers", 1, 65_536, max_len=16),
    Spec(
        "dropout", "float", 0.0, "dropout after each hidden layer (training only)", 0.0, 1.0, high_open=True
    ),
    Spec("seed", "int", 42, "seed of weights, data order and dropout", 0, 2**31 - 1),
    Spec(
        "precision",
        "choice",
        "bf16",
        "autocast dtype on GPU (CPU always runs fp32)",
        choices=("bf16", "fp32"),
    ),
    Spec("checkpoint_every_steps", "int", 0, "checkpoint every N steps (0: off)", 0, 10**9),
    Spec(
        "checkpoint_interval_s",
        "float",
        600.0,
        "checkpoint at most this often, in seconds (0: off)",
        0,
        86_400,
    ),
    Spec("keep_checkpoints", "int", 2, "checkpoints kept under --checkpoint", 1, 100),
    Spec("log_every_steps", "int", 200, "progress line every N steps (0: epochs only)", 0, 10**9),
    Spec("eval_batch_size", "int", 8192, "examples per evaluation step", 1, 1 << 22),
    Spec("prefetch_batches", "int", 16, "batches the loader keeps ready", 1, 1024),
    Spec("prefetch_shards", "int", 2, "shards downloaded and decoded ahead, in parallel", 1, 64),
)
_BY_NAME = {spec.name: spec for spec in SPECS}

# Keys that may change between a checkpoint and its resumption: they do not change what is learned.
OPERATIONAL = frozenset(
    {
        "checkpoint_every_steps",
        "checkpoint_interval_s",
        "keep_checkpoints",
        "log_every_steps",
        "eval_batch_size",
        "prefetch_batches",
        "prefetch_shards",
    }
)


@dataclass(frozen=True)
class HyperParameters:
    epochs: int
    batch_size: int
    lr: float
    lr_schedule: str
    weight_decay: float
    embedding_dim: int
    hidden: tuple[int, ...]
    dropout: float
    seed: int
    precision: str
    checkpoint_every_steps: int
    checkpoint_interval_s: float
    keep_checkpoints: int
    log_every_steps: int
    eval_batch_size: int
    prefetch_batches: int
    prefetch_shards: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out


assert [f.name for f in fields(HyperParameters)] == [s.name for s in SPECS]


_COMMON_NAMES = {
    "learning_rate": "lr",
    "hidden_units": "hidden",
    "num_epochs": "epochs",
    "emb_dim": "embedding_dim",
}


def _unknown(name: str, source: str) -> UsageError:
    close = [_COMMON_NAMES[name]] if name in _COMMON_NAMES else difflib.get_close_matches(name, _BY_NAME, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(_BY_NAME)})"
    return UsageError(f"unknown hyperparameter {name!r} in {source}{hint}")


def _check_range(spec: Spec, value: float, source: str) -> None:
    too_low = spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low)
    too_high = spec.high is not None and (value >= spec.high if spec.high_open else value > spec.high)
    if too_low or too_high or (isinstance(value, float) and not math.isfinite(value)):
        raise UsageError(
            f"hyperparameter {spec.name}={value!r} from {source} is out of range: {spec.describe()}"
        )


def _from_typed(spec: Spec, value: Any, source: str) -> Any:
    """Validate a JSON-typed value (from the --hyperparameters object). A string is read as text would be
    (the execution input allows numbers, booleans and strings: "256,128" is how a list travels there)."""
    if isinstance(value, str) and spec.kind != "choice":
        return _from_text(spec, value, source)
    wrong = UsageError(
        f"hyperparameter {spec.name}={json.dumps(value)} from {source} has the wrong type: {spec.describe()}"
    )
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        _check_range(spec, value, source)
        return value
    if spec.kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong
        _check_range(spec, float(value), source)
        return float(value)
    if spec.kind == "choice":
        if value not in spec.choices:
            raise UsageError(
                f"hyperparameter {spec.name}={json.dumps(value)} from {source}: {spec.describe()}"
            )
        return value
    # int_list
    if not isinstance(value, list | tuple) or len(value) > spec.max_len:
        raise wrong
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int):
            raise wrong
        _check_range(spec, item, source)
    return tuple(value)


def _from_text(spec: Spec, text: str, source: str) -> Any:
    """Validate a value given as text (environment variable or CLI flag)."""
    text = text.strip()
    wrong = UsageError(
        f"hyperparameter {spec.name}={text!r} from {source} has the wrong type: {spec.describe()}"
    )
    if spec.kind == "int":
        try:
            value: Any = int(text)
        except ValueError:
            raise wrong from None
    elif spec.kind == "float":
        try:
            value = float(text)
        except ValueError:
            raise wrong from None
    elif spec.kind == "choice":
        value = text
    else:  # int_list: "256,128", "[256, 128]" or "" for none
        body = text.strip("[]").replace(" ", "")
        try:
            value = [int(part) for part in body.split(",")] if body else []
        except ValueError:
            raise wrong from None
    return _from_typed(spec, value, source)


def resolve(
    *,
    json_text: str | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> tuple[HyperParameters, dict[str, str]]:
    """Merge defaults, environment, JSON and flags; return the hyperparameters and where each came from."""
    values: dict[str, Any] = {spec.name: spec.default for spec in SPECS}
    sources = dict.fromkeys(values, "default")
    for key, text in sorted((environ or {}).items()):
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in _BY_NAME:
            raise _unknown(name, f"environment variable {key}")
        values[name] = _from_text(_BY_NAME[name], text, f"environment variable {key}")
        sources[name] = "env"
    if json_text is not None:
        if not json_text.strip():
            raise UsageError("--hyperparameters is empty: pass a JSON object, e.g. '{}' for the defaults")
        try:
            doc = json.loads(json_text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--hyperparameters is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise UsageError(f"--hyperparameters must be a JSON object, got {type(doc).__name__}")
        for name, value in doc.items():
            if name not in _BY_NAME:
                raise _unknown(name, "--hyperparameters")
            values[name] = _from_typed(_BY_NAME[name], value, "--hyperparameters")
            sources[name] = "json"
    for name, text in (flags or {}).items():
        flag = "--" + name.replace("_", "-")
        values[name] = _from_text(_BY_NAME[name], text, f"flag {flag}")
        sources[name] = "flag"
    values["hidden"] = tuple(values["hidden"])
    return HyperParameters(**values), sources


def from_dict(doc: Mapping[str, Any]) -> HyperParameters:
    """Rebuild hyperparameters stored in a checkpoint (already validated when it was written)."""
    values = {spec.name: doc.get(spec.name, spec.default) for spec in SPECS}
    values["hidden"] = tuple(values["hidden"])
    return HyperParameters(**values)


def add_flags(parser: Any) -> None:
    """One optional CLI flag per hyperparameter, all as text (validated by `resolve`)."""
    group = parser.add_argument_group("hyperparameters (override --hyperparameters and MLPIPE_HP_*)")
    for spec in SPECS:
        group.add_argument(
            "--" + spec.name.replace("_", "-"),
            dest="hp_" + spec.name,
            metavar="V",
            default=None,
            help=f"{spec.help}; {spec.describe()}; default {spec.default!r}",
        )


def flags_from(args: Any) -> dict[str, str]:
    return {
        spec.name: getattr(args, "hp_" + spec.name)
        for spec in SPECS
        if getattr(args, "hp_" + spec.name) is not None
    }

"""The workloads that local mode's end-to-end tests run, and one synth of them all for the whole test run.

Each test workload's own synth through the CDK CLI costs about 10 CPU seconds, most of it the CLI's and CDK's
start-up; one synth of all five costs about 14. Local mode reuses a current synth that holds the run's
workload (`mlpipe.local.mode.synthesize`), so every end-to-end test runs from this one.
"""

from __future__ import annotations

import fcntl
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mlpipe.local.jobs import SparkHost

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
CLICKSTREAM = REPO_ROOT / "examples" / "clickstream"

# Every column, file and module of the clickstream example, its name, raw prefix and metric, renamed: the
# platform must run the copy as it runs the original, so it holds none of these names.
COLUMNS = {"event_id": "visit_key", "user_id": "shopper", "item_id": "sku", "device": "platform_kind",
           "country": "market", "category": "aisle", "price": "amount_paid", "position": "rank_on_page",
           "discount": "markdown", "label": "bought", "ts": "seen_at", "dt": "seen_day"}  # fmt: skip
MODULES = {"clean": "checks", "features": "feats", "event_schema": "vocab", "generate": "make_data",
           "generator": "synth", "truth": "oracle"}  # fmt: skip
MANIFEST = {'name = "clickstream"': 'name = "shopping"', 'prefix = "events/"': 'prefix = "shop/raw/"',
            'name = "auc"': 'name = "log_loss"', 'direction = "maximize"': 'direction = "minimize"',
            "gate = 0.70": "gate = 0.69"}  # fmt: skip
SPARK_WHEEL = "shopwords-1.0-py3-none-any.whl"
SPARK_WHEEL_IMPORT = (
    "from __future__ import annotations\n\nimport shopwords  # dependencies.spark: on Glue's and EMR's Python path\n\n"
    'assert shopwords.TAG == "shopping"\n'
)


@pytest.fixture(scope="session")
def clickstream_words() -> set[str]:
    """The original's words that the copy renames, as they would appear in a name mlpipe builds from them
    (CamelCase or snake_case, compared in lower case without underscores): its name, its columns of more than
    four letters, and what its rows are, click events. (Its modules are named after the stages: clean.py.)"""
    names = [*COLUMNS, "clickstream", "click", "event"]
    return {name.replace("_", "").lower() for name in names if len(name) > 4}


def renamed_clickstream(into: Path) -> Path:
    """A copy of examples/clickstream with COLUMNS, MODULES and MANIFEST renamed; its metric is the tabular
    trainer's other figure, log loss (minimized)."""
    into.mkdir()
    for source in CLICKSTREAM.iterdir():
        if source.suffix not in (".py", ".toml"):
            continue
        text = source.read_text()
        if source.name == "workload.toml":
            for before, after in MANIFEST.items():
                assert before in text, before
                text = text.replace(before, after)
            for module, renamed in MODULES.items():
                text = text.replace(f'"{module}.py"', f'"{renamed}.py"')
        else:
            for module, renamed in MODULES.items():
                text = re.sub(rf"^(from|import) {module}\b", rf"\1 {renamed}", text, flags=re.MULTILINE)
        for column, renamed in COLUMNS.items():
            text = re.sub(rf"\b{column}\b", renamed, text)
        if source.stem in ("clean", "features"):  # both Spark stages import the workload's wheel
            text = text.replace("from __future__ import annotations\n", SPARK_WHEEL_IMPORT, 1)
        name = f"{MODULES[source.stem]}.py" if source.stem in MODULES else source.name
        (into / name).write_text(text)
    write_wheel(into / SPARK_WHEEL, {"shopwords.py": 'TAG = "shopping"\n'})
    manifest = into / "workload.toml"
    manifest.write_text(manifest.read_text() + f'\n[dependencies]\nspark = ["{SPARK_WHEEL}"]\n')
    return into


def write_wheel(path: Path, modules: dict[str, str]) -> None:
    """A pure-Python wheel as pip installs it: the modules, and the dist-info that names them."""
    name, version = path.name.split("-")[:2]
    info = f"{name}-{version}.dist-info"
    files = {
        **modules,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: mlpipe-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for n, text in {**files, f"{info}/RECORD": record}.items():
            wheel.writestr(n, text)


@pytest.fixture(scope="session")
def spark_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkHost]:
    """One Spark host for this worker's end-to-end runs, shared as a caller that runs several workloads would
    share it (`LocalRun(spark_host=...)`): every run after the first skips the JVM's start-up and its cold
    JIT, about a third of a small run's CPU time. Its driver is the one local mode gives every run of fewer
    than SMALL_RUN_ROWS rows, as these runs are."""
    from mlpipe.local.jobs import SparkHost
    from mlpipe.local.mode import spark_driver

    folder = tmp_path_factory.mktemp("spark-host")
    host = SparkHost(spark_driver(rows=0), log=folder / "spark-host.log", scratch=folder / "spark-scratch")
    yield host
    host.close()


@dataclass(frozen=True)
class LocalWorkloads:
    """The end-to-end tests' workload folders, and the synth that holds them all."""

    cdk_out: Path
    shopping: Path  # the renamed clickstream copy
    regression: Path  # examples/regression
    churn: Path  # what `mlpipe workload init` writes
    lean: Path  # no Spark stage
    scripted: Path  # whole Glue and Spark scripts


@pytest.fixture(scope="session")
def local_workloads(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> LocalWorkloads:
    """Made once for the whole test run: under pytest-xdist the first worker to ask writes the folders and
    synthesizes them while the others wait on a lock; a later worker finds the synth current."""
    from mlpipe.commands.workload import init_workload
    from mlpipe.local.mode import synthesize

    if worker_id == "master":
        shared = tmp_path_factory.mktemp("local-workloads")
    else:
        shared = tmp_path_factory.getbasetemp().parent / "local-workloads"
        shared.mkdir(exist_ok=True)
    workloads = LocalWorkloads(
        cdk_out=shared / "cdk.out",
        shopping=shared / "shopping",
        regression=REPO_ROOT / "examples" / "regression",
        churn=shared / "churn-demo",
        lean=HERE / "lean_workload",
        scripted=HERE / "script_workload",
    )
    with open(shared / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not workloads.shopping.exists():
            renamed_clickstream(workloads.shopping)
        if not workloads.churn.exists():
            init_workload(workloads.churn)
        folders = [
            workloads.shopping,
            workloads.regression,
            workloads.churn,
            workloads.lean,
            workloads.scripted,
        ]
        synthesize(workloads.cdk_out, folders)  # nothing to do when another worker made it current
    return workloads

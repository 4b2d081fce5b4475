"""`mlpipe workload init DIR` writes a workload that `check` accepts and the pipeline deploys, whose code is as
clean as mlpipe's own; bad arguments are one line and exit 2, before anything is written. (The written
workload runs end to end in tests/local/test_init_workload_runs.py.)"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from mlpipe.cli import main
from mlpipe.commands.workload import init_workload, template_files
from mlpipe.workload import check_deployable, load

REPO_ROOT = Path(__file__).resolve().parents[2]
FILES = [
    "clean.py",
    "evaluate.py",
    "features.py",
    "infer.py",
    "sample/customers.csv",
    "train.py",
    "workload.toml",
]


def module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"written_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def test_init_writes_a_workload_that_check_accepts_and_the_pipeline_deploys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "churn-demo"
    assert main(["workload", "init", str(folder)]) == 0
    assert f"workload churn-demo: wrote {len(FILES)} files into {folder}" in capsys.readouterr().out
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == FILES

    assert main(["workload", "check", str(folder)]) == 0
    assert "workload churn-demo" in capsys.readouterr().out
    workload = load(folder)
    check_deployable(workload)  # what a synth and `mlpipe local run` refuse
    assert workload.name == "churn-demo" and workload.raw_prefix == "churn-demo/raw/"
    assert (workload.metric.name, workload.metric.direction) == ("accuracy", "maximize")
    assert [c.name for c in workload.candidates] == ["linear", "mlp"]
    assert workload.raw.sample == "sample/"
    assert all(c.hyperparameters for c in workload.candidates)


def test_the_sample_follows_the_clean_modules_schema(tmp_path: Path) -> None:
    init_workload(tmp_path / "w", "w1")
    clean, features = module(tmp_path / "w" / "clean.py"), module(tmp_path / "w" / "features.py")
    names = [field.split()[0] for field in clean.SCHEMA.split(",")]
    lines = (tmp_path / "w" / "sample" / "customers.csv").read_text().splitlines()
    # The Glue driver skips the header only when it equals SCHEMA's names joined by the delimiter.
    assert lines[0] == ",".join(names)
    assert 500 <= len(lines) - 1 <= 2000
    assert len(lines) - len(set(lines)) == 1  # one exact duplicate for the dedupe to drop
    assert features.PLANS == clean.PLANS  # the bucket index is the plan's identity
    assert {"plan": len(clean.PLANS) + 1} == features.CATEGORICAL_FEATURES
    manifest = tomllib.loads((tmp_path / "w" / "workload.toml").read_text())
    assert manifest["features"]["label_column"] == names[-1]


def test_name_substitution_is_limited_to_the_manifest(tmp_path: Path) -> None:
    name, written = init_workload(tmp_path / "Some Folder", "team-churn")
    assert name == "team-churn" and written == FILES
    manifest = tomllib.loads((tmp_path / "Some Folder" / "workload.toml").read_text())
    assert manifest["name"] == "team-churn" and manifest["raw"]["prefix"] == "team-churn/raw/"
    for relative, content in template_files().items():
        if relative != "workload.toml":
            assert (tmp_path / "Some Folder" / relative).read_bytes() == content


def test_an_empty_folder_is_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert init_workload(tmp_path / "empty")[0] == "empty"


def test_the_template_is_package_data_not_modules_of_mlpipe() -> None:
    folder = REPO_ROOT / "mlpipe" / "workload_template"
    assert sorted(p.name for p in folder.glob("*.py")) == ["__init__.py"]
    assert sorted(template_files()) == FILES
    assert sum(len(c) for c in template_files().values()) < 64 * 1024  # the template stays small


@pytest.mark.skipif(shutil.which("ruff", path=str(Path(sys.executable).parent)) is None, reason="no ruff")
def test_the_written_code_passes_ruff(tmp_path: Path) -> None:
    init_workload(tmp_path / "w", "w1")
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert ruff is not None
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [ruff, *command, "--config", str(REPO_ROOT / "pyproject.toml"), str(tmp_path / "w")],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("nonempty", [], "is not empty: give a new or empty folder"),
        ("file", [], "is a file: give a new or empty folder"),
        ("new", ["--name", "Churn"], "--name 'Churn': use 2 to 32 lowercase letters"),
        ("new", ["--name", "c"], "--name 'c': use 2 to 32"),
        ("new", ["--name", "x" * 33], "use 2 to 32"),
        ("new", ["--name=-ab"], "use 2 to 32"),
        ("badname", [], "is not a workload name"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2_before_anything_is_written(
    tmp_path: Path, setup: str, args: list[str], message: str
) -> None:
    folder = tmp_path / {"badname": "My_Workload"}.get(setup, "target")
    if setup == "nonempty":
        folder.mkdir()
        (folder / "notes.txt").write_text("mine\n")
    elif setup == "file":
        folder.write_text("a file\n")
    done = subprocess.run(
        [sys.executable, "-m", "mlpipe", "workload", "init", str(folder), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("mlpipe: error: "), done.stderr
    assert message in done.stderr, done.stderr
    assert done.stdout == ""
    if setup == "nonempty":
        assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    elif setup != "file":
        assert not folder.exists()

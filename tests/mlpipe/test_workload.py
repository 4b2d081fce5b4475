"""Workload manifests: a valid one loads with its defaults, and each bad one is refused before any work with
exit status 2 and one line naming the key."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from mlpipe import cli
from mlpipe.workload import WorkloadError, check_unique, load

MANIFEST = """\
name = "churn"
description = "a test workload"

[raw]
format = "csv"

[clean]
module = "clean.py"
dedupe_key = ["customer_id", "day"]
order_by = "updated_at"
partition_column = "day"

[features]
module = "features.py"
id_column = "customer_id"
label_column = "churned"
split_by = "time"
time_column = "day"

[train]
entrypoint = "train.py"

[infer]
entrypoint = "infer.py"

[evaluate]
entrypoint = "evaluate.py"

[metric]
name = "rmse"
direction = "minimize"
gate = 1.5

[[candidates]]
name = "small"
hyperparameters = { lr = 0.01 }

[[candidates]]
name = "ddp"
nodes = 2
gpus = 2
"""


def make(root: Path, manifest: str = MANIFEST, files: tuple[str, ...] = ()) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("clean.py", "features.py", "train.py", "infer.py", "evaluate.py", *files):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("# workload code\n")
    (root / "workload.toml").write_text(manifest)
    return root


def check(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(["workload", "check", str(folder), "--output", "json"])
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_valid_workload_loads_with_its_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workload = load(make(tmp_path / "churn"))
    assert workload.name == "churn" and workload.root == (tmp_path / "churn").resolve()
    assert (
        workload.raw_prefix == "churn/raw/" and workload.raw.csv_header and workload.raw.csv_delimiter == ","
    )
    assert workload.clean is not None and workload.clean.dedupe_key == ("customer_id", "day")
    assert workload.features is not None and workload.features.validation_fraction == 0.1
    assert [(c.name, c.nodes, c.gpus, dict(c.hyperparameters)) for c in workload.candidates] == [
        ("small", 1, 1, {"lr": 0.01}),
        ("ddp", 2, 2, {}),
    ]
    assert workload.metric.direction == "minimize" and workload.spark_stages
    code, out, err = check(tmp_path / "churn" / "workload.toml", capsys)
    assert code == 0 and err == ""
    said = json.loads(out)
    assert said["spark_stages"] == ["clean", "features"]
    assert (said["train"], said["infer"], said["evaluate"]) == ("train.py", "infer.py", "evaluate.py")


def test_stages_may_be_left_out_but_not_under_mlpipes_trainer(tmp_path: Path) -> None:
    manifest = """\
name = "tiny"
[raw]
format = "jsonl"
prefix = "teams/tiny/"
[train]
entrypoint = "train.py"
[infer]
entrypoint = "infer.py"
[evaluate]
entrypoint = "evaluate.py"
[metric]
name = "auc"
direction = "maximize"
gate = 0.7
[search]
kind = "random"
count = 3
space = { lr = [0.1, 0.01], hidden = [[64], [128, 64]] }
"""
    workload = load(make(tmp_path / "tiny", manifest))
    assert workload.clean is None and workload.features is None and not workload.spark_stages
    assert workload.raw_prefix == "teams/tiny/" and workload.search is not None and workload.search.count == 3
    assert workload.stages() == []
    tabular = manifest.replace('entrypoint = "train.py"', 'trainer = "mlpipe.tabular"')
    for section in ("infer", "evaluate"):
        tabular = tabular.replace(f'entrypoint = "{section}.py"', 'trainer = "mlpipe.tabular"')
    with pytest.raises(
        WorkloadError, match=r"train\.trainer: mlpipe\.tabular reads the feature stage's manifest"
    ):
        load(make(tmp_path / "tabular", tabular))


@pytest.mark.parametrize(
    "dockerfile",
    ["FROM python:3.12\n", "FROM mlpipe AS base\nFROM base\n", "# nothing\nRUN true\n"],
)
def test_a_dockerfile_builds_one_stage_on_mlpipes_image(tmp_path: Path, dockerfile: str) -> None:
    manifest = MANIFEST.replace(
        '[train]\nentrypoint = "train.py"', '[train]\nentrypoint = "train.py"\ndockerfile = "Dockerfile"'
    )
    folder = make(tmp_path / "w", manifest)
    (folder / "Dockerfile").write_text("FROM mlpipe\nRUN echo ok\n")
    assert load(folder).train.dockerfile == "Dockerfile"
    (folder / "Dockerfile").write_text(dockerfile)
    with pytest.raises(WorkloadError, match=r"train\.dockerfile: build one stage on mlpipe's image"):
        load(folder)


def test_spark_dependencies_are_pure_python_wheels(tmp_path: Path) -> None:
    manifest = MANIFEST + '\n[dependencies]\nspark = ["rules-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"]\n'
    folder = make(tmp_path / "w", manifest, files=("rules-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",))
    with pytest.raises(WorkloadError, match=r"dependencies\.spark\[0\]: .* is not a pure-Python wheel"):
        load(folder)
    pure = manifest.replace("cp312-cp312-manylinux_2_17_x86_64", "py3-none-any")
    folder = make(tmp_path / "pure", pure, files=("rules-1.0-py3-none-any.whl",))
    assert load(folder).dependencies.spark == ("rules-1.0-py3-none-any.whl",)


def test_a_search_makes_its_candidates_the_same_way_every_time(tmp_path: Path) -> None:
    grid = (
        MANIFEST.split("[[candidates]]")[0]
        + """
[search]
kind = "grid"
space = { lr = [0.1, 0.01, 0.001], hidden = [[64], [128, 64]] }
nodes = 2
gpus = 2
"""
    )
    workload = load(make(tmp_path / "grid", grid))
    candidates = workload.all_candidates()
    assert [c.name for c in candidates] == ["grid-0", "grid-1", "grid-2", "grid-3", "grid-4", "grid-5"]
    assert [dict(c.hyperparameters) for c in candidates[:2]] == [
        {"lr": 0.1, "hidden": [64]},
        {"lr": 0.1, "hidden": [128, 64]},
    ]
    assert {(c.nodes, c.gpus) for c in candidates} == {(2, 2)}
    assert workload.execution_candidates()[0] == {
        "name": "grid-0", "hyperparameters": {"lr": 0.1, "hidden": [64]}, "nodes": 2, "gpus": 2,
    }  # fmt: skip

    def drawn(seed: int, count: int) -> list[dict[str, Any]]:
        text = grid.replace('kind = "grid"', f'kind = "random"\ncount = {count}\nseed = {seed}')
        return [
            dict(c.hyperparameters) for c in load(make(tmp_path / f"r{seed}-{count}", text)).all_candidates()
        ]

    assert drawn(7, 4) == drawn(7, 4)  # seeded: a redeploy trains the same candidates
    assert len({json.dumps(h, sort_keys=True) for h in drawn(7, 4)}) == 4  # distinct combinations
    assert sorted(map(json.dumps, drawn(3, 6))) == sorted(
        map(json.dumps, (dict(c.hyperparameters) for c in candidates))
    )
    with pytest.raises(WorkloadError, match=r"search\.count: draws 7 distinct candidates from a space of 6"):
        drawn(1, 7)


BAD: list[tuple[str, Any, str]] = [
    ("unknown key", ("[metric]", "[metric]\nthreshold = 3"), "workload.toml: metric.threshold: unknown key"),
    (
        "a raw prefix with an IAM wildcard",
        ('format = "csv"', 'format = "csv"\nprefix = "team*/"'),
        "workload.toml: raw.prefix: must be a key prefix ending in '/' of letters, digits and _.=+@-",
    ),
    (
        "a gate that is not finite",
        ("gate = 1.5", "gate = nan"),
        "workload.toml: metric.gate: must be a finite number",
    ),
    (
        "mlpipe.tabular with a metric it does not report",
        (
            'entrypoint = "train.py"\n\n[infer]\nentrypoint = "infer.py"\n\n[evaluate]\nentrypoint = "evaluate.py"',
            'trainer = "mlpipe.tabular"\n\n[infer]\ntrainer = "mlpipe.tabular"\n\n[evaluate]\ntrainer = "mlpipe.tabular"',
        ),
        "workload.toml: metric: mlpipe.tabular reports auc (maximize), log_loss (minimize)",
    ),
    (
        "missing entrypoint file",
        ('entrypoint = "infer.py"', 'entrypoint = "predict.py"'),
        "workload.toml: infer.entrypoint: 'predict.py' does not exist",
    ),
    (
        "no entrypoint at all",
        ('[infer]\nentrypoint = "infer.py"', "[infer]"),
        "workload.toml: infer: give exactly one of entrypoint, trainer",
    ),
    (
        "metric without a direction",
        ('direction = "minimize"\n', ""),
        "workload.toml: metric.direction: required key is missing",
    ),
    (
        "stage script that does not exist",
        ('module = "features.py"', 'script = "spark/features_job.py"'),
        "workload.toml: features.script: 'spark/features_job.py' does not exist",
    ),
    (
        "a features script without its inference script",
        ('module = "features.py"', 'script = "features.py"'),
        "workload.toml: features.inference_script: required with features.script",
    ),
    (
        "a features script with the driver's keys",
        (
            'module = "features.py"\nid_column = "customer_id"\nlabel_column = "churned"\nsplit_by = "time"\ntime_column = "day"',
            'script = "features.py"\ninference_script = "clean.py"\nsplit_by = "time"',
        ),
        "workload.toml: features.split_by: applies to features.module only",
    ),
    (
        "an inference script beside the feature module",
        ('time_column = "day"', 'time_column = "day"\ninference_script = "features.py"'),
        "workload.toml: features.inference_script: applies to features.script only",
    ),
    (
        "module and script both",
        ('module = "clean.py"', 'module = "clean.py"\nscript = "train.py"'),
        "workload.toml: clean: give exactly one of module, script",
    ),
    (
        "a path outside the folder",
        ('entrypoint = "train.py"', 'entrypoint = "../train.py"'),
        "workload.toml: train.entrypoint: '../train.py' is outside the workload folder",
    ),
    (
        "a direction that is not one",
        ('"minimize"', '"lower"'),
        "workload.toml: metric.direction: 'lower' is not one of 'maximize', 'minimize'",
    ),
    (
        "a bad name",
        ('name = "churn"', 'name = "Churn_2"'),
        "workload.toml: name: use 2 to 32 lowercase letters",
    ),
    (
        "a candidate name twice",
        ('name = "ddp"', 'name = "small"'),
        "workload.toml: candidates[1].name: 'small' is used twice",
    ),
    ("too many nodes", ("nodes = 2", "nodes = 17"), "workload.toml: candidates[1].nodes: must be 1 to 16"),
    (
        "time split without a column",
        ('time_column = "day"\n', ""),
        "workload.toml: features.time_column: required with split_by = 'time'",
    ),
    ("a wrong type", ("gate = 1.5", 'gate = "high"'), "workload.toml: metric.gate: expected a number"),
    ("not TOML", ("[metric]", "[metric"), "workload.toml: not valid TOML"),
    (
        "a csv key for JSON Lines",
        ('format = "csv"', 'format = "jsonl"\ncsv_delimiter = ";"'),
        "workload.toml: raw.csv_delimiter: csv only: raw.format is 'jsonl'",
    ),
]


@pytest.mark.parametrize(("change", "message"), [(c, m) for _, c, m in BAD], ids=[i for i, _, _ in BAD])
def test_a_bad_manifest_is_one_line_naming_the_key_and_exit_2(
    change: tuple[str, str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before, after = change
    assert before in MANIFEST
    folder = make(tmp_path / "w", MANIFEST.replace(before, after, 1))
    code, out, err = check(folder, capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert message in lines[0], lines[0]


def test_an_unknown_section_lists_the_keys_a_manifest_may_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder is the program's to set (`Workload.root`): the list of known keys leaves it out, and a
    manifest that names it is refused like any other unknown key."""
    code, _, err = check(make(tmp_path / "a", MANIFEST.replace("[metric]", "[metrics]")), capsys)
    assert code == 2 and "metrics: unknown key (known: name, raw, train, infer, evaluate, metric," in err
    assert "root" not in err
    code, _, err = check(make(tmp_path / "b", 'root = "/elsewhere"\n' + MANIFEST), capsys)
    assert code == 2 and "workload.toml: root: unknown key (known: name," in err, err


def test_a_folder_without_a_manifest_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(tmp_path, capsys)
    assert code == 2 and "no workload manifest here" in err


def test_two_workloads_with_one_name_are_refused(tmp_path: Path) -> None:
    first, second = load(make(tmp_path / "a")), load(make(tmp_path / "b"))
    check_unique([first])
    with pytest.raises(
        WorkloadError, match=r"^workloads\[1\]: workload name 'churn' is also the name of workloads\[0\]"
    ):
        check_unique([first, second])


def test_the_workloads_page_documents_every_key_with_its_default() -> None:
    from mlpipe.config_docs import render_workload_keys

    page = (Path(__file__).resolve().parents[2] / "docs" / "workloads.md").read_text()
    assert render_workload_keys() in page, (
        "regenerate the key reference: mlpipe.config_docs.render_workload_keys()"
    )
    assert "|  |" not in render_workload_keys(), "every key has a meaning"


def test_the_pipeline_refuses_what_it_does_not_deploy_yet_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlpipe.workload import check_deployable

    clickstream = Path(__file__).resolve().parents[2] / "examples" / "clickstream"
    check_deployable(load(clickstream))  # the reference workload deploys
    text = (clickstream / "workload.toml").read_text()
    clean_section = text[text.index("[clean]") : text.index("[features]")]
    for before, after, key in [(clean_section, "", "features")]:
        folder = tmp_path / key
        shutil.copytree(clickstream, folder)
        (folder / "workload.toml").write_text(text.replace(before, after))
        workload = load(folder)  # a valid manifest...
        with pytest.raises(WorkloadError, match=rf"^workload.toml: {re.escape(key)}: "):
            check_deployable(workload)  # ...that this version's pipeline does not run
        code, out, err = check(folder, capsys)  # and `mlpipe workload check` says so, as a synth would
        assert code == 2 and out == "" and f"workload.toml: {key}: " in err

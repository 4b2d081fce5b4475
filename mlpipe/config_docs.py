"""Render docs/configuration.md from mlpipe.config: every key, its type, default and documentation.

    python -m mlpipe.config_docs > docs/configuration.md

The field documentation is the string literal under each dataclass field in mlpipe/config.py;
tests/mlpipe/test_config_docs.py fails when the committed page and this rendering differ.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from typing import Any

from mlpipe import config as config_module
from mlpipe import workload as workload_module
from mlpipe.config import (
    NOT_A_KEY,
    BatchConfig,
    EmrConfig,
    GlueConfig,
    MlpipeConfig,
    NetworkConfig,
    PipelineConfig,
)

SECTIONS: list[tuple[str, type[Any]]] = [
    ("", MlpipeConfig),
    ("network", NetworkConfig),
    ("emr", EmrConfig),
    ("batch", BatchConfig),
    ("glue", GlueConfig),
    ("pipeline", PipelineConfig),
]


def _field_docs(cls: type[Any]) -> dict[str, str]:
    """The string literal that follows each annotated field in the class body."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in zip(body, [*body[1:], None], strict=True):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def _default(field: dataclasses.Field[Any]) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value, separators=(', ', ': '))}`"


def key_table(section: str, cls: type[Any], sections: list[tuple[str, type[Any]]]) -> list[str]:
    """The markdown rows of `cls`'s keys (nested sections are tables of their own): key, default, meaning."""
    docs = _field_docs(cls)
    rows = ["| key | default | meaning |", "|---|---|---|"]
    nested = {s for s, _ in sections}
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(field.type) or field.name in nested or field.metadata.get(NOT_A_KEY):
            continue
        key = f"{section}.{field.name}" if section else field.name
        rows.append(f"| `{key}` | {_default(field)} | {docs.get(field.name, '')} |")
    return rows


def render() -> str:
    lines = [
        "# Configuration",
        "",
        "`cdk.json` holds the context: `env` selects the environment (`-c env=prod` overrides it) and",
        "`environments` maps each environment to the keys below that differ from their defaults. A bad value",
        "fails synth with one message naming the key (for example `environments.prod.batch.training_gpus: ...`).",
        "`-c destroy_stateful=true` opts the environment's stateful resources in to deletion.",
        "",
        "This page is generated from `mlpipe/config.py` by `python -m mlpipe.config_docs`; a test keeps it current.",
        "",
    ]
    for section, cls in SECTIONS:
        lines += [
            f"## `{section}`" if section else "## Top level",
            "",
            *key_table(section, cls, SECTIONS),
            "",
        ]
    lines += [
        "Account and region: an explicit `account`/`region` wins; otherwise `CDK_DEFAULT_ACCOUNT` and",
        "`CDK_DEFAULT_REGION`; otherwise the template is account-agnostic in `us-east-1`.",
        f"Glue version {config_module.GLUE_VERSION} and Spark {config_module.SPARK_VERSION} are fixed: the "
        "scripts are tested against that Spark.",
        "",
    ]
    return "\n".join(lines)


WORKLOAD_SECTIONS: list[tuple[str, type[Any]]] = [
    ("", workload_module.Workload),
    ("raw", workload_module.RawInput),
    ("clean", workload_module.CleanStage),
    ("features", workload_module.FeatureStage),
    ("train", workload_module.Training),
    ("infer", workload_module.Inference),
    ("evaluate", workload_module.Evaluation),
    ("metric", workload_module.Metric),
    ("candidates", workload_module.Candidate),
    ("search", workload_module.Search),
    ("dependencies", workload_module.Dependencies),
]


def render_workload_keys() -> str:
    """The key reference of workload.toml, as docs/workloads.md holds it."""
    lines: list[str] = []
    for section, cls in WORKLOAD_SECTIONS:
        lines += [
            f"### `[{section}]`" if section else "### Top level",
            "",
            *key_table(section, cls, WORKLOAD_SECTIONS),
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")

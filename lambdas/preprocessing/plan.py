"""Plan one run: validate the execution input, derive the run id, lay out the run's S3 URIs, build the Glue
arguments and the EMR spark-submit argv, resolve the candidates, and write `runs/<workload>/<run_id>/plan.json`.

Run id: the input's `run_id` if given; otherwise `r-` followed by the first 16 hex digits of the SHA-256 of
the canonical JSON (sorted keys, no whitespace) of the resolved input, i.e. the execution input with the
deployment's defaults filled in (DEFAULT_CANDIDATES, nodes 1, gpus 1). Starting the same input twice on the
same deployment therefore plans the same run id; the second start finds the plan already written and
reuses it (rewriting it only if the deployment's script URIs changed in between). A given `run_id` whose
existing plan came from a different input is refused (`InvalidInput`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlpipe_common import execution_input
from mlpipe_common.config import Buckets, float_env, int_env, json_env, require_env
from mlpipe_common.errors import ConfigurationError, InvalidInput
from mlpipe_common.logs import get_logger
from mlpipe_common.metric import Metric
from mlpipe_common.s3 import (
    S3ObjectNotFound,
    S3Uri,
    object_uri,
    parse_in_buckets,
    prefix_uri,
    put_json_atomic,
    read_json,
)

PLAN_FORMAT = "mlpipe.plan.v1"
MAX_CANDIDATES_LIMIT = 64
log = get_logger(__name__)


@dataclass(frozen=True)
class JobShapes:
    """What the deployment's Batch job definitions run: a candidate must fit one of them."""

    single_node_gpus: int = 1
    multinode_nodes: int = 2
    multinode_gpus_per_node: int = 4

    @classmethod
    def from_env(cls) -> JobShapes:
        return cls(
            single_node_gpus=int_env("TRAINING_GPUS", 1, minimum=1, maximum=16),
            multinode_nodes=int_env("MULTINODE_NODES", 2, minimum=2, maximum=16),
            multinode_gpus_per_node=int_env("MULTINODE_GPUS_PER_NODE", 4, minimum=1, maximum=16),
        )

    def fit(self, given: list[dict[str, Any]], candidates: list[dict[str, Any]], where: str) -> None:
        """Fill in each candidate's GPUs from its job definition; refuse shapes no job definition runs."""
        for index, (raw, candidate) in enumerate(zip(given, candidates, strict=True)):
            nodes = candidate["nodes"]
            if nodes == 1:
                gpus, setting = self.single_node_gpus, "batch.training_gpus"
            elif nodes == self.multinode_nodes:
                gpus, setting = self.multinode_gpus_per_node, "batch.multinode_gpus_per_node"
            else:
                raise InvalidInput(
                    f"{where}[{index}].nodes: {nodes} nodes, but this deployment's multi-node job definition runs "
                    f"{self.multinode_nodes} (batch.multinode_nodes): use 1 or {self.multinode_nodes}"
                )
            if "gpus" in raw and raw["gpus"] != gpus:
                raise InvalidInput(
                    f"{where}[{index}].gpus: {raw['gpus']} GPUs per node, but the job definition for {nodes} node(s) "
                    f"gives {gpus} ({setting}): omit gpus or use {gpus}"
                )
            candidate["gpus"] = gpus


def spark_dependency_uris_env() -> tuple[str, ...]:
    uris = tuple(u for u in os.environ.get("SPARK_DEPENDENCY_URIS", "").split(",") if u)
    for uri in uris:
        try:
            S3Uri.parse(uri)
        except ValueError as exc:
            raise ConfigurationError(f"environment variable SPARK_DEPENDENCY_URIS: {exc}") from None
    return uris


def raw_prefix_env() -> str:
    prefix = require_env("RAW_PREFIX")
    if not prefix.endswith("/") or prefix.startswith("/"):
        raise ConfigurationError(
            f"environment variable RAW_PREFIX={prefix!r} must be a key prefix ending in '/'"
        )
    return prefix


STAGES = ("clean", "features")
"""The Spark stages a workload may have, in pipeline order."""


@dataclass(frozen=True)
class PlanSettings:
    """The deployment's settings for planning (the preprocessing function's environment)."""

    buckets: Buckets
    default_candidates: list[dict[str, Any]]
    max_candidates: int
    stages: frozenset[str] = frozenset(STAGES)
    """The workload's Spark stages: `clean` (Glue) and `features` (EMR), each optional."""
    features_script_uri: str = ""
    inference_features_script_uri: str = ""
    emr_py_files_uri: str = ""
    job_shapes: JobShapes = field(default_factory=JobShapes)
    raw_prefix: str = ""
    """The workload's raw prefix: a run's raw_uri must lie under it."""
    metric: Metric | None = None
    gate: float = 0.0
    """The workload's quality gate: a run may make it stricter, not looser."""
    workload_code_uri: str = ""
    """The workload's code package: on --py-files beside the driver's library."""
    spark_dependency_uris: tuple[str, ...] = ()
    """The workload's pure-Python wheels: on --py-files after its code package."""
    features_arguments: tuple[str, ...] = ()
    """The workload's arguments of the feature driver (module, columns, split), from its manifest."""
    inference_features_arguments: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> PlanSettings:
        stages = json_env("STAGES")
        if not isinstance(stages, list) or not set(stages) <= set(STAGES):
            raise ConfigurationError(
                f"environment variable STAGES must be a JSON list of {', '.join(STAGES)}"
            )
        if "features" in stages and "clean" not in stages:  # the feature stage reads the curated data
            raise ConfigurationError("environment variable STAGES: features without clean")
        emr = ("FEATURES_SCRIPT_URI", "INFERENCE_FEATURES_SCRIPT_URI", "EMR_PY_FILES_URI")
        uris = {
            name: require_env(name) for name in (*(emr if "features" in stages else ()), "WORKLOAD_CODE_URI")
        }
        for name, uri in uris.items():
            try:
                S3Uri.parse(uri)
            except ValueError as exc:
                raise ConfigurationError(f"environment variable {name}: {exc}") from None
        max_candidates = int_env("MAX_CANDIDATES", 8, minimum=1, maximum=MAX_CANDIDATES_LIMIT)
        defaults = json_env("DEFAULT_CANDIDATES")
        if not isinstance(defaults, list) or not defaults:
            raise ConfigurationError("environment variable DEFAULT_CANDIDATES must be a non-empty JSON list")
        arguments = {
            name: json_env(name) if "features" in stages else []
            for name in ("FEATURES_ARGUMENTS", "INFERENCE_FEATURES_ARGUMENTS")
        }
        for name, value in arguments.items():
            if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                raise ConfigurationError(f"environment variable {name} must be a JSON list of strings")
        shapes = JobShapes.from_env()
        try:
            default_candidates = execution_input.normalize_candidates(
                defaults, max_candidates=max_candidates, where="DEFAULT_CANDIDATES"
            )
            shapes.fit(defaults, default_candidates, "DEFAULT_CANDIDATES")
        except InvalidInput as exc:
            raise ConfigurationError(f"environment variable {exc}") from None
        return cls(
            buckets=Buckets.from_env(),
            raw_prefix=raw_prefix_env(),
            metric=Metric.from_env(),
            gate=float_env("METRIC_GATE", minimum=-math.inf, maximum=math.inf),
            stages=frozenset(stages),
            features_script_uri=uris.get("FEATURES_SCRIPT_URI", ""),
            inference_features_script_uri=uris.get("INFERENCE_FEATURES_SCRIPT_URI", ""),
            emr_py_files_uri=uris.get("EMR_PY_FILES_URI", ""),
            workload_code_uri=uris["WORKLOAD_CODE_URI"],
            spark_dependency_uris=spark_dependency_uris_env(),
            features_arguments=tuple(arguments["FEATURES_ARGUMENTS"]),
            inference_features_arguments=tuple(arguments["INFERENCE_FEATURES_ARGUMENTS"]),
            default_candidates=default_candidates,
            max_candidates=max_candidates,
            job_shapes=shapes,
        )


def resolve_input(document: Any, settings: PlanSettings) -> tuple[str | None, dict[str, Any]]:
    """Validate the execution input; return its run id (or None) and the resolved input (defaults filled)."""
    execution_input.validate(document)
    buckets = settings.buckets
    raw = parse_in_buckets(document["raw_uri"], [buckets.raw], field="input.raw_uri")
    if not raw.key.startswith(settings.raw_prefix):
        raise InvalidInput(
            f"input.raw_uri: {raw} is not under the workload's raw prefix s3://{buckets.raw}/{settings.raw_prefix}"
        )
    gate = document.get("quality_gate")
    if gate is not None and settings.metric is not None:
        threshold = float(gate["threshold"])
        if not settings.metric.passes(threshold, settings.gate):  # a looser gate would register worse models
            raise InvalidInput(
                f"input.quality_gate.threshold: {threshold:g} is looser than the workload's gate "
                f"{settings.metric.describe_gate(settings.gate)}; a run may only make it stricter"
            )
    # Inference scores data the clean stage wrote; without one, raw data under the workload's prefix.
    if "clean" in settings.stages:
        home, bucket, what = curated_uri(buckets), buckets.curated, "curated data"
    else:
        home, bucket, what = f"s3://{buckets.raw}/{settings.raw_prefix}", buckets.raw, "raw prefix"
    inference_input = document.get("inference_input_uri", home if "clean" in settings.stages else str(raw))
    parse_in_buckets(inference_input, [bucket], field="input.inference_input_uri")
    if not inference_input.startswith(home):
        raise InvalidInput(
            f"input.inference_input_uri: {inference_input} is not under the workload's {what} {home}"
        )
    if "candidates" in document:
        candidates = execution_input.normalize_candidates(
            document["candidates"], max_candidates=settings.max_candidates, where="input.candidates"
        )
        settings.job_shapes.fit(document["candidates"], candidates, "input.candidates")
    else:
        candidates = settings.default_candidates
    resolved = {
        "raw_uri": str(raw),
        "inference_input_uri": inference_input,
        "candidates": candidates,
        "quality_gate": document.get("quality_gate"),
        "features": document.get("features", {}),
    }
    return document.get("run_id"), resolved


def input_digest(resolved: dict[str, Any]) -> str:
    canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def derive_run_id(resolved: dict[str, Any]) -> str:
    return "r-" + input_digest(resolved)[:16]


def curated_uri(buckets: Buckets) -> str:
    """Where the clean stage writes the workload's curated data."""
    return prefix_uri(buckets.curated, "curated", buckets.workload)


def plan_uri(buckets: Buckets, run_id: str) -> S3Uri:
    return S3Uri.parse(object_uri(buckets.artifacts, "runs", buckets.workload, run_id, "plan.json"))


def build_plan(
    run_id: str, resolved: dict[str, Any], settings: PlanSettings, *, now: datetime
) -> dict[str, Any]:
    """The plan document (pure: no AWS calls)."""
    b = settings.buckets
    w = b.workload  # every object of the run lies under <kind>/<workload>/: per-workload IAM scopes to it
    curated = curated_uri(b)
    uris = {
        "raw": resolved["raw_uri"],
        "inference_input": resolved["inference_input_uri"],
        "run": prefix_uri(b.artifacts, "runs", w, run_id),
        "plan": str(plan_uri(b, run_id)),
        "candidates": prefix_uri(b.artifacts, "runs", w, run_id, "candidates"),
        "checkpoints": prefix_uri(b.artifacts, "checkpoints", w, run_id),
        "model_manifest": object_uri(b.artifacts, "runs", w, run_id, "model", "manifest.json"),
        "evaluation_output": prefix_uri(b.artifacts, "runs", w, run_id, "evaluation"),
        "evaluation": object_uri(b.artifacts, "runs", w, run_id, "evaluation.json"),
        "predictions": prefix_uri(b.artifacts, "runs", w, run_id, "predictions"),
    }
    # The plan names only what the workload's stages write and run: no URI of a stage it leaves out.
    stage_args: dict[str, Any] = {}
    if "clean" in settings.stages:
        uris.update(
            curated=curated,
            quarantine=prefix_uri(b.curated, "quarantine", w, run_id),
            clean_report=object_uri(b.curated, "reports", w, run_id, "clean_report.json"),
        )
        stage_args["glue_arguments"] = {
            "--input": resolved["raw_uri"],
            "--output": curated,
            "--quarantine": uris["quarantine"],
            "--report": uris["clean_report"],
        }
    if "features" in settings.stages:
        uris.update(
            features=prefix_uri(b.curated, "features", w, run_id),
            manifest=object_uri(b.curated, "features", w, run_id, "manifest.json"),
            inference_features=prefix_uri(b.curated, "features", w, run_id, "inference"),
            inference_manifest=object_uri(b.curated, "features", w, run_id, "inference_manifest.json"),
        )
        stage_args.update(
            emr_features_args=_features_args(run_id, resolved, settings, uris),
            emr_inference_args=_inference_features_args(settings, uris),
        )
        uris["training_input"], uris["scoring_input"] = uris["manifest"], uris["inference_manifest"]
    else:  # the workload's code reads (and holds out its own test data from) the data itself
        uris["training_input"] = curated if "clean" in settings.stages else resolved["raw_uri"]
        uris["scoring_input"] = resolved["inference_input_uri"]
    return {
        "format": PLAN_FORMAT,
        "run_id": run_id,
        "created_at": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "input_digest": input_digest(resolved),
        "input": resolved,
        "stages": sorted(settings.stages),
        "raw_uri": resolved["raw_uri"],
        "uris": uris,
        **stage_args,
        "candidates": resolved["candidates"],
        "quality_gate": resolved["quality_gate"],
    }


def _spark_submit(settings: PlanSettings) -> list[str]:
    py_files = ",".join(
        filter(None, (settings.emr_py_files_uri, settings.workload_code_uri, *settings.spark_dependency_uris))
    )
    return ["spark-submit", "--deploy-mode", "cluster", "--py-files", py_files]


def _features_args(
    run_id: str, resolved: dict[str, Any], settings: PlanSettings, uris: dict[str, str]
) -> list[str]:
    args = [
        *_spark_submit(settings),
        settings.features_script_uri,
        *("--input", uris["curated"], "--output", uris["features"], "--manifest", uris["manifest"]),
        *("--run-id", run_id),
        *settings.features_arguments,
    ]
    shard_mb = resolved["features"].get("target_shard_mb")
    return args if shard_mb is None else [*args, "--target-shard-mb", str(shard_mb)]


def _inference_features_args(settings: PlanSettings, uris: dict[str, str]) -> list[str]:
    return [
        *_spark_submit(settings),
        settings.inference_features_script_uri,
        *("--input", uris["inference_input"], "--training-manifest", uris["manifest"]),
        *("--output", uris["inference_features"], "--manifest", uris["inference_manifest"]),
        *settings.inference_features_arguments,
    ]


def plan_payload(plan: dict[str, Any]) -> dict[str, Any]:
    """What the Plan state returns (stored at `$.plan`): S3 pointers and small fields only, and only what
    the workload's stages use. `manifest_uri` is what training and evaluation read, `inference_manifest_uri`
    what inference reads: the feature manifests, or without a feature stage the curated data (or the raw
    input) and the inference input."""
    stages = plan.get("stages", STAGES)
    payload = {"run_id": plan["run_id"], "plan_uri": plan["uris"]["plan"], "raw_uri": plan["raw_uri"]}
    if "clean" in stages:
        payload["glue_arguments"] = plan["glue_arguments"]
    if "features" in stages:
        payload["emr_features_args"] = plan["emr_features_args"]
        payload["emr_inference_args"] = plan["emr_inference_args"]
    payload.update(
        manifest_uri=plan["uris"]["training_input"],
        inference_manifest_uri=plan["uris"]["scoring_input"],
        evaluation_output_uri=plan["uris"]["evaluation_output"],
    )
    return payload


def plan_run(
    s3: Any, document: Any, settings: PlanSettings, *, now: datetime | None = None
) -> dict[str, Any]:
    """Validate, plan and write plan.json (unless the same plan exists); return the Plan state's payload."""
    given_run_id, resolved = resolve_input(document, settings)
    run_id = given_run_id or derive_run_id(resolved)
    plan = build_plan(run_id, resolved, settings, now=now or datetime.now(UTC))
    uri = plan_uri(settings.buckets, run_id)
    try:
        existing = read_json(s3, uri)
    except S3ObjectNotFound:
        existing = None
    except ValueError:
        log.warning("existing plan is not valid JSON; replacing it", extra={"plan_uri": str(uri)})
        existing = None
    if isinstance(existing, dict) and existing.get("input_digest") == plan["input_digest"]:
        plan["created_at"] = existing.get("created_at", plan["created_at"])
        if existing == plan:
            log.info("plan exists for this input; reusing it", extra={"run_id": run_id, "plan_uri": str(uri)})
            return plan_payload(existing)
        # Same input, but the deployment's settings (script URIs) changed since: plan with the current ones.
        log.info("refreshing the plan with the current deployment settings", extra={"run_id": run_id})
    elif existing is not None:
        raise InvalidInput(
            f"input.run_id: run {run_id!r} already has a plan ({uri}) made from a different input; "
            "choose another run_id"
        )
    put_json_atomic(s3, uri, plan)
    log.info(
        "plan written", extra={"run_id": run_id, "plan_uri": str(uri), "candidates": len(plan["candidates"])}
    )
    return plan_payload(plan)

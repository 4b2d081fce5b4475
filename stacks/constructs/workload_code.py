"""A workload's code package as an S3 asset: what Glue (`--extra-py-files`), EMR (`--py-files`) and the Batch
launcher (`mlpipe_batch.run --code`) load the workload's own code from."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from mlpipe import code_package
from mlpipe.workload import Workload
from stacks.constructs.common import S3_READ, allow
from stacks.defaults import CODE_PACKAGES_DIR


def module_name(relative: str) -> str:
    """The import name of a workload module at `relative` in the package: `pipeline/clean.py` is
    `pipeline.clean`."""
    return ".".join(PurePosixPath(relative).with_suffix("").parts)


class WorkloadCode(Construct):
    """The workload folder zipped reproducibly (mlpipe.code_package) and uploaded as an asset; `sha256` is the
    zip's digest, which the Batch launcher checks."""

    def __init__(self, scope: Construct, construct_id: str, *, workload: Workload) -> None:
        super().__init__(scope, construct_id)
        package = code_package.build(workload.root)
        CODE_PACKAGES_DIR.mkdir(parents=True, exist_ok=True)
        path = CODE_PACKAGES_DIR / f"{workload.name}-{package.sha256[:16]}.zip"
        if not path.is_file():  # content-addressed: an existing file holds these bytes
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # parallel synths write their own
            tmp.write_bytes(package.data)
            tmp.replace(path)
        self.sha256 = package.sha256
        self.asset = s3_assets.Asset(self, "Package", path=str(path))

    def grant_read(self, role: iam.IRole) -> None:
        allow(role, S3_READ, [self.asset.bucket.arn_for_objects(self.asset.s3_object_key)])


def feature_driver_arguments(workload: Workload) -> tuple[list[str], list[str]]:
    """The feature driver's arguments that the workload's manifest decides: (training step, inference step)."""
    f = workload.features
    if f is None or f.script:  # a whole script of the workload takes only the run's arguments
        return [], []
    module = ["--workload-module", module_name(f.module)]
    training = [
        *module,
        "--id-column",
        f.id_column,
        "--label-column",
        f.label_column,
        "--split-by",
        f.split_by,
    ]
    if f.split_by == "time":
        training += ["--time-column", f.time_column]
    training += [
        "--validation-fraction",
        f"{f.validation_fraction:g}",
        "--test-fraction",
        f"{f.test_fraction:g}",
    ]
    return training, module

"""A workload's code package as an S3 asset: what Glue (`--extra-py-files`) and EMR (`--py-files`) load the
workload's own code from, and what the Batch launcher (`mlpipe_batch.run --code`) takes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from mlpipe import code_package
from mlpipe.workload import Workload
from stacks.constructs.common import S3_READ, allow


def module_name(relative: str) -> str:
    """The import name of a workload module at `relative` in the package: `pipeline/clean.py` is
    `pipeline.clean`."""
    return ".".join(PurePosixPath(relative).with_suffix("").parts)


@dataclass(frozen=True)
class StagedPackage:
    """A workload's code package written once per synth, for every stack that uploads it."""

    path: Path
    sha256: str


def stage(workload: Workload) -> StagedPackage:
    """Build the workload's code package into a content-addressed file outside the repository."""
    package = code_package.build(workload.root)
    folder = Path(tempfile.gettempdir()) / "mlpipe-code-packages"
    folder.mkdir(exist_ok=True)
    path = folder / f"{workload.name}-{package.sha256}.zip"
    if not path.is_file():  # content-addressed: an existing file holds these bytes
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # parallel synths write their own
        tmp.write_bytes(package.data)
        tmp.replace(path)
    return StagedPackage(path=path, sha256=package.sha256)


def stage_wheel_as_zip(wheel: Path) -> Path:
    """A pure-Python wheel copied to `<name>.zip`, content-addressed outside the repository.

    A wheel is a zip of importable modules; as `.zip` (the asset's S3 key keeps the extension) Glue's
    --extra-py-files and EMR's --py-files put it on the Python path. Nothing is installed, so nothing is
    downloaded, and pip never sees the asset's hash-named key (which is not a valid wheel file name).
    """
    data = wheel.read_bytes()
    folder = Path(tempfile.gettempdir()) / "mlpipe-wheels" / hashlib.sha256(data).hexdigest()[:16]
    path = folder / f"{wheel.stem}.zip"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


class WorkloadCode(Construct):
    """A staged code package uploaded as an asset; `sha256` is the zip's digest, which the Batch launcher
    checks."""

    def __init__(self, scope: Construct, construct_id: str, *, package: StagedPackage) -> None:
        super().__init__(scope, construct_id)
        self.sha256 = package.sha256
        self.asset = s3_assets.Asset(self, "Package", path=str(package.path))
        self.uri = self.asset.s3_object_url

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

"""A workload's own image: its Dockerfile on top of mlpipe's, in one Docker build at deploy time.

The workload's Dockerfile starts `FROM mlpipe`. The build context is the workload's folder, so that its COPY
lines mean what they say, with mlpipe's image files beside it under `.mlpipe/`; the Dockerfile that Docker
runs is mlpipe's own (batch_containers/Dockerfile, reading from `.mlpipe/`, as the stage `mlpipe`) followed
by the workload's. The context is staged outside the repository at synth; nothing is built until `cdk deploy`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from constructs import Construct

from mlpipe import code_package
from mlpipe.workload import Workload
from stacks.defaults import BATCH_CONTAINERS_DIR

BASE_STAGE = "mlpipe"
_MLPIPE_DIR = ".mlpipe"
_MLPIPE_FILES = ("requirements.txt", "src")


def combined_dockerfile(workload: Workload) -> str:
    """mlpipe's Dockerfile as the stage `mlpipe`, reading its files from `.mlpipe/`, then the workload's."""
    ours = (BATCH_CONTAINERS_DIR / "Dockerfile").read_text()
    for before, after in (
        ("COPY requirements.txt .", f"COPY {_MLPIPE_DIR}/requirements.txt ."),
        ("COPY src/ src/", f"COPY {_MLPIPE_DIR}/src/ src/"),
    ):
        if ours.count(before) != 1:  # mlpipe's Dockerfile changed: this must change with it
            raise RuntimeError(
                f"batch_containers/Dockerfile has no single line {before!r} to point at {_MLPIPE_DIR}/"
            )
        ours = ours.replace(before, after)
    start = ours.index("\nFROM ") + 1
    end = ours.index("\n", start)
    ours = f"{ours[:end]} AS {BASE_STAGE}{ours[end:]}"
    theirs = workload.path(workload.train.dockerfile).read_text()
    return f"{ours}\n# ---- the workload's {workload.train.dockerfile} ----\n{theirs}"


def stage_context(workload: Workload) -> Path:
    """The build context, written once per content into a folder named by its digest."""
    files = {name: workload.path(name).read_bytes() for name in code_package.build(workload.root).files}
    for source in _MLPIPE_FILES:
        path = BATCH_CONTAINERS_DIR / source
        for file in sorted(path.rglob("*") if path.is_dir() else [path]):
            if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc":
                files[f"{_MLPIPE_DIR}/{file.relative_to(BATCH_CONTAINERS_DIR).as_posix()}"] = (
                    file.read_bytes()
                )
    files["Dockerfile.mlpipe"] = combined_dockerfile(workload).encode()
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    folder = Path(tempfile.gettempdir()) / "mlpipe-images" / f"{workload.name}-{digest.hexdigest()[:16]}"
    if not folder.is_dir():  # content-addressed: an existing folder holds these files
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for name, data in files.items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        try:
            tmp.rename(folder)
        except OSError:  # another synth staged the same content first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


class WorkloadImage(Construct):
    """The workload's image asset, built and pushed by `cdk deploy` (never by a synth)."""

    def __init__(self, scope: Construct, construct_id: str, *, workload: Workload, base_image: str) -> None:
        super().__init__(scope, construct_id)
        self.asset = ecr_assets.DockerImageAsset(
            self,
            "Image",
            directory=str(stage_context(workload)),
            file="Dockerfile.mlpipe",
            build_args={"BASE_IMAGE": base_image},
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.image = ecs.ContainerImage.from_docker_image_asset(self.asset)

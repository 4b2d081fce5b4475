"""The AWS Deep Learning Container for PyTorch GPU training, resolved with the SageMaker SDK's image_uris.

Plain Python (no CDK import), so app.py can start the lookup before jsii loads: the SDK takes a second or
two to import, and it runs in a child process, in parallel with the synth.
"""

from __future__ import annotations

import os
import subprocess
import sys

from mlpipe.config import ConfigError

_DLC_LOOKUP = """
import sys
from sagemaker.core import image_uris
region, version, py = sys.argv[1:4]
print(image_uris.retrieve("pytorch", region=region, version=version, py_version=py,
                          instance_type="ml.g5.xlarge", image_scope="training"))
"""
_lookups: dict[tuple[str, str, str], subprocess.Popen[str]] = {}


def prefetch_dlc_image(region: str, pytorch_version: str, python_version: str) -> None:
    """Start resolving the Deep Learning Container image in the background."""
    key = (region, pytorch_version, python_version)
    if key not in _lookups:
        _lookups[key] = subprocess.Popen(
            [sys.executable, "-c", _DLC_LOOKUP, *key],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"},
        )  # fmt: skip


def dlc_training_image(region: str, pytorch_version: str, python_version: str) -> str:
    """The AWS Deep Learning Container for PyTorch GPU training, from the SageMaker SDK's image registry.

    image_uris reads the registry JSON shipped inside the SDK: no network, no credentials.
    """
    prefetch_dlc_image(region, pytorch_version, python_version)
    process = _lookups[(region, pytorch_version, python_version)]
    out, err = process.communicate()
    if process.returncode != 0:
        reason = (err.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(
            f"batch.dlc_pytorch_version: the SageMaker SDK has no PyTorch {pytorch_version} ({python_version}) "
            f"GPU training image in {region}: {reason}"
        )
    return out.strip()

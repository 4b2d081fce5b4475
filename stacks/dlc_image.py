"""The AWS Deep Learning Container for PyTorch GPU training, resolved with the SageMaker SDK's image_uris.

Plain Python (no CDK import), so app.py can start the lookup before jsii loads: the SDK takes a second or
two of CPU to import, and it runs in a child process, in parallel with the synth.

The answer is a deterministic function of the installed sagemaker-core (its bundled image registry) and the
lookup's arguments, so it is memoized in a small JSON file under build/ keyed by exactly those. A hit costs
a file read instead of that child process; a miss (new SDK version, region, PyTorch or Python version, or
no cache file) asks the SDK, which stays the source of truth, and records its answer. Failures are never
recorded.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from mlpipe.config import ConfigError
from mlpipe.data.storage import write_bytes

# The SDK's arguments besides the three that configuration chooses: part of the cache key.
_FRAMEWORK = "pytorch"
_INSTANCE_TYPE = "ml.g5.xlarge"
_IMAGE_SCOPE = "training"
_DLC_LOOKUP = """
import sys
from sagemaker.core import image_uris
framework, region, version, py, instance_type, scope = sys.argv[1:7]
print(image_uris.retrieve(framework, region=region, version=version, py_version=py,
                          instance_type=instance_type, image_scope=scope))
"""
# Ignored by git (.gitignore: build/), next to the Lambda layer that `make setup` builds; not in cdk.out,
# which the CLI replaces on every synth.
CACHE_FILE = Path(__file__).resolve().parents[1] / "build" / "dlc-image-cache.json"

_lookups: dict[tuple[str, str, str], subprocess.Popen[str] | str] = {}


def _cache_key(region: str, pytorch_version: str, python_version: str) -> str:
    try:
        sdk = metadata.version("sagemaker-core")
    except metadata.PackageNotFoundError:  # the lookup itself then fails with the SDK's own message
        sdk = "missing"
    return "/".join(
        (
            f"sagemaker-core=={sdk}",
            _FRAMEWORK,
            region,
            pytorch_version,
            python_version,
            _INSTANCE_TYPE,
            _IMAGE_SCOPE,
        )
    )


def _read_cache() -> dict[str, str]:
    try:
        entries = json.loads(CACHE_FILE.read_text())
    except (OSError, ValueError):  # no cache yet, or a damaged one: the SDK answers
        return {}
    return entries if isinstance(entries, dict) else {}


def _remember(key: str, image: str) -> None:
    """Add one answer to the cache file, atomically (parallel synths may write it at the same time)."""
    entries = {**_read_cache(), key: image}
    with contextlib.suppress(OSError):  # e.g. a read-only checkout: only the next synth's speed suffers
        write_bytes(str(CACHE_FILE), json.dumps(entries, indent=1, sort_keys=True).encode())


def prefetch_dlc_image(region: str, pytorch_version: str, python_version: str) -> None:
    """Take the image from the cache, or start resolving it with the SDK in the background."""
    key = (region, pytorch_version, python_version)
    if key in _lookups:
        return
    cached = _read_cache().get(_cache_key(*key))
    if isinstance(cached, str) and cached:
        _lookups[key] = cached
        return
    _lookups[key] = subprocess.Popen(
        [sys.executable, "-c", _DLC_LOOKUP, _FRAMEWORK, region, pytorch_version, python_version,
         _INSTANCE_TYPE, _IMAGE_SCOPE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1"},
    )  # fmt: skip


def dlc_training_image(region: str, pytorch_version: str, python_version: str) -> str:
    """The AWS Deep Learning Container for PyTorch GPU training, from the SageMaker SDK's image registry.

    image_uris reads the registry JSON shipped inside the SDK: no network, no credentials.
    """
    prefetch_dlc_image(region, pytorch_version, python_version)
    key = (region, pytorch_version, python_version)
    lookup = _lookups[key]
    if isinstance(lookup, str):
        return lookup
    out, err = lookup.communicate()
    if lookup.returncode != 0:
        del _lookups[key]  # not remembered: the next call asks the SDK again
        reason = (err.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(
            f"batch.dlc_pytorch_version: the SageMaker SDK has no PyTorch {pytorch_version} ({python_version}) "
            f"GPU training image in {region}: {reason}"
        )
    image = _lookups[key] = out.strip()
    if image:
        _remember(_cache_key(*key), image)
    return image

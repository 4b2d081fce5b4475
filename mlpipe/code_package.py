"""A workload's code package: its folder as a zip, byte-for-byte the same for the same files.

Batch jobs run the workload's code from this package (mlpipe_batch.run fetches it from S3 and checks its
SHA-256), so a code change needs no image build; local mode runs the same package from its embedded S3. The
archive is reproducible (sorted names, a fixed timestamp, normalized permissions, no compression), so its
digest changes only when a file does. Hidden files and folders, `__pycache__` and `*.pyc` are left out.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry
MAX_BYTES = 256 * 1024 * 1024
"""Data belongs in the raw bucket, not in the code package: a larger package is refused."""


class CodePackageError(ValueError):
    """The folder cannot be packaged (too large, or a link that leaves it); the message says why."""


@dataclass(frozen=True)
class CodePackage:
    data: bytes
    sha256: str
    files: tuple[str, ...]


def _included(relative: Path) -> bool:
    return not any(part.startswith(".") or part == "__pycache__" for part in relative.parts) and (
        relative.suffix != ".pyc"
    )


def build(folder: str | Path) -> CodePackage:
    root = Path(folder).resolve()
    files: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if _included(Path(dirpath, d).relative_to(root)))
        for name in filenames:
            path = Path(dirpath, name)
            relative = path.relative_to(root)
            if not _included(relative):
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise CodePackageError(f"{relative} links outside the workload folder {root}")
            files.append((relative.as_posix(), path))
    files.sort()
    buffer = io.BytesIO()
    total = 0
    # Stored, not deflated: deflate's bytes depend on the zlib build, and the digest must not.
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, path in files:
            content = path.read_bytes()
            total += len(content)
            if total > MAX_BYTES:
                raise CodePackageError(
                    f"the workload folder {root} holds over {MAX_BYTES // 2**20} MiB: keep data out of it"
                )
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            archive.writestr(info, content)
    data = buffer.getvalue()
    return CodePackage(data=data, sha256=hashlib.sha256(data).hexdigest(), files=tuple(n for n, _ in files))

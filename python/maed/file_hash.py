"""SHA-256 of files: the identity of what was denoised and of the model file that ran, in every ``<stem>.json``."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from .scanfiles.saved import SAVED_FILES


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file's bytes, read in blocks (a scan or a model file may be large); of a folder (a scan the bridge
    saved), of its saved files' names and bytes (``scanfiles.saved.SAVED_FILES``: what is read of it, not what else
    lies there, such as the bridge's denoised frame or a user's outputs)."""
    digest = hashlib.sha256()
    path = Path(path)
    folder = path.is_dir()
    for file in [path / name for name in SAVED_FILES] if folder else [path]:
        if folder:
            digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _cached(path: str, modified_ns: int, size: int) -> str:
    return file_sha256(path)


def model_file_sha256(path: Path | str) -> str:
    """``file_sha256`` of a model file, computed once per process while the file is unchanged: a folder of scans
    names the same model file in each record."""
    resolved = Path(path).resolve()
    status = resolved.stat()
    return _cached(str(resolved), status.st_mtime_ns, status.st_size)

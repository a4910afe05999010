"""Files written whole or not at all: into a temporary name beside the destination, then renamed.

A rename within one folder is atomic (POSIX ``rename``, Windows ``MoveFileEx`` through ``os.replace``),
so a process killed mid-write leaves at most a hidden ``.NAME.PID.tmp`` file, never a half-written file
under the final name, and a reader sees the old file or the new one. (A power cut may still lose the
last writes: nothing is synced to disk, which would cost each file a disk flush.)
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """A temporary path to write ``dest``'s content to; renamed to ``dest`` when the block ends without error."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    """``dest.write_bytes(data)``, atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)

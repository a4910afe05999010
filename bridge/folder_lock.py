"""One bridge per scan folder: ``maed serve --out DIR`` holds a lock on ``DIR`` for as long as it runs.

Two bridges saving to one folder (two instruments started from one working folder share the default
``maed-scans``) would each recover the other's open journal at start-up, save a truncated copy of the other's
scan under its usual name and delete the journal the other still writes: raw data lost with no warning. The
lock is the operating system's (``filelock``: ``flock`` on POSIX, ``LockFileEx`` on Windows), so a bridge
killed with ``kill -9`` or a power cut leaves none behind (its lock file stays, and the next bridge takes it). The
holder's process id is written beside it, for the refusal to name. A bridge that stops removes both while it still
holds the lock, so a folder of scans holds scans only (a bridge starting in the same instant could then lock the
removed file while a third locks a new one: three bridges at once on one folder, which this does not guard).
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = ".maed-bridge.lock"
PID_NAME = ".maed-bridge.pid"


class FolderInUse(ValueError):
    """Another running bridge saves its scans to the folder."""


class FolderLock:
    """The lock of one scan folder; ``acquire`` refuses at once (``FolderInUse``) where another bridge holds it."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self._lock = FileLock(self.out / LOCK_NAME)

    def acquire(self) -> None:
        """Hold the folder (which must exist) or raise ``FolderInUse`` naming the bridge that holds it."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise FolderInUse(
                f"{self.out} is in use by another bridge{self._holder()}: give each bridge its own --out "
                "(two bridges on one folder would recover and save each other's scans)"
            ) from None
        (self.out / PID_NAME).write_text(f"{os.getpid()}\n")

    def _holder(self) -> str:
        try:
            pid = (self.out / PID_NAME).read_text().strip()
        except OSError:
            return ""
        return f" (process {pid})" if pid.isdigit() else ""

    def release(self) -> None:
        """Let the folder go, its lock and process files removed; nothing where it is not held."""
        if not self._lock.is_locked:
            return
        files = [self.out / PID_NAME, self.out / LOCK_NAME]
        try:
            for path in files:
                path.unlink(missing_ok=True)
        except OSError:  # Windows removes no file a process holds open: after the release, then
            self._lock.release()
            for path in files:
                path.unlink(missing_ok=True)
            return
        self._lock.release()

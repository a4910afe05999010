"""The raw-data journal: every accepted ingest message of a scan, appended to a file as it arrives.

One file per scan in ``<out>/.journal/``, named ``NNNNNN-<scan folder name>.journal`` (``NNNNNN``
counts up, so the names sort in the order the scans started). The file holds the scan's accepted
messages as the controller sent them (``scan.start`` first, then lines, then ``scan.end``), each
as one record::

    u32 length (little-endian) | u32 CRC-32 of the body | body: msgpack array of the message's frames

so a restarted bridge replays the journal through the same decoder and state machine as the
wire. A record torn by a crash (short, or failing its CRC) ends the journal: it is cut off when
the journal is read back (it was never acknowledged, so the sender resends it).

Each record is written with one ``os.write`` (ingest thread) before the message is handed on, so it
survives the bridge process being killed (it is in the kernel's page cache); ``sync`` (the journal
thread, every ``SYNC_S``; fsync must not hold up ingest) makes it survive power loss too
(``docs/reliability.md``). A journal is removed once its scan is saved.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import tempfile
import threading
import zlib
from pathlib import Path

import msgpack

from .store import folder_name, sync_dir

log = logging.getLogger("maed.bridge")

SYNC_S = 0.02
"""The journal thread fsyncs the open journal every this many seconds while records are written
(at 20k lines/s one fsync per ~400 lines; a record waits at most this long to become durable)."""

FOLDER = ".journal"
SUFFIX = ".journal"
_HEAD = struct.Struct("<II")
_NAME = re.compile(r"^(\d{6,})-.*\.journal$")
MAX_RECORD = 64 << 20
"""A length above this is corruption, not a message (ZeroMQ refuses messages over 1 MiB)."""


_datasync = getattr(os, "fdatasync", os.fsync)
"""The records' data made durable; Windows has no ``fdatasync``, and ``fsync`` (``FlushFileBuffers``) does as much."""


class JournalFile:
    """One scan's journal, open for appending; used by the ingest thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # O_BINARY: on Windows a file opened without it turns every newline byte written into two.
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), 0o644)
        self._lock = threading.Lock()  # sync (journal thread) against close (ingest thread): one fd lifetime
        self.written = 0
        """Records written by this process."""
        self.synced = 0
        """Records of ``written`` known durable."""
        self._new = True  # the folder entry of a new file needs an fsync of the folder too
        self.failed = False
        """A write or sync failed: nothing more is written (a hole would break what acks promise)."""

    def append(self, frames: list[bytes]) -> None:
        """Append one message (its ZeroMQ frames, exactly as received)."""
        if self.failed:
            raise OSError("the journal failed earlier")
        body = msgpack.packb([bytes(f) for f in frames], use_bin_type=True)
        os.write(self._fd, _HEAD.pack(len(body), zlib.crc32(body)) + body)
        self.written += 1

    def sync(self) -> None:
        """Make every record written before the call durable (power loss included)."""
        with self._lock:
            if self._fd is None or self.failed:
                return
            written = self.written
            _datasync(self._fd)
            if self._new:
                sync_dir(self.path.parent)
                self._new = False
            self.synced = written

    def close(self) -> None:
        """Sync and close; the file stays until ``remove`` (after the scan is saved)."""
        self.sync()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def fail(self) -> None:
        """Stop writing after an error; the file keeps the records written before it (closed by ``close``)."""
        self.failed = True

    def remove(self) -> None:
        """Delete the journal: its scan is saved (call only after the saved folder is durable)."""
        try:
            self.close()
        except OSError:
            pass  # the scan is saved: whether its journal was durable no longer matters
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:  # the scan is saved; a journal left behind is only replayed into a second copy
            log.error("journal %s of a saved scan could not be removed: %s", self.path, exc)


class Journal:
    """The journal folder of a bridge: creates each scan's file, finds the ones a crash left."""

    def __init__(self, out: Path) -> None:
        self.folder = Path(out) / FOLDER
        self._next = 1 + max((n for n, _ in self._numbered()), default=0)

    def _numbered(self) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        found = [(_NAME.match(p.name), p) for p in self.folder.iterdir()]
        return sorted((int(m.group(1)), p) for m, p in found if m is not None)

    def check_writable(self) -> None:
        """A clear error now, naming the folder, where scans could be neither journaled nor saved (a typo in ``--out``,
        a file, a read-only disk): found later, every line of every scan would be lost."""
        out = self.folder.parent
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for folder in (out, self.folder):
                with tempfile.NamedTemporaryFile(dir=folder, prefix=".maed-probe-"):
                    pass
        except OSError as exc:
            raise ValueError(f"cannot save scans to {out}: {exc.strerror or exc}") from None

    def create(self, scan_id: str) -> JournalFile:
        """A new, empty journal for scan ``scan_id``."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self._next:06d}-{folder_name(scan_id)}{SUFFIX}"
        self._next += 1
        return JournalFile(path)

    def leftovers(self) -> list[Path]:
        """Journals on disk, oldest scan first: scans a previous run did not save."""
        return [p for _, p in self._numbered()]

    def tidy(self) -> None:
        """Remove the journal folder when it is empty (a bridge that stopped cleanly leaves none)."""
        try:
            self.folder.rmdir()
        except OSError:
            pass  # absent, or journals left to recover: both are fine


def read_journal(path: Path) -> list[list[bytes]]:
    """The messages of a journal, in order; a torn or corrupt tail is cut off the file."""
    data = path.read_bytes()
    records, pos = [], 0
    while pos + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, pos)
        body = data[pos + _HEAD.size : pos + _HEAD.size + length]
        if length > MAX_RECORD or len(body) != length or zlib.crc32(body) != crc:
            break
        try:
            frames = msgpack.unpackb(body, raw=False)
        except Exception:  # msgpack raises several unrelated types on corrupt input
            break
        if not isinstance(frames, list) or not all(isinstance(f, bytes) for f in frames):
            break
        records.append(frames)
        pos += _HEAD.size + length
    if pos < len(data):
        # Cut the torn record so that records appended after a resume follow a whole one.
        with open(path, "r+b") as f:
            f.truncate(pos)
            os.fsync(f.fileno())
    return records

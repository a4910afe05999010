"""The bridge's ingest state machine: controller messages in arrival order, scans opened and closed.

``Ingest.handle`` runs on the ingest thread and never waits for the denoiser: it decodes a
message, applies it to the current scan under a short lock and wakes the worker. The worker calls
``take`` for everything that arrived since its last visit (lines of many arrivals at once, which is
how updates coalesce). Pending lines are bounded: a scan accepts each row at most once per pass.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from .counters import FaultCounter
from .protocol import Line, ProtocolError, ScanEnd, ScanStart, decode_ingest
from .scan import ScanState


@dataclass
class Batch:
    """Work for the worker: the lines of one scan it has not seen yet, and whether the scan ended."""

    state: ScanState
    lines: list[tuple[Line, float]]
    ended: bool


class Ingest:
    def __init__(self, faults: FaultCounter, idle_timeout: float = 300.0) -> None:
        self.faults = faults
        self.idle_timeout = idle_timeout
        self.cv = threading.Condition()
        self.current: ScanState | None = None
        self._finished: deque[ScanState] = deque()
        self._serial = 0
        self.lines_received = 0
        self.lines_dropped = 0
        self.malformed = 0

    # --- ingest thread ----------------------------------------------------------------------

    def handle(self, frames: list[bytes], arrival: float) -> None:
        """Apply one multipart message; malformed ones are counted and dropped, never raised."""
        try:
            message = decode_ingest(frames)
            with self.cv:
                self._apply(message, arrival)
                self.cv.notify_all()
        except ProtocolError as exc:
            with self.cv:
                self.malformed += 1
            self.faults.count(exc.kind, str(exc))

    def _apply(self, message: ScanStart | Line | ScanEnd, arrival: float) -> None:
        current = self.current
        if isinstance(message, ScanStart):
            if current is not None and current.start.scan == message.scan:
                self.lines_dropped += current.note_seq(message.seq, arrival)
                raise ProtocolError("duplicate_start", f"scan.start repeats the current scan {message.scan!r}")
            if current is not None:
                self.faults.count("scan_superseded", f"scan {message.scan!r} started before {current.start.scan!r} ended")
                self._end(False, "superseded")
            self._serial += 1
            self.current = ScanState(message, self._serial, arrival)
            return
        if current is None or current.start.scan != message.scan:
            topic = "line" if isinstance(message, Line) else "scan.end"
            raise ProtocolError("unknown_scan", f"{topic} for scan {message.scan!r}, which is not open")
        self.lines_dropped += current.note_seq(message.seq, arrival)
        if isinstance(message, ScanEnd):
            self._end(message.complete, "end")
            return
        current.accept(message, arrival)
        self.lines_received += 1

    def _end(self, complete: bool, reason: str) -> None:
        state = self.current
        state.ended = (complete, reason)
        self._finished.append(state)
        self.current = None

    def expire(self, now: float) -> None:
        """End the current scan if its controller has been silent longer than the idle timeout."""
        with self.cv:
            state = self.current
            if state is None or self.idle_timeout <= 0 or now - state.last_arrival < self.idle_timeout:
                return
            self._end(False, "timeout")
            self.cv.notify_all()
        self.faults.count("controller_silent", f"no message for scan {state.start.scan!r} in {self.idle_timeout:g} s")

    def close(self) -> None:
        """End the current scan because the bridge shuts down, so that it is saved."""
        with self.cv:
            if self.current is not None:
                self._end(False, "shutdown")
                self.cv.notify_all()

    # --- worker thread ----------------------------------------------------------------------

    def has_work(self) -> bool:
        return bool(self._finished) or (self.current is not None and bool(self.current.pending))

    def take(self) -> list[Batch]:
        """Everything that arrived since the last call: finished scans first, then the current one."""
        with self.cv:
            batches = []
            while self._finished:
                state = self._finished.popleft()
                batches.append(Batch(state, state.pending, True))
                state.pending = []
            if self.current is not None and self.current.pending:
                batches.append(Batch(self.current, self.current.pending, False))
                self.current.pending = []
            return batches

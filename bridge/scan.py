"""One scan: lines checked against it as they arrive, and the raw frames they build.

``ScanState`` lives on the ingest thread: it checks each line against the scan (size, row range,
scan order), tells a resent copy of a line it already has (a duplicate), counts it and keeps it for
the worker. ``ScanImage`` lives on the worker thread: it pastes the lines the worker took into the
raw trace and retrace frames. Rows are frame rows (0 at the top) whatever the slow axis; "progress"
counts rows in acquisition order.
"""

from __future__ import annotations

import numpy as np

from .protocol import PASSES, Line, ProtocolError, ScanStart


def progress(start: ScanStart, row: int) -> int:
    """Rows scanned once ``row`` is: the acquisition index of ``row``, plus one."""
    return row + 1 if start.slow_axis == "down" else start.rows - row


class ScanState:
    """A scan as the ingest thread follows it; ``pending`` holds lines the worker has not taken."""

    def __init__(self, start: ScanStart, serial: int, arrival: float) -> None:
        self.start = start
        self.serial = serial
        self.last_arrival = arrival
        self.last_seq = start.seq
        self.progress = {p: 0 for p in PASSES}
        self.pending: list[tuple[Line, float]] = []
        self.pending_bytes = 0
        """Payload bytes of the lines in ``pending``."""
        self.spilled = False
        """Whether ``pending`` was let go once the scan ended, its lines left to its journal (the backlog budget)."""
        self.lines_received = 0
        self.lines_dropped = 0
        self.ended: tuple[bool, str] | None = None
        """(complete, reason) once the scan is over."""
        self.end_why: str | None = None
        """What the controller said ended the scan (``scan.end``'s ``why``); None where it said nothing."""
        self.journal = None
        """The scan's ``JournalFile`` (None without a journal, or when it could not be written)."""
        self.journaled_seq = start.seq
        """``seq`` of the newest message of this scan in its journal."""
        self.recovered = False
        """Whether a restarted bridge rebuilt this scan from its journal."""
        self.replayed = 0
        """Lines rebuilt from the journal: the first this many the worker takes. Alerts found on them were published
        before the bridge died (most of them), so they go out marked ``recovered`` and no rule acts on them again."""
        self._seqs: dict[tuple[str, int], int] = {}
        """``seq`` of the line each (pass, row) was filled by: a resend carries the same."""

    def note_seq(self, seq: int, arrival: float) -> int:
        """Count and return the messages missing between the previous one of this scan and ``seq``.

        A gap is at most the lines a scan can hold (trace and retrace of every row): a larger jump
        of ``seq`` (a controller's bug, or hostile) is no evidence of more lost lines, and an
        uncapped count could outgrow the wire format's 64-bit integers.
        """
        missing = min(max(0, seq - self.last_seq - 1), 2 * self.start.rows)
        self.lines_dropped += missing
        self.last_seq = seq
        self.last_arrival = arrival
        return missing

    def admit(self, line: Line) -> bool:
        """Whether ``line`` is new to the scan: False for a resend of a line it has (same row, pass and
        ``seq``); raises ``ProtocolError`` if it does not fit the scan."""
        start = self.start
        if line.data.size != start.cols:
            raise ProtocolError("shape", f"line of {line.data.size} pixels in a scan of {start.cols} columns")
        if line.row >= start.rows:
            raise ProtocolError("row_range", f"row {line.row} in a scan of {start.rows} rows")
        if self._seqs.get((line.pass_, line.row)) == line.seq:
            return False
        if progress(start, line.row) <= self.progress[line.pass_]:
            raise ProtocolError(
                "row_order", f"{line.pass_} row {line.row} after {self.progress[line.pass_]} rows of a {start.slow_axis} scan"
            )
        return True

    def keep(self, line: Line, arrival: float) -> None:
        """Keep an admitted ``line`` for the worker."""
        self.progress[line.pass_] = progress(self.start, line.row)
        self._seqs[(line.pass_, line.row)] = line.seq
        self.pending.append((line, arrival))
        self.pending_bytes += line.data.nbytes
        self.lines_received += 1

    def take(self) -> list[tuple[Line, float]]:
        """The pending lines, handed over: ``pending`` starts again empty."""
        lines, self.pending, self.pending_bytes = self.pending, [], 0
        return lines

    def spill(self) -> None:
        """Let go of the pending lines of an ended scan: its journal holds them, read back by the worker."""
        self.take()
        self.spilled = True
        self._seqs.clear()  # only an open scan tells its duplicates by row; a finished one by its last seq


class ScanImage:
    """The raw frames of one scan, unscanned rows NaN, built on the worker thread."""

    def __init__(self, start: ScanStart) -> None:
        self.start = start
        shape = (start.rows, start.cols)
        self.frames = {p: np.full(shape, np.nan, dtype=np.float32) for p in PASSES}
        self.rows_done = {p: 0 for p in PASSES}
        self.newest: dict[str, float | None] = {p: None for p in PASSES}
        """Arrival time (``time.perf_counter``) of the newest line of each pass."""
        self.last_t: float | None = None
        """The controller's time (``line.t``, Unix seconds) of the latest line of either pass: when the scan ended
        by the instrument's clock, also for a scan rebuilt from its journal."""

    def put(self, lines: list[tuple[Line, float]]) -> set[str]:
        """Paste lines into their frames; returns the passes that changed."""
        changed = set()
        for line, arrival in lines:
            # The payload is little-endian float32 like the frame, so this copies its exact bits.
            self.frames[line.pass_][line.row] = line.data
            self.rows_done[line.pass_] = max(self.rows_done[line.pass_], progress(self.start, line.row))
            self.newest[line.pass_] = arrival
            self.last_t = line.t if self.last_t is None else max(self.last_t, line.t)
            changed.add(line.pass_)
        return changed

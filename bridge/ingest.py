"""The bridge's ingest state machine: controller messages in arrival order, scans opened and closed.

``Ingest.handle`` runs on the ingest thread and never waits for the denoiser: it decodes a
message, applies it to the current scan under a short lock and wakes the worker. The worker calls
``take`` for everything that arrived since its last visit (lines of many arrivals at once, which is
how updates coalesce). Pending lines are bounded: a scan accepts each row at most once per pass, a
``scan.start`` over the pixel budget is refused, and finished scans waiting for the worker hold at most
``MAX_BACKLOG_BYTES`` of lines in memory (the lines of those beyond are read back from their journals).

With a ``Journal``, every accepted message is appended to its scan's journal before anything else
happens to it; ``flush`` (the journal thread) syncs it and returns the ``(scan, seq)`` pairs now
durable, for the server to publish as ``scan.journaled``. A message the
bridge already has (a sender's resend after a restart: a line with the row, pass and ``seq`` of
one the scan has, the same ``scan.start``, a line or ``scan.end`` of a recently finished scan up to
its last journaled ``seq``) is a duplicate: counted, acknowledged again, otherwise ignored. ``replay`` rebuilds a scan from its
journal at start-up (``maed.bridge.recovery``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from .counters import FaultCounter, Losses
from .journal import Journal, JournalFile
from .protocol import Line, ProtocolError, ScanEnd, ScanStart, decode_ingest
from .scan import ScanState

log = logging.getLogger("maed.bridge")

ACK_REPEAT_S = 0.5
"""The newest acknowledgement is published again this often: a sender that (re)connected late learns it."""
DONE_REMEMBERED = 64
"""Finished scans whose resent messages are recognised as duplicates (older ones: ``unknown_scan``)."""
MAX_BACKLOG_BYTES = 32 << 20
"""Budget of line payloads held in memory by finished scans the worker has not taken yet: beyond it an
ending scan's lines are let go, to be read back from its journal (never dropped)."""
MAX_PIXELS = 2048 * 2048
"""Default budget of pixels per scan (``maed serve --max-pixels``): checked on ``scan.start``, before
anything is allocated; a scan of this size holds 32 MiB of raw frames (trace and retrace)."""


@dataclass
class Batch:
    """Work for the worker: the lines of one scan it has not seen yet, and whether the scan ended."""

    state: ScanState
    lines: list[tuple[Line, float]]
    ended: bool


class Ingest:
    def __init__(
        self,
        faults: FaultCounter,
        idle_timeout: float = 300.0,
        journal: Journal | None = None,
        max_pixels: int = MAX_PIXELS,
        losses: Losses | None = None,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
    ) -> None:
        """``journal``: where accepted messages are journaled (None: not at all, nor acknowledged);
        ``max_pixels``: the largest scan (rows times cols) a ``scan.start`` may open; ``losses``: where
        rejected scans and journal failures are counted (the bridge's, shared with its worker);
        ``max_backlog_bytes``: line payloads finished scans may hold in memory while they wait for the worker."""
        self.faults = faults
        self.idle_timeout = idle_timeout
        self.journal = journal
        self.max_pixels = max_pixels
        self.losses = losses or Losses()
        self.max_backlog_bytes = max_backlog_bytes
        self.backlog_bytes = 0
        """Line payloads held by the finished scans in ``_finished``."""
        self.spilled = 0
        """Finished scans whose lines were let go to their journal (the backlog was over its budget)."""
        self.cv = threading.Condition()
        self.current: ScanState | None = None
        self._finished: deque[ScanState] = deque()
        self._serial = 0
        self.lines_received = 0
        self.lines_dropped = 0
        self.malformed = 0
        self.duplicates = 0
        self.recoveries = 0
        self.lines_recovered = 0
        self._done: OrderedDict[str, int] = OrderedDict()
        """Finished scans, newest last: the ``seq`` of the last message journaled."""
        self._acks: list[tuple[str, int]] = []
        self._last_ack: tuple[str, int] | None = None
        self._last_ack_time = 0.0

    # --- ingest thread ----------------------------------------------------------------------

    def handle(self, frames: list[bytes], arrival: float) -> None:
        """Apply one multipart message; malformed ones are counted and dropped, never raised."""
        try:
            message = decode_ingest(frames)
        except ProtocolError as exc:
            self._note_refused(exc, arrival)
            self.refuse(frames[:1], exc)
            return
        try:
            with self.cv:
                self._apply(message, frames, arrival)
                self.cv.notify_all()
        except ProtocolError as exc:
            self.refuse(frames[:1], exc)

    def _note_refused(self, exc: ProtocolError, arrival: float) -> None:
        """A refused message of the open scan whose ``seq`` was readable arrived: its ``seq`` is no gap (it counts
        as a fault, not in ``lines_dropped``), as for a message refused after decoding."""
        with self.cv:
            current = self.current
            if exc.position is not None and current is not None and current.start.scan == exc.position[0]:
                self.lines_dropped += current.note_seq(exc.position[1], arrival)

    def refuse(self, topic: list[bytes], exc: ProtocolError) -> None:
        """Count a message dropped as a fault; ``topic`` is its first frame (a list, empty for none)."""
        with self.cv:
            self.malformed += 1
        if topic and bytes(topic[0]) == b"scan.start":  # a whole scan refused: a loss of its own kind
            self.losses.scans_rejected.add(f"{exc.kind}: {exc}")
        self.faults.count(exc.kind, str(exc))

    def _apply(self, message: ScanStart | Line | ScanEnd, frames: list[bytes], arrival: float) -> None:
        current = self.current
        if isinstance(message, ScanStart):
            if message.rows * message.cols > self.max_pixels:
                raise ProtocolError(
                    "budget",
                    f"scan {message.scan!r} of {message.rows}x{message.cols} pixels is over "
                    f"the budget of {self.max_pixels:,} pixels per scan",
                )
            if current is not None and current.start.scan == message.scan:
                if message == current.start:  # resent: the same bytes decode to an equal record
                    self._duplicate(current, arrival)
                    return
                self.lines_dropped += current.note_seq(message.seq, arrival)
                raise ProtocolError("duplicate_start", f"scan.start repeats the current scan {message.scan!r}")
            # Never a duplicate of a finished scan: a controller that reuses a scan id and restarts its seq
            # sends the same scan.start, and its new scan must not be lost (a whole resent scan is saved twice).
            if current is not None:
                self.faults.count("scan_superseded", f"scan {message.scan!r} started before {current.start.scan!r} ended")
                self._end(False, "superseded")
            self._open(message, frames, arrival)
            return
        if current is None or current.start.scan != message.scan:
            if self._resent_after_end(message):
                return
            topic = "line" if isinstance(message, Line) else "scan.end"
            raise ProtocolError("unknown_scan", f"{topic} for scan {message.scan!r}, which is not open")
        if isinstance(message, Line):
            try:
                new = current.admit(message)
            except ProtocolError:
                self.lines_dropped += current.note_seq(message.seq, arrival)
                raise
            if not new:
                self._duplicate(current, arrival)
                return
        # Raw data first: on disk (the page cache) before the worker or a counter sees it.
        self._journal(current, frames, message.seq)
        self.lines_dropped += current.note_seq(message.seq, arrival)
        if isinstance(message, ScanEnd):
            self._end(message.complete, "end", message.why)
            return
        current.keep(message, arrival)
        self.lines_received += 1

    def _open(self, start: ScanStart, frames: list[bytes], arrival: float) -> None:
        self._serial += 1
        state = self.current = ScanState(start, self._serial, arrival)
        if self.journal is not None:
            try:
                state.journal = self.journal.create(start.scan)
            except OSError as exc:
                self._journal_failed(state, exc)
        self._journal(state, frames, start.seq)

    def _journal(self, state: ScanState, frames: list[bytes], seq: int) -> None:
        journal = state.journal
        if journal is None or journal.failed:
            return
        try:
            journal.append(frames)
            state.journaled_seq = seq
        except OSError as exc:
            self._journal_failed(state, exc)

    def _journal_failed(self, state: ScanState, exc: OSError) -> None:
        # The scan goes on in memory and is saved at its end; it is no longer acknowledged, so a
        # sender that resends keeps its lines.
        if state.journal is not None:
            state.journal.fail()
        self.losses.failed_io(self.losses.journal_failures, f"scan {state.start.scan!r}: {exc}", exc)
        log.error("journal of scan %r failed, its lines are kept in memory only: %s", state.start.scan, exc)

    def _duplicate(self, state: ScanState, arrival: float) -> None:
        self.duplicates += 1
        state.last_arrival = arrival  # a sender resending is not a silent one

    def _resent_after_end(self, message: Line | ScanEnd) -> bool:
        """Whether ``message`` is a resent message of a finished scan (counted and acknowledged again)."""
        last = self._done.get(message.scan)
        if last is None or message.seq > last:
            return False
        self.duplicates += 1
        self._acks.append((message.scan, last))
        return True

    def _end(self, complete: bool, reason: str, why: str | None = None) -> None:
        """End the current scan; ``why``: what its controller said ended it (``scan.end``), None where it said nothing."""
        state = self.current
        state.ended = (complete, reason)
        state.end_why = why
        journal = state.journal
        if journal is not None and not journal.failed:
            try:
                journal.close()
                self._acks.append((state.start.scan, state.journaled_seq))
            except OSError as exc:
                self._journal_failed(state, exc)
        self._hold(state)
        self._done[state.start.scan] = state.journaled_seq
        self._done.move_to_end(state.start.scan)
        while len(self._done) > DONE_REMEMBERED:
            self._done.popitem(last=False)
        self._finished.append(state)
        self.current = None

    def _hold(self, state: ScanState) -> None:
        """Keep an ended scan's pending lines within the backlog budget: over it they are let go, for the
        worker to read back from the journal. A scan without a whole journal keeps them: raw lines are
        never dropped."""
        journaled = state.journal is not None and not state.journal.failed
        if journaled and self.backlog_bytes + state.pending_bytes > self.max_backlog_bytes:
            state.spill()
            self.spilled += 1
        self.backlog_bytes += state.pending_bytes

    def flush(self, now: float) -> list[tuple[str, int]]:
        """Sync the open scan's journal (journal thread; the fsync runs outside the lock, so ingest goes
        on meanwhile); return the ``(scan, seq)`` pairs to acknowledge: those made durable since the last
        call, else every ``ACK_REPEAT_S`` the newest again."""
        with self.cv:
            state = self.current
            journal = state.journal if state is not None else None
            if journal is not None and (journal.failed or journal.written == journal.synced):
                journal = None
            if journal is not None:
                pending = (state.start.scan, state.journaled_seq)  # every record up to it is written
            acks, self._acks = self._acks, []
        if journal is not None:
            try:
                journal.sync()
                acks.append(pending)
            except OSError as exc:
                with self.cv:
                    self._journal_failed(state, exc)
        if acks:
            self._last_ack = acks[-1]
        elif self._last_ack is not None and now - self._last_ack_time >= ACK_REPEAT_S:
            acks = [self._last_ack]
        if acks:
            self._last_ack_time = now
        return acks

    def replay(self, journal: JournalFile, records: list[list[bytes]], now: float) -> None:
        """Rebuild a scan from its journal (records as read back, ``scan.start`` first): its lines are
        pending for the worker; it ends if the journal holds its ``scan.end``, else it is the open scan,
        resumed (an open scan before it was superseded). Raises ``ProtocolError`` if ``records`` do not
        begin with a ``scan.start``."""
        start = decode_ingest(records[0])
        if not isinstance(start, ScanStart):
            raise ProtocolError("topic", f"the journal begins with a {type(start).__name__}, not a scan.start")
        with self.cv:
            if self.current is not None:
                self._end(False, "superseded")
            self._serial += 1
            state = self.current = ScanState(start, self._serial, now)
            state.journal, state.recovered = journal, True
            self.recoveries += 1
            for frames in records[1:]:
                message = decode_ingest(frames)  # journaled messages were valid when they arrived
                state.journaled_seq = message.seq
                state.note_seq(message.seq, now)
                if isinstance(message, ScanEnd):
                    self._end(message.complete, "end", message.why)
                    break
                if state.admit(message):
                    state.keep(message, now)
                    state.replayed += 1
                    self.lines_recovered += 1
            else:
                journal.sync()  # what the killed bridge wrote is durable now: acknowledge it
                self._acks.append((start.scan, state.journaled_seq))
            self.cv.notify_all()

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

    def backlog_scans(self) -> int:
        """Finished scans waiting for the worker."""
        return len(self._finished)

    def has_work(self) -> bool:
        return bool(self._finished) or (self.current is not None and bool(self.current.pending))

    def take(self) -> list[Batch]:
        """Everything that arrived since the last call: finished scans first, then the current one."""
        with self.cv:
            batches = []
            while self._finished:
                state = self._finished.popleft()
                self.backlog_bytes -= state.pending_bytes
                batches.append(Batch(state, state.take(), True))
            if self.current is not None and self.current.pending:
                batches.append(Batch(self.current, self.current.take(), False))
            return batches

"""The bridge's worker: turns accepted lines into published frames and saved scans.

It runs on its own thread, takes everything that arrived since its last update (so updates
coalesce when lines come faster than the denoiser), updates the raw frames and the streaming
denoiser (in steps of bounded size, ``MAX_BAND_PIXELS``, when many rows came at once), runs the
trust guard on the live frame at a capped rate (``GUARD_INTERVAL_S``: at most
once per half second per scan, and never more than a twentieth of the time) on a thread of its
own, so that updates go on while it judges (its verdict is applied at the next update), publishes
``frame.rows`` (the denoised rows the update changed) on the PUB socket with every update that changed
some, and the whole frames, ``frame.raw`` and ``frame.denoised`` (with the latest verdict), at a capped rate (``FRAME_INTERVAL_S``),
runs the scan-health detectors on every line and publishes their ``alert`` messages (``maed.bridge.alerts``),
and finishes scans: the band of lines that came with the scan's end, the guarded full-frame pass of ``maed denoise``,
the ``final`` frames, the files on disk, then ``scan.finished``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import zmq

from maed import __version__
from maed.denoise import BOTH, passes_of
from maed.engine import Backend
from maed.engine.heap import give_back_free_memory
from maed.passes import trace_retrace_figures

from .alerts import Finding, HealthMonitor, late_findings, late_rows
from .alerts.drift import ALERT_SHARE, DriftWatch
from .counters import LatencyWindow, Losses
from .ingest import Batch, Ingest
from .journal import read_journal
from .priority import GUARD_NICENESS, yield_to_io
from .protocol import (
    PASSES,
    VERSION,
    Alert,
    Frame,
    FrameRows,
    Line,
    ScanFinished,
    ScanStart,
    decode_ingest,
    encode,
    levelling,
)
from .scan import ScanImage, ScanState
from .store import save_scan
from .streaming import GUARD_INTERVAL_S, GUARD_MIN_ROWS, GUARD_SHARE, StreamingDenoiser, judge

log = logging.getLogger("maed.bridge")

HEALTH_SHARE = 0.25
"""Share of the time that passes that the scan-health detectors may take (about 0.7 ms per 256-pixel line): beyond
it, at line rates the worker cannot judge every line at, lines get the cheap checks only (lost and
repeated lines, crashes) and the judging resumes with the next update. What they took is the worker thread's own CPU
time, not the wall clock's: on a CPU shared with other programs every thread of the bridge waits its turn (the
worker, niced, longest), and counted by the wall clock that wait passed for the detectors' cost, so that on the
loaded 2-core VM at 100 lines/s only a third of a scan's lines were judged live and its alerts came once it ended
(2026-12-07)."""
HEALTH_CARRY_S = 0.05
"""Most unused detector time saved up from one update to the next, unless the update's lines waited longer: then up to
``HEALTH_SHARE`` of their wait."""
MAX_FINAL_BACKLOG = 4
"""Finished scans waiting beyond this many skip the full-frame pass (their last live frame is kept)."""
MAX_BAND_PIXELS = 384 * 384
"""Largest band (context rows and new rows, times columns) one streaming step hands the back end. The
streaming denoiser runs all rows new since its last update as one band: a worker behind a 1024-pixel
scan took 600 rows at once, and ONNX Runtime's working memory for that one run took the bridge past
1 GB. So an update that brings more rows is fed to it in steps, each as if the lines had come in time
(the output of a worker that kept up), in bounded memory (ONNX Runtime's working memory for ``rt``: about
0.2 GB for a 512 x 512 input, 0.11 GB for 384 x 384), for at most ``(halo + refine) / step`` more work while
the worker catches up."""
TRIM_PIXELS = 256 * 256
"""Scans larger than this hand the C heap's free pages back to the system after each live guard and at
their end (``maed.engine.heap``): their frame-sized temporaries, freed, would otherwise stay resident."""
FRAME_INTERVAL_S = 0.5
"""Least seconds between the whole frames (``frame.raw``, ``frame.denoised``) of one scan while it runs
(``maed serve --frame-interval``; 0: with every update). ``frame.rows`` goes out with every update that changed rows, so the
cost of an update follows the rows it brings, not the frame's height; a scan's first update and its final
frames always go out whole."""
LATE_PIXELS = 2 * 512 * 512
"""Most pixels (both passes counted) of lines the detectors had to leave unjudged, with their context
(``alerts.late_rows``), that a finished scan's lines are judged again over: about 0.8 ms per 256-pixel line on the
2-core CPU, so about 1.6 s here, while the next scan's updates wait (as for ``TRACE_RETRACE_PIXELS``)."""
TRACE_RETRACE_PIXELS = 512 * 512
"""Where asked for (``maed serve --trace-retrace``), a finished scan's trace/retrace error is figured up to this size
(``maed.passes.trace_retrace_figures``: both passes denoised again and registered, 1 to 2 seconds for 256 x
256 pixels on the 2-core CPU, 4 to 5 times that at this size, while the next scan's updates wait: at 200 lines/s a
next scan's first update came 1 s late); beyond it the final frame says it was skipped."""
MIN_STEP_ROWS = 32
"""New rows per step at the least, for scans so wide that the context rows alone fill the band."""


class LiveScan:
    """Worker-side state of one scan: raw frames, streaming denoiser, counters."""

    def __init__(self, start: ScanStart, halo: int, refine: int, backend: Backend, replayed: int = 0) -> None:
        self.start = start
        self.replayed = replayed
        """Lines of the scan rebuilt from its journal by a restarted bridge (``ScanState.replayed``): taken first."""
        self.lines_fed = 0
        """Lines fed to the scan-health detectors so far."""
        self.backend = backend
        """The back end of the scan's last update (or of its full-frame pass): what its denoised frame came from,
        which every message and the saved scan name, so that an update's messages (whole frames published later by
        the tick included) name the same weights across a swap."""
        self.image = ScanImage(start)
        self.stream = StreamingDenoiser(start.rows, start.cols, start.slow_axis, halo, refine)
        self.updates = 0
        self.latency = LatencyWindow()
        self.started = datetime.now(timezone.utc)
        self.fed = 0
        """Acquisition rows handed to the streaming denoiser so far."""
        self.next_guard = 0.0
        """``time.perf_counter()`` after which the live guard may run again."""
        self.judging: Future | None = None
        """The live guard's evaluation under way on the guard's thread (``maed.bridge.streaming.judge``)."""
        self.judging_since = 0.0
        """``time.perf_counter()`` when that evaluation started (its cost sets when the next may start)."""
        self.next_frames = 0.0
        """``time.perf_counter()`` after which the whole frames may be published again."""
        self.owed: dict[str, int] = {}
        """Whole frames changed since they were last published, ``"trace"``, ``"retrace"`` (raw) and ``"denoised"``,
        each with the update of its latest change (what the frame's ``update`` says, when it goes out later)."""
        self.health = HealthMonitor(start.rows, start.cols, start.slow_axis)
        self.alerts: list[dict] = []
        """Every alert published for the scan (saved in ``meta.json``)."""
        self.alerts_late: dict | None = None
        """What was judged again once the scan ended, or why not (``Worker._check_health_late``)."""
        self.trace_retrace: dict | None = None
        """The finished scan's trace/retrace error, or why it was skipped, where the bridge was asked for it and
        retrace lines came (the final ``frame.denoised`` and ``meta.json``)."""
        self.drift: dict | None = None
        """The finished scan's drift against the last complete scan of its area (``alerts.drift``; ``meta.json``)."""


def in_both_passes(image: ScanImage) -> bool:
    """Whether every trace row of the scan came in the retrace too (what a two-pass model's frame needs: a row
    without its retrace would be left out of it)."""
    trace, retrace = (np.isfinite(image.frames[p]).all(axis=1) for p in ("trace", "retrace"))
    return bool(trace.any()) and not (trace & ~retrace).any()


def journaled_lines(state: ScanState) -> list[tuple[Line, float]]:
    """Every line of a finished scan, read back from its journal (its lines were let go to keep the backlog
    within budget); exactly the bytes received, and journaled lines were accepted lines."""
    now = time.perf_counter()
    return [(message, now) for message in map(decode_ingest, read_journal(state.journal.path)[1:]) if isinstance(message, Line)]


def _plain(evidence: dict) -> dict:
    """Evidence figures as plain numbers (msgpack and JSON take no numpy scalars)."""
    return {
        str(k): (float(v) if isinstance(v, (float, np.floating)) else int(v) if isinstance(v, (int, np.integer)) else v)
        for k, v in evidence.items()
    }


def _trim_after(scan: LiveScan) -> None:
    """Hand the C heap's free pages back to the system after a large scan's frame-sized work (``TRIM_PIXELS``)."""
    if scan.start.rows * scan.start.cols > TRIM_PIXELS:
        give_back_free_memory()


def weights_sha256(backend: Backend) -> str:
    """The back end's weights hash (``unknown`` for a back end that does not say, as ONNX files without it)."""
    return str(getattr(backend, "weights_sha256", None) or "unknown")


class Worker:
    def __init__(
        self,
        ingest: Ingest,
        pub: zmq.Socket,
        backend: Backend,
        out: Path,
        halo: int,
        refine: int,
        guard_interval: float = GUARD_INTERVAL_S,
        frame_interval: float = FRAME_INTERVAL_S,
        trace_retrace: bool = False,
        both: Backend | None = None,
        drift_alert: float = ALERT_SHARE,
        judge_every_line: bool = False,
    ) -> None:
        self.ingest = ingest
        self.controller_commands: Callable[[str], list[str]] | None = None
        """The action commands an ``--on-alert`` rule sent the controller on a scan's alerts (``NanonisSource.commands_for``),
        for its ``meta.json``; None where the source sends none."""
        self.judge_every_line = judge_every_line
        """The detectors judge every line, beyond ``HEALTH_SHARE`` where they must (``BridgeConfig.judge_every_line``)."""
        self.drift_watch = DriftWatch(drift_alert)
        """The last complete scan of each recent area, to tell how far the next of it drifted (``maed serve --drift-alert``)."""
        self.both = both
        """``maed serve --pass both``: the two-pass model of each finished scan whose every row came in both passes."""
        self.trace_retrace = trace_retrace
        """Figure each finished scan's trace/retrace error (``maed serve --trace-retrace``)."""
        self.losses: Losses = ingest.losses
        self.pub = pub
        self.backend = backend
        """Swapped whole by ``set_model``; each update reads it once."""
        self.out = Path(out)
        self.halo, self.refine = halo, refine
        self.paused = False
        self.latency = LatencyWindow()
        self.updates = 0
        self.health_allowance = HEALTH_CARRY_S
        """CPU seconds the scan-health detectors may still spend, over every scan (``HEALTH_SHARE`` of the time since
        ``health_clock``, what was left carried up to ``HEALTH_CARRY_S``)."""
        self.health_clock = time.perf_counter()
        """When the detectors last started, on any scan: the time since counts once, however many scans wait."""
        self.scans_finished = 0
        self.last_saved = ""
        self.saved: list[Path] = []
        self.on_saved: Callable[[Path], None] | None = None
        """Called with each saved scan's folder (``maed serve --adapt``); must not block."""
        self.rows_denoised = 0
        self.failures = 0
        self.guard_interval = guard_interval
        self.frame_interval = frame_interval
        self.guard_ms = LatencyWindow()
        """Cost of each live guard evaluation."""
        self._live: dict[int, LiveScan] = {}
        self._judge: ThreadPoolExecutor | None = None
        """The live guard's thread, started with its first evaluation, ended when the worker stops."""
        self._seq = 0
        self._finished_cv = threading.Condition()

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set and everything that arrived before it is published and saved."""
        yield_to_io()
        while True:
            with self.ingest.cv:
                self.ingest.cv.wait_for(lambda: self.ingest.has_work() or stop.is_set(), timeout=self._until_owed())
                if stop.is_set() and not self.ingest.has_work():
                    if self._judge is not None:
                        self._judge.shutdown(wait=True, cancel_futures=True)
                        self._judge = None
                    return
            batches = self.ingest.take()
            backlog = sum(b.ended for b in batches)
            for batch in batches:
                try:
                    # The trace/retrace error (seconds of work) only where nothing else waits for the worker.
                    self._process(batch, full_pass=backlog <= MAX_FINAL_BACKLOG, figures=len(batches) == 1)
                except Exception:  # a failing back end must not stop the bridge
                    self._failed(f"scan {batch.state.start.scan!r}: update failed")
                backlog -= batch.ended
            for scan in list(self._live.values()):  # a scan whose lines stopped still shows its last rows whole
                try:
                    if scan.judging is not None and scan.judging.done():  # and its last verdict
                        scan.stream.changed = None
                        self._guard(scan)
                        if scan.stream.changed is not None:  # an update of its own: what it publishes changed
                            self.updates += 1
                            scan.updates += 1
                            self._publish_rows(scan, scan.stream.denoised, scan.stream.changed, False)
                            scan.owed["denoised"] = scan.updates
                    if self._due(scan, time.perf_counter()):
                        self._publish_owed(scan, ("trace", "retrace", "denoised"))
                except Exception:
                    self._failed(f"scan {scan.start.scan!r}: publishing its frames failed")

    def _until_owed(self) -> float:
        """Seconds until a live scan's owed whole frames are due (at most half a second; a twentieth while the
        guard judges, so that its verdict goes out soon after it is reached)."""
        due = [scan.next_frames for scan in self._live.values() if scan.owed]
        wait_s = min(0.5, max(0.01, min(due) - time.perf_counter())) if due else 0.5
        return min(wait_s, 0.05) if any(scan.judging is not None for scan in self._live.values()) else wait_s

    def _failed(self, what: str) -> None:
        """Log a failure with its traceback the first time and every 100th time after, count it always."""
        self.failures += 1
        if self.failures % 100 == 1:
            log.exception("%s (failure %d; only every 100th is logged)", what, self.failures)

    def wait_finished(self, count: int, timeout: float | None) -> bool:
        """Wait until ``count`` scans have been finished (published and saved) since start."""
        with self._finished_cv:
            return self._finished_cv.wait_for(lambda: self.scans_finished >= count, timeout)

    # --- one batch ------------------------------------------------------------------------

    def _process(self, batch: Batch, full_pass: bool, figures: bool = True) -> None:
        serial = batch.state.serial
        scan = self._live.pop(serial, None)
        if scan is None:  # a new scan: status's rows_denoised are its rows from now on, not the last scan's
            scan = LiveScan(batch.state.start, self.halo, self.refine, self.backend, batch.state.replayed)
            self.rows_denoised = 0
        if batch.ended:
            self._finish(scan, batch, full_pass, figures)
        else:
            self._live[serial] = scan
            self._update(scan, batch)

    def _update(self, scan: LiveScan, batch: Batch) -> None:
        image = scan.image
        changed = image.put(batch.lines)
        self._check_health(scan, batch.lines)
        scan.backend = self.backend
        self.updates += 1
        scan.updates += 1
        scan.owed.update((pass_, scan.updates) for pass_ in PASSES if pass_ in changed)
        due = self._due(scan, time.perf_counter())
        if due:  # raw frames first: they need no denoiser, so they are never held up (or lost) by it
            self._publish_owed(scan, PASSES)
        if "trace" in changed and not self.paused:
            self._band(scan, guard=True)
        if due:  # also when this update brought retrace lines only: the frames' interval starts again now
            self._publish_owed(scan, ("denoised",))

    def _band(self, scan: LiveScan, guard: bool) -> None:
        """Denoise the trace rows scanned since the last update and publish them (``frame.rows``); ``guard``: apply a
        verdict the live guard reached, or start its next evaluation when due, first."""
        denoised = self._stream(scan)
        self.rows_denoised = scan.image.rows_done["trace"]
        if scan.stream.changed is not None:
            if guard:
                self._guard(scan)  # may widen ``changed``: a new verdict changes every row it covers
            ms = self._publish_rows(scan, denoised, scan.stream.changed, False)
            scan.owed["denoised"] = scan.updates
            self.latency.add(ms)
            scan.latency.add(ms)

    def _due(self, scan: LiveScan, now: float) -> bool:
        """Whether the scan's owed whole frames go out now; if so, the next ones wait ``frame_interval``."""
        if not scan.owed or now < scan.next_frames:
            return False
        scan.next_frames = now + self.frame_interval
        return True

    def _publish_owed(self, scan: LiveScan, kinds: tuple[str, ...]) -> None:
        """Publish those of ``kinds`` (``"trace"``, ``"retrace"``: raw; ``"denoised"``) the scan owes."""
        for kind in kinds:
            update = scan.owed.pop(kind, None)
            if update is None:
                continue
            if kind == "denoised":
                self._publish_frame(scan, "denoised", "trace", scan.stream.denoised, False, update)
            else:
                self._publish_frame(scan, "raw", kind, scan.image.frames[kind], False, update)

    def _stream(self, scan: LiveScan):
        """The streaming denoiser brought up to every trace row scanned, at most ``MAX_BAND_PIXELS`` a step;
        its ``changed`` covers the rows of every step."""
        stream, rows_done = scan.stream, scan.image.rows_done["trace"]
        step = max(MIN_STEP_ROWS, MAX_BAND_PIXELS // scan.start.cols - self.halo - self.refine)
        denoised, written = stream.denoised, []
        while True:
            scan.fed = min(rows_done, scan.fed + step)
            denoised = stream.update(scan.image.frames["trace"], scan.fed, scan.backend)
            if stream.changed is not None:
                written.append(stream.changed)
            if scan.fed >= rows_done:
                break
        # Frame rows of consecutive steps are contiguous, in either slow axis: their union is one range.
        stream.changed = (min(w[0] for w in written), max(w[1] for w in written)) if written else None
        return denoised

    def _guard(self, scan: LiveScan) -> None:
        """The trust guard on the live frame, on the guard's thread: a verdict it reached is applied (``changed``
        may widen: a new verdict changes every row it covers); otherwise, when due, the next evaluation starts on
        a copy of the rows scanned (at most once per ``guard_interval`` seconds, stretched to 1 / ``GUARD_SHARE``
        times the last one's cost; the first after ``GUARD_MIN_ROWS`` rows). Judging a 1024-row frame took 0.8 s
        on the worker's own thread, a stall of every update meanwhile."""
        if scan.judging is not None:
            if not scan.judging.done():
                return
            future, scan.judging = scan.judging, None
            try:
                result = future.result()
            except Exception:  # a failing guard keeps its last verdict; the frame is still published
                self._failed(f"scan {scan.start.scan!r}: trust guard failed")
                scan.next_guard = time.perf_counter() + self.guard_interval
                return
            scan.stream.apply(result)
            self.guard_ms.add(result.seconds * 1e3)
            scan.next_guard = scan.judging_since + max(self.guard_interval, result.seconds / GUARD_SHARE)
            _trim_after(scan)
            return
        now = time.perf_counter()
        if now < scan.next_guard or scan.image.rows_done["trace"] < GUARD_MIN_ROWS:
            return
        try:
            job = scan.stream.guard_job()
        except Exception:
            self._failed(f"scan {scan.start.scan!r}: trust guard failed")
            scan.next_guard = now + self.guard_interval
            return
        if job is not None:
            if self._judge is None:
                self._judge = ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="maed-guard", initializer=yield_to_io, initargs=(GUARD_NICENESS,)
                )
            scan.judging, scan.judging_since = self._judge.submit(judge, job), now

    def _settle_guard(self, scan: LiveScan) -> None:
        """Drop an ended scan's evaluation under way, once it is over: its working memory must not add to
        the full-frame pass's, and the final frame has a verdict of its own."""
        if scan.judging is not None and not scan.judging.cancel():
            wait([scan.judging])
        scan.judging = None

    def _finish(self, scan: LiveScan, batch: Batch, full_pass: bool, figures: bool = True) -> None:
        image = scan.image
        backlog = not full_pass
        lines = journaled_lines(batch.state) if batch.state.spilled else batch.lines
        image.put(lines)
        paused = self.paused  # read once: a resume meanwhile must not make the record disagree with the frame
        rows_done = image.rows_done["trace"]
        if full_pass and not paused and rows_done > scan.fed:
            # The scan's last lines came with its end: their band first, as any line's, before the detectors, the
            # guard's last evaluation and the full-frame pass keep them off the preview (1.5 s for 1024 rows of 256
            # pixels on the 2-core CPU).
            self.updates += 1
            scan.updates += 1
            try:
                self._band(scan, guard=False)  # the final frame has a verdict of its own
            except Exception:  # the full-frame pass below still publishes them
                self._failed(f"scan {scan.start.scan!r}: update failed")
        # With a backlog of finished scans the full-frame pass is skipped, and so is judging the last lines
        # whole: the detectors get their usual share of the worker's time, or shutdown waits minutes.
        self._check_health(scan, lines, final=full_pass)
        self._check_drift(scan, batch)
        self._settle_guard(scan)
        backend = self.backend
        denoised = scan.stream.denoised
        full_pass = full_pass and not paused
        if full_pass:
            other = image.frames["retrace"] if image.rows_done["retrace"] else None
            final = self.both if self.both is not None and in_both_passes(image) else backend
            try:
                denoised = scan.stream.final(image.frames["trace"], rows_done, final, other_pass=other)
            except Exception:  # the scan is still published and saved, with its last live frame
                self._failed(f"scan {scan.start.scan!r}: full-frame pass failed")
                full_pass = False
        if full_pass:  # else the live frame is what goes out, and it names the weights it came from
            scan.backend = final
        if self.trace_retrace and image.rows_done["retrace"]:  # each pass alone: the one-pass model's figure
            scan.trace_retrace = (
                self._trace_retrace(scan, backend)
                if full_pass and figures
                else {
                    "skipped": "other scans were waiting for the bridge"
                    if full_pass
                    else "no full-frame pass (the bridge was behind or paused, or the pass failed)"
                }
            )
        scan.updates += 1
        self._publish_frame(scan, "raw", "trace", image.frames["trace"], True)
        if image.rows_done["retrace"]:
            self._publish_frame(scan, "raw", "retrace", image.frames["retrace"], True)
        # Every row: the full-frame pass changes them all (a paused scan sends its live frame whole).
        self._publish_rows(scan, denoised, (0, scan.start.rows), True)
        self._publish_frame(scan, "denoised", "trace", denoised, True)
        scan.alerts_late = self._check_health_late(scan, backlog)
        complete, reason = batch.state.ended
        saved = self._save(scan, batch, denoised, full_pass, paused)
        if saved and batch.state.journal is not None:
            batch.state.journal.remove()  # only now: until the folder is durable, the journal is the copy
        self._send(
            ScanFinished(scan=scan.start.scan, seq=self._next_seq(), complete=complete, reason=reason, rows_done=rows_done, saved=saved)
        )
        _trim_after(scan)
        with self._finished_cv:
            self.scans_finished += 1
            self._finished_cv.notify_all()

    def _check_drift(self, scan: LiveScan, batch: Batch) -> None:
        """A complete scan against the last complete scan of its area: its drift for ``meta.json``, and a ``drift``
        alert where it is too fast (``alerts.drift``); the time between them by the controller's clock (``line.t``)."""
        start, trace = scan.start, scan.image.frames["trace"]
        if not batch.state.ended[0] or not np.isfinite(trace).all():
            return
        extra = start.extra
        area = (start.channel, tuple(start.range), str(extra.get("center")), str(extra.get("angle")))
        last_row = start.rows - 1 if start.slow_axis == "down" else 0
        try:
            ended = scan.image.last_t if scan.image.last_t is not None else time.time()
            scan.drift, finding = self.drift_watch.check(start.scan, area, trace, start.range, ended, last_row)
        except Exception:  # a bug here must not cost the scan its frames
            self._failed(f"scan {start.scan!r}: drift check failed")
            return
        if finding is not None:
            self._alert(scan, finding)

    def _trace_retrace(self, scan: LiveScan, backend: Backend) -> dict | None:
        """The finished scan's trace/retrace error (``maed.passes.trace_retrace_figures``), or why it was skipped.

        Figured in acquisition order, as the full-frame pass denoised the trace (``StreamingDenoiser.final``). The
        passes are taken to run at one speed: the protocol's ``scan.start`` does not carry a speed ratio."""
        rows, cols = scan.start.rows, scan.start.cols
        if rows * cols > TRACE_RETRACE_PIXELS:
            return {"skipped": f"scan of {rows} x {cols} pixels, over the {TRACE_RETRACE_PIXELS} figured live"}
        trace, retrace = (scan.stream.acquisition_order(scan.image.frames[p]) for p in ("trace", "retrace"))
        if any(np.ptp(np.nan_to_num(p[np.isfinite(p).all(axis=1)])) == 0 for p in (trace, retrace)):
            return {"skipped": "a pass is flat: nothing to compare"}
        try:
            # Each pass denoised as the final frame was (``StreamingDenoiser.final``: its scan order not told).
            return trace_retrace_figures(trace, retrace, backend, order_known=False)
        except Exception:  # a bug here must not cost the scan its final frame
            self._failed(f"scan {scan.start.scan!r}: trace/retrace figures failed")
            return {"skipped": "figuring it failed (counted in status failures)"}

    def _check_health(self, scan: LiveScan, lines: list[tuple[Line, float]], final: bool = False) -> None:
        """Feed the scan-health detectors the new lines, in arrival order; publish each alert at once (before
        the frames of this update: an alert is news, the frames can wait for the denoiser). Within
        ``HEALTH_SHARE`` of the time that passes, in the worker thread's CPU time (unless ``judge_every_line``); a scan's
        final batch is judged whole (``final``)."""
        # One allowance for the worker, over every scan, from when the detectors last started on any scan (a backlog of
        # scans cannot claim the same time twice), saved up to HEALTH_CARRY_S or, where lines waited longer, to the
        # share of their wait: a new scan's first lines waited while the worker finished the scan before (its full
        # frame, its save), and a capped allowance left most of them unjudged, their alerts published only once the
        # scan ended. An idle bridge saves up no more than before.
        forced = final or self.judge_every_line
        now = time.perf_counter()
        waited = now - min((arrival for _, arrival in lines), default=now)
        saved = max(HEALTH_CARRY_S, HEALTH_SHARE * waited)
        self.health_allowance = min(saved, self.health_allowance + HEALTH_SHARE * (now - self.health_clock))
        self.health_clock = now  # the detectors' own time counts in the time that passes, their CPU time is the cost
        used = time.thread_time()
        try:
            for line, _ in lines:
                judge = forced or self.health_allowance > 0
                replayed = scan.lines_fed < scan.replayed
                scan.lines_fed += 1
                for finding in scan.health.feed(line.row, line.data, line.pass_, judge=judge):
                    if replayed:  # published before the bridge died, most likely: said, so that no rule acts twice
                        finding.evidence["recovered"] = 1
                    self._alert(scan, finding)
                now = time.thread_time()
                if not forced:  # judging every line, asked for, is outside the share: no debt for the next scan
                    self.health_allowance -= now - used
                used = now
        except Exception:  # a detector's bug must not cost the scan its frames
            self._failed(f"scan {scan.start.scan!r}: scan-health detectors failed")

    def _check_health_late(self, scan: LiveScan, backlog: bool) -> dict | None:
        """Publish what the lines the detectors had to leave unjudged show (``alerts.late_findings``), now that the
        scan is over and before its ``meta.json`` is written; what was judged again, or why not, for ``meta.json``
        (None where every line was judged). Not with a backlog of finished scans, nor beyond ``LATE_PIXELS``: the
        worker judges them on its own thread, while the next scan's lines wait."""
        rows = late_rows(scan.health)
        if rows is None:
            return None
        start, stop = rows
        pixels = (stop - start) * scan.start.cols * (2 if scan.image.rows_done["retrace"] else 1)
        if backlog or pixels > LATE_PIXELS:
            why = "other scans were waiting for the bridge" if backlog else f"{pixels} pixels, over the {LATE_PIXELS} judged again"
            log.warning("scan %r: %d lines the detectors had no time for stay unjudged (%s)", scan.start.scan, scan.health.unjudged, why)
            return {"rows": [start, stop], "skipped": why}
        try:
            found = late_findings(scan.health, scan.image.frames["trace"], scan.image.frames["retrace"])
        except Exception:  # a detector's bug must not cost the scan its frames
            self._failed(f"scan {scan.start.scan!r}: scan-health detectors failed")
            return {"rows": [start, stop], "skipped": "judging them failed (counted in status failures)"}
        for finding in found:
            self._alert(scan, finding)
        if found:  # too late for a rule (--on-alert) to act on: say so where the lab looks
            log.warning(
                "scan %r: found once it ended (the detectors had no time for their lines): %s",
                scan.start.scan,
                ", ".join(f"{f.kind} at row {f.row}" for f in found),
            )
        return {"rows": [start, stop], "found": len(found)}

    def _alert(self, scan: LiveScan, finding: Finding) -> None:
        """Publish a finding as an ``alert`` at once and keep it for the scan's ``meta.json``."""
        scan.alerts.append(finding.as_dict())
        self._send(
            Alert(
                scan=scan.start.scan,
                seq=self._next_seq(),
                kind=finding.kind,
                row=finding.row,
                columns=finding.columns,
                severity=finding.severity,
                evidence=_plain(finding.evidence),
            )
        )

    # --- publishing and saving ------------------------------------------------------------

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def _send(self, message: Frame | FrameRows | ScanFinished | Alert) -> None:
        # PUB never blocks: at a subscriber's high-water mark ZeroMQ drops that subscriber's copy. The payload's
        # bytes are the message's own snapshot of a frame that goes on changing; ZeroMQ sends them without
        # copying them again (frames under pyzmq's copy_threshold, 64 KiB, are copied: cheaper than tracking).
        self.pub.send_multipart(encode(message), copy=False)

    def _labels(self, scan: LiveScan, pass_: str, final: bool, update: int | None = None) -> tuple[dict, float]:
        """The fields every ``frame.*`` message of this update shares (``update``: a whole frame's latest change, where
        it goes out later), and its latency in ms."""
        start, image, backend = scan.start, scan.image, scan.backend
        newest = image.newest[pass_]
        ms = (time.perf_counter() - newest) * 1e3 if newest is not None else 0.0
        return {
            "scan": start.scan,
            "seq": self._next_seq(),
            "rows_done": image.rows_done[pass_],
            "final": final,
            "model": backend.model,
            "weights_sha256": weights_sha256(backend),
            "backend": backend.name,
            "latency_ms": ms,
            "pass_": pass_,
            "update": scan.updates if update is None else update,
            "slow_axis": start.slow_axis,
            "channel": start.channel,
            "unit": start.unit,
            "range": start.range,
        }, ms

    def _publish_frame(self, scan: LiveScan, kind: str, pass_: str, data, final: bool, update: int | None = None) -> float:
        """Publish one frame (``update``: that of its latest change, where not this one); returns its latency in ms
        (newest line arrival to publish)."""
        labels, ms = self._labels(scan, pass_, final, update)
        trust = scan.stream.trust if kind == "denoised" else None
        figures = scan.trace_retrace if kind == "denoised" and final else None
        self._send(Frame(kind=kind, **labels, data=data, trust=trust, trace_retrace=figures))
        return ms

    def _publish_rows(self, scan: LiveScan, denoised, rows: tuple[int, int], final: bool) -> float:
        """Publish the denoised frame rows ``[start, stop)`` as ``frame.rows``: levelled, with the plane; returns
        its latency in ms (newest line arrival to publish)."""
        start, stop = rows
        plane = scan.stream.plane
        levelled = denoised[start:stop] - levelling(plane, (), scan.start.cols, scan.start.rows, start, stop)
        labels, ms = self._labels(scan, "trace", final)
        self._send(FrameRows(**labels, rows=scan.start.rows, row_start=start, data=levelled.astype("<f4"), plane=plane, offsets=()))
        return ms

    def _save(self, scan: LiveScan, batch: Batch, denoised, full_pass: bool, paused: bool = False) -> str:
        """Write the finished scan's folder (``store.save_scan``); its path, or "" where it could not be written.
        ``paused``: denoising was paused (``pause``) when the scan ended: ``denoised.npy`` holds the rows denoised
        before, NaN after, and the record and the log say so."""
        state, start = batch.state, scan.start
        complete, reason = state.ended
        rows_denoised = int(np.isfinite(np.asarray(denoised)).all(axis=1).sum())
        meta = {
            "protocol": VERSION,
            "maed": __version__,
            "scan": start.scan,
            "start": {
                "rows": start.rows,
                "cols": start.cols,
                "channel": start.channel,
                "unit": start.unit,
                "range": list(start.range),
                "slow_axis": start.slow_axis,
                **start.extra,
            },
            "end": {"complete": complete, "reason": reason, "why": state.end_why},
            "rows_done": dict(scan.image.rows_done),
            "lines_received": state.lines_received,
            "lines_dropped": state.lines_dropped,
            "updates": scan.updates,
            "latency_ms": scan.latency.summary(),
            "model": scan.backend.model,
            "weights_sha256": weights_sha256(scan.backend),
            "adapted_from": getattr(scan.backend, "adapted_from", None),
            "backend": scan.backend.name,
            "pass": BOTH if passes_of(scan.backend) == 2 else "trace",
            "final_full_frame_pass": full_pass,
            "denoising_paused": paused,
            "rows_denoised": rows_denoised,
            "recovered": state.recovered,
            "trust": scan.stream.trust,
            "z_creep": scan.stream.z_creep,
            "line_jumps": scan.stream.line_jumps,
            "lattice": scan.stream.lattice,
            "passes_frame": scan.stream.passes_frame,
            "rows_aligned": scan.stream.rows_aligned,
            "trace_retrace": scan.trace_retrace,
            "drift": scan.drift,
            "alerts": [dict(a, evidence=_plain(a["evidence"])) for a in scan.alerts],
            "controller_commands": self.controller_commands(start.scan) if self.controller_commands is not None else [],
            "alerts_lines_unjudged": scan.health.unjudged,
            "alerts_late": scan.alerts_late,
            "halo": self.halo,
            "refine": self.refine,
            "started": scan.started.isoformat(),
            "finished": datetime.now(timezone.utc).isoformat(),
        }
        arrays = {"raw_trace": scan.image.frames["trace"], "raw_retrace": scan.image.frames["retrace"], "denoised": denoised}
        if not any(scan.image.rows_done.values()):  # no line came: frames of NaN only (48 MB each at 2048 x 2048)
            arrays = {}
        try:
            path = save_scan(self.out, start.scan, arrays, meta)
        except Exception as exc:  # a full disk, or a bug: counted, and the journal keeps the scan for the next start
            self.losses.failed_io(self.losses.save_failures, f"scan {start.scan!r}: {exc}", exc)
            log.error(
                "scan %r could not be saved to %s (its journal is kept): %s",
                start.scan,
                self.out,
                exc,
                exc_info=not isinstance(exc, OSError),
            )
            return ""
        self.last_saved = str(path)
        self.saved.append(path)
        if paused:
            log.warning(
                "scan %r saved to %s (%s); denoising was paused: %d of its %d rows denoised, the rest NaN in denoised.npy "
                "(maed denoise on its raw_trace.npy denoises it whole)",
                start.scan,
                path,
                reason,
                rows_denoised,
                start.rows,
            )
        else:
            log.info("scan %r saved to %s (%s)", start.scan, path, reason)
        if self.on_saved is not None:
            try:
                self.on_saved(path)
            except Exception:  # the adapter's bug must not cost the scan
                log.exception("scan %r: handing it to the adapter failed", start.scan)
        return str(path)

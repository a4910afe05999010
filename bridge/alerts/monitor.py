"""One scan's health, line by line: the detectors run on each pass, their findings debounced.

Each pass keeps a short history of its lines (in acquisition order) and of the figures that set the
detectors' bars (the residual's rms and noise, each window length's spread, the lines' offset steps, the
residual's spectrum); flagged lines enter them too (their medians shrug off one). A line is judged once the
next line of its pass arrives (a scar comes back, a tip change stays), except for lost and repeated
lines and crashes, which are flagged as their line arrives.

Debouncing: one alert per event. A tip change is one event in both passes (the trace shows it in
one row, the retrace in the same or the next), so a tip change within ``DEBOUNCE_ROWS`` of another
is the same; a ringing episode lasts several lines and is flagged at its first; a crash once, until
the pass leaves the rail; a noise change once, after which the bar follows the new noise.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .feedback import NO_TONE, RING_RISE, RingWindows, Tone, held_by_line, rail_run, rises, spectra, strongest_tone, tone_shared
from .finding import Finding
from .lines import repeats, skipped_rows
from .medians import median
from .other_pass import SAME_PLACE, correlation_at, sure, warp
from .pixel_noise import pixel_noise
from .segments import LENGTHS, candidates, spreads
from .steps import PERSISTS, Z_OFFSET, Z_SCAR, Z_STEP, Verdict, in_other_pass, judge_offset, judge_run

HISTORY = 24
"""Lines whose figures set the bars."""
WARM_UP = 6
"""Lines a pass needs before its detectors judge (the bars need a history)."""
BEFORE = 3
"""Lines whose pixel median is the reference ``B``."""
OFFSET_HISTORY = 32
"""Line offsets whose spread sets the bar of a whole line's offset at ``steps.Z_OFFSET`` (fewer: ``offset_bar``)."""
OFFSET_MIN = 24
"""Fewest line offsets before a whole line's offset is judged at all: from 8 on, a simulated scan's line offset of
10 spreads at its 23rd line passed the bar of so few (7.5), a false tip change (``tests/test_alerts.py``)."""
MAD_EFFICIENCY = 0.37
"""A spread from the median absolute deviation of ``n`` normal values is about as sure as a standard deviation from
0.37 n of them (its asymptotic efficiency): a line's offset over it is about Student-t distributed with 0.37 n
degrees of freedom."""


def offset_bar(count: int) -> float:
    """The bar, in spreads, of a whole line's offset judged against ``count`` offsets: ``steps.Z_OFFSET`` from
    ``OFFSET_HISTORY`` on; below, as far out as ``Z_OFFSET`` lies over ``OFFSET_HISTORY`` offsets, in the same
    tail probability (``MAD_EFFICIENCY``), so that a spread from few lines, often low by chance, raises no more false
    alerts: 6.2 over 30 offsets, 7.0 over 24 (``OFFSET_MIN``). A tip change at line 32 of a real HOPG scan, 16
    spreads out, was missed while only lines from the 32nd on were judged. Measured 2026-12-05 against judging from
    the 32nd line on: that tip change found, recall of simulated tip changes at 10 line noise 0.96 -> 0.98, one more
    false tip change among the scans at 3 line noise (precision 0.89 -> 0.84), the clean frames' false alerts
    unchanged (``docs/results/alerts.md``); calibration frames trace only 0.04 -> 0.05 per frame."""
    if count >= OFFSET_HISTORY:
        return Z_OFFSET
    tail = stats.t.sf(Z_OFFSET, MAD_EFFICIENCY * OFFSET_HISTORY)
    return float(stats.t.isf(tail, MAD_EFFICIENCY * count))


_OFFSET_BARS = [offset_bar(count) if count >= OFFSET_MIN else float("inf") for count in range(OFFSET_HISTORY + 1)]
MIN_COLS = 3 * min(LENGTHS)
"""Lines shorter than this are not judged (a run's window needs its flanks): only lost and repeated lines are
flagged (and crashes, on lines of ``feedback.RAIL_RUN`` pixels and more)."""
BARS_EVERY = 4
DEBOUNCE_ROWS = 3
RING_AFTER_NOISE = HISTORY
"""Lines after a noise change (which clears the history) before ringing is judged again (``_ringing``): the line
pending then was judged by the old history, and the recent lines' spectra from fewer lines rang on white noise that
had just grown threefold (2 scans of 60, a review's)."""
RING_EPISODE_ROWS = 12
"""Rows within which ringing alerts are one episode, in either pass: an episode lasts lines, and a pass that missed
its first line, or the line after its last (which holds the tone less than its lines before, ``held_by_line``), could
raise it again."""
GUMBEL_Q = 6.0
"""A scan's bar for a line's scan statistic (the largest of its window statistics over their spreads,
``segments.candidates``' ``peak``): the location plus this many scales of a Gumbel law fitted to the peaks
of the scan's recent lines (from their median and interquartile range; the maximum of many near-normal
statistics is Gumbel-distributed). A line's peak exceeds it with probability 1 - exp(-exp(-q)), 2.5e-3
for q = 6, in a scan whose lines follow their own recent law; the vetoes after it (the next line, the other
pass) take most of what is left. The floors ``Z_STEP`` and ``Z_SCAR`` still hold where the law is narrow
(most scans). Set on clean simulated frames held apart from the scoring seeds
(``benchmarks/alerts_calibrate.py``: 100 frames per mode of simulator 5 gave 0.04 false alerts per frame trace
only and 0.10 with both passes at q = 6, 0.10 at q = 5, 0.08 at q = 7): the surface's own structure (terrace edges
that jitter, molecules in some rows and not others) widens the peaks' law and so raises its scan's bar,
where one global threshold passed it."""
PEAKS = 64
"""Lines whose peaks set the scan's bar, and the fewest before it is used (``Z_STEP`` alone before)."""
NOISE_RATIO = 2.0
"""A line's noise (``pixel_noise``) this many times the recent lines' (or below its inverse), and the lines'
just before it, kept by the next line: a tip change of the noise ..."""
NOISE_Q = 4.0
"""... and, on a scan whose lines' rms varies more than noise does (rows through molecules and between them,
bands of streaks), this many robust standard deviations of the recent lines' log noise: the scan's own law.
Two lines in a row beyond 4 of them by chance is under 1e-4 a line where the law is near normal; where it
is narrow (the simulator's scans, a quiet surface) the ratio 2 holds alone. Without it a streaky real scan
raised a noise change every few lines (its history, cleared at each, set the next bar from a few lines)."""


@dataclass
class Candidate:
    """A line waiting for the next one to be judged, with its figures."""

    row: int
    line: np.ndarray
    before: np.ndarray
    """The pixel median of the lines before it."""
    previous: np.ndarray
    level: float
    """The median of its difference from ``before``."""
    sigma: float
    """The robust rms of its difference from ``before``."""
    noise: float
    """That difference's noise from the differences between its neighbouring pixels (``pixel_noise``), blind
    to a level the difference holds over a run of pixels."""
    step: float
    """Its offset from the line before (median of the difference)."""
    power: np.ndarray
    """Spectra of its difference from ``before``, one row per window (``feedback.RingWindows``)."""
    ring: Tone
    bars: dict
    """The history's figures it was judged against."""
    changes: np.ndarray
    """The track's ``changes`` when it came."""


class PassTrack:
    """One pass's recent lines and figures."""

    def __init__(self, cols: int) -> None:
        self.lines: deque[np.ndarray] = deque(maxlen=BEFORE)
        self.changes: deque[np.ndarray] = deque(maxlen=BEFORE)
        """Each recent line less the one before it, median removed: how the surface changes from line to line."""
        self.last_row: int | None = None
        self.sigma: deque[float] = deque(maxlen=HISTORY)
        self.noise: deque[float] = deque(maxlen=HISTORY)
        self.steps: deque[float] = deque(maxlen=4 * HISTORY)  # a spread from few offsets is too often low
        self.spreads: deque[np.ndarray] = deque(maxlen=HISTORY)
        self.power: deque[np.ndarray] = deque(maxlen=HISTORY)
        self.peaks: deque[float] = deque(maxlen=PEAKS)
        """Recent lines' scan statistics (``segments.candidates``' ``peak``): their law sets the scan's bar."""
        self.pending: Candidate | None = None
        self.recent: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        """The last few rows: (line, its reference ``before``), for the other pass to compare with."""
        self.on_rail = False
        self.ringing_until = -1
        """Acquisition index up to which a ringing episode is ongoing (no new ringing alert)."""
        self.ringing_from = 0
        """Acquisition index from which ringing is judged (``RING_AFTER_NOISE`` after a noise change)."""
        self.count = 0
        self._bars: dict | None = None
        self.windows = RingWindows.of(cols)
        self.lengths = tuple(n for n in LENGTHS if 3 * n <= cols)

    def ready(self) -> bool:
        return len(self.spreads) >= WARM_UP

    def bars(self) -> dict:
        """The history's medians the detectors judge against; recomputed every ``BARS_EVERY`` lines (they
        move slowly, and the medians are most of a line's cost), and after the history was cleared."""
        if self._bars is None or self.count % BARS_EVERY == 0 or len(self.spreads) < HISTORY // 2:
            steps = np.asarray(self.steps)
            step = float(median(steps))
            self._bars = {
                "spreads": median(np.stack(self.spreads), axis=0),
                "sigma": float(median(self.sigma)),
                "noise": float(median(self.noise)),
                "power": median(np.stack(self.power), axis=0),
                "step": step,
                "step_spread": float(1.4826 * median(np.abs(steps - step))),
                "z_step": Z_STEP,
                "z_scar": Z_SCAR,
            }
            noises = np.log(np.asarray([v for v in self.noise if v > 0] or [1.0]))
            log_spread = float(1.4826 * median(np.abs(noises - median(noises))))
            self._bars["noise_ratio"] = max(NOISE_RATIO, float(np.exp(NOISE_Q * log_spread)))
            if len(self.peaks) >= PEAKS // 2:
                q25, q50, q75 = np.percentile(np.asarray(self.peaks), [25, 50, 75])
                scale = (q75 - q25) / 1.573  # a Gumbel law's interquartile range over its scale
                bar = float(q50 - 0.367 * scale + GUMBEL_Q * scale)
                self._bars["z_step"] = max(Z_STEP, bar)
                self._bars["z_scar"] = max(Z_SCAR, bar * Z_SCAR / Z_STEP)
        return self._bars


class HealthMonitor:
    """Scan-health detectors for one scan of ``rows`` x ``cols`` scanned along ``slow_axis``."""

    def __init__(self, rows: int, cols: int, slow_axis: str = "down") -> None:
        self.rows, self.cols, self.slow_axis = rows, cols, slow_axis
        self.tracks = {p: PassTrack(cols) for p in ("trace", "retrace")}
        self.findings: list[Finding] = []
        """Every finding published so far, in order."""
        self.passes_shift = 0
        """The last shift between the passes that the lines before showed clearly (``_other_residual``): the feedback's
        lag moves the passes' features apart by about as much from row to row; 0 until a row shows it."""
        self.unjudged = 0
        """Lines taken with ``judge=False`` (only lost, repeated and crash checks)."""
        self.skipped: list[int] = []
        """Acquisition steps (``progress``) of the lines taken with ``judge=False`` that were wide enough to judge:
        what ``late_rows`` and ``late_findings`` judge again once the scan is over."""

    def progress(self, row: int) -> int:
        """How many lines of a pass came before frame ``row``'s: its acquisition step."""
        return row if self.slow_axis == "down" else self.rows - 1 - row

    def feed(self, row: int, line: np.ndarray, pass_: str = "trace", judge: bool = True) -> list[Finding]:
        """Take the line of frame ``row`` of ``pass_``; return the new findings (debounced).

        ``judge=False`` runs the cheap checks only (lost and repeated lines, crashes) and breaks the pass's run
        of lines: the line before it is not judged, and judging resumes once ``BEFORE`` lines followed (for a
        worker that fell behind, ``maed.bridge.worker``); so do lines shorter than ``MIN_COLS``."""
        track = self.tracks[pass_]
        line = np.asarray(line, dtype=np.float64)
        raw: list[Finding] = []
        first = -1 if self.slow_axis == "down" else self.rows
        lost = skipped_rows(first if track.last_row is None else track.last_row, row, self.slow_axis)
        if lost:
            raw.append(Finding("line_missing", lost[0], (0, self.cols), pass_, {"rows_missing": len(lost), "last_row": lost[-1]}))
        track.last_row = row
        if repeats(track.lines[-1] if track.lines else None, line):
            raw.append(Finding("line_repeated", row, (0, self.cols), pass_, {"of_row": row + (-1 if self.slow_axis == "down" else 1)}))
            return self._debounce(raw)  # no new information for the other detectors
        raw += self._crash(track, row, line, pass_)
        judge = judge and self.cols >= MIN_COLS
        if track.on_rail or not judge:
            track.pending = None
            if not judge:
                self.unjudged += 1
                if self.cols >= MIN_COLS:
                    self.skipped.append(self.progress(row))
                track.lines.clear()
                track.changes.clear()
                track.lines.append(line)
            return self._debounce(raw)
        candidate = self._figures(track, row, line)
        if candidate is not None:
            track.recent[row] = (line, candidate.before)
            track.recent.pop(row - 4 if self.slow_axis == "down" else row + 4, None)
        pending = track.pending
        if pending is not None and pending.bars:
            raw += self._judge(track, pending, candidate, line, pass_)
        elif pending is not None:  # warming up: every line sets the bars
            self._remember(track, pending, self._between(pending, line))
        track.pending = candidate
        if track.lines:
            change = line - track.lines[-1]
            track.changes.append(change - median(change))
        track.lines.append(line)
        track.count += 1
        return self._debounce(raw)

    # --- detectors --------------------------------------------------------------------------

    def _crash(self, track: PassTrack, row: int, line: np.ndarray, pass_: str) -> list[Finding]:
        if not track.lines:
            return []
        recent = np.stack(track.lines)
        run = rail_run(line, float(recent.min()), float(recent.max()))
        if run is None:
            track.on_rail = False
            return []
        was, track.on_rail = track.on_rail, True
        if was:
            return []
        return [
            Finding(
                "crash",
                row,
                run,
                pass_,
                {
                    "value": float(line[run[0]]),
                    "run_px": run[1] - run[0],
                    "recent_max": float(recent.max()),
                    "recent_min": float(recent.min()),
                },
            )
        ]

    def _figures(self, track: PassTrack, row: int, line: np.ndarray) -> Candidate | None:
        if len(track.lines) < BEFORE:
            return None
        previous = track.lines[-1]
        before = median(np.stack(track.lines), axis=0)
        diff = line - before
        level = float(median(diff))
        residual = diff - level
        power = spectra(residual, track.windows)
        bars: dict = {}
        ring = NO_TONE
        if track.ready():
            bars = track.bars()
            ring = strongest_tone(power, bars["power"], track.windows.band)
        return Candidate(
            row,
            line,
            before,
            previous,
            level,
            float(1.4826 * median(np.abs(residual))),
            pixel_noise(residual),
            float(median(line - previous)),
            power,
            ring,
            bars,
            np.stack(track.changes),
        )

    @staticmethod
    def _between(c: Candidate, line: np.ndarray) -> np.ndarray:
        """The candidate less the mean of the lines either side of it, median removed: a structure that
        moves steadily from line to line (an edge crossing the rows at a slant, a slope) cancels."""
        diff = c.line - 0.5 * (c.previous + line)
        return diff - median(diff)

    def _judge(self, track: PassTrack, c: Candidate, after: Candidate | None, line: np.ndarray, pass_: str) -> list[Finding]:
        """Findings of the pending candidate ``c``, now that ``line`` (figures ``after``) came."""
        between = self._between(c, line)
        found = self._noise_change(track, c, after, pass_) or self._ringing(track, c, after, pass_)
        if not found and track.count > track.ringing_until:  # an episode's last lines: runs of its ringing
            found = self._run_or_offset(c, line, between, pass_)
        if found and found[0].evidence.get("noise_ratio") is not None:
            for figures in (track.sigma, track.noise, track.spreads, track.power):
                figures.clear()  # the bars follow the new noise from here
            track.ringing_from = track.count + RING_AFTER_NOISE
        self._remember(track, c, between)  # flagged lines too: the medians shrug off one
        return found

    def _other_residual(self, c: Candidate, pass_: str, on_before: bool = False) -> tuple[np.ndarray, int] | None:
        """The other pass's row of ``c`` less its lines before, where it came already, and the shift that lays it
        on ``c`` (``other_pass.warp``, registered on each row plus its lines before: the surface on either side of
        a change in the row; ``on_before``: on the lines before alone where they show the surface clearly, else the
        last such shift of the scan (``passes_shift``), for a change that is a tone along the row, whose own
        differences would lay the two passes' tones on each other whatever their phases)."""
        other = self.tracks["retrace" if pass_ == "trace" else "trace"].recent.get(c.row)
        if other is None:
            return None
        other_line, other_before = other
        if on_before:
            shift, correlation = warp(c.before, other_before)
            if sure(correlation, c.before.size - 1):
                self.passes_shift = shift
            return other_line - other_before, self.passes_shift
        return other_line - other_before, warp(c.line + c.before, other_line + other_before)[0]

    def _noise_change(self, track: PassTrack, c: Candidate, after: Candidate | None, pass_: str) -> list[Finding]:
        noise = c.bars["noise"]
        # A channel held still (Z with the feedback off: lines of one value) has no noise to compare.
        if after is None or noise <= 0 or c.noise <= 0 or after.noise <= 0:
            return []
        ratio, after_ratio = c.noise / noise, after.noise / noise
        # Abrupt, as a tip's change is: against the lines just before too (a scan's noise may swell and
        # fade over tens of lines, which the recent median lags).
        sudden = c.noise / max(statistics.median(list(track.noise)[-BEFORE:]), 1e-300)
        bar = c.bars.get("noise_ratio", NOISE_RATIO)
        ratios = (ratio, after_ratio, sudden)
        if not (min(ratios) > bar or max(ratios) < 1 / bar):
            return []
        # A noisier tip adds noise each pass draws anew; what both passes show at the same place (a molecule's
        # edge along the rows, crossed by the line) is the surface.
        other = self._other_residual(c, pass_)
        shared = None if other is None else correlation_at(np.diff(c.line - c.before), np.diff(other[0]), other[1])
        if shared is not None and shared > SAME_PLACE:
            return []
        evidence = {
            "noise_ratio": round(ratio, 2),
            "next_noise_ratio": round(after_ratio, 2),
            "noise_ratio_to_lines_before": round(sudden, 2),
            "ratio_bar": round(bar, 2),
            "line_noise": c.bars["sigma"],
        }
        if shared is not None:
            evidence["other_pass_correlation"] = round(shared, 3)
        return [Finding("tip_change", c.row, (0, c.line.size), pass_, evidence)]

    def _ringing(self, track: PassTrack, c: Candidate, after: Candidate | None, pass_: str) -> list[Finding]:
        tone = c.ring
        # The next line must ring too, at the same place and period against the same lines before: a feedback
        # oscillation lasts; a chance peak does not. And this line must hold the tone, not its lines before.
        if not (
            track.count >= track.ringing_from
            and tone.rings()
            and after is not None
            and rises(spectra(after.line - c.before, track.windows), c.bars["power"])[tone.window, tone.at] > RING_RISE / 2
            and held_by_line(c.line, c.before, track.windows, tone)
        ):
            return []
        evidence = {
            "rise": round(tone.rise, 1),
            "narrowness": round(tone.narrowness, 1),
            "period_px": round(track.windows.period(c.power[tone.window], tone.at), 2),
            "low": round(tone.low, 2),
        }
        other = self._other_residual(c, pass_, on_before=True)
        if other is not None:
            evidence["other_pass_share"] = round(tone_shared(c.line - c.before, other[0], track.windows, tone, other[1]), 3)
            if evidence["other_pass_share"] > SAME_PLACE:
                return []  # the same tone at the same place in both passes: the surface
        fresh = track.count > track.ringing_until
        track.ringing_until = track.count + 2
        if not fresh:
            return []
        rising = rises(c.power, c.bars["power"])[:, tone.at] > RING_RISE / 2
        return [Finding("ringing", c.row, track.windows.span(rising, tone.window), pass_, evidence)]

    def _run_or_offset(self, c: Candidate, line: np.ndarray, between: np.ndarray, pass_: str) -> list[Finding]:
        bars = c.bars
        track = self.tracks[pass_]
        runs, peak = candidates(between, bars["spreads"], track.lengths, bars["z_step"])
        track.peaks.append(peak)
        for segment in runs:
            verdict = judge_run(
                c.line,
                c.before,
                c.previous,
                line,
                between,
                segment,
                pass_,
                bars["step"],
                bars["sigma"],
                c.changes,
                bars["spreads"],
                track.lengths,
                bars["z_scar"],
                bars["z_step"],
            )
            if verdict is None:
                continue
            verdict = self._other_pass_agrees(verdict, c.row, pass_, bars["z_scar"])
            if verdict is not None:
                verdict.evidence["bar"] = round(bars["z_scar" if verdict.kind == "scar" else "z_step"], 2)
                return [Finding(verdict.kind, c.row, verdict.columns, pass_, verdict.evidence)]
        if runs or len(track.steps) < OFFSET_MIN:
            return []
        verdict = judge_offset(
            c.step,
            float(median(line - c.previous)),
            c.level,
            line,
            c.before,
            bars["step"],
            bars["step_spread"],
            bars["sigma"],
            _OFFSET_BARS[min(len(track.steps), OFFSET_HISTORY)],
        )
        return [] if verdict is None else [Finding(verdict.kind, c.row, verdict.columns, pass_, verdict.evidence)]

    def _other_pass_agrees(self, verdict, row: int, pass_: str, z_scar: float = Z_SCAR):
        """``verdict`` of a run of ``pass_`` at ``row`` as the other pass, where it was sent, sees it (it adds
        its figures to the evidence), or None. A run the other pass shows at the same place is the surface.
        A run that reaches a line end is a tip change when the other pass's next line moved by its step (a
        change is in time: the retrace of a row comes after its trace, the trace of the next row after the
        retrace), a scar otherwise; that line's whole offset says it better than the rest of the run's own line."""
        other = self.tracks["retrace" if pass_ == "trace" else "trace"]
        mine = other.recent.get(row)
        evidence = verdict.evidence
        confirm = evidence.pop("needs_other_pass", 0) == 1  # below ``MIN_HEIGHT``: a tip change only if confirmed
        if mine is None:
            return None if confirm else verdict  # one pass only
        share = in_other_pass(*mine, verdict.columns, evidence["height"])
        evidence["other_pass_share"] = round(share, 3)
        if share > PERSISTS:
            return None
        if "step" not in evidence:
            return verdict  # a run inside the line: a scar
        down = 1 if self.slow_axis == "down" else -1
        later = row if pass_ == "trace" else row + down
        earlier = later - down
        if later not in other.recent or earlier not in other.recent or len(other.steps) < WARM_UP:
            return None if confirm else verdict  # not there (yet): the other pass cannot say
        moved = float(median(other.recent[later][0] - other.recent[earlier][0])) - float(median(other.steps))
        moved_share = moved / evidence["step"]
        evidence["other_pass_moved_share"] = round(moved_share, 3)
        if 0.5 < moved_share < 1.5 and evidence["moved_share"] > 0.25:
            if confirm:
                evidence["confirmed_below_height"] = 1
            return Verdict("tip_change", verdict.columns, evidence)
        return Verdict("scar", verdict.columns, evidence) if evidence["z"] >= z_scar and not confirm else None

    @staticmethod
    def _remember(track: PassTrack, c: Candidate, between: np.ndarray) -> None:
        track.sigma.append(c.sigma)
        track.noise.append(c.noise)
        track.steps.append(c.step)
        track.power.append(c.power)
        track.spreads.append(spreads(between, track.lengths))

    # --- one alert per event ----------------------------------------------------------------

    def _debounce(self, raw: list[Finding]) -> list[Finding]:
        out = []
        for finding in raw:
            if any(self._same(finding, old) for old in self.findings[-16:]):
                continue
            self.findings.append(finding)
            out.append(finding)
        return out

    def knows(self, finding: Finding) -> bool:
        """Whether ``finding`` is an event found already (the debouncing's test, over every finding so far)."""
        return any(self._same(finding, old) for old in self.findings)

    def _same(self, new: Finding, old: Finding) -> bool:
        if new.kind != old.kind:
            return False
        rows = abs(self.progress(new.row) - self.progress(old.row))
        if new.kind == "ringing":
            return rows <= RING_EPISODE_ROWS
        if rows > DEBOUNCE_ROWS:
            return False
        if new.kind == "scar":  # scars are one pass's: another pass's, or other columns, are another scar
            return new.pass_ == old.pass_ and new.columns[0] < old.columns[1] and old.columns[0] < new.columns[1]
        if new.kind in ("line_missing", "line_repeated"):
            return new.row == old.row
        return True


EVERY_LINE = ("crash", "line_missing", "line_repeated")
"""Kinds checked on every line as it arrives, judged or not (``HealthMonitor.feed``)."""
LATE_CONTEXT = PEAKS
"""Lines either side of those left unjudged that ``late_findings`` judges again: the longest history a bar is
taken from (``PEAKS``)."""


def late_rows(monitor: HealthMonitor) -> tuple[int, int] | None:
    """The frame rows ``[start, stop)`` that ``late_findings`` judges again: the lines ``monitor`` had to leave
    unjudged and ``LATE_CONTEXT`` lines either side (before, the history its bars are taken from; after, the lines
    judged against a history the skipped lines had thinned); None where none was left unjudged."""
    if not monitor.skipped:
        return None
    first = max(0, min(monitor.skipped) - 1 - LATE_CONTEXT)
    last = min(monitor.rows, max(monitor.skipped) + 1 + LATE_CONTEXT)
    return (first, last) if monitor.slow_axis == "down" else (monitor.rows - last, monitor.rows - first)


def late_findings(monitor: HealthMonitor, trace: np.ndarray, retrace: np.ndarray | None = None) -> list[Finding]:
    """What the lines ``monitor`` had to leave unjudged show, once their scan is over: the rows of ``late_rows``
    judged again by a monitor of their own (``scan_findings``), kept from the line before the first one left
    unjudged on, of a kind judged only then (not ``EVERY_LINE``), and not an event ``monitor`` found already; each
    marked ``late`` (1) in its evidence.

    A worker that fell behind the line rate judges some lines with the cheap checks only (``maed.bridge.worker``),
    and the lines after them against a thinned history; a tip change there would be lost, from the live alerts and
    from the scan's ``meta.json`` alike."""
    rows = late_rows(monitor)
    if rows is None:
        return []
    start, stop = rows
    first_skipped = min(monitor.skipped) - 1
    part = None if retrace is None else retrace[start:stop]
    late = []
    for finding, _ in scan_findings(trace[start:stop], part, monitor.slow_axis):
        row = start + finding.row
        if finding.kind in EVERY_LINE or monitor.progress(row) < first_skipped:
            continue
        moved = Finding(finding.kind, row, finding.columns, finding.pass_, finding.evidence | {"late": 1})
        if not monitor.knows(moved):
            late.append(moved)
    return late


def scan_findings(trace: np.ndarray, retrace: np.ndarray | None = None, slow_axis: str = "down") -> list[tuple[Finding, int]]:
    """Every finding of a monitor fed a whole scan's lines in acquisition order (per row the trace, then the retrace;
    rows never measured are not sent), each with the row whose line's arrival raised it."""
    rows, cols = trace.shape
    monitor = HealthMonitor(rows, cols, slow_axis)
    found = []
    for row in range(rows) if slow_axis == "down" else range(rows - 1, -1, -1):
        for pass_, image in (("trace", trace), ("retrace", retrace)):
            if image is not None and np.isfinite(image[row]).all():
                found += [(f, row) for f in monitor.feed(row, image[row].astype(np.float32), pass_)]
    return found

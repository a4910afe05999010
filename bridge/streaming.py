"""The streaming denoiser: update the denoised frame band by band while the scan runs.

Each update denoises only the rows that arrived since the previous update plus context, and pastes
the result into the denoised frame, so the cost of an update depends on how many rows are new,
never on the frame's height:

- ``halo`` rows above the band are fed to the network as context and not pasted;
- the ``refine`` rows pasted last time are pasted again, because last time they had no rows
  below them (the band is padded below by reflection to the back end's size multiple) and now
  they do.

The network saw scans in acquisition order (row 0 scanned first), so the denoiser works in that
order: an up scan is flipped on the way in and back on the way out.

Levelling and normalisation use only rows already scanned. The best-fit plane is refitted each
time the rows have doubled (``REFIT_GROWTH``) and when ``freeze_rows`` rows are in, then frozen
for the rest of the scan (refitting it later would change the levelled input of rows already denoised). Centre and scale follow all
rows scanned so far (a running mean and standard deviation of the levelled rows, updated with
each band), which brings the network's input closest to the full-frame normalisation; rows that
have left the refine zone keep their output, so nothing already shown shifts. Row alignment
(median of differences, as ``maed.normalise``) is causal anyway: each row is aligned to the row
before it. Whether the rows are aligned at all is the back end's levelling; for a plane-levelled
network it is decided on the rows so far (``maed.normalise.level_rows``), with each refit of the
plane and then every ``freeze_rows`` rows, and once the rows are aligned they stay aligned (rows
already denoised keep their input). Rows not aligned go to the network band by band with the
band's own plane removed, as its training patches were. Each refit re-denoises all rows seen so far (at most
``freeze_rows`` plus the new ones); the updates between refits take their band.

Skipped rows (lines the controller never sent) are filled with the row before them for the
network's input and stay NaN in the output.

The trust guard (``maed.trust``) runs on the live frame when the worker asks (at a capped rate:
``GUARD_INTERVAL_S``), in three steps so that the worker may judge on a thread of its own while rows
go on arriving: ``guard_job`` copies what it judges, ``judge`` judges it, ``apply`` publishes the
verdict (``guard`` does all three at once): on the latest rows scanned (at most ``GUARD_WINDOW``;
rows above keep what the verdict that last covered them published), in the normalised frame the
network saw (the levelled rows with the current centre and scale, and the network's output in the
same frame). ``network`` is the network's frame; ``denoised``, what is published, is the
network's frame where the latest verdict trusts it (with the lattice peaks the network removed
where the rows show a 2-D lattice, ``maed.lattice_keep``, the compact features it removed,
``maed.feature_keep``, the smooth residual the verdict gave
back, where it did, and the surface's steps along the rows that the row alignment took off, found in all rows so far
as ``maed.normalise`` finds them for the final frame) and the conservative result (blended by the guard's weight) where it does
not, then the surroundings of point defects given back where that changed them beyond noise
(``maed.feature_keep.keep_defect_surroundings``), over the rows that verdict covered. Rows scanned
after it are the network's until the next verdict. From ``maed.z_creep.MIN_ROWS`` rows on, each verdict also
seeks the z piezo's creep in every row published so far and takes it off them all (``maed.z_creep``, as the
final frame does): a relaxation from the first row scanned, so the rows scanned later barely move.

The final frame of a scan comes from ``final``: ``maed.denoise.denoise_guarded`` (what ``maed
denoise`` publishes) over the scanned rows in acquisition order, so for a down scan it is
bit-identical to ``maed denoise`` of the saved ``raw_trace.npy``.

After each update, ``changed`` names the frame rows it wrote and ``plane`` is the plane in every
row of the denoised frame: ``frame.rows`` publishes those rows without it, and it (``bridge/PROTOCOL.md``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from maed.classical import ALIGNMENT_LAGS, align_after, evaluate_plane, plane_coefficients
from maed.denoise import denoise_guarded, run_levelled, run_padded
from maed.engine import Backend
from maed.line_offsets import surface_steps
from maed.normalise import PLANE_AND_ROWS, level_rows, levelling_of
from maed.publish import publish
from maed.trust import Thresholds, Verdict
from maed.z_creep import MIN_ROWS as CREEP_MIN_ROWS
from maed.z_creep import find_creep

HALO = 48
REFINE = 16
FREEZE_MIN = 32
LIVE_DOMINANCE = 1.1
"""``maed.normalise.OFFSET_DOMINANCE`` for the first rows, where the line offsets' random walk has had
less time to grow than over a whole frame."""
FREEZE_FRACTION = 8
REFIT_GROWTH = 2
"""Until it freezes, the plane is refitted (and every row so far denoised again) each time the rows have doubled
since the last fit, and at the freeze; the updates between take their band, as after it. Refitting at every update
made the first eighth of a tall scan's updates cost up to the whole prefix each: on 1024-row scans their rows waited
35-36 ms at p95 against 26-27 ms after the freeze, the live latency's one dependence on the frame's height."""

GUARD_INTERVAL_S = 0.5
"""The live guard runs at most once per this many seconds per scan (the worker's schedule)..."""
GUARD_SHARE = 0.05
"""... and the interval stretches to keep it under this share of the time: at least 20 times the
last evaluation's cost (256 rows of 256 pixels cost about 0.15 s on an idle core of the 2-core Xeon, 2026-12-02;
``GUARD_WINDOW`` bounds the rows), so the guard never costs the band updates more than a twentieth of their time."""
GUARD_MIN_ROWS = 32
"""Rows scanned before the first live verdict: the guard's local structure test works on blocks of 32."""
GUARD_WINDOW = 256
"""Rows the live guard judges at most, the latest scanned (or ``freeze_rows``, where more: a refit re-denoises
at least that many; rows a refit denoises again beyond the window lose their verdict, ``update``). Judging every
row so far made an evaluation's cost grow with the frame's height (0.53 s for 1024 rows of 256 pixels against
0.15 s for 256 on an idle core; windowed, 0.17 s), and on a 2-core CPU the band updates beside it slowed with
it: p95 of the row latency 1.11 to 1.33 times higher at 1024 rows than at 256 in three runs, 0.98 to 1.15 in six
windowed (``benchmarks/test_bridge.py``, ``docs/streaming.md``). Older rows do not change once the plane is frozen, so their verdict
stands; the final frame is judged whole. Where more rows than the window arrive between two evaluations
(evaluations are 20 times their cost apart, 3.4 s on the 2-core Xeon: above about 75 lines a second), the rows
between are published as the network made them until the final frame."""


def freeze_rows(rows: int) -> int:
    """Rows after which levelling freezes: an eighth of the frame, at least 32 (or all of it)."""
    return min(rows, max(FREEZE_MIN, rows // FREEZE_FRACTION))


def fill_skipped(acq: np.ndarray) -> np.ndarray:
    """Rows (acquisition order) with every NaN row replaced by the nearest scanned row before it.

    Rows before the first scanned row take that row. Lines arrive all-finite, so a row is
    either fully scanned or fully NaN.
    """
    valid = ~np.isnan(acq[:, 0])
    first = int(np.argmax(valid))
    index = np.where(valid, np.arange(len(acq)), first)
    return acq[np.maximum.accumulate(index)]


@dataclass(frozen=True)
class Levelling:
    """What is taken off the scanned rows before the network and put back afterwards."""

    coeffs: np.ndarray
    """Plane ``a + b * (col - col_centre) + c * (row - row_centre)``, acquisition-order rows."""
    centre: float
    scale: float
    rows: int
    cols: int

    def plane(self, start: int, stop: int) -> np.ndarray:
        return evaluate_plane(self.coeffs, np.arange(start, stop), self.cols, (self.rows - 1) / 2)


@dataclass(frozen=True)
class GuardJob:
    """What the live guard judges: copies of the rows scanned when it was asked (``StreamingDenoiser.guard_job``)."""

    start: int
    """The first acquisition row judged (``GUARD_WINDOW``)."""
    rows: int
    """Acquisition rows scanned then (``rows_done``): rows ``[start, rows)`` are judged."""
    measured: np.ndarray
    """Which of those were scanned (skipped rows are left out)."""
    x: np.ndarray
    """The network's input over them, normalised."""
    y: np.ndarray
    """The network's output over them, in the same frame."""
    plane: np.ndarray
    levels: np.ndarray
    """What the row alignment took off every acquisition row so far, ``[0, rows)``, in the scan's unit."""
    unaligned: np.ndarray
    """Those rows levelled, before the alignment: where the surface's steps along the rows are sought (``job_steps``)."""
    step_above: float
    """The steps published at the row above ``start`` (0 where ``start`` is 0): the steps found continue from there."""
    newest_last: bool
    """Whether the last row is the newest of a frame still being scanned (a run that reaches it may not have ended)."""
    level: Levelling
    limits: Thresholds
    rows_aligned: bool
    """Whether the rows were aligned before the network (if not, it levelled them itself: ``maed.row_levels``)."""


@dataclass(frozen=True)
class GuardResult:
    """A verdict on a ``GuardJob`` and what it publishes, in the scan's unit (``StreamingDenoiser.apply``)."""

    job: GuardJob
    verdict: Verdict
    weight: np.ndarray
    """The fallback weight per judged pixel."""
    conservative: np.ndarray | None
    """The conservative result over the judged rows, None where the verdict trusts the network."""
    given_back: np.ndarray
    """What is given back to the network's output over the judged rows (row levels, lattice, features, smooth
    residual, defect surroundings: ``maed.publish``; the steps along the rows)."""
    steps: np.ndarray
    """The surface's steps along the rows over every row of the job's window, skipped ones too (``job_steps``), in the
    scan's unit: the next job's steps continue from its row above, which may be one that was skipped."""
    seconds: float


def job_steps(job: GuardJob) -> np.ndarray:
    """The surface's steps along the rows over a job's rows ``[start, rows)``, in the scan's unit: found in what the
    alignment took off every row so far (``maed.line_offsets.surface_steps``, as ``maed.normalise`` for the final
    frame), and continuous with what the latest verdicts gave back at the row above them (rows above the guard's
    window keep what was published there)."""
    steps = surface_steps(job.levels, job.unaligned, newest_last=job.newest_last)
    if job.start > 0:
        steps = steps - steps[job.start - 1] + job.step_above
    return steps[job.start :]


def judge(job: GuardJob) -> GuardResult:
    """The trust guard on a ``GuardJob``: touches nothing else, so it may run on a thread of its own."""
    start = time.perf_counter()
    # The chain of maed denoise (maed.publish) on the rows so far; the retrace's evidence for a lattice waits for
    # the final frame.
    result = publish(job.x, job.y, rows_aligned=job.rows_aligned, limits=job.limits)
    found = job_steps(job)
    level, steps = job.level, found[job.measured, None]
    conservative = None
    if result.conservative is not None:
        conservative = result.conservative * level.scale + level.centre + job.plane + steps
    return GuardResult(
        job=job,
        verdict=result.verdict,
        weight=result.weight,
        conservative=conservative,
        given_back=(result.network - job.y) * level.scale + steps,
        steps=found,
        seconds=time.perf_counter() - start,
    )


class StreamingDenoiser:
    """Denoised frame of one scan, updated from the raw frame as its rows arrive."""

    def __init__(
        self, rows: int, cols: int, slow_axis: str, halo: int = HALO, refine: int = REFINE, guard_window: int = GUARD_WINDOW
    ) -> None:
        if halo < 0 or refine < 0:
            raise ValueError("halo and refine must be >= 0")
        if guard_window < GUARD_MIN_ROWS:
            raise ValueError(f"guard window must be at least {GUARD_MIN_ROWS} rows, got {guard_window}")
        if slow_axis not in ("down", "up"):
            raise ValueError(f"slow axis must be down or up, got {slow_axis!r}")
        self.rows, self.cols, self.slow_axis = rows, cols, slow_axis
        self.halo, self.refine = halo, refine
        self.freeze_rows = freeze_rows(rows)
        self.guard_window = max(guard_window, self.freeze_rows)
        """Rows the live guard judges at most (``GUARD_WINDOW``)."""
        self.network = np.full((rows, cols), np.nan, dtype=np.float32)
        """The network's output, frame orientation, unscanned rows NaN."""
        self.denoised = np.full((rows, cols), np.nan, dtype=np.float32)
        """What is published: ``network`` where the latest verdict trusts it, else the guarded result."""
        self._weight = np.zeros((rows, cols), dtype=np.float32)
        """The latest verdict's fallback weight, acquisition order (0 beyond the rows it covered)."""
        self._conservative = np.full((rows, cols), np.nan)
        """The latest verdict's conservative result in the scan's unit, acquisition order."""
        self._given_back = np.zeros((rows, cols))
        """The latest verdict's smooth residual given back to the network, scan's unit, acquisition order."""
        self.verdict: Verdict | None = None
        """The latest verdict of the guard (None before the first)."""
        self.verdict_rows = 0
        """Rows scanned (``rows_done``) when ``verdict`` was computed."""
        self.verdict_start = 0
        """The first acquisition row ``verdict`` judged: it covers rows ``[verdict_start, verdict_rows)``."""
        self.z_creep: dict | None = None
        """What the final frame took off as the z piezo's creep (``GuardedResult.creep_record``, its ``from_row`` in
        frame orientation); None before the final frame."""
        self.line_jumps: list[dict] | None = None
        """Jumps of whole lines (tip changes) the final frame took off (``GuardedResult.line_jumps_record``, rows in
        frame orientation); None before the final frame."""
        self.lattice: dict | None = None
        """The final frame's lattice give-back (``GuardedResult.lattice_record``: peaks given back, on what evidence, and
        with one pass the stripes removed that it could not confirm); None before the final frame."""
        self.passes_frame: str | None = None
        """The final frame's frame when a two-pass model made it (``GuardedResult.passes_frame``: ``midway`` or
        ``trace``); None otherwise."""
        self.rows_aligned: bool | None = None
        """Whether the final frame's rows were aligned before the network (``GuardedResult.rows_aligned``); None before
        the final frame."""
        self._levelled = np.zeros((rows, cols), dtype=np.float64)
        self._alignment_levels = np.zeros(rows)
        """What the row alignment took off each acquisition row (zeros where the rows are not aligned)."""
        self._steps = np.zeros(rows)
        """The steps along the rows the latest verdicts gave back, scan's unit, acquisition order."""
        self._creep = np.zeros(rows)
        """The z piezo's creep the latest verdict took off each row (``maed.z_creep``), scan's unit, acquisition
        order: the relaxation itself, not centred on the rows so far, so that rows scanned later meet it at ~0."""
        self._level: Levelling | None = None
        self._moments = np.zeros(3)
        """Count, sum and sum of squares of the levelled rows so far."""
        self._frozen = False
        self._fitted = 0
        """Rows the plane was last fitted on (``REFIT_GROWTH``)."""
        self._levelling = PLANE_AND_ROWS
        """The back end's levelling (``maed.normalise``), as of the last update."""
        self.rows_aligned = True
        """Whether the rows are aligned before the network (for a plane-levelled network: once they need it)."""
        self._done = 0
        """Acquisition rows denoised so far."""
        self.changed: tuple[int, int] | None = None
        """Frame rows ``[start, stop)`` the last ``update`` (or ``final``) wrote; None when it wrote none."""
        self._final = False

    def acquisition_order(self, frame: np.ndarray) -> np.ndarray:
        """A frame (frame orientation) in the order its rows were scanned, as the network sees a scan (a view)."""
        return frame if self.slow_axis == "down" else frame[::-1]

    def _frame_rows(self, start: int, stop: int) -> tuple[int, int]:
        """Frame rows of acquisition rows ``[start, stop)``."""
        return (start, stop) if self.slow_axis == "down" else (self.rows - stop, self.rows - start)

    @property
    def plane(self) -> tuple[float, float, float]:
        """The plane in every row of ``denoised`` now, over frame rows and columns (``FrameRows.plane``).

        The full-frame pass of ``final`` keeps its own levelling inside: its plane is zero.
        """
        if self._level is None or self._final:
            return (0.0, 0.0, 0.0)
        a, b, c = (float(v) for v in self._level.coeffs)
        # Frame row r is acquisition row rows - 1 - r in an up scan, so the slope across rows turns round.
        return (a, b, c) if self.slow_axis == "down" else (a, b, -c)

    def _fit(self, acq: np.ndarray, n: int) -> None:
        """Fit the plane on rows ``[0, n)``, level them all, and start the running moments."""
        coeffs = plane_coefficients(acq[:n], row_centre=(self.rows - 1) / 2)
        level = Levelling(coeffs, 0.0, 1.0, self.rows, self.cols)
        p = fill_skipped(acq[:n] - level.plane(0, n))
        self._levelled[:n], self.rows_aligned = level_rows(p, self._levelling, LIVE_DOMINANCE)
        self._alignment_levels[:n] = (p - self._levelled[:n]).mean(axis=1)
        self._moments = np.zeros(3)
        self._level = self._add_moments(level, self._levelled[:n])

    def _extend(self, acq: np.ndarray, start: int, n: int) -> None:
        """Level rows ``[start, n)`` with the frozen plane, aligned to the rows before ``start`` (``align_after``: as
        the whole frame would be)."""
        p = acq[start:n] - self._level.plane(start, n)
        before = self._levelled[max(0, start - max(ALIGNMENT_LAGS)) : start]
        rows = fill_skipped(np.concatenate([before, p]))[len(before) :]
        self._levelled[start:n] = align_after(before, rows) if self.rows_aligned else rows
        self._alignment_levels[start:n] = (rows - self._levelled[start:n]).mean(axis=1)
        self._level = self._add_moments(self._level, self._levelled[start:n])

    def _add_moments(self, level: Levelling, rows: np.ndarray) -> Levelling:
        """``level`` with centre and scale from all levelled rows so far, ``rows`` included."""
        self._moments += (rows.size, rows.sum(), np.square(rows).sum())
        count, total, squares = self._moments
        centre = total / count
        scale = float(np.sqrt(max(squares / count - centre**2, 0.0)))
        return replace(level, centre=float(centre), scale=scale)

    def update(self, raw: np.ndarray, rows_done: int, backend: Backend) -> np.ndarray:
        """Denoise the rows scanned since the last update (``raw`` in frame orientation)."""
        acq, n = self.acquisition_order(raw), rows_done
        self.changed = None
        if n <= self._done:
            return self.denoised
        self._levelling = levelling_of(backend)
        # Skipped rows count towards the bound too, or a controller skipping most rows would keep refitting.
        freezes = not self._frozen and (int((~np.isnan(acq[:n, 0])).sum()) >= self.freeze_rows or n >= 4 * self.freeze_rows)
        if freezes or (not self._frozen and n >= REFIT_GROWTH * self._fitted):
            self._fit(acq, n)
            self._fitted, self._frozen = n, freezes
            # Every row is denoised again; those the next evaluation will not judge lose the verdict on their old
            # output (rows arriving in a burst, or past 4 times the freeze on a scan with skipped rows).
            self._forget_guard(0, max(0, n - self.guard_window))
            paste = top = 0
        else:
            self._extend(acq, self._done, n)
            paste = max(0, self._done - self.refine)
            top = max(0, paste - self.halo)
        self._paste(acq, top, paste, n, backend)
        self._done = n
        self.changed = self._frame_rows(paste, n)
        return self.denoised

    def _paste(self, acq: np.ndarray, top: int, paste: int, n: int, backend: Backend) -> None:
        level = self._level
        # A flat band (scale 0) goes in as zeros and comes back flat whatever the network answers.
        x = ((self._levelled[top:n] - level.centre) / (level.scale or 1.0)).astype(np.float32)
        # Rows not aligned: the band goes in with its own plane, as the network's training patches did.
        y = (run_padded if self.rows_aligned else run_levelled)(x, backend)[paste - top :]
        out = y * level.scale + level.centre + level.plane(paste, n)
        out[np.isnan(acq[paste:n, 0])] = np.nan
        self.acquisition_order(self.network)[paste:n] = out
        self._compose(paste, n)

    def _forget_guard(self, start: int, stop: int) -> None:
        """Drop the latest verdict's results over acquisition rows ``[start, stop)``: the network's output is published
        there until a verdict covers them again."""
        self._weight[start:stop] = 0
        self._conservative[start:stop] = np.nan
        self._given_back[start:stop] = 0
        self._steps[start:stop] = 0

    def _compose(self, start: int, stop: int) -> None:
        """Published acquisition rows ``[start, stop)``: the network's, blended with the conservative
        result by the latest verdict's weight."""
        net = self.acquisition_order(self.network)[start:stop] + self._given_back[start:stop]
        w = self._weight[start:stop]
        composed = np.where(w > 0, (1 - w) * net + w * self._conservative[start:stop], net)
        self.acquisition_order(self.denoised)[start:stop] = composed - self._creep[start:stop, None]

    def network_input(self, start: int = 0) -> np.ndarray:
        """Rows ``[start, rows denoised)`` as the network sees them (acquisition order, skipped rows filled):
        levelled, then centred and scaled with the current centre and scale, as ``maed.normalise`` does."""
        level = self._level
        return (self._levelled[start : self._done] - level.centre) / (level.scale or 1.0)

    @property
    def trust(self) -> dict | None:
        """The latest verdict for ``frame.denoised``: ``Verdict.as_dict()``, the ``rows_done`` it was reached at
        and how many of the latest of those it judged (``rows_judged``)."""
        if self.verdict is None:
            return None
        return {**self.verdict.as_dict(), "rows_done": self.verdict_rows, "rows_judged": self.verdict_rows - self.verdict_start}

    def guard(self, limits: Thresholds = Thresholds()) -> Verdict | None:
        """Judge the latest rows scanned (``guard_window``) and publish the guarded result over them
        (``maed.trust.guard``): ``apply(judge(guard_job()))`` at once. Sets ``changed`` to every row judged
        and scanned since when what is published changes beyond the last band."""
        job = self.guard_job(limits)
        if job is not None:
            self.apply(judge(job))
        return self.verdict

    def guard_job(self, limits: Thresholds = Thresholds()) -> GuardJob | None:
        """What the guard judges, copied, so that ``judge`` may run while rows go on arriving (None: nothing).

        The guard sees what the network saw: the levelled rows in the current centre and scale, and
        the network's output taken back into that frame, over the latest ``guard_window`` rows. Skipped rows
        are left out, as ``maed.denoise.denoise_guarded`` leaves out rows not measured.
        """
        n, level = self._done, self._level
        if n == 0 or level is None or self._final:
            return None
        start = max(0, n - self.guard_window)
        net = self.acquisition_order(self.network)[start:n]
        measured = ~np.isnan(net[:, 0])
        if not measured.any():
            return None
        plane = level.plane(start, n)[measured]
        y = (net[measured] - plane - level.centre) / (level.scale or 1.0)
        return GuardJob(
            start=start,
            rows=n,
            measured=measured,
            x=self.network_input(start)[measured],
            y=y,
            plane=plane,
            levels=self._alignment_levels[:n].copy(),
            # The alignment moved each row by its level; the steps are sought in the judge's thread, not this one.
            unaligned=self._levelled[:n] + self._alignment_levels[:n, None],
            step_above=float(self._steps[start - 1]) if start > 0 else 0.0,
            newest_last=n < self.rows,
            level=level,
            limits=limits,
            rows_aligned=self.rows_aligned,
        )

    def apply(self, result: GuardResult) -> None:
        """Publish a verdict ``judge`` reached: the guarded result over the rows it judged; rows above them keep
        what earlier verdicts published, the rows scanned since are the network's until the next. Sets
        ``changed`` to the rows judged and scanned since when what is published there changes beyond the last
        band (merged with the band's). Nothing once the scan is final."""
        if self._final:
            return
        job, first, n = result.job, result.job.start, result.job.rows
        was_guarded = bool(self._weight[first:].any() or self._given_back[first:].any())
        self._forget_guard(first, self.rows)
        if result.conservative is not None:
            self._weight[first:n][job.measured] = result.weight
            self._conservative[first:n][job.measured] = result.conservative
        self._given_back[first:n][job.measured] = result.given_back
        self._steps[first:n] = result.steps
        self.verdict, self.verdict_start, self.verdict_rows = result.verdict, first, n
        recompose = first if was_guarded or result.conservative is not None or result.given_back.any() else None
        if self._refit_creep():
            recompose = 0
        if recompose is not None:
            self._compose(recompose, self._done)
            start, stop = self._frame_rows(recompose, self._done)
            if self.changed is not None:
                start, stop = min(start, self.changed[0]), max(stop, self.changed[1])
            self.changed = (start, stop)

    def _refit_creep(self) -> bool:
        """Seek the creep of z (``maed.z_creep.find_creep``) in the rows published so far as they would be without
        it; whether what is taken off changed (then every row so far must be composed again)."""
        n = self._done
        published = self.acquisition_order(self.denoised)[:n] + self._creep[:n, None]
        measured = np.isfinite(published).all(axis=1)
        creep = np.zeros(self.rows)
        if measured.sum() >= CREEP_MIN_ROWS:
            found = find_creep(published[measured])
            if found is not None:
                creep[:n][measured] = found.relaxation
        if np.array_equal(creep, self._creep):
            return False
        self._creep = creep
        return True

    def final(
        self, raw: np.ndarray, rows_done: int, backend: Backend, limits: Thresholds = Thresholds(), other_pass: np.ndarray | None = None
    ) -> np.ndarray:
        """The denoised frame of ``maed denoise``: ``denoise_guarded`` over the rows scanned, acquisition order.

        Rows not scanned, or skipped, stay NaN and are left out of the pass (the measured rows are
        denoised together, as one image). ``other_pass`` (the retrace's frame, frame orientation, rows
        not received NaN) confirms the lattice peaks given back, as ``maed denoise`` of a file with both.
        """
        acq, n = self.acquisition_order(raw), rows_done
        final = np.full_like(self.denoised, np.nan)
        verdict = None
        if n > 0 and np.isfinite(acq[:n, 0]).any():
            other = self.acquisition_order(other_pass)[:n] if other_pass is not None else None
            # Not told it is the trace: ``maed denoise`` of the saved raw rows (an array file) cannot be, and the two
            # must agree.
            result = denoise_guarded(acq[:n], backend, limits=limits, other_pass=other)
            first_row = 0
            if self.slow_axis == "up":  # found in acquisition order; named as framed
                result, first_row = result.upside_down(), self.rows - n
            final[first_row : first_row + n] = result.data
            verdict = result.verdict
            self.z_creep = result.creep_record()
            self.passes_frame = result.passes_frame
            self.rows_aligned = result.rows_aligned
            self.lattice = result.lattice_record()
            self.line_jumps = [
                dict(jump.as_dict(), rows_moved=[first_row + jump.start, first_row + jump.stop]) for jump in result.line_jumps
            ]
        # Only now: if the pass fails, the live frame is still whole.
        self.denoised = final
        self.verdict, self.verdict_start, self.verdict_rows = verdict, 0, n
        self._done = n
        self._final = True
        self.changed = (0, self.rows)
        return self.denoised

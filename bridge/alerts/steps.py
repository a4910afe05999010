"""Tip change or scar: a line's anomaly judged against the line before it and the line after it.

The candidate line ``R`` is compared with ``B`` (the pixel median of the lines just before it, so a
scar in one of them does not leak in) and, once it arrives, with the next line ``F``. A run of pixels
at another level in ``R - B`` is

- a **scar** when ``F`` is back at ``B``'s level on the run: the tip jumped and came back;
- a **tip change** when the run reaches the end of the line that was scanned last (the right end in
  the trace, the left in the retrace: the part after the change) and ``F`` is at the run's level
  everywhere, or it reaches the end scanned first (the part before the change) and ``R`` outside the
  run already moved by the run's height;
- neither when ``F`` still shows the run against its surroundings: the surface itself (an edge
  that crosses the rows at a slant moves a little from line to line).

Whole lines move too (the feedback's offsets walk): a line whose offset from the line before stands
out from the recent offsets' spread and stays in the next line is a tip change at the line's start; one
that stands out from the lines before it and whose next line is back at their level is a scar the width of
the line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .medians import median
from .segments import Segment, run_z

Z_SCAR = 5.5
"""A scar's hat or step must exceed this many times its length's typical spread."""
Z_STEP = 5.0
"""... a tip change's: lower, since the next line must confirm the new level as well."""
PERSISTS = 0.45
"""A run that the next line (or the other pass) still shows at this share of its height is the surface,
not an event."""
MIN_HEIGHT = 1.8
"""A run lower than this many times the recent robust rms of a line less the median of the lines before it
is no event whatever its length: a long run of small height is what drift and pick-up leave along a line
(an event of 3 line noise is about 2.4 of them in white noise, fewer where the surface changes from line
to line: that rms holds the surface's change too, which keeps terrace edges and lattices quiet)."""
MIN_HEIGHT_CONFIRMED = 1.2
"""... and a tip change lower than ``MIN_HEIGHT`` but not than this is one only where its statistic stands
``LOW_STRENGTH`` times the scan's bar and the other pass confirms it in time order (its next line moved by the step,
``monitor``). ``MIN_HEIGHT``'s rms holds the surface's change from line to line, which a scan's relief can make large
against its noise: a real tip change of 2.3 pm within a retrace line, 19.6 spreads out at its split (bar 8.3) and
confirmed by the trace's next line (`A200622.190818`, row 72), stood 1.7 of that rms, and was missed."""
LOW_STRENGTH = 2.0
"""Without it, on the simulated scans of ``docs/results/alerts.md`` (both passes) the lower height found 3 more tip
changes and raised 5 false ones, all within 1.6 times their bar."""
LOCAL = 2.0
"""A run must also stand this many times above how much its columns changed from line to line just
before (a feature that changes fast there is not an event) ..."""
EDGE = 1.2
"""... and a run of up to ``JITTER_PX`` pixels this many times above the relief of the surface (over 3
pixels) within ``JITTER_PX`` of it (an edge that jitters by a few pixels from line to line)."""
JITTER_PX = 8
TIP_SHARE = (0.5, 1.6)
"""The share of a run's height that the rest of the line takes on, across the change (1 for a tip change,
0 for a scar); the other pass, where there is one, decides instead (``maed.bridge.alerts.monitor``)."""
Z_OFFSET = 6.0
"""A whole line's offset step must exceed this many times the recent steps' spread."""


@dataclass(frozen=True)
class Verdict:
    kind: str
    columns: tuple[int, int]
    evidence: dict


def refine(residual: np.ndarray, segment: Segment) -> tuple[int, int]:
    """The run around ``segment``: the columns, contiguous with its middle, where the residual (over 5
    pixels) stays beyond half the segment's level. A window of the ladder rarely fits a run exactly, and
    a step's window holds one side of the edge only; a run that reaches a line end is the part of a line
    before or after a tip change."""
    level = float(np.mean(residual[segment.start : segment.stop]))
    smooth = np.convolve(np.pad(residual, 2, mode="edge"), np.full(5, 0.2), mode="valid") * np.sign(level)
    outside = np.flatnonzero(smooth <= 0.5 * abs(level))
    middle = (segment.start + segment.stop) // 2
    left, right = outside[outside < middle], outside[outside > middle]
    start = int(left[-1]) + 1 if left.size else 0
    stop = int(right[0]) if right.size else residual.size
    if stop - start < 2:
        start, stop = segment.start, segment.stop
    # The run may reach an end through a dip of the surface: take whichever of it, it to the left end and
    # it to the right end best splits the line into two levels (least squares).
    return max(((start, stop), (0, stop), (start, residual.size)), key=lambda run: _split(residual, *run))


def _split(residual: np.ndarray, start: int, stop: int) -> float:
    """How much of the residual's variance two levels, inside and outside ``[start, stop)``, explain."""
    inside = stop - start
    outside = residual.size - inside
    if inside == 0 or outside == 0:
        return 0.0
    total = float(np.sum(residual))
    run = float(np.sum(residual[start:stop]))
    return inside * outside / residual.size * (run / inside - (total - run) / outside) ** 2


def _contrast(diff: np.ndarray, start: int, stop: int) -> float:
    """Mean of ``diff`` over the run less its median elsewhere: free of whole-line offsets."""
    outside = np.concatenate((diff[:start], diff[stop:]))
    return float(np.mean(diff[start:stop]) - median(outside))


def judge_run(
    row: np.ndarray,
    before: np.ndarray,
    previous: np.ndarray,
    after: np.ndarray,
    residual: np.ndarray,
    segment: Segment,
    pass_: str,
    typical_step: float,
    sigma: float,
    changes: np.ndarray,
    bars: np.ndarray,
    lengths: tuple[int, ...],
    z_scar: float = Z_SCAR,
    z_step: float = Z_STEP,
) -> Verdict | None:
    """Scar, tip change or nothing for the run ``segment`` found in ``residual`` (``row - before``, median
    removed). ``previous``: the line just before ``row``; ``typical_step``: the recent lines' median offset
    from one line to the next (a slope along the slow axis); ``sigma``: the recent robust rms of a line less
    the pixel median of the lines before it;
    ``changes``: the lines just before, each less the one before it (median removed); ``bars``, ``lengths``:
    the statistics' typical spreads per window length (``segments``); ``z_scar``, ``z_step``: the scan's bars for a
    scar and a tip change (``Z_SCAR``, ``Z_STEP`` or above, ``monitor``). A tip change below ``MIN_HEIGHT`` carries
    ``needs_other_pass`` in its evidence: the monitor keeps it only where the other pass confirms it."""
    start, stop = refine(residual, segment)
    z = max(segment.z, run_z(residual, start, stop, bars, lengths))
    height = _contrast(row - before, start, stop)
    remains = _contrast(after - before, start, stop)
    # How much the run's columns moved between the lines just before; and, for a short run, the surface's
    # relief around it: an edge that crosses the rows jitters by a few pixels from line to line, which
    # leaves a short run of about the edge's height.
    moved_before = float(median(np.abs(changes[:, start:stop].mean(axis=1))))
    relief = 0.0
    if stop - start <= JITTER_PX:
        around = before[max(0, start - JITTER_PX) : stop + JITTER_PX]
        relief = float(np.ptp(np.convolve(around, np.full(3, 1 / 3), mode="valid"))) if around.size >= 3 else 0.0
    local = max(LOCAL * moved_before, EDGE * relief)
    evidence = {"z": round(z, 2), "height": height, "remains": remains, "line_noise": sigma, "local_change": local}
    # The run must stand alone: gone in the next line and still in the lines before, both at once (a
    # feature of the surface often half-persists and half-moves).
    if abs(remains) + local / LOCAL > PERSISTS * abs(height) or abs(height) < MIN_HEIGHT_CONFIRMED * sigma:
        return None
    low = abs(height) < MIN_HEIGHT * sigma
    if low and z < LOW_STRENGTH * z_step:
        return None
    cols = row.size
    late = (stop == cols) if pass_ == "trace" else (start == 0)
    early = (start == 0) if pass_ == "trace" else (stop == cols)
    if not (late or early):
        return Verdict("scar", (start, stop), evidence) if z >= z_scar and not low else None
    outside = np.ones(cols, dtype=bool)
    outside[start:stop] = False
    if late:  # the run is the part after a change: the next line sits at its level everywhere
        moved = float(median((after - row)[outside])) - typical_step
        share = moved / height
    else:  # the run is the part before a change: the rest of the line moved already
        moved = float(median((row - previous)[outside])) - typical_step
        share = -moved / height
    evidence["moved_share"] = round(share, 3)
    evidence["step"] = height if late else -height  # the change's own sign: new level less old
    if TIP_SHARE[0] < share < TIP_SHARE[1]:
        if low:
            evidence["needs_other_pass"] = 1
        return Verdict("tip_change", (start, stop), evidence)
    return Verdict("scar", (start, stop), evidence) if z >= z_scar and not low else None


def judge_offset(
    step: float,
    next_step: float,
    level: float,
    after: np.ndarray,
    before: np.ndarray,
    typical_step: float,
    spread: float,
    sigma: float,
    z_bar: float = Z_OFFSET,
) -> Verdict | None:
    """A tip change at a line's start, or a scar the width of the line. A tip change: the line's offset ``step``
    from the line before stands out from the recent steps (``typical_step``, ``spread``), the next line keeps it
    (``next_step``: the next line's offset from the same line before, two steps), and the line stands as far from
    the lines before it (``level``: the median of the line less ``before``, their pixel median; a line that steps
    back to their level after a streak does not). A scar: the line stands out as far from the lines before it and
    the next line ``after`` is back at their level; judged against their median, as the offsets wander from line
    to line. Both are judged in units of ``spread``, how far lines move from one to the next (a scar's offset from
    the median of three lines is measured against the steps of single lines: a looser bar where the offsets
    wander, a stricter one where they jitter), ``z_bar`` of them (``Z_OFFSET``; higher where ``spread`` comes from
    few lines). ``sigma``: as for ``judge_run`` (``MIN_HEIGHT``)."""
    cols = before.size
    # ``before`` is 2 lines' slope behind the line on average, 3 behind the next.
    away = level - 2 * typical_step
    if abs(away) / max(spread, 1e-300) >= z_bar and abs(away) >= MIN_HEIGHT * sigma:
        back = float(median(after - before)) - 3 * typical_step
        if abs(back) <= PERSISTS * abs(away):
            evidence = {"z": round(abs(away) / max(spread, 1e-300), 2), "height": away, "back": back, "step_spread": spread}
            return Verdict("scar", (0, cols), evidence)
    jump = step - typical_step
    z = abs(jump) / max(spread, 1e-300)
    if z < z_bar or abs(jump) < MIN_HEIGHT * sigma:
        return None
    kept = next_step - 2 * typical_step
    if abs(kept - jump) > PERSISTS * abs(jump) or abs(away - jump) > PERSISTS * abs(jump):
        return None  # not kept, or a step back to the lines before (after a streak): no change of tip
    return Verdict("tip_change", (0, cols), {"z": round(z, 2), "height": jump, "kept": kept, "step_spread": spread})


def in_other_pass(other_row: np.ndarray, other_before: np.ndarray, columns: tuple[int, int], height: float, shift: int = 3) -> float:
    """The share of ``height`` that the other pass's same row shows over ``columns`` against its own lines
    before (the largest over shifts of up to ``shift`` pixels: the passes' x-warp). A scar or a tip change
    happens in time, in one pass; a run both passes show at one place is the surface."""
    start, stop = columns
    diff = other_row - other_before
    best = 0.0
    for s in range(-shift, shift + 1):
        lo, hi = start + s, stop + s
        if lo < 0 or hi > diff.size or (lo == 0 and hi == diff.size):
            continue
        best = max(best, _contrast(diff, lo, hi) / height)
    return best

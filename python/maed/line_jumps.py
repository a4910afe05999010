"""Jumps of whole scan lines that the published frame keeps: tip changes, taken off the raw scan and named.

A tip change moves the measured height by one amount from one moment on: every line after it lies higher or lower,
the line it happened in only from the column where it happened. Where the rows are aligned before the network
(``maed.normalise.level_rows``), the alignment takes such a jump off with the line offsets (``line_offsets``: one
line's jump is never a step of the surface). Where they are not (a scan whose offsets do not dominate: a lattice, a
quiet scan), the network sees the jump and keeps it as the edge of a terrace, and the whole frame after it stays
moved: on the blind simulator that left scans up to 9 dB below the classical pipeline, whose row alignment takes the
jump off (``docs/model.md``, thirty-third session).

A jump here is a change of the raw scan's row levels (the median of each row's difference from the row before)
that is (1) short: within ``WINDOW`` rows lies all but ``RAMP_SHARE`` of the change of the rows around it
(``AROUND``), so no terrace edge crossing the rows at an angle, which spreads over as many rows as it crosses, and no
row around it changes by half as much (``ALONE_SHARE``: a line off and back is no lasting change); (2) of
whole lines: every strip of columns (``line_offsets.STRIPS``) carries at least ``STRIP_SHARE`` of it; (3) far beyond
what the raw scan's row levels do elsewhere (``RAW_Z``); and (4) kept by the published frame, in part at least, over
the rows around it (``KEPT``): where the rows were aligned before the network, the alignment took it off. A step
edge running exactly along one scan line passes all of these. Two things tell them apart. (5) A tip change happens at
one moment, so each column of the raw scan makes all of it between two lines (``ABRUPT``; the line it happened in is
split at a column, so one strip may spread it over two rows); a step edge spreads over the rows its width spans,
which on scans of a few nanometres is several. (6) Where the scan's other pass is at hand: the tip change splits the
line of the pass being recorded at that moment and leaves the other pass's line of that row whole on one side (that
pass scanned it before or after), so the strips of the two passes change at different rows; a step edge lies at the
same place in both. A jump the other pass carries with its strips changing at the same rows is kept. The strips are
a quarter of the line wide (``line_offsets.STRIPS``), so a tip change within the first or last eighth of a line, or
between lines, changes the strips of both passes at the same rows: with both passes it is kept, as an edge would be.
And a step edge exactly along a scan line and narrower than a row, in one pass, is taken off as a tip change, and
named.

Line offsets as large as a fifth of a jump break (1) and (3), but a tip change within a line leaves a mark no offset
makes: the line is split, the strips of columns scanned after the moment jumping in that line and those before it in
the next, and that contrast between strips is free of the offsets, which move every strip alike. Where it stands
``SPLIT_Z`` times the strips' own spread about their rows' means, the line moved whole (``SPLIT_WHOLE``) and the
change lasts (``_lasting``: the rows' median levels either side, the surface's slope there taken off) and stands
alone (``_split_alone``: no strip moves apart from its row by half as much in the rows beside it), (1) to (3) and (5)
are not asked, and the jump's size is read from the contrast, its sign from how far the rows' level moved (the
contrast alone reads a trace's rise as a retrace's fall). A step edge crossing the rows at so shallow a slant that it
crosses a whole line within two rows makes a split too, read in one scan order or the mirrored one; where the pass's
order is known (a file that records which pass it holds and which way the slow axis ran,
``scanfiles.scan_order_known``: ``denoise_guarded``'s ``retrace``, on the scan turned into the order it was scanned in
where ``scanned_up``), a split read in the mirrored
order is no tip change, which keeps half of those edges (the blind simulator's `steps` 9200000 at 512 pixels, +3.2 dB
told it is a trace). An array file does not say which pass it holds, a Gwyddion file names every channel a trace,
Createc and RHK files do not say which way the slow axis ran, and the live scan's final frame must equal
``maed denoise`` of its raw rows saved as an array: there both orders are read.

A jump is taken off the raw scan, by its height as judged, and the scan is denoised again
(``maed.denoise.denoise_guarded``): the network spreads the jump over the rows beside it (or takes part of it off
with the line offsets and leaves a ramp), which taking it off the published frame would leave. Each jump moves the
rows on its side with fewer of them, so that a single jump leaves the bulk of the frame at the heights it was
measured at, and the line the jump split is mended (``_mend_split_line``). ``<stem>.json`` and a live scan's
``meta.json`` name each jump (``line_jumps``). Measured 2026-12-05 (``docs/model.md``): on four draws of the blind
simulator (288 scans) 11 scans changed, +0.2 to +20 dB on 10 (the tip changes their frames kept, whole or spread
over a few rows), -0.3 on one; the straight step edges along the rows there (0 degrees) are kept; nothing changed on
this simulator's columns (750 scans) or on the 26 real scans.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .classical import robust_spread
from .line_offsets import row_changes_by_strip, strips_spreading

WINDOW = 1
"""Rows either side of a jump's largest change that belong to it: a tip change mid-line splits its change between
the line it happened in and the next."""
AROUND = 4
"""Rows either side of a jump over which its change is judged short (``RAMP_SHARE``); a jump needs as many rows on
each side of it, so one odd first or last line of a frame is no tip change."""
RAMP_SHARE = 0.2
"""Most of a jump's change that the rows around it (``AROUND``), beyond its own (``WINDOW``), may add or take."""
ALONE_SHARE = 0.5
"""Largest change of any one row around a jump (``AROUND``, beyond its ``WINDOW``) as a share of the jump: a line that
went off and came back over two lines (``createc_scan_close_100nm``'s retrace at row 100: -13 pm, then +6 and +9)
makes a change as large just before its return, and the rows' own excursions around it can cancel in their sum."""
STRIP_SHARE = 0.5
"""Least share of a jump each strip of columns of the raw scan carries over the jump's rows: a whole line moved, not a
feature that fills part of it (``line_offsets.STRIP_AGREEMENT`` asks the same of a step); and the least share of the
raw scan's jump the other pass must make for its strips to be compared."""
ABRUPT = 0.8
"""Least share of a strip's change over a jump's rows that the raw scan makes in one row (``_abrupt_whole_lines``): a tip
change moves each column once, between two lines; a step edge along the rows spreads over the rows its width spans
(on the blind simulator's straight edges at 0 degrees the largest row held 0.42 to 0.67 of it)."""
MIN_PART = 8
"""Fewest columns of a split line's part that ``_mend_split_line`` moves: over fewer, a lattice's own change from
line to line does not average out."""
PART_TOLERANCE = 0.25
"""How far, as a share of the jump, a split line's parts may lie from where a tip change puts them for it to be
mended."""
KEPT = 0.25
"""Least share of a jump that the published frame keeps over the rows around it (``AROUND``) for it to be taken off
and the scan denoised again: a network that aligned the rows took it off with the line offsets. A frame that spread
the jump over more than about 36 rows keeps less than that within them, and the jump is left."""
RAW_Z = 10.0
"""Least jump over the spread of the raw scan's row-level changes (``_spread``). Measured 2026-12-05 (``docs/model.md``):
the blind simulator's tip changes that the published frames kept stand 24 to 120 times that spread (four draws of 72
scans); of the real scans' visible tip changes, the largest (``hopg_300k``'s at row 32) stands 14 times it, and the
network had taken it off with the line offsets. 20 until 2026-12-06: in scans recorded in a converter's steps the second
blind simulator's tip changes stand 11 to 20 times the spread (``_spread``); with 10, on the first blind simulator,
draws 1 to 4 did not change and draws 7 to 10 changed on two scans, both for the better (``docs/model.md``,
forty-third session)."""


SPLIT_Z = 10.0
"""Least size of a jump split within a line (``split_size``) over the spread of the strips of columns about their
rows' means: a line offset moves every strip alike, so a split stands against that spread alone, which line offsets
leave out. Such a jump needs neither ``RAW_Z`` against the rows' changes nor ``RAMP_SHARE`` or ``ALONE_SHARE``, which
offsets as large as a fifth of it break. Measured 2026-12-06 (``docs/model.md``): the first blind simulator's `islands`
9200002, a tip change split within a line under offsets a seventh of it (7.8 times the rows' spread): taken off, 21.4
-> 24.5 dB; of 576 scans of eight draws of that simulator 6 changed, all for the better (+0.2 to +14.2 dB), of the
crystals simulator's 48 two (+0.08, +1.1), none of the molecules and instruments simulators' or of the 26 real
scans' 51 passes."""
SPLIT_WHOLE = 0.25
"""Most that any strip of columns' change over a split's two rows may differ from their mean, as a share of the jump:
a tip change moves the whole line (``split_size``)."""
TREND_SIGNIFICANCE = 3.0
"""How far the rows' median change beside a split jump must stand from 0, in its own errors, to be taken for the
surface's slope there (``_trend``)."""
SPLIT_LEAST = 0.5
"""Share of ``RAW_Z``'s bar on the rows' changes down to which rows are looked at for a split (``SPLIT_Z``)."""


@dataclass(frozen=True)
class LineJump:
    """A jump of whole lines taken off: the rows moved (``start`` to ``stop``, the frame's rows) and by how much."""

    start: int
    stop: int
    height: float
    """What was taken off the rows moved, in the scan's unit."""
    both_passes: bool
    """Whether the other pass was at hand, over the jump's rows, to tell it from a step edge along a scan line."""

    def as_dict(self) -> dict:
        """The jump as ``<stem>.json`` and ``meta.json`` name it."""
        return {"rows_moved": [self.start, self.stop], "height": self.height, "both_passes": self.both_passes}


@dataclass(frozen=True)
class FoundJump:
    """A jump ``find_line_jumps`` judged, as ``take_off_line_jumps`` takes it off."""

    row: int
    """The raw scan makes the jump between ``row`` and ``row + 1``."""
    height: float
    """The jump as judged: where it was judged as a split within a line, the contrast between its strips
    (``split_size``) signed as the rows' level moved (``_lasting``); else the raw rows' change over its ``WINDOW``."""
    judged: bool
    """Whether the other pass was at hand over the jump's rows to judge it."""


def _row_changes(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Row-level changes of ``image`` (rows - 1; the median of each row's difference from the row before) less their
    median, a plane's slope across the rows, which is no jump; and that slope."""
    changes = np.median(np.diff(image, axis=0), axis=1)
    slope = float(np.nanmedian(changes)) if np.isfinite(changes).any() else 0.0
    return changes - slope, slope


def _levels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_row_changes`` of ``image`` and the same per strip of columns (rows - 1, strips)."""
    changes, slope = _row_changes(image)
    return changes, row_changes_by_strip(image) - slope


def _quantum(raw: np.ndarray) -> float:
    """The smallest gap between the raw scan's distinct values: a converter's step where it was recorded in steps."""
    values = np.unique(raw[np.isfinite(raw)])
    return float(np.diff(values).min()) if len(values) > 1 else 0.0


def _spread(raw: np.ndarray, raw_changes: np.ndarray) -> float:
    """The robust spread of the raw scan's row-level changes (``raw_changes``, each the median of a row's differences
    from the row before). Where the scan was recorded in a converter's steps, those medians are whole steps, most of
    them 0, and their spread is at most one step however large the line noise; there, the spread of each row's
    interquartile mean of differences, which the steps do not round (at least the step where that is 0 too, so that a
    scan whose noise stays within one step has a spread)."""
    spread, quantum = float(robust_spread(raw_changes)), _quantum(raw)
    if not spread <= quantum:  # NaN too: rows not measured in full leave no bar to judge by
        return spread
    unrounded = float(robust_spread(stats.trim_mean(np.diff(raw, axis=0), 0.25, axis=1)))
    return unrounded if unrounded > 0 else quantum


def _pattern(strips: np.ndarray, sign: float) -> np.ndarray:
    """Per strip, the row within a jump's window where the strip's change in the jump's sense is largest."""
    return np.argmax(sign * strips, axis=0)


def find_line_jumps(
    frame: np.ndarray, raw: np.ndarray, other_pass: np.ndarray | None = None, mirrored: bool | None = None
) -> list[FoundJump]:
    """Jumps of whole lines that ``raw`` (a scan's rows as measured in full) makes at one moment far beyond its line offsets,
    that ``frame`` (the same rows as published) keeps in part at least (``KEPT``) and, where ``other_pass`` (the other
    pass's same rows, same orientation; rows not measured NaN) holds the jump's rows, that pass does not make alike;
    in order of rows. ``mirrored``: whether ``raw`` was recorded in a mirrored order, its columns from the right (a
    retrace) or its rows from the bottom (scanned up) but not both; None where that is not known. Where it is known,
    a split within a line must be read in that order (``split_size``): a step edge that crosses the rows at a slant
    so shallow that it crosses a whole line in two rows looks like a split, read one way or the other, and half of
    them are read the wrong way."""
    frame, raw = np.asarray(frame, dtype=np.float64), np.asarray(raw, dtype=np.float64)
    changes = _row_changes(frame)[0]
    raw_changes, raw_strips = _levels(raw)
    if len(raw_changes) < 2 * AROUND + 1:
        return []
    least = RAW_Z * max(_spread(raw, raw_changes), 1e-300)
    if not np.isfinite(least):  # rows not measured in full: no bar to judge by
        return []
    split_spread = _split_spread(raw_strips)
    other = _levels(np.asarray(other_pass, dtype=np.float64)) if other_pass is not None else None
    claimed = np.zeros(len(raw_changes), dtype=bool)
    jumps = []
    for row in np.argsort(-np.abs(raw_changes)):
        # A jump is judged around its largest change only, so its window sums to at most 3 times that change.
        if abs(raw_changes[row]) * (2 * WINDOW + 1) < SPLIT_LEAST * least:
            break
        window, around = slice(row - WINDOW, row + WINDOW + 1), slice(row - AROUND, row + AROUND + 1)
        if claimed[row] or row < AROUND or row + AROUND >= len(raw_changes):
            continue
        if abs(raw_changes[row]) < np.abs(raw_changes[window]).max():
            continue
        height = float(raw_changes[window].sum())
        beside = np.concatenate((raw_changes[row - AROUND : row - WINDOW], raw_changes[row + WINDOW + 1 : row + AROUND + 1]))
        # A split within a line is a moment of the tip that no offset makes: the rows' own tests, which offsets as
        # large as a fifth of the jump break, are not asked of it. Whether it lasts is judged with the surface's own
        # slope beside it (``_trend``) taken off: a feature of some strips that comes and goes on a slope would read
        # as a lasting change. The split's contrast is between strips of the same rows, which no slope moves; its sign
        # depends on the scan order (``split_size``), so the jump's is how far the rows' level moved, which lasts.
        contrast = split_size(raw_strips[window], split_spread)
        size = abs(contrast)
        lasting = _lasting(raw_changes[around] - _trend(beside)) if size else 0.0
        in_order = mirrored is None or np.sign(contrast) == np.sign(lasting) * (-1 if mirrored else 1)
        if size and in_order and _split_alone(raw_strips, row, size) and abs(lasting) >= STRIP_SHARE * size:
            height = float(np.sign(lasting)) * size
        else:
            if abs(height) < least or abs(float(raw_changes[around].sum()) - height) > RAMP_SHARE * abs(height):
                continue
            if np.abs(beside).max() > ALONE_SHARE * abs(height):
                continue
            if not _abrupt_whole_lines(raw_strips[window], height):
                continue
        if np.sign(height) * float(changes[around].sum()) < KEPT * abs(height):
            continue  # the network took it off with the line offsets
        judged = other is not None and bool(np.isfinite(other[1][window]).all())
        if judged and _in_other_pass(raw_strips[window], other[0][window], other[1][window], height):
            continue
        claimed[around] = True
        jumps.append(FoundJump(int(row), height, judged))
    return sorted(jumps, key=lambda jump: jump.row)


def _trend(changes: np.ndarray) -> float:
    """The median of the rows' ``changes`` beside a jump where it stands ``TREND_SIGNIFICANCE`` times its own error
    (their robust spread over the square root of their number) from 0, else 0: line offsets scatter the changes of a
    few rows, and a slope read from their scatter would move a jump's lasting change by several rows' worth of it."""
    spread = float(robust_spread(changes)) / np.sqrt(len(changes))
    centre = float(np.median(changes))
    return centre if abs(centre) > TREND_SIGNIFICANCE * spread else 0.0


def _split_alone(strips: np.ndarray, row: int, height: float) -> bool:
    """Whether no strip of columns moves apart from its row by ``ALONE_SHARE`` of a split jump's ``height`` in the rows
    beside its window (``AROUND``; ``strips``: the scan's strips' row changes): a tip change is one moment in quiet
    rows; a frizzy step edge crossing the strips row after row, or features that fill some strips, move them apart in
    many rows. Line offsets move every strip alike and do not count."""
    rows = np.r_[row - AROUND : row - WINDOW, row + WINDOW + 1 : row + AROUND + 1]
    beside = strips[rows]
    return bool(np.abs(beside - beside.mean(axis=1, keepdims=True)).max() <= ALONE_SHARE * abs(height))


def _lasting(around: np.ndarray) -> float:
    """How far the rows' median level over ``AROUND`` rows after a jump's window lies from that over as many rows
    before it (``around``: the rows' changes over ``AROUND`` rows either side of the jump's row): a tip change lasts,
    a line off and back over two lines does not. Medians over rows, so that line offsets weigh less than in one row's
    change, and a change a few rows on does not count."""
    levels = np.concatenate(([0.0], np.cumsum(around)))
    return float(np.median(levels[AROUND + WINDOW + 1 :]) - np.median(levels[: AROUND - WINDOW + 1]))


def _split_spread(strips: np.ndarray) -> float:
    """The spread of the strips of columns' row changes (``_levels``) about their rows' means: what a split within a
    line is judged against (``split_size``)."""
    return max(float(robust_spread(strips - strips.mean(axis=1, keepdims=True))), 1e-300)


def split_size(strips: np.ndarray, spread: float) -> float:
    """The jump that ``strips`` (each strip of columns' change per row over a jump's rows) make at one moment within
    a line, read from the split alone: the strips on one side of the moment jump in one row and those on the other
    side in the next, each row's contrast between those groups standing ``SPLIT_Z`` times ``spread`` (the strips'
    own spread about their rows' means) or more, and every strip's change over the two rows the same within
    ``SPLIT_WHOLE`` of it (a whole line moved: an island's edge moves only its strips; whether the change lasts is
    the caller's to judge, ``_lasting``). The jump is the two contrasts' mean, over the split (the strip holding the
    moment left out of both groups, or none) whose smaller contrast is the largest, read as a trace scanned from the
    top would make it: the strips right of the moment jumping first. A line offset moves every strip alike: it
    cancels in each contrast and in the strips' agreement. The same split read in a mirrored scan order (a retrace,
    or a scan from the bottom) is a jump of the other sign (a trace's rise is a retrace's fall): the caller signs it
    by how the rows' level moved and, where the scan order is known, asks that the two agree. 0 where the rows hold
    no such split."""
    rows, count = strips.shape
    best, best_least = 0.0, 0.0
    for first in range(rows - 1):
        both = strips[first] + strips[first + 1]
        # The strips left of the moment are [0, lo), those right of it [hi, count); the strip between, if any,
        # holds the moment and part of the jump in either row.
        for lo, hi in ((lo, hi) for lo in range(1, count) for hi in (lo, lo + 1) if hi < count):
            right_first = strips[first, hi:].mean() - strips[first, :lo].mean()
            left_next = strips[first + 1, :lo].mean() - strips[first + 1, hi:].mean()
            if right_first * left_next <= 0:
                continue
            size, least = 0.5 * (right_first + left_next), min(abs(right_first), abs(left_next))
            # The largest contrast, not the surest: a split strip in a group takes part of the jump from it.
            standing = least >= SPLIT_Z * spread * np.sqrt(1 / lo + 1 / (count - hi))
            whole = np.abs(both - both.mean()).max() <= SPLIT_WHOLE * abs(size)
            if standing and whole and least > best_least:
                best, best_least = float(size), least
    return best


def _abrupt_whole_lines(raw_strips: np.ndarray, height: float) -> bool:
    """Whether every strip of columns carries at least ``STRIP_SHARE`` of a jump of ``height`` over its rows, and
    makes it abruptly (``ABRUPT``), every strip but one (the strip of the column where the line was split)."""
    sign = np.sign(height)
    totals = (sign * raw_strips).sum(axis=0)
    if np.any(totals < STRIP_SHARE * abs(height)):
        return False
    return strips_spreading(sign * raw_strips, ABRUPT) <= 1


def _in_other_pass(raw_strips: np.ndarray, other_changes: np.ndarray, other_strips: np.ndarray, height: float) -> bool:
    """Whether the other pass carries a jump (at least ``STRIP_SHARE`` of it) whose strips change at the same rows as
    the raw scan's: an edge of the surface, not a moment of the tip."""
    if float(other_changes.sum()) / height < STRIP_SHARE:
        return False
    sign = np.sign(height)
    return bool(np.array_equal(_pattern(raw_strips, sign), _pattern(other_strips, sign)))


def take_off_line_jumps(raw: np.ndarray, jumps: list[FoundJump]) -> tuple[np.ndarray, list[LineJump]]:
    """``raw`` (the scan's rows ``find_line_jumps`` judged) with ``jumps`` taken off, each by its height as judged,
    by moving the rows on its side with fewer rows and mending the line split by it; and the jumps taken off."""
    out = np.array(raw, dtype=np.float64)
    taken = []
    for jump in jumps:
        row, height = jump.row, jump.height
        if row + 1 >= len(out) - row - 1:  # more rows before the jump: move those after it
            out[row + 1 :] -= height
            taken.append(LineJump(row + 1, len(out), height, jump.judged))
        else:
            out[: row + 1] += height
            taken.append(LineJump(0, row + 1, -height, jump.judged))
        _mend_split_line(out, row, height)
    return out, taken


def _mend_split_line(out: np.ndarray, row: int, height: float) -> None:
    """Where the line the tip changed in lies beside the jump of ``height`` after ``row``, part of it was recorded
    before the change and part after, so moving whole rows leaves one part off by the jump: of ``row``, a run of
    columns from one edge (``MIN_PART`` or more) standing ``height`` above the lines either side; of ``row + 1``, one
    standing ``height`` below; the rest of the line within ``PART_TOLERANCE`` of them. That part is moved by the jump
    too, in place."""
    best = None
    for line, expected in ((row, height), (row + 1, -height)):
        if line < 1 or line + 1 >= len(out):
            continue
        off = out[line] - 0.5 * (out[line - 1] + out[line + 1])
        sums = np.concatenate(([0.0], np.cumsum(off)))
        for cut in range(MIN_PART, len(off) - MIN_PART + 1):
            first, rest = sums[cut] / cut, (sums[-1] - sums[cut]) / (len(off) - cut)
            for part, mean, other in ((slice(0, cut), first, rest), (slice(cut, None), rest, first)):
                cost = (mean - expected) ** 2 + other**2
                if best is None or cost < best[0]:
                    best = (cost, line, part, expected)
    if best is not None and best[0] < (PART_TOLERANCE * height) ** 2:
        _, line, part, expected = best
        out[line, part] -= expected

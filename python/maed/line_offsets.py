"""What a scan's line offsets are: independent from line to line, or a random walk; their slow part; steps that are not.

A row alignment (the median of row differences, ``classical.align_rows``) takes a level off each row. Where the
scan's line offsets are drawn anew for every line (independent), their changes from row to row undo each other
(they correlate at -0.5 from one row to the next) and their slow part is small, so the slow part of what an
alignment took off is not offsets: it is the surface's own profile across the rows, or a feature the alignment
mistook for offsets. A molecule or an island that fills most of the rows it lies in moves those rows' medians of
differences, and aligning them draws it as a band across the whole scan. A random walk's changes
do not correlate (-0.15), and its slow part cannot be told from the surface's: there the alignment stands.

Measured through ``maed denoise`` (``rt-plane``, 2026-12-02) on 8 simulated islands of 130 to 240 pixels wide in
scans of 256, 0.2 to 1 in height over white noise of 0.05, with offsets of 0.03 drawn per line: 15.2 -> 21.4 dB mean,
+21 dB on one; 3 of 8 changed. On 2 of the others the island's own alignment error, spread over the rows of its flat
top, makes the offsets' changes correlate above ``INDEPENDENT_OFFSETS``; on 3 its profile is under
``PROFILE_OVER_OFFSETS``; there the band stays, and with a random walk of offsets it stays on all 8. Nothing changed
on this simulator's columns (51 scans of 128 x 128 each, and 8 of 256 x 256), on the scans of ``maed eval
--passes``, on strong independent offsets (twice the surface's rms), on foreign noise, or in what is published of
the 26 real scans. Without ``PROFILE_OVER_OFFSETS`` it changed 5 of the 510 simulated scans, by -24 to +7 dB.

Steps of the surface that run along the rows (``surface_steps``) are the other thing an alignment takes for offsets,
whatever the offsets are: a step edge along the fast axis changes the levels of the rows it crosses far more, over a
few rows, than offsets change them over as many.

Used by the network's normalisation (``normalise.level_rows``: whether the offsets dominate; ``normalise``: the
steps along the rows given back after the network), by the trust guard's fallback (``trust.conservative``) and by
the row levels given back after the network (``row_levels``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .classical import robust_spread

DETREND_ROWS = 4.0
"""Gaussian (rows) of the trend taken off the row levels before their changes are correlated, so that a profile's
edges (a terrace's rows, changing together) do not count."""
INDEPENDENT_OFFSETS = -0.45
"""Correlation of the removed row levels' changes from one row to the next (``changes_correlation``) below which the
offsets count as independent from line to line. Over 256 rows offsets of that kind give -0.50 +- 0.05 (passing in
87 % of draws; over 128 rows -0.50 +- 0.06, 83 %), a random walk -0.15 +- 0.06, and a mix lies between: a walk
whose steps are 0.7 of the independent offsets gives -0.44 +- 0.05, and passes in 40 % of draws."""
MIN_SLOW_ROWS = 64
"""Rows before the slow profile is judged: over fewer, a random walk's changes pass as independent and its slow part
as significant in up to 9 % of frames (the live preview's first rows)."""
SLOW_ROWS = 8.0
"""Gaussian (rows) of the slow profile given back where the offsets are independent: wide enough that the offsets'
own slow part is a small share of it (the sum of the squared weights, 1/(2 sqrt(pi) x 8) = 3.5 % of their
variance)."""
SLOW_SIGNIFICANCE = 4.0
"""The slow profile's variance over the variance the offsets alone would give it, below which nothing is given back:
for independent offsets of a 128-row scan that ratio is 0.3 to 2.7 (5 to 95 %) by chance, and over 4 in under
1 draw of 100."""


def changes_correlation(levels: np.ndarray) -> float:
    """Correlation of row levels' changes with the next row's change, their trend (``DETREND_ROWS``) off first: -0.5
    for independent offsets, -0.15 for a random walk."""
    changes = np.diff(levels - ndimage.gaussian_filter1d(levels, DETREND_ROWS, mode="nearest"))
    if len(changes) < 3 or np.std(changes[:-1]) == 0 or np.std(changes[1:]) == 0:
        return 0.0
    return float(np.corrcoef(changes[:-1], changes[1:])[0, 1])


PROFILE_OVER_OFFSETS = 3.0
"""What an alignment took off goes back (``keep_slow_profile``) only where its slow part is at least this many times its
rough part (the rest, std over std): independent offsets alone leave a slow part of a fifth of their rough one, and a
random walk mixed in raises it: 1.2 to 1.8 on the simulated scans of 128 x 128 whose offsets passed as independent
(putting it back cost up to 24 dB there), 2.6 on one recorded in both passes (-8 dB at a bar of 2). Islands that fill
their rows put 2.1 to 6.7 there (2026-12-02): the bar gives up most of them to stay clear of the walks."""


def independent(levels: np.ndarray) -> bool:
    """Whether row levels are made of offsets independent from line to line (``INDEPENDENT_OFFSETS``), judged only
    on ``MIN_SLOW_ROWS`` rows and more."""
    return len(levels) >= MIN_SLOW_ROWS and changes_correlation(levels) < INDEPENDENT_OFFSETS


def _shares(sigma: float) -> tuple[float, float]:
    """Of white noise's variance, the shares a Gaussian of ``sigma`` rows keeps and leaves (its weights' squares
    summed; the impulse less the weights, squared and summed)."""
    half = int(np.ceil(6 * sigma))
    weights = ndimage.gaussian_filter1d(np.eye(1, 2 * half + 1, half).ravel(), sigma, mode="constant")
    kept = float(np.sum(weights**2))
    return kept, 1.0 - 2.0 * float(weights[half]) + kept


_SLOW_KEPT, _SLOW_LEFT = _shares(SLOW_ROWS)


def slow_profile(levels: np.ndarray) -> np.ndarray:
    """The slow part of row levels made of independent offsets and a profile, less the share the offsets explain
    (zero where the offsets explain it all, ``SLOW_SIGNIFICANCE``)."""
    slow = ndimage.gaussian_filter1d(levels, SLOW_ROWS, mode="nearest")
    by_offsets = np.var(levels - slow) / _SLOW_LEFT * _SLOW_KEPT
    slow_variance = np.var(slow)
    if slow_variance <= SLOW_SIGNIFICANCE * by_offsets:
        return np.zeros_like(levels)
    return (1 - by_offsets / slow_variance) * slow


STEP_SMOOTH = 2.0
"""Gaussian (rows) over the row levels' changes that marks out runs: rows whose smoothed change stays on one side,
beyond ``STEP_SHOULDER`` times its robust spread."""
STEP_SHOULDER = 1.5
STEP_Z = 6.0
"""A run is a step when the levels change across it by this many times what offsets would move them over as many
rows: the smaller of what a random walk of the rows' changes would (their robust spread times the square root of the
run's length) and what the rows away from the runs do over that length (offsets that undo their changes, independent
from line to line, move the levels less). Of 2000 draws each of a random walk, independent offsets, a mix of both,
1/f offsets and a walk with a jump of 20 of its steps, of 128 to 512 rows, at most 1 passed (0.05 %); of 64 rows,
up to 4 (0.2 %, random walks); ``tests/test_line_offsets.py`` keeps 200 draws of 256 rows."""
STEP_SHARE = 0.5
"""A run whose largest single change is this share of its whole change or more is one line's jump (a tip change,
or an edge exactly along one row), which no row levels can tell from an offset, where the strips of columns make it
in one row too (``STEP_SPREAD``): it stays removed."""
ONE_LINE_SHARE = 0.7
"""A run whose largest single change is this share of its whole change or more is one line's jump whatever its strips
of columns do (``STEP_SPREAD``): a line offset beside a feature's rows, which spread the strips' changes."""
TWO_LINES_SHARE = 0.8
"""A run whose two largest single changes hold this share of its change or more is two lines' jumps (two tip changes a
few rows apart, each under ``STEP_SHARE`` of the run) unless it is a narrow edge (``narrow_edge``). Before
(2026-12-05) two equal tip changes 5 rows apart passed as a step in every draw of ``tests/test_line_offsets.py``;
no scan of six blind draws (432) changed."""
NARROW_EDGE_ROWS = 3
NARROW_EDGE_SHARE = 0.8
"""A run whose largest change passes ``STEP_SHARE`` is a narrow step edge only where ``NARROW_EDGE_ROWS`` consecutive
rows hold this share of its change (``narrow_edge``): the blind simulator's straight edges at 0 degrees hold 0.97 in
3 rows; two tip changes 3 rows apart or more hold each their own jump, about half (this simulator's `standing_waves`
scan 23 of ``maed eval --families``: two jumps 5 rows apart passed as an edge without this test, 19.7 -> -2.7 dB)."""
NARROW_EDGE_MIDDLE = 0.15
"""Least share of a narrow edge's change that the middle row of its ``NARROW_EDGE_ROWS`` holds: an edge changes every
row it spans, two tip changes two rows apart leave the row between them still. Two tip changes on consecutive lines
cannot be told from an edge two rows wide, in one pass: they pass as a step."""
STEP_SPREAD = 0.6
"""A run whose largest change passes ``STEP_SHARE`` (not ``ONE_LINE_SHARE``) is still a step (``narrow_edge``) where two
strips of columns or more make less than this share of their change over it in any one row (``strips_spreading``): a
step edge along the rows spreads over the rows its width spans in every column (on the blind simulator's straight
edges at 0 degrees, 2 to 3 rows: the largest row held 0.42 to 0.67 of a strip's change), a tip change moves every
column in one row, all strips but the one holding the column where the line was split. Measured 2026-12-05
(``docs/model.md``): four blind draws (288 scans) 29.55 -> 29.65 dB, 2 changed (`steps` 9200005 23.6 -> 54.4 dB, six
straight edges at 0 degrees; `steps` 9200000 -0.8, frizzy edges); two more draws (144 scans) 29.01 -> 29.51, 4
changed (`steps` 9700005 +35.1, 9700007 +18.7, `islands` 9700004 +18.1, -0.07 on one). Without ``ONE_LINE_SHARE`` a
line offset in the rows of a lattice nearly along the rows passed (-3.1 dB); at 0.8 (``line_jumps.ABRUPT``) two tip
changes 4 rows apart, or one with the rows beside it changing too, passed as steps (-3.0 and -3.4 dB)."""


STRIPS = 4
"""Strips of columns in which a step's change of the rows' levels is measured apart (``STRIP_AGREEMENT``)."""
STRIP_AGREEMENT = 0.5
"""A run is a step only where every strip of columns (``STRIPS``) moves across it by at least this share of its whole
change (``strips_moved``): a step edge along the rows moves them alike across the frame; features that fill part of
the rows (molecules, an island's edge) move their medians of differences, and the alignment's levels with them, where
they lie. Without it, 2 of the 8 hand-built scans of molecules with a tip jump (``benchmarks/hand_built.py``) had a
kink of 12-20 pm given back that the network, seeing the molecules, had already mended (-10 dB on each)."""


def strip_columns(cols: int) -> list[np.ndarray]:
    """The columns of each strip (``STRIPS`` of them, or one a column where there are fewer columns)."""
    return np.array_split(np.arange(cols), min(STRIPS, cols))


def row_changes_by_strip(levelled: np.ndarray) -> np.ndarray:
    """Per row after the first and per strip of columns (``strip_columns``), the median of the row's difference from
    the row before it: (rows - 1, strips)."""
    differences = np.diff(np.asarray(levelled, dtype=np.float64), axis=0)
    strips = strip_columns(differences.shape[1])
    return np.stack([np.median(differences[:, columns], axis=1) for columns in strips], axis=1)


def strips_moved(scan: np.ndarray, first: int, last: int) -> np.ndarray:
    """Per strip of columns (``STRIPS``), how far ``scan`` moves from row ``first`` to row ``last``: the median over
    the strip's columns of the two rows' difference.

    Not the sum of the rows' medians of differences in between (``row_changes_by_strip``): a curved step edge crosses
    a strip over several rows, a part of its columns in each, and where each row's part is under half of them each
    median misses it (on the blind simulator's `steps` 9400005, edges at 0 degrees that meander over 6 rows, one strip
    summed 0.38 of the step and the step was levelled away: 36.4 dB raw, 14.3 published)."""
    difference = np.asarray(scan[last], dtype=np.float64) - scan[first]
    strips = strip_columns(difference.size)
    return np.array([np.median(difference[columns]) for columns in strips])


def surface_steps(levels: np.ndarray, scan: np.ndarray, newest_last: bool = False) -> np.ndarray:
    """The surface's steps along the rows in row levels that an alignment took off: runs of rows whose levels change
    the same way, by far more than offsets change them over as many rows (``STEP_Z``), spread over several rows
    (``STEP_SHARE``) or a narrow edge's few (``narrow_edge``), alike across the frame (``STRIP_AGREEMENT``;
    ``scan``: the plane-levelled scan the alignment was applied to) and not the piezo's creep from the frame's edge
    (``creep_at_frame_edge``; ``newest_last``: the last row is the newest of a frame still being acquired). Returned
    as a profile over the rows from zero at the first (zero where there is no such run): the runs' own changes, less
    the rows' median change (the trend every row shares).

    A step edge that runs along the fast axis changes every pixel of the rows it crosses alike, so an alignment
    takes it for line offsets and erases it: terraces become one ramp (the blind simulator's steps at 0 degrees,
    ``docs/model.md``). Line offsets do not do that: a random walk changes the levels by its own small steps, and
    independent offsets undo their changes the next row. Judged on ``MIN_SLOW_ROWS`` rows and more: over fewer,
    the spreads are too uncertain."""
    levels = np.asarray(levels, dtype=np.float64)
    none = np.zeros_like(levels)
    if len(levels) < MIN_SLOW_ROWS:
        return none
    changes = np.diff(levels)
    strip_changes = row_changes_by_strip(scan)
    smooth = ndimage.gaussian_filter1d(changes, STEP_SMOOTH, mode="nearest")
    kept = np.zeros(changes.size, dtype=bool)
    for _ in range(3):  # the spreads again over the rows away from the runs found, which widen them
        quiet = ~ndimage.binary_dilation(kept, iterations=int(3 * STEP_SMOOTH)) if kept.any() else np.ones_like(kept)
        centre, spread = float(np.median(changes[quiet])), robust_spread(changes[quiet])
        smooth_centre, smooth_spread = float(np.median(smooth[quiet])), robust_spread(smooth[quiet])
        if smooth_spread == 0:
            return none
        z = (smooth - smooth_centre) / smooth_spread
        kept = np.zeros(changes.size, dtype=bool)
        spans: dict[int, float] = {}  # _spread_over by a run's length: O(rows) each, so once per length
        for sign in (1.0, -1.0):
            runs, _ = ndimage.label(sign * z > STEP_SHOULDER)
            for (rows,) in ndimage.find_objects(runs):
                excess = sign * (changes[rows] - centre)
                whole = float(excess.sum())
                if not whole > 0 or creep_at_frame_edge(sign * (smooth - smooth_centre), rows, newest_last):
                    continue
                strip_excess = sign * (strip_changes[rows] - centre)
                share, two_lines = excess.max() / whole, float(np.sort(excess)[-2:].sum()) / whole
                one_moment, two_moments = moment_shares(strip_excess)
                if share >= ONE_LINE_SHARE or (
                    (max(share, one_moment) >= STEP_SHARE or max(two_lines, two_moments) >= TWO_LINES_SHARE)
                    and not narrow_edge(excess, strip_excess)
                ):
                    continue
                moved = sign * (strips_moved(scan, rows.start, rows.stop) - centre * excess.size)
                if moved.min() < STRIP_AGREEMENT * whole:
                    continue
                # What offsets move the levels by over as many rows: as a random walk of the rows' changes would,
                # or as the rows away from the runs do, where that is less (offsets that undo their changes).
                if whole < STEP_Z * spread * np.sqrt(excess.size):
                    if excess.size not in spans:
                        spans[excess.size] = _spread_over(levels, quiet, excess.size, centre)
                    if whole < STEP_Z * spans[excess.size]:
                        continue
                kept[rows] = True
    if not kept.any():
        return none
    return np.concatenate(([0.0], np.cumsum(np.where(kept, changes - float(np.median(changes[~kept])), 0.0))))


MOMENT_EVEN = 0.5
"""A line period's changes of the strips of columns (``moment_shares``) are one moment's jump where each strip's is at
least this share of their mean: a tip change moves every column by as much, a step edge at a small angle crosses
one strip after another, some rows apart."""


MOMENT_CANDIDATES = 4
"""Moments within a line (``moment_shares``), the largest first, each paired with the largest moment apart from it."""


def moment_shares(strip_excess: np.ndarray) -> tuple[float, float]:
    """The shares of a run's change (``strip_excess``: each strip of columns' change per row, signed so that the
    run's change is positive) that one moment of the tip within a line makes, and two: the largest change over one
    line period, begun within a line, in which every strip jumps alike (``MOMENT_EVEN``) and by more than in any one
    row, and that with the largest such period apart from it (begun anywhere), over the run's whole change; 0 where
    there is none. A tip change within a line is split over two rows by the rows' medians (the strips after its
    moment jump in its row, those before in the next), so a row's share undervalues it; in the strips' changes in time
    order (each strip's change per row spans one line period) it is one line period's. A step edge along the rows
    changes them most in one of its rows, not across two halves of rows. Both pass orders along the rows are tried
    (the retrace scans its columns from the right); a scan's row order reverses the series, which keeps its windows.
    Measured on 900018 of ``benchmarks/blind_instruments.py`` (two tip changes within lines, seven rows apart, with
    line offsets of a third of them between): given back as a step, 19.3 dB, against 27.3 without."""
    strips = strip_excess.shape[1]
    whole = float(strip_excess.sum()) / strips
    one, two = 0.0, 0.0
    if not whole > 0:
        return one, two
    for in_time in (strip_excess.ravel(), strip_excess[:, ::-1].ravel()):
        windows = np.lib.stride_tricks.sliding_window_view(in_time, strips)
        means = windows.mean(axis=1)
        jumps = np.where((means > 0) & (windows.min(axis=1) >= MOMENT_EVEN * means), means, 0.0)
        # Only a moment sharper than every row's change tells more than the rows do.
        sharper = means > means[::strips].max()
        within_lines = np.flatnonzero((jumps > 0) & sharper)
        for first in within_lines[np.argsort(jumps[within_lines])[-MOMENT_CANDIDATES:]]:
            apart = jumps.copy()
            apart[max(0, first - strips + 1) : first + strips] = 0.0
            one, two = max(one, jumps[first] / whole), max(two, (jumps[first] + apart.max()) / whole)
    return float(one), float(two)


def narrow_edge(excess: np.ndarray, strip_excess: np.ndarray) -> bool:
    """Whether a run of rows whose largest change or two hold most of it (``STEP_SHARE``, ``TWO_LINES_SHARE``) is a
    narrow step edge along the rows, not one line's jump or two: ``NARROW_EDGE_ROWS`` consecutive rows hold
    ``NARROW_EDGE_SHARE`` of its change, the middle one ``NARROW_EDGE_MIDDLE`` of it, and two strips of columns or
    more make under ``STEP_SPREAD`` of their change over the run in any one row. ``excess``: the run's change per row
    beyond the rows' median change, signed so that its sum is positive; ``strip_excess``: the same per strip."""
    whole = float(excess.sum())
    padded = np.pad(excess, NARROW_EDGE_ROWS - 1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, NARROW_EDGE_ROWS)
    best = windows[np.argmax(windows.sum(axis=1))]
    if best.sum() < NARROW_EDGE_SHARE * whole or best[NARROW_EDGE_ROWS // 2] < NARROW_EDGE_MIDDLE * whole:
        return False
    return strips_spreading(strip_excess, STEP_SPREAD) >= 2


def strips_spreading(strip_change: np.ndarray, share: float) -> int:
    """How many strips of columns make less than ``share`` of their change over a run of rows in any one row
    (``strip_change``: each strip's change per row, signed so that the run's change is positive; a strip whose change
    over the run is not positive spreads nothing). A tip change moves every column in one row; a step edge spreads
    over the rows its width spans."""
    totals = strip_change.sum(axis=0)
    return int(np.sum((totals > 0) & (strip_change.max(axis=0) < share * totals)))


CREEP_EDGE_SHARE = 0.5
"""A run of rows changing together that begins (or ends) within ``CREEP_EDGE_ROWS`` of the frame's first (or last) row
is the piezo's creep where the smoothed change over those rows is on average at least this share of the run's largest
near the edge (``creep_at_frame_edge``). Before (2026-12-05) every run from the frame's first or last row was taken
for creep, and a step edge that the frame cut stayed erased: on the blind simulator (288 scans of four draws) 4 scans
changed, all gaining (`steps` 9300007 29.7 -> 59.6 dB, 9400006 32.9 -> 56.2, 9400010 25.6 -> 39.5, `mixed` 9400006
15.8 -> 40.4). Judged by the smoothed change at the edge row alone, noise let a creep's run start a row in (a creep
passed as a step in 1 of 50 draws of ``tests/test_line_offsets.py``); by the raw changes' first two rows, creeps of
57 rows that the noise hides row by row passed as steps (`atomic` 9100010 -1.0 dB)."""
CREEP_EDGE_ROWS = int(2 * STEP_SMOOTH)
"""Rows from the frame's first or last row within which a run counts as starting there: the noise of the smoothed
changes can end a creep's run a row or two short of the frame's edge."""


def creep_at_frame_edge(change: np.ndarray, rows: slice, newest_last: bool = False) -> bool:
    """Whether a run of ``rows`` reads as the piezo's creep after the move to the scan's start, given the smoothed
    ``change`` of every row beyond the rows' median change: the run begins at the frame's first or last row (the first
    as the slow axis ran; ``CREEP_EDGE_ROWS``) and the change there is near its largest (``CREEP_EDGE_SHARE``), as a
    relaxation's is at its start. A step edge that the frame cut rises from the frame's edge to the edge's middle; a
    run over every row is never a step. The largest is sought from the frame's edge inward until the change falls
    under ``CREEP_EDGE_SHARE`` of the largest so far: a creep that runs into a step edge of its own sign is judged by
    its own start, not by that edge's peak, and the run stays removed, edge and all. ``newest_last``: the last row is
    the newest of a frame still being acquired, not an edge: a run that reaches it may not have ended, and waits."""
    at_start, at_end = rows.start <= CREEP_EDGE_ROWS, rows.stop >= len(change) - CREEP_EDGE_ROWS
    if at_end and (newest_last or at_start):
        return True
    if at_start:
        return _largest_at_edge(change[:CREEP_EDGE_ROWS], change[rows])
    return at_end and _largest_at_edge(change[-CREEP_EDGE_ROWS:][::-1], change[rows][::-1])


def _largest_at_edge(at_edge: np.ndarray, inward: np.ndarray) -> bool:
    """Whether the change over a frame's edge rows (``at_edge``) is on average ``CREEP_EDGE_SHARE`` of the largest of
    a run's changes (``inward``, from the frame's edge), sought until they fall under that share of the largest so
    far."""
    so_far = np.maximum.accumulate(inward)
    fallen = np.flatnonzero(inward < CREEP_EDGE_SHARE * so_far)
    lead = inward[: fallen[0]] if fallen.size else inward
    return bool(at_edge.mean() >= CREEP_EDGE_SHARE * float(lead.max()))


def steps_aligned_away(unaligned: np.ndarray, aligned: np.ndarray) -> np.ndarray:
    """The surface's steps along the rows (``surface_steps``, ``untilted``) that aligning a plane-levelled scan's rows
    (``unaligned`` to ``aligned``) took off with the line offsets: a profile over the rows to give back."""
    unaligned = np.asarray(unaligned, dtype=np.float64)
    return untilted(surface_steps((unaligned - aligned).mean(axis=1), unaligned))


def untilted(profile: np.ndarray) -> np.ndarray:
    """``profile`` (one level per row) less its least-squares line across the rows: the plane fitted to a scan took a
    staircase's line with it (it tilts the terraces), so steps given back to a plane-levelled scan go without it."""
    if not profile.any():
        return profile
    rows = np.arange(len(profile))
    return profile - np.polyval(np.polyfit(rows, profile, 1), rows)


def _spread_over(levels: np.ndarray, quiet: np.ndarray, rows: int, centre: float) -> float:
    """Robust spread of how far ``levels`` move over ``rows`` rows, the trend ``centre`` per row off, where all of
    those rows' changes are ``quiet``; infinite where fewer than 8 such spans are."""
    if rows >= len(levels):
        return float("inf")
    spans = levels[rows:] - levels[:-rows] - centre * rows
    clear = np.convolve(quiet.astype(float), np.ones(rows), mode="valid") == rows
    if clear.sum() < 8:
        return float("inf")
    return max(robust_spread(spans[clear]), 1e-300)


SLOW_ALIKE = 1 / 3
"""A slow profile whose every strip of columns (``STRIPS``) follows it to within this share of its spread
(``slow_alike_across``) moved whole lines: a drift or creep of the height over the scan's time, which a feature that
fills part of the rows does not do; nor can it be told from the surface's own profile along the rows where every
strip follows that (a ridge or bow parallel to the fast axis), which is taken off with it. Measured 2026-12-05
(``docs/model.md``): on the blind simulator (288 scans of four draws) 11 scans had a slow profile kept, 4 of them at
0.03 to 0.25 (a random walk of offsets or a creep on a flat lattice, drawn as bands by the network; +0.3 to +3.1 dB
each aligned), a curved step edge along the rows at 0.46 (-13 dB aligned) and an atomic lattice at 0.49 (+0.3 dB),
the rest at 0.8 and above; one scan of this simulator's families (240 of 256 x 256) at 1.7; none of the real scans
has a slow profile kept."""


def strip_row_medians(levelled: np.ndarray) -> np.ndarray:
    """Each strip of columns' (``STRIPS``) row medians of ``levelled`` (rows, strips)."""
    levelled = np.asarray(levelled, dtype=np.float64)
    return np.stack([np.median(levelled[:, c], axis=1) for c in strip_columns(levelled.shape[1])], axis=1)


def slow_alike_across(levelled: np.ndarray, slow: np.ndarray) -> float:
    """How far the strips of columns (``STRIPS``) of ``levelled`` depart from the slow profile ``slow`` across the rows:
    the largest, over strips, of the spread of the strip's row medians (smoothed as ``slow_profile`` smooths, both
    centred) less ``slow``, over the spread of ``slow``."""
    smoothed = ndimage.gaussian_filter1d(strip_row_medians(levelled), SLOW_ROWS, axis=0, mode="nearest")
    departures = (smoothed - smoothed.mean(axis=0)) - (slow - slow.mean())[:, None]
    return float(departures.std(axis=0).max() / max(float(slow.std()), 1e-300))


def keep_slow_profile(levelled: np.ndarray, aligned: np.ndarray) -> np.ndarray:
    """``aligned`` (``levelled`` with its rows aligned) with the slow profile of what the alignment took off put back
    where that is made of independent offsets (``independent``) and a profile well above them
    (``PROFILE_OVER_OFFSETS``) that not every strip of columns follows (``SLOW_ALIKE``): the rows' own offsets off, a
    feature that fills them left in place. Elsewhere ``aligned`` as it is."""
    aligned = np.asarray(aligned, dtype=np.float64)
    offsets = (np.asarray(levelled, dtype=np.float64) - aligned).mean(axis=1)
    if not independent(offsets):
        return aligned
    slow = slow_profile(offsets)
    if slow.std() < PROFILE_OVER_OFFSETS * (offsets - slow).std():
        return aligned
    if slow_alike_across(levelled, slow) < SLOW_ALIKE:
        return aligned
    return aligned + slow[:, None]


STRIP_BANDING = 2.0
"""Where an alignment raises the spread of one strip's row medians (``STRIPS``) beyond this many times what it was
(``strip_banding``), the levels it took off are not line offsets: offsets move every column of a line alike, so
taking them off lowers that spread in every strip. A feature that fills part of its rows (a molecule across two
thirds of a constant-height current image, a bright defect in a small frame) moves the rows' medians of
differences, and the alignment draws it as bands across the strips beside it, flat before. Measured 2026-12-04
on the scans whose rows ``normalise.level_rows`` aligned: at most 1.30 on the blind simulator (40 of 144 scans),
0.93 on this simulator's families (142 of 240), 0.08 to 1.37 on the real scans but three: the retrace of
``Au_mica_2023_Y_A_diPAMY_195`` (Current; its trace was not aligned, at 1.19 against the 1.2 bar of dominance) at
11.1 and both passes of ``img_0071`` at 5.4 and 6.1 (a bright defect in a 1.5 nm frame), each drawn as bands.
The bar of the conservative result (``maed.trust``); the network's input has a lower one since 2026-12-07
(``normalise.OFFSETS_STRIP_BANDING``: the 1.37 of the real ``STM_nanonis_generic_4_5`` was a terrace edge)."""


def strip_banding(levelled: np.ndarray, aligned: np.ndarray) -> float:
    """The largest, over strips of columns (``STRIPS``), of the spread (standard deviation over the rows) of the
    strip's row medians in ``aligned`` over that in ``levelled`` (the same scan before its rows were aligned)."""
    before, after = (np.array([strip.std() for strip in strip_row_medians(image).T]) for image in (levelled, aligned))
    return float(np.max(after / np.maximum(before, 1e-300)))

"""The input's own row levels, kept where the scan shows no line offsets for a network to remove, and
their slow profile where the offsets are independent from line to line.

A network that levels the rows itself (``rt-plane``: the plane alone comes off before it) must
decide, row by row, how much of a row's level is a line offset (noise: a random walk of the tip
height from line to line) and how much is the surface. On a scan without line offsets it still
moves the rows' levels a little, and smoothly: a slow trend across the rows that the surface does
not have. On quiet simulated scans (white noise alone) that trend costs 1 to 3 dB and puts the
output below the raw scan.

Line offsets show in what the network removed: the residual's row medians jump from row to row
far beyond the noise of a median (1.25 x the residual's spread / sqrt(columns); differences of
such medians have sqrt(2) times that). Where they do not (``OFFSET_EVIDENCE``), the smooth part of
those medians (``SMOOTH_ROWS``) is given back: the rows keep the levels the scan measured, and the
network's denoising within each row stays.

Where they do jump, how they jump tells two kinds of offset apart. Offsets drawn anew for every
line (independent) change from row to row in steps that undo each other: the changes correlate at
-0.5 from one row to the next. A random walk's changes do not correlate (-0.15 once the trend is
off, as the test takes it). Where the offsets are independent (``line_offsets.independent``), their slow
part is small, so the slow part of the removed row levels (``line_offsets.SLOW_ROWS``) is the surface's own
profile across the rows, or a trend the network drew. It is given back, less the share of it that
the offsets' own slow part explains, on scans of ``line_offsets.MIN_SLOW_ROWS`` rows and more.
On foreign noise with offsets drawn line by line (``benchmarks/foreign_noise.py``) this gains
0.6 to 1.9 dB per level, and the scans below the classical pipeline fall from 2-4 to 1 per level.
On the two real scans of 25 where it fires, the profile it gives back is in the other pass too
(the trace/retrace error, rows not matched, falls), as a drift of the tip height common to both
passes would be. Such a drift (1/f in time), and tip changes, are what it gets wrong: their slow
part passes for the surface's (this simulator's families: 15 of 510 scans fire, 14 of them lose 0.6
to 10.8 dB; ``docs/model.md``). So is a weak random walk mixed with independent offsets: with steps
0.3 to 0.7 of the offsets', the changes pass as independent in 46 to 82 % of draws, and then 85 to
93 % of the walk's rms comes back. Where the offsets wander more (a random walk, or a walk whose steps
match the independent offsets'), the network's row levels stand: a walk's slow part cannot be told
from the surface's.

Whatever the offsets, a step edge that runs along the fast axis changes whole rows alike, as an offset does, and
a network that levels the rows itself takes it for one: on a quiet scan of terraces whose edges run along the rows
(the blind simulator's steps at 0 degrees, artefacts scaled to 0.1 and 0.03, ``benchmarks/quiet_scans.py``) it
flattened them, 9.6 and 32 times the raw scan's error. The steps the row levels it removed still hold
(``line_offsets.surface_steps``: a run of rows changing together over several rows, far beyond offsets, alike
across the frame) are given back last: 2.9 and 9.6 times raw there. Of the blind simulator's 72 scans at their own
noise it fires on one (no change); a jump of one line (a tip change) is never a step.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .classical import robust_spread
from .line_offsets import independent, slow_profile, surface_steps, untilted

OFFSET_EVIDENCE = 3.0
"""Row-to-row changes of the removed row levels (standard deviation of the medians' differences) over the noise of
a row's median: sqrt(2) from noise alone, up to 5 where the network took some structure off too (simulated scans
of white noise, 0.05 to 1 times the surface's rms); 10 and more with line offsets, independent from line to line or
a random walk, of every kind simulated; 2.6 to 92 on the real scans."""
SMOOTH_ROWS = 4.0
"""Gaussian (rows) of the row levels given back: the trend, not the row-to-row noise of the medians."""
MIN_ROWS = 8
"""Rows before the row levels are judged."""


def offset_evidence(levelled_input: np.ndarray, output: np.ndarray) -> float:
    """How far the row levels the output removed jump from row to row, in units of a row median's noise."""
    residual = np.asarray(levelled_input, dtype=np.float64) - np.asarray(output, dtype=np.float64)
    return _evidence(residual, np.median(residual, axis=1))


def _evidence(residual: np.ndarray, levels: np.ndarray) -> float:
    spread = robust_spread(residual - levels[:, None])
    if spread == 0:
        return float("inf") if np.ptp(levels) > 0 else 0.0
    return float(np.std(np.diff(levels)) / (np.sqrt(np.pi / 2) * spread / np.sqrt(residual.shape[1])))


def keep_row_levels(levelled_input: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, bool]:
    """``output`` with the row levels' smooth part given back where the scan shows no line offsets
    (``offset_evidence`` under ``OFFSET_EVIDENCE``), their slow profile where the offsets are independent from line
    to line (``line_offsets.independent``); then, where it still lacks them, the surface's steps along the rows
    (``line_offsets.surface_steps``), as ``maed.normalise`` gives them back where the rows were aligned before the
    network. And whether the scan shows line offsets, which the guard asks too (``maed.trust.guard_parts``); fewer
    than ``MIN_ROWS`` rows are left as they are and their levels taken for offsets, as the network made them."""
    x = np.asarray(levelled_input, dtype=np.float64)
    output = np.asarray(output, dtype=np.float64)
    if len(output) < MIN_ROWS:
        return output, True
    residual = x - output
    levels = np.median(residual, axis=1)
    if _evidence(residual, levels) < OFFSET_EVIDENCE:
        return output + ndimage.gaussian_filter1d(levels, SMOOTH_ROWS, mode="nearest")[:, None], False
    if independent(levels):
        slow = slow_profile(levels)
        output, levels = output + slow[:, None], levels - slow  # a level per row moves each row's median alike
    steps = untilted(surface_steps(levels, x))
    return output + steps[:, None], True

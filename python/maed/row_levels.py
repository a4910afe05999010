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
-0.5 from one row to the next. A random walk's changes do not correlate (-0.14 once the trend is
off, as the test takes it). Where the offsets are independent (``INDEPENDENT_OFFSETS``), their slow
part is small, so the slow part of the removed row levels (``SLOW_ROWS``) is the surface's own
profile across the rows, or a trend the network drew. It is given back, less the share of it that
the offsets' own slow part explains, on scans of ``MIN_SLOW_ROWS`` rows and more.
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
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .classical import robust_spread

OFFSET_EVIDENCE = 3.0
"""Row-to-row changes of the removed row levels (standard deviation of the medians' differences) over the noise of
a row's median: sqrt(2) from noise alone, up to 5 where the network took some structure off too (simulated scans
of white noise, 0.05 to 1 times the surface's rms); 10 and more with line offsets, independent from line to line or
a random walk, of every kind simulated; 2.6 to 92 on the real scans."""
SMOOTH_ROWS = 4.0
"""Gaussian (rows) of the row levels given back: the trend, not the row-to-row noise of the medians."""
MIN_ROWS = 8
"""Rows before the row levels are judged."""
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


def offset_evidence(levelled_input: np.ndarray, output: np.ndarray) -> float:
    """How far the row levels the output removed jump from row to row, in units of a row median's noise."""
    residual = np.asarray(levelled_input, dtype=np.float64) - np.asarray(output, dtype=np.float64)
    return _evidence(residual, np.median(residual, axis=1))


def _evidence(residual: np.ndarray, levels: np.ndarray) -> float:
    spread = robust_spread(residual - levels[:, None])
    if spread == 0:
        return float("inf") if np.ptp(levels) > 0 else 0.0
    return float(np.std(np.diff(levels)) / (np.sqrt(np.pi / 2) * spread / np.sqrt(residual.shape[1])))


def changes_correlation(levels: np.ndarray) -> float:
    """Correlation of row levels' changes with the next row's change, their trend (``DETREND_ROWS``) off first: -0.5
    for independent offsets, -0.15 for a random walk."""
    changes = np.diff(levels - ndimage.gaussian_filter1d(levels, DETREND_ROWS, mode="nearest"))
    if len(changes) < 3 or np.std(changes[:-1]) == 0 or np.std(changes[1:]) == 0:
        return 0.0
    return float(np.corrcoef(changes[:-1], changes[1:])[0, 1])


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


def keep_row_levels(levelled_input: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``output`` with the row levels' smooth part given back where the scan shows no line offsets
    (``offset_evidence`` under ``OFFSET_EVIDENCE``), their slow profile where the offsets are independent from line
    to line (``INDEPENDENT_OFFSETS``, ``MIN_SLOW_ROWS``); else ``output`` as it is."""
    output = np.asarray(output, dtype=np.float64)
    if len(output) < MIN_ROWS:
        return output
    residual = np.asarray(levelled_input, dtype=np.float64) - output
    levels = np.median(residual, axis=1)
    if _evidence(residual, levels) < OFFSET_EVIDENCE:
        return output + ndimage.gaussian_filter1d(levels, SMOOTH_ROWS, mode="nearest")[:, None]
    if len(output) >= MIN_SLOW_ROWS and changes_correlation(levels) < INDEPENDENT_OFFSETS:
        return output + slow_profile(levels)[:, None]
    return output

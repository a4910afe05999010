"""The input's own row levels, kept where the scan shows no line offsets for a network to remove.

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
network's denoising within each row stays. Where they do, the network's row levels stand: a
random walk's slow part cannot be told from a trend it invented.
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


def offset_evidence(levelled_input: np.ndarray, output: np.ndarray) -> float:
    """How far the row levels the output removed jump from row to row, in units of a row median's noise."""
    residual = np.asarray(levelled_input, dtype=np.float64) - np.asarray(output, dtype=np.float64)
    levels = np.median(residual, axis=1)
    spread = robust_spread(residual - levels[:, None])
    if spread == 0:
        return float("inf") if np.ptp(levels) > 0 else 0.0
    return float(np.std(np.diff(levels)) / (np.sqrt(np.pi / 2) * spread / np.sqrt(residual.shape[1])))


def keep_row_levels(levelled_input: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``output`` with the smooth part of the row levels it removed given back, where the scan shows no line
    offsets (``offset_evidence`` under ``OFFSET_EVIDENCE``); else ``output`` as it is."""
    output = np.asarray(output, dtype=np.float64)
    if len(output) < MIN_ROWS or offset_evidence(levelled_input, output) >= OFFSET_EVIDENCE:
        return output
    levels = np.median(np.asarray(levelled_input, dtype=np.float64) - output, axis=1)
    return output + ndimage.gaussian_filter1d(levels, SMOOTH_ROWS, mode="nearest")[:, None]

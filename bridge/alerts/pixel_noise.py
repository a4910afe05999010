"""A line's noise from the differences between neighbouring pixels, blind to levels it holds over runs.

The noise-change detector compares a line's noise with the recent lines'. The robust rms of a line less the lines
before it also holds the surface's change from line to line: a terrace edge nearly along the rows, crossed by the
line over much of its length, doubles it for a line or two, as a noisier tip would. A level held over a run of
pixels adds only two large differences between neighbours, at the run's ends, so the smallest differences measure
the noise alone.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

KEPT_SHARE = 0.8
"""The share of a line's differences between neighbours (the smallest) that measure its noise."""
_Z = NormalDist().inv_cdf(0.5 + KEPT_SHARE / 2)
KEPT_VARIANCE = 1 - 2 * _Z * NormalDist().pdf(_Z) / KEPT_SHARE
"""The variance of a unit normal law's values within its central ``KEPT_SHARE`` (0.438 for 80 %)."""


def pixel_noise(residual: np.ndarray) -> float:
    """The rms of white noise that would give ``residual``'s differences between neighbouring pixels, from the
    smallest ``KEPT_SHARE`` of them (each difference holds two pixels' noise). A mean of squares, not a median: on
    a quantised channel the median difference is a whole number of the DAC's steps and jumps between them from line
    to line. 0 for a line of fewer than 3 pixels."""
    if residual.size < 3:
        return 0.0
    squares = np.sort(np.diff(residual) ** 2)[: max(1, int(KEPT_SHARE * (residual.size - 1)))]
    return float(np.sqrt(np.mean(squares) / (2 * KEPT_VARIANCE)))

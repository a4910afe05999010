"""Medians of finite data without ``np.median``'s generic machinery: the detectors' per-line cost.

The scan-health detectors take about a dozen medians of every line (of 3 to 256 values: the lines before it, its
difference from them, recent figures), and ``np.median``'s checks for NaN and its general reduction path cost more
than the partition itself on arrays that small: a fifth of the detectors' time per line. Lines reach the detectors
finite (``bridge.protocol`` refuses NaN and infinity), so a partition gives the same value, bit for bit: the middle
element, or the mean of the two middle ones; of no values, NaN, as ``np.median`` gives (without its warning).
"""

from __future__ import annotations

import numpy as np


def median(values: np.ndarray, axis: int | None = None) -> np.ndarray | np.floating:
    """``np.median(values, axis)`` for finite ``values``, over the flattened array where ``axis`` is None."""
    values = np.asarray(values)
    if axis is None:
        values, axis = values.ravel(), 0
    count = values.shape[axis]
    if count == 0:
        return np.full(np.delete(values.shape, axis), np.nan)[()]
    half = count // 2
    if count % 2:
        return np.take(np.partition(values, half, axis=axis), half, axis=axis)
    parted = np.partition(values, (half - 1, half), axis=axis)
    return (np.take(parted, half - 1, axis=axis) + np.take(parted, half, axis=axis)) / 2

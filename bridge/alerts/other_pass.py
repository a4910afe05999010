"""How alike a line's residual and the other pass's same row are, at the same place.

An event happens in time, in one pass (a scar, a ringing feedback) or from one moment on in both (a noisier tip
adds noise the two passes draw independently); the surface is in both passes at the same place. Their residuals
(each row less its own pass's lines before) correlate where the surface made them, once the passes' x-warp (the
feedback's lag, which shifts the two passes' features opposite ways) is taken off.
"""

from __future__ import annotations

import numpy as np

SAME_PLACE = 0.5
"""The correlation (or, for a tone, the share in place) above which what both passes show at the same place is
the surface."""
WARP = 6
"""The largest shift (pixels) between the two passes' same row that the registration looks at."""


def correlation_at(a: np.ndarray, b: np.ndarray, shift: int) -> float:
    """The correlation of ``a`` with ``b`` moved by ``shift`` pixels (their overlap only)."""
    x, y = (a[shift:], b[: b.size - shift]) if shift >= 0 else (a[:shift], b[-shift:])
    x, y = x - x.mean(), y - y.mean()
    norm = float(np.sqrt(np.sum(x * x) * np.sum(y * y)))
    return float(np.sum(x * y)) / norm if norm > 0 else 0.0


SURE_WARP = 6.0
"""A registration on the lines before alone is taken where the correlation at its shift (``warp``) stands this many
times 1 / sqrt of the pixels compared above 0. Over noise alone a correlation of first differences spreads about
1.2 / sqrt of them, and the best of 13 shifts reaches 0.30 at its 99.9th percentile on 256-pixel lines (a review's
measurement), under this bar of 0.38; a smooth relief the lines before show reached 0.47. Below it the lines before
hold too little surface to lay one pass on the other."""


def sure(correlation: float, pixels: int) -> bool:
    """Whether a registration's ``correlation`` over ``pixels`` stands ``SURE_WARP`` spreads of noise's."""
    return correlation * np.sqrt(max(pixels, 1)) > SURE_WARP


def warp(line: np.ndarray, other_line: np.ndarray) -> tuple[int, float]:
    """The shift (up to ``WARP`` pixels) that best lays the other pass's same row on ``line``, and the correlation
    there: the surface's features, compared by their differences between neighbouring pixels. Given a row plus its
    lines before, it registers the surface on either side of a change in the row."""
    a, b = np.diff(line), np.diff(other_line)
    limit = min(WARP, a.size // 4)
    return max(((s, correlation_at(a, b, s)) for s in range(-limit, limit + 1)), key=lambda pair: pair[1])

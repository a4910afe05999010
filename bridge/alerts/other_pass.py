"""How alike a line's residual and the other pass's same row are, at the same place.

An event happens in time, in one pass (a scar, a ringing feedback) or from one moment on in both (a noisier tip
adds noise the two passes draw independently); the surface is in both passes at the same place. Their residuals
(each row less its own pass's lines before) correlate where the surface made them, up to the passes' x-warp.
"""

from __future__ import annotations

import numpy as np

SAME_PLACE = 0.5
"""The correlation above which what both passes show at the same place is the surface."""


def shifted_correlation(a: np.ndarray, b: np.ndarray, shift: int = 3) -> float:
    """The largest correlation of ``a`` and ``b`` over shifts of up to ``shift`` pixels (the passes' x-warp)."""
    best = 0.0
    for s in range(-shift, shift + 1):
        x, y = (a[s:], b[: b.size - s]) if s >= 0 else (a[:s], b[-s:])
        x, y = x - x.mean(), y - y.mean()
        norm = float(np.sqrt(np.sum(x * x) * np.sum(y * y)))
        if norm > 0:
            best = max(best, float(np.sum(x * y)) / norm)
    return best

"""Drift from frame to frame: how far the surface moved between two scans of one area.

Within one frame a steady drift only shears the image (a lattice looks rotated); what shows it is the
same area scanned again, its features standing elsewhere. When a scan ends complete, its raw trace is
compared with the previous complete scan's if both framed the same area (channel, range and, where the
controller sends them, centre and angle) on grids that reduce alike (512 and 256 pixels a side both reduce
to 256): each is levelled (plane off, rows aligned),
block-averaged to at most ``SIDE`` pixels a side (drift is a matter of whole features, and averaging keeps
the comparison cheap and what is kept between scans small), windowed, and cross-correlated with the
spectrum partly whitened (``WHITENING``: a plain correlation follows the largest, smoothest shapes, a fully
whitened one the noise) and the finest scales weighed down (``SMOOTHING``). The correlation's peak, refined
to a fraction of a pixel, is the shift. It counts only where it stands out of the rest of the correlation
(``MIN_PEAK_Z``), clearly above any other peak (``DOMINANCE``: on a lattice without defects every lattice
vector is as good a shift as the true one, and the frames cannot say which), within ``MAX_SHARE`` of the
frame (beyond that the frames share too little of the area to tell), and where the two frames, so shifted,
agree over the part they share (``MIN_OVERLAP_R``: another area of like features, adsorbates with their
rings, can line up a few of them by chance, never the whole). A flat terrace, or another area, has no shift
to trust: the figures say so.

On simulated surfaces of every family shifted by up to 12 pixels of 256, under white noise of 0.2 to 1 times
the surface's rms and a random walk of line offsets, 40 of 64 shifts were found, every one within 1.5
pixels, and none of 64 unshifted pairs was given a shift; the found shifts' frames agreed over their overlap at
0.72 to 0.99, while 11 chance alignments of 192 pairs of different areas of one family agreed at 0.54 at most
(2026-12-02; ``tests/test_alerts_drift.py`` keeps a few of these cases). On the real scans in ``shared/data/real-stm``
no two of different areas were given a shift, while the one pair of one area (``A200621.160730.dat``, 512 pixels a
side, and ``A200621.161352.dat``, 256, six minutes apart) was: 0.3 pixels of 256, the frames agreeing at 1.00.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from maed.classical import align_rows, level_plane

from .finding import Finding

SIDE = 256
"""Pixels a side the frames are compared at, at most (block means of whole pixels)."""
WHITENING = 0.7
"""The cross spectrum is divided by its magnitude to this power (0: plain correlation, 1: phase correlation)."""
SMOOTHING = 1.5
"""... and weighed by a Gaussian of this many reduced pixels (the finest scales are mostly noise)."""
MIN_PEAK_Z = 10.0
"""How far the correlation's peak must stand above the rest of it (robust standard deviations) to be a shift;
the largest of 65,536 values of noise is about 4.5 of them, the same area scanned twice gives tens ..."""
DOMINANCE = 1.3
"""... and how far above the highest value more than ``APART`` reduced pixels from it."""
APART = 4
AREAS = 8
"""Areas whose last complete scan is kept (a few hundred kB each): a user going back and forth between a few frames
has each compared with its own last scan."""
MAX_SHARE = 0.25
"""Shifts beyond this share of the frame's side are not trusted: the frames share too little."""
MIN_OVERLAP_R = 0.65
"""The least correlation of the two frames over the part they share once shifted (each smoothed like the
correlation, each row's mean off)."""
ALERT_SHARE = 0.02
"""Default share of the frame's side that a shift between frames must reach to be a ``drift`` alert."""


@dataclass(frozen=True)
class Frame:
    """What is kept of a complete scan to compare the next of its area with: its reduced, levelled trace."""

    scan: str
    reduced: np.ndarray
    factor: int
    """Pixels of the scan per pixel of ``reduced``."""
    pixel_m: tuple[float, float]
    """The scan's pixel along rows (y) and columns (x), in the range's unit."""
    ended: float
    """When the scan ended (``time.time()``)."""


@dataclass(frozen=True)
class Shift:
    """Where the surface moved between two frames: ``rows`` down and ``cols`` right, in the scan's pixels."""

    rows: float
    cols: float
    peak_z: float
    overlap_r: float


def reduce(image: np.ndarray) -> tuple[np.ndarray, int]:
    """``image`` levelled (plane, rows aligned) and block-averaged to at most ``SIDE`` pixels a side, and the
    block's side."""
    factor = max(1, math.ceil(max(image.shape) / SIDE))
    levelled = align_rows(level_plane(image))
    rows, cols = (n // factor * factor for n in levelled.shape)
    blocks = levelled[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    return blocks.mean(axis=(1, 3)), factor


def _refine(before: float, at: float, after: float) -> float:
    """Sub-pixel offset of a peak from its three samples (a parabola through them)."""
    curvature = before - 2 * at + after
    return 0.0 if curvature >= 0 else 0.5 * (before - after) / curvature


def frame_shift(previous: np.ndarray, current: np.ndarray) -> tuple[Shift | None, str]:
    """How far ``current``'s features stand from ``previous``'s (same shape, reduced pixels); None, with the reason,
    where the frames give no shift to trust."""
    n_r, n_c = previous.shape
    if min(n_r, n_c) <= 4 * APART or not (np.ptp(previous) > 0 and np.ptp(current) > 0):
        return None, "a frame too small or flat to compare"
    window = np.outer(np.hanning(n_r), np.hanning(n_c))
    a, b = (np.fft.fft2((x - x.mean()) * window) for x in (previous, current))
    cross = b * np.conj(a)
    f_r, f_c = np.fft.fftfreq(n_r)[:, None], np.fft.fftfreq(n_c)[None, :]
    weight = np.exp(-2 * (np.pi * SMOOTHING) ** 2 * (f_r**2 + f_c**2))
    magnitude = np.maximum(np.abs(cross), 1e-30 * np.abs(cross).max())
    correlation = np.real(np.fft.ifft2(cross / magnitude**WHITENING * weight))
    r, c = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    median = float(np.median(correlation))
    spread = max(1.4826 * float(np.median(np.abs(correlation - median))), 1e-300)
    z = (float(correlation[r, c]) - median) / spread
    # Distances from the peak on the torus the correlation lives on.
    d_r = (np.arange(n_r) - r + n_r / 2) % n_r - n_r / 2
    d_c = (np.arange(n_c) - c + n_c / 2) % n_c - n_c / 2
    runner_up = (float(correlation[np.hypot(d_r[:, None], d_c[None, :]) > APART].max()) - median) / spread
    if not (z >= MIN_PEAK_Z and z >= DOMINANCE * runner_up):
        return None, "no shift stands out: too few features, or a lattice that every lattice vector fits"
    dr = _refine(correlation[(r - 1) % n_r, c], correlation[r, c], correlation[(r + 1) % n_r, c])
    dc = _refine(correlation[r, (c - 1) % n_c], correlation[r, c], correlation[r, (c + 1) % n_c])
    # Beyond half the frame the peak has wrapped round: it is a shift the other way.
    rows = (r + dr + n_r / 2) % n_r - n_r / 2
    cols = (c + dc + n_c / 2) % n_c - n_c / 2
    if abs(rows) > MAX_SHARE * n_r or abs(cols) > MAX_SHARE * n_c:
        return None, f"the best shift is over {MAX_SHARE:.0%} of the frame: too little of it shared to tell"
    agreement = overlap_correlation(previous, current, round(rows), round(cols))
    if agreement < MIN_OVERLAP_R:
        return None, f"the frames agree at {agreement:.2f} once shifted, under {MIN_OVERLAP_R}: not one area"
    return Shift(float(rows), float(cols), z, agreement), ""


def overlap_correlation(previous: np.ndarray, current: np.ndarray, rows: int, cols: int) -> float:
    """Correlation of ``current`` with ``previous`` moved ``rows`` down and ``cols`` right, over the part both
    hold, each smoothed by ``SMOOTHING`` and each row's mean off (line offsets are no feature)."""
    a, b = (ndimage.gaussian_filter(x, SMOOTHING) for x in (previous, current))
    n_r, n_c = a.shape
    a = a[max(0, -rows) : n_r - max(0, rows), max(0, -cols) : n_c - max(0, cols)]
    b = b[max(0, rows) : n_r - max(0, -rows), max(0, cols) : n_c - max(0, -cols)]
    a, b = (x - x.mean(axis=1, keepdims=True) for x in (a, b))
    return float((a * b).sum() / max(np.sqrt((a**2).sum() * (b**2).sum()), 1e-300))


class DriftWatch:
    """The last complete scan of each of the ``AREAS`` latest areas, and the drift of each new one of an area against
    it."""

    def __init__(self, alert_share: float = ALERT_SHARE) -> None:
        if not alert_share > 0:
            raise ValueError(f"the drift alert's share of the frame must be > 0, got {alert_share}")
        self.alert_share = alert_share
        self.last: dict[tuple, Frame] = {}
        """By area and reduced grid, the oldest first."""

    def check(
        self, scan: str, area: tuple, trace: np.ndarray, range_: tuple[float, float], ended: float, last_row: int
    ) -> tuple[dict | None, Finding | None]:
        """Take a complete scan's raw ``trace`` (frame orientation), ended at ``ended`` (seconds); return the drift's
        figures against the last scan of the same ``area`` (None: none to compare with) and the alert where it is too
        fast (``last_row``: the row the scan ended on)."""
        reduced, factor = reduce(np.asarray(trace, dtype=np.float64))
        rows, cols = trace.shape
        key = (area, reduced.shape)
        frame = Frame(scan, reduced, factor, (range_[1] / rows, range_[0] / cols), ended)
        last = self.last.pop(key, None)
        self.last[key] = frame
        if len(self.last) > AREAS:
            del self.last[next(iter(self.last))]
        if last is None:
            return None, None
        shift, why = frame_shift(last.reduced, reduced)
        if shift is None:
            return {"since_scan": last.scan, "shift_px": None, "why": why}, None
        dy, dx = shift.rows * factor, shift.cols * factor
        y_m, x_m = dy * frame.pixel_m[0], dx * frame.pixel_m[1]
        # Scans rebuilt from their journals may carry no usable times: a rate is only given over a real interval.
        seconds = ended - last.ended
        share = max(abs(dy) / rows, abs(dx) / cols)
        figures = {
            "since_scan": last.scan,
            "shift_px": [round(dy, 2), round(dx, 2)],
            "shift_m": [y_m, x_m],
            "seconds": round(seconds, 2),
            "rate_m_per_s": math.hypot(y_m, x_m) / seconds if seconds > 0 else None,
            "share": round(share, 4),
            "alert_share": self.alert_share,
            "peak_z": round(shift.peak_z, 1),
            "overlap_r": round(shift.overlap_r, 3),
        }
        if share < self.alert_share:
            return figures, None
        return figures, Finding("drift", last_row, (0, cols), "trace", dict(figures))

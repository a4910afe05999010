"""Feedback trouble in a line: ringing (a narrow band of the residual's spectrum rising) and a crash
(Z held at one value beyond the surface: the piezo at its limit).

Ringing is judged against the recent lines' spectra bin by bin, so a lattice or a pick-up tone that
every line carries sets its own level and only a new tone counts; it must also be narrow (its band
rises far above the bands beside it), which tells it from a scar, a step or noise that grew (broadband);
and where the other pass is at hand, that pass's same row must not carry the same tone at the same place
(``tone_shared``).
"""

from __future__ import annotations

import numpy as np

from .medians import median
from .other_pass import correlation_at

RING_RISE = 30.0
"""The band's power over the recent lines' median in it."""
RING_NARROW = 8.0
"""... and over the rise of the bands beside it."""
RING_PERIODS = (3.0, 20.0)
"""Periods of feedback ringing (pixels) looked at."""
TONE_AMPLITUDE = 0.25
"""A tone the other pass carries at this share of the amplitude or more counts whole (the feedback's lag damps fine
structure more in one pass than in the other: 0.4 on `CO_img_0050`'s molecule); noise alone in the other pass's band
holds about a fifth of a ringing tone's amplitude (a rise of 30)."""
RAIL_RUN = 16
"""Pixels at one exact value that make a crash, when the value lies beyond the recent lines."""


def spectrum(residual: np.ndarray) -> np.ndarray:
    """Power spectrum of a residual line (Hann window, so a run's ends do not spread across the band)."""
    return np.abs(np.fft.rfft(residual * np.hanning(residual.size))) ** 2


def ring_band(cols: int) -> slice:
    """The spectral bins of the ringing periods."""
    low, high = RING_PERIODS
    return slice(max(2, int(cols / high)), int(cols / low) + 1)


def ringing_rise(power: np.ndarray, typical: np.ndarray, band: slice) -> tuple[float, float, int]:
    """(rise, narrowness, bin) of the strongest 3-bin band of ``power`` over ``typical`` within ``band``;
    narrowness is its rise over the larger rise of the bands 4 to 8 bins either side (noise that grew
    over the whole spectrum, or towards its end, rises there too)."""
    kernel = np.ones(3)
    rise = np.convolve(power, kernel, mode="same") / np.maximum(np.convolve(typical, kernel, mode="same"), 1e-300)
    i = int(np.argmax(rise[band])) + band.start
    left, right = rise[max(0, i - 8) : max(0, i - 3)], rise[i + 4 : i + 9]
    flanks = max(float(median(left)) if left.size else 0.0, float(median(right)) if right.size else 0.0)
    return float(rise[i]), float(rise[i] / max(flanks, 1e-300)), i


def tone_shared(residual: np.ndarray, other: np.ndarray, at: int, shift: int) -> float:
    """The share of ``residual``'s tone (within 2 bins of the spectral bin ``at``) that ``other`` (the other pass's
    same row less its lines before, moved by the passes' x-warp ``shift``, ``other_pass.warp``) carries in place:
    their correlation within the band, weighed down where the other's amplitude there is under ``TONE_AMPLITUDE`` of
    this one's."""
    keep = np.zeros(residual.size // 2 + 1)
    keep[max(1, at - 2) : at + 3] = 1.0
    mine, theirs = (np.fft.irfft(np.fft.rfft(x) * keep, x.size) for x in (residual, other))
    power = float(np.sum(mine**2))
    if power <= 0:
        return 0.0
    return max(0.0, correlation_at(mine, theirs, shift)) * min(1.0, float(np.sqrt(np.sum(theirs**2) / power)) / TONE_AMPLITUDE)


def rail_run(line: np.ndarray, low: float, high: float) -> tuple[int, int] | None:
    """Columns ``[start, stop)`` of the longest run of one exact value beyond ``[low, high]`` (the recent
    lines' range), if it is at least ``RAIL_RUN`` long."""
    same = np.flatnonzero(np.diff(line) != 0)  # the last index of each run
    ends = np.concatenate((same + 1, [line.size]))
    starts = np.concatenate(([0], same + 1))
    lengths = ends - starts
    i = int(np.argmax(lengths))
    if lengths[i] < RAIL_RUN:
        return None
    value = line[starts[i]]
    if low <= value <= high:
        return None  # a flat stretch at the surface's own height (a coarse read-out), not a rail
    return int(starts[i]), int(ends[i])

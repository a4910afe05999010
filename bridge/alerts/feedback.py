"""Feedback trouble in a line: ringing (a narrow band of the residual's spectrum rising) and a crash
(Z held at one value beyond the surface: the piezo at its limit).

Ringing is judged in windows of ``RING_WINDOW`` pixels along the line (half-overlapping), each window's spectrum
against the recent lines' at that window, bin by bin, so a lattice or a pick-up tone that every line carries sets
its own level and only a new tone counts. A feedback oscillation dies out within some 15 to 40 pixels of the edge
that set it off; over the whole line its tone was diluted in the noise of the rest (recall 0.21 to 0.33 at 5 line
noise, `docs/results/alerts.md`). A tone must also be narrow (its band rises far above the bands beside it), which
tells it from a scar, a step or noise that grew (broadband); it must not come with as much change at the window's
lowest frequencies (features that appeared, a pair of bumps a period apart, an edge that moved and rings as the
feedback always does after an edge: the scan's own ringing, not a new episode); the line must hold it more than its
lines before do (the end of an episode shows the tone too, taken off); and where the other pass is at hand, that
pass's same row must not carry the same tone at the same place (``tone_shared``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .medians import median
from .other_pass import correlation_at

RING_RISE = 25.0
"""The band's power over the recent lines' median in it; white noise's residuals pass 20 somewhere in about 3 lines
of 10^5 (256-pixel lines, seven windows; a review's Monte Carlo of 1.85 million lines), and the other tests sort the
structure that passes. At 20 a granular film's line on `pySPM_test` (22.9) rang; at 30 an oscillation of twice the
noise that fills 140 pixels of a line (26 to 27 in its windows; the whole line's test found it) went unseen."""
RING_NARROW = 10.0
"""... and over the rise of the bands beside it. Ten, not the eight the whole line's spectrum was judged with: at
eight the windows raised ringing on three real scans where none rings, each at 8.1 to 9.8 (two pits appearing a
period apart on `A200622.190818`'s retrace, a groove on `pySPM_test`, a flat stretch of `createc_scan_close_100nm`);
on the development seeds at ten, 20 of 48 episodes found with the trace alone and 28 of 48 with both passes (10 and
10 over the whole line), one of 200 clean frames' alerts left."""
RING_PERIODS = (3.0, 20.0)
"""Periods of feedback ringing (pixels) looked at, up to a quarter of the window (``RingWindows.band``): 3 to 16 in a
64-pixel window, less on narrower lines."""
LOW_BINS = slice(1, 3)
"""The window spectrum's two lowest bins (periods of a whole and half a window), whose gain ``RING_LOW`` judges;
a tone's own main lobe (two bins either side, under the Hann taper) stays clear of them from bin 5 of the band on,
and reaches bin 2 from bin 4 only by its edge."""
RING_WINDOW = 64
"""Pixels of a line a tone is judged in (windows overlapping by half, the last one flush with the line's end)."""
RING_FLANKS = (3, 6)
"""The bands beside a tone's band: this many bins of the window's spectrum away from it, nearest and farthest."""
RING_LOW = 0.2
"""The most power the window's two lowest bins (periods of a half and a whole window) may gain over the recent lines'
there, as a share of the tone's band: a damped oscillation carries little that slow (about (period / (pi decay))^2 of
its band), while a feature that appeared or an edge that moved, whose bumps can fall a period apart, carries as much
there as in its tone-like part. On development seeds (TEST_SEED_BASE + 900 000, 48 ringing episodes and 100 clean
frames per mode, every other bar met) the episodes found held 0 to 0.27 (50 of 58 under 0.2), the clean frames'
alerts 0.2 to 2.1."""
TONE_AMPLITUDE = 0.25
"""A tone the other pass carries at this share of the amplitude or more counts whole (the feedback's lag damps fine
structure more in one pass than in the other: 0.4 on `CO_img_0050`'s molecule); noise alone in the other pass's band
holds about a fifth of a ringing tone's amplitude (a rise of 30)."""
RAIL_RUN = 16
"""Pixels at one exact value that make a crash, when the value lies beyond the recent lines."""


@dataclass(frozen=True)
class RingWindows:
    """The windows a line of ``cols`` pixels is judged in for ringing."""

    size: int
    starts: np.ndarray
    taper: np.ndarray
    band: slice
    """The window spectrum's bins of the ringing periods."""

    @classmethod
    def of(cls, cols: int) -> RingWindows:
        size = min(RING_WINDOW, cols)
        starts = np.arange(0, cols - size + 1, max(1, size // 2))
        if starts[-1] != cols - size:
            starts = np.append(starts, cols - size)
        low, high = RING_PERIODS
        # A band from bin 4 on: below it a tone's main lobe reaches the low bins, and its own power there would read
        # as a feature that appeared (a 12-pixel tone on a 32-pixel line never rang).
        return cls(size, starts, np.hanning(size), slice(max(4, int(np.ceil(size / high))), int(size / low) + 1))

    def period(self, power: np.ndarray, at: int) -> float:
        """The period (pixels) of a window's tone at bin ``at``, its peak placed between bins by a parabola through
        the log power of the bin and its neighbours (a bin of a 64-pixel window is a coarse step in period)."""
        left, mid, right = np.log(np.maximum(power[at - 1 : at + 2], 1e-300))
        curve = left - 2 * mid + right
        offset = 0.5 * (left - right) / curve if curve < 0 else 0.0
        return float(self.size / (at + float(np.clip(offset, -0.5, 0.5))))

    def span(self, rising: np.ndarray, window: int) -> tuple[int, int]:
        """Columns of the run of windows, ``window`` among them, where ``rising`` (per window) holds: where a tone
        rings, as far as the windows tell it."""
        first = last = window
        while first > 0 and rising[first - 1]:
            first -= 1
        while last < len(rising) - 1 and rising[last + 1]:
            last += 1
        return int(self.starts[first]), int(self.starts[last]) + self.size

    def segments(self, line: np.ndarray) -> np.ndarray:
        """The line's windows, each less its mean and tapered (Hann: a run's ends do not spread across the band)."""
        segments = line[self.starts[:, None] + np.arange(self.size)]
        return (segments - segments.mean(axis=1, keepdims=True)) * self.taper


def spectra(residual: np.ndarray, windows: RingWindows) -> np.ndarray:
    """Power spectra of a residual line's windows, one row each."""
    return np.abs(np.fft.rfft(windows.segments(residual), axis=1)) ** 2


def _three_bins(power: np.ndarray) -> np.ndarray:
    """Each bin's power with its two neighbours' (the ends with their one), along the last axis."""
    bands = power.copy()  # slices, not np.pad: a tenth of a line's cost went to padding
    bands[..., 1:] += power[..., :-1]
    bands[..., :-1] += power[..., 1:]
    return bands


def rises(power: np.ndarray, typical: np.ndarray) -> np.ndarray:
    """The rise of every window's 3-bin band at every bin: ``power`` (windows' spectra) over ``typical``."""
    return _three_bins(power) / np.maximum(_three_bins(typical), 1e-300)


@dataclass(frozen=True)
class Tone:
    """The strongest new tone of a line's windows."""

    rise: float
    narrowness: float
    """Its rise over the larger rise of the bands ``RING_FLANKS`` bins either side (0 where no window's band both
    rose above ``RING_RISE`` and was narrow, or kept ``RING_LOW``: not a ringing tone)."""
    window: int
    at: int
    """Its bin in the window's spectrum."""
    low: float
    """The power the window's two lowest bins gained over the recent lines', as a share of the tone's band power."""

    def rings(self) -> bool:
        return self.rise > RING_RISE and self.narrowness > RING_NARROW and self.low <= RING_LOW


NO_TONE = Tone(0.0, 0.0, 0, 0, 0.0)


def strongest_tone(power: np.ndarray, typical: np.ndarray, band: slice) -> Tone:
    """The window whose tone rings most among those that ring (``Tone.rings``), else the strongest band of any
    window (for the record; it does not ring). Every test is made before the choice: a feature in one window must
    not hide a ringing tone in another."""
    if band.stop <= band.start:
        return NO_TONE  # a line too narrow for a period of 3 pixels beyond bin 4
    rise = rises(power, typical)
    at = np.argmax(rise[:, band], axis=1) + band.start
    peaks = rise[np.arange(len(rise)), at]
    near, far = RING_FLANKS
    best = None
    for w in np.flatnonzero(peaks > RING_RISE):  # rare: the flanks' medians only here
        i = int(at[w])
        left, right = rise[w, max(0, i - far) : max(0, i - near + 1)], rise[w, i + near : i + far + 1]
        flanks = max(float(median(left)) if left.size else 0.0, float(median(right)) if right.size else 0.0)
        gained = max(float(power[w, LOW_BINS].sum() - typical[w, LOW_BINS].sum()), 0.0)
        low = gained / max(float(_three_bins(power[w])[i]), 1e-300)
        tone = Tone(float(peaks[w]), float(peaks[w] / max(flanks, 1e-300)), int(w), i, low)
        if tone.rings() and (best is None or tone.rise > best.rise):
            best = tone
    if best is not None:
        return best
    w = int(np.argmax(peaks))
    return Tone(float(peaks[w]), 0.0, w, int(at[w]), 0.0)


def held_by_line(line: np.ndarray, before: np.ndarray, windows: RingWindows, tone: Tone) -> bool:
    """Whether ``line`` holds the tone's band more than its lines before do: a tone that rises in the residual (the
    line less its lines before) because it left the line is an episode's end."""
    mine, theirs = (np.fft.rfft(windows.segments(x)[tone.window]) for x in (line, before))
    band = slice(max(1, tone.at - 1), tone.at + 2)
    return float(np.sum(np.abs(mine[band]) ** 2 - np.abs(theirs[band]) ** 2)) > 0


def tone_shared(residual: np.ndarray, other: np.ndarray, windows: RingWindows, tone: Tone, shift: int) -> float:
    """The share of ``residual``'s tone (its bin ``tone.at`` in its window) that ``other`` (the other pass's same row
    less its lines before, moved by the passes' x-warp ``shift``, ``other_pass.warp``) carries in place: their
    correlation within the bin over the window, weighed down where the other's amplitude there is under
    ``TONE_AMPLITUDE`` of this one's."""
    keep = np.zeros(windows.size // 2 + 1)
    keep[tone.at] = 1.0
    mine, theirs = (np.fft.irfft(np.fft.rfft(windows.segments(x)[tone.window]) * keep, windows.size) for x in (residual, other))
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

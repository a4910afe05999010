"""Creep of the z piezo at the start of a frame: found in a denoised frame and taken off it.

After a large move (the approach, a new frame's offset, a change of bias or setpoint) the z piezo goes on
relaxing for a while: the tip height drifts exponentially in time over the first tens of lines. Every column
of a line moves alike, so it is neither the surface nor line offsets that change from line to line: a
network that takes the offsets out keeps it as a slow profile across the rows, and
``row_levels.keep_row_levels`` gives it back as the surface's own where the offsets are independent. On the
blind simulator (``benchmarks/blind_score.py``), which draws such creep in 3 frames of 10 with amplitudes of
10 to 500 pm, it was the largest error of 5 of the 72 scans (islands at 23.7 dB against the classical
pipeline's 41.3), and the slow profile across the rows is, over all its scans, worth 3 dB of its mean
(taking the output's slow row error away by oracle: 29.8 -> 32.8 dB).

It is sought in the frame's row profile that every column shares: per row, the median over strips of columns
of each strip's median change from the row before (``line_offsets.row_changes_by_strip``: a feature over part
of the columns does not move it), through a running median over ``STEP_ROWS`` rows (a step edge along the
rows, crossing them within one or two, does not either), summed over the rows. That profile is fitted by a line
plus ``A exp(-t / tau)``, ``t`` counted in rows from the row scanned first (the top row, or the bottom one where
the scan ran up and its frame was turned for display), ``tau`` from ``MIN_TAU_ROWS`` rows to half the frame
(``MAX_TAU_SHARE``). Only from that row: on the blind simulator, searched from either end, the 2 fits of 20 that
relaxed from the row scanned last were both wrong (-9.5 and -12 dB), and every one from the first gained. It is
taken off where

- the exponential explains most of the profile that a line does not (``SHARE``), relaxing within the frame (its
  best time constant is not the longest tried), and
- each strip of columns, fitted on its own with the same exponential, moved by the same amount within a factor
  of ``STRIP_FACTOR`` (what every column moves alike is the instrument; the surface's terraces and islands move
  some strips and not others: diagonal steps make a bowed shared profile, but each strip sees its own staircase).
  A strip's amplitude is fitted two ways, and it agrees where either does: by least squares over its whole
  profile, which a terrace or an island of its own adds to, and robustly over its row changes (Tukey's biweight),
  which leaves out the rows where an edge crosses the strip within a few rows but can lose the relaxation itself
  where an island's smooth flank changes the strip over as many rows. A strip without the relaxation agrees
  neither way. Measured with ``rt-plane`` (2026-12-05) on the blind simulator's two draws of 72 scans: the robust
  fit alone found 3 more creeps (+14.0, +4.5, +5.4 dB: steps that cross the rows at 10 degrees, pits, islands) and
  lost 2 it had found (islands 9100009 -16.5 dB, where the relaxation and the islands' flanks share the first 80
  rows); either fit found the 3 and lost none. On this simulator's columns (240 scans of 256 rows, no creep drawn)
  it fired once more (``hard``, +1.9 dB: a slow relaxation of its drift), and on the 26 real scans as before (never).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .classical import robust_spread
from .line_offsets import row_changes_by_strip

MIN_ROWS = 192
"""Rows before creep is sought. Measured with ``rt-plane`` (2026-12-03) at 128 rows: it fired on 2 of 360 of this
project's simulated scans, which draw no creep (-1.0 and -1.9 dB), and on 1 of 144 blind ones (+0.8 dB); at 256
rows on none of the 360 and on 18 of 408 blind ones, every one gaining. Between the two, unmeasured: the mid-point."""
STEP_ROWS = 5
"""Running median (rows) over the row changes: a step edge that crosses the rows within one or two is left out."""
MIN_TAU_ROWS = 2.0
"""Shortest time constant (rows) sought: a faster relaxation is over within a line or two, as a tip change is."""
MAX_TAU_SHARE = 0.5
"""Longest time constant tried, as a share of the frame's rows. A fit whose best time constant is the longest tried
is no relaxation seen to its end but a bow across the frame, as the surface can have: it is left alone."""
TAUS = 60
"""Time constants tried, spaced evenly in their logarithm."""
SHARE = 0.85
"""Share of the shared row profile's variance about a line that the exponential must explain. Measured with
``rt-plane`` (2026-12-03) on the blind simulator's 168 scans of two draws: frames with creep of 200 pm and more
reach 0.86 to 0.998; every frame where taking the fit off lost 2 dB or more is under it, or fails ``STRIP_FACTOR``."""
STRIP_FACTOR = 2.0
"""Each strip's own amplitude must lie within this factor of the shared one (same sign)."""


TUKEY = 4.685
"""Tukey's biweight constant (robust spreads): rows of a strip whose change the fit misses by more get no weight."""
ROBUST_ITERATIONS = 10
"""Reweightings of each strip's robust fit."""


@dataclass(frozen=True, eq=False)  # eq=False: it holds an array, which == cannot compare to one truth value
class Creep:
    """An exponential relaxation of z over the rows, as found in a frame."""

    relaxation: np.ndarray
    """Per row, the height the creep added: ``amplitude`` at the row scanned first, fading towards 0."""
    amplitude: float
    """Height of the creep at the row it starts from, in the frame's units."""
    tau_rows: float
    """Its time constant, in rows."""
    from_row: str
    """``"first"`` (the top row) or ``"last"``: the end of the frame it relaxes from, the row scanned first."""
    before_network: bool = False
    """Found in the raw scan and taken off before the network (``maed.denoise.denoise_guarded``), not after it."""

    @property
    def profile(self) -> np.ndarray:
        """What is taken off each row of the frame: ``relaxation`` less its mean, so the frame keeps its level."""
        return self.relaxation - self.relaxation.mean()


def record(creep: Creep | None) -> dict:
    """The ``z_creep`` entry of ``<stem>.json`` for ``creep`` (None: none was taken off); a new dict each call."""
    if creep is None:
        return {"taken_off": False}
    return {
        "taken_off": True,
        "amplitude": creep.amplitude,
        "tau_rows": round(creep.tau_rows, 1),
        "from_row": creep.from_row,
        "before_network": creep.before_network,
    }


def _smoothed(changes: np.ndarray) -> np.ndarray:
    """Row changes (rows - 1, strips) through a running median over ``STEP_ROWS`` rows."""
    return ndimage.median_filter(changes, size=(STEP_ROWS, 1), mode="nearest")


def _profiles(changes: np.ndarray) -> np.ndarray:
    """Row profiles (rows, strips) from row changes (rows - 1, strips): running median, then summed from zero."""
    return np.vstack([np.zeros((1, changes.shape[1])), np.cumsum(_smoothed(changes), axis=0)])


def _about_line(columns: np.ndarray) -> np.ndarray:
    """``columns`` (rows, k) less each one's least-squares line over the rows."""
    rows = len(columns)
    line = np.linalg.qr(np.column_stack([np.ones(rows), np.arange(rows) / rows]))[0]  # a projection: lstsq's SVD costs 4 times more
    return columns - line @ (line.T @ columns)


def _robust_strip_amplitudes(changes: np.ndarray, decay: np.ndarray) -> np.ndarray:
    """Per strip of columns, the amplitude of ``decay`` (one per row) in the strip's row changes (``changes``: rows - 1,
    strips), a constant change per row (the line about which the profile is fitted) beside it, fitted robustly
    (Tukey's biweight, ``TUKEY`` robust spreads): a step edge crosses a strip within a few rows, and the
    rows where it changes the strip's levels get no weight, where a relaxation changes every row of every strip."""
    changes = _smoothed(changes)
    design = np.column_stack([np.diff(decay), np.ones(len(decay) - 1)])
    amplitudes = np.empty(changes.shape[1])
    for strip, change in enumerate(changes.T):
        weights = np.ones_like(change)
        for _ in range(ROBUST_ITERATIONS):
            root = np.sqrt(weights)
            coefficients = np.linalg.lstsq(design * root[:, None], change * root, rcond=None)[0]
            residual = change - design @ coefficients
            spread = robust_spread(residual)
            if spread == 0:
                break
            weights = np.clip(1 - (residual / (TUKEY * spread)) ** 2, 0, None) ** 2
        amplitudes[strip] = coefficients[0]
    return amplitudes


def within_factor(amplitudes: np.ndarray | float, amplitude: float, factor: float = STRIP_FACTOR) -> np.ndarray:
    """Whether each of ``amplitudes`` lies within ``factor`` of ``amplitude`` (not zero), with its sign."""
    ratios = np.asarray(amplitudes) / amplitude
    return (ratios >= 1 / factor) & (ratios <= factor)


def _shared_profile(changes: np.ndarray) -> np.ndarray:
    """The row profile every strip of columns shares, about its line: from the median over the strips of their row
    changes (``changes``: rows - 1, strips; ``line_offsets.row_changes_by_strip``)."""
    return _about_line(_profiles(np.median(changes, axis=1, keepdims=True)))[:, 0]


def find_creep(frame: np.ndarray, scanned_up: bool = False) -> Creep | None:
    """The creep of z in ``frame`` (rows, columns; no NaN), or None where there is none to take off (see the
    module's docstring). ``scanned_up``: the frame's last row was scanned first."""
    frame = np.asarray(frame, dtype=np.float64)
    rows = len(frame)
    if rows < MIN_ROWS:
        return None
    changes = row_changes_by_strip(frame)
    shared = _shared_profile(changes)
    since = np.arange(rows, dtype=np.float64)[::-1] if scanned_up else np.arange(rows, dtype=np.float64)
    taus = np.geomspace(MIN_TAU_ROWS, MAX_TAU_SHARE * rows, TAUS)
    decays = np.exp(-since[:, None] / taus)  # (rows, TAUS)
    residual_decays = _about_line(decays)
    # A line plus one decay, fitted by least squares: the decay's share of the profile about the line is the
    # square of their correlation once both have their lines taken off.
    dots = residual_decays.T @ shared
    norms = (residual_decays**2).sum(axis=0)
    shares = dots**2 / np.maximum(norms * float(shared @ shared), np.finfo(float).tiny)
    best = int(np.argmax(shares))
    if shares[best] < SHARE or best == TAUS - 1:
        return None
    amplitude = float(dots[best] / norms[best])
    whole = (residual_decays[:, best] @ _about_line(_profiles(changes))) / norms[best]
    agrees = within_factor(whole, amplitude)
    if not agrees.all():  # the robust fit (about 4 ms on 256 rows, twice the rest) only where the whole profile's disagrees
        agrees[~agrees] = within_factor(_robust_strip_amplitudes(changes[:, ~agrees], decays[:, best]), amplitude)
    if not agrees.all():
        return None
    return Creep(amplitude * decays[:, best], amplitude, float(taus[best]), "last" if scanned_up else "first")


def left_in(frame: np.ndarray, creep: Creep) -> float:
    """How much of ``creep`` (found in the raw scan) ``frame`` (its published rows) still holds: the amplitude of the
    creep's own relaxation in the frame's shared row profile (as ``find_creep`` measures it), over the creep's."""
    frame = np.asarray(frame, dtype=np.float64)
    shared = _shared_profile(row_changes_by_strip(frame))
    decay = _about_line(creep.relaxation[:, None])[:, 0]
    return float(decay @ shared / max(float(decay @ decay), np.finfo(float).tiny))

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

Where they jump, they must jump in every strip of columns of the input too (``offsets_in_every_strip``): an offset
moves every column of a line alike. Where some strip does not move, the network took noise that only part of the rows
hold (a molecule's current, noisy as the current is high, beside a quiet substrate) for offsets, and drew its levels
across the rest as bands: the input's own row levels come back, all of them.

Where they do jump, how they jump tells two kinds of offset apart. Offsets drawn anew for every
line (independent) change from row to row in steps that undo each other: the changes correlate at
-0.5 from one row to the next. A random walk's changes do not correlate (-0.15 once the trend is
off, as the test takes it). Where the offsets are independent (``line_offsets.independent``), their slow
part is small, so the slow part of the removed row levels (``line_offsets.SLOW_ROWS``) is the surface's own
profile across the rows, or a trend the network drew. It is given back, less the share of it that
the offsets' own slow part explains, on scans of ``line_offsets.MIN_SLOW_ROWS`` rows and more.
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

Where the scan shows no line offsets but the smooth row levels the network took off are most of a slow profile that
every strip of columns of the input shares (``drift_taken_off``), they stay off: a drift of the tip height in time
moves every column of a line alike, while relief across the rows (islands, molecules) differs from strip to strip. On
a lattice or a flat terrace such a profile can only be drift. What one pass cannot tell from it is relief alike
across the whole width (a bow, a terrace edge exactly along the rows): there the network's levelling stands, with the
steps along the rows given back (below). A drift that relaxes as the z piezo creeps, and a tip change (a jump of whole
lines, alike in every column too), are given back as before, for their own fits to take off the raw scan
(``maed.z_creep``, ``maed.line_jumps``). Measured 2026-12-06 (``docs/model.md``): on the first blind
simulator's draws 1 to 4 (288 scans) it changed two, both below the classical pipeline before (`atomic` 9300002
34.1 -> 39.2 dB, `adatoms_and_waves` 9300008 27.6 -> 35.7); on draws 7 to 10 one (+0.05); at 512 pixels and on the
crystals, molecules and instruments simulators (144 scans) none.

Whatever the offsets, a step edge that runs along the fast axis changes whole rows alike, as an offset does, and
a network that levels the rows itself takes it for one: on a quiet scan of terraces whose edges run along the rows
(the blind simulator's steps at 0 degrees, artefacts scaled to 0.1 and 0.03, ``benchmarks/quiet_scans.py``) it
flattened them, 9.6 and 32 times the raw scan's error. The steps the row levels it removed still hold
(``line_offsets.surface_steps``: a run of rows changing together over several rows, far beyond offsets, alike
across the frame) are given back last: 2.9 and 9.6 times raw there. Of the blind simulator's 72 scans at their own
noise it fires on one (no change); a jump of one line (a tip change) is never a step.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .classical import robust_spread
from .line_jumps import find_line_jumps
from .line_offsets import independent, slow_profile, strip_row_medians, surface_steps, untilted
from .z_creep import find_creep

OFFSET_EVIDENCE = 3.0
"""Row-to-row changes of the removed row levels (standard deviation of the medians' differences) over the noise of
a row's median: sqrt(2) from noise alone, up to 5 where the network took some structure off too (simulated scans
of white noise, 0.05 to 1 times the surface's rms); 10 and more with line offsets, independent from line to line or
a random walk, of every kind simulated; 2.6 to 92 on the real scans."""
SMOOTH_ROWS = 4.0
"""Gaussian (rows) of the row levels given back: the trend, not the row-to-row noise of the medians."""
MIN_ROWS = 8
"""Rows before the row levels are judged."""


STRIP_SUPPORT = 0.5
"""Least that every strip of columns' (``line_offsets.STRIPS``) row medians of the input must change from row to row
(standard deviation of their differences), over how much the row levels the network removed change, for those levels
to be line offsets (``offsets_in_every_strip``). An offset moves every column of a line alike, so each strip changes
as much as the offsets do and more (its median has noise and relief of its own): 1.02 and up on the blind
simulators' 52 scans whose removed levels showed offsets, 1.18 and up on the real scans' 34 passes. A network that
takes noise concentrated in part of the rows for offsets (a molecule's noisy current, the rest of the frame quiet)
removes levels that the quiet strips lack: 0.26 and 0.06 on the passes of the constant-height current
``Au_mica_2023_Y_A_diPAMY_195``, whose output had bands of 13 pA on a substrate whose row means vary by 1.6 pA."""

DRIFT_DISAGREEMENT = 0.3
"""Most that the strips of columns' slow row profiles (``_strips_slow_profiles``) may spread about their mean, over
that mean's variance, for the profile to be one every strip shares: a drift of the tip height in time moves every
column of a line alike; relief across the rows (islands, molecules) differs from strip to strip. Strips of noise alone
spread 3 times their mean's variance."""
DRIFT_TAKEN = 0.5
"""Least share of the strips' shared slow profile that the network took off (the row levels it removed, smoothed,
regressed on that profile) for it to stay off as a drift."""


def _strips_slow_profiles(x: np.ndarray) -> np.ndarray:
    """Each strip of columns' (``line_offsets.STRIPS``) row medians, smoothed over ``SMOOTH_ROWS`` and centred
    (rows, strips)."""
    profiles = ndimage.gaussian_filter1d(strip_row_medians(x), SMOOTH_ROWS, axis=0, mode="nearest")
    return profiles - profiles.mean(axis=0)


def drift_taken_off(x: np.ndarray, removed: np.ndarray) -> bool:
    """Whether ``removed`` (the smooth row levels a network took off ``x``) is a drift of the tip height: most of a
    slow row profile that every strip of columns of ``x`` shares (``DRIFT_DISAGREEMENT``, ``DRIFT_TAKEN``)."""
    profiles = _strips_slow_profiles(x)
    shared = profiles.mean(axis=1)
    power = float(shared @ shared)
    if power == 0:
        return False
    disagreement = float(np.mean((profiles - shared[:, None]) ** 2)) / (power / len(shared))
    taken = float((removed - removed.mean()) @ shared) / power
    return disagreement < DRIFT_DISAGREEMENT and taken > DRIFT_TAKEN


def _creep_or_tip_change(frame: np.ndarray, x: np.ndarray) -> bool:
    """Whether ``frame`` (the network's output with the row levels given back) holds a creep of z, scanned from either
    end, or a tip change of ``x`` (``maed.line_jumps``)."""
    return find_creep(frame) is not None or find_creep(frame, True) is not None or bool(find_line_jumps(frame, x))


def offsets_in_every_strip(x: np.ndarray, levels: np.ndarray) -> bool:
    """Whether every strip of columns of ``x`` changes from row to row as much as ``levels`` (the row levels a network
    removed) do, as line offsets make them (``STRIP_SUPPORT``)."""
    changes = np.diff(strip_row_medians(x), axis=0)
    return bool(changes.std(axis=0).min() >= STRIP_SUPPORT * np.diff(levels).std())


def offset_evidence(levelled_input: np.ndarray, output: np.ndarray) -> float:
    """How far the row levels the output removed jump from row to row, in units of a row median's noise."""
    residual = np.asarray(levelled_input, dtype=np.float64) - np.asarray(output, dtype=np.float64)
    return _evidence(residual, np.median(residual, axis=1))


def _evidence(residual: np.ndarray, levels: np.ndarray) -> float:
    spread = robust_spread(residual - levels[:, None])
    if spread == 0:
        return float("inf") if np.ptp(levels) > 0 else 0.0
    return float(np.std(np.diff(levels)) / (np.sqrt(np.pi / 2) * spread / np.sqrt(residual.shape[1])))


def keep_row_levels(levelled_input: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, bool]:
    """``output`` with the row levels' smooth part given back where the scan shows no line offsets
    (``offset_evidence`` under ``OFFSET_EVIDENCE``) unless that part is a drift (``drift_taken_off``), all of them
    where they jump more than some strip of columns of the input does (``offsets_in_every_strip``), their slow
    profile where the offsets are independent from line to line (``line_offsets.independent``); then, where it still
    lacks them, the surface's steps along the rows (``line_offsets.surface_steps``), as ``maed.normalise`` gives them
    back where the rows were aligned before the network. And whether the scan shows line offsets (a drift counts as
    slow ones), which the guard asks too (``maed.trust.guard_parts``); fewer than ``MIN_ROWS`` rows are left as they
    are and their levels taken for offsets, as the network made them."""
    x = np.asarray(levelled_input, dtype=np.float64)
    output = np.asarray(output, dtype=np.float64)
    if len(output) < MIN_ROWS:
        return output, True
    residual = x - output
    levels = np.median(residual, axis=1)
    if _evidence(residual, levels) < OFFSET_EVIDENCE:
        smooth = ndimage.gaussian_filter1d(levels, SMOOTH_ROWS, mode="nearest")
        kept = output + smooth[:, None]
        # A drift that relaxes as the z piezo creeps, and a tip change, are left to their own fits
        # (``maed.denoise``), which take them off the raw scan first where the frame still holds them: given back.
        if not drift_taken_off(x, smooth) or _creep_or_tip_change(kept, x):
            return kept, False
        return output + untilted(surface_steps(levels, x))[:, None], True
    if not offsets_in_every_strip(x, levels):
        return output + levels[:, None], False
    if independent(levels):
        slow = slow_profile(levels)
        output, levels = output + slow[:, None], levels - slow  # a level per row moves each row's median alike
    steps = untilted(surface_steps(levels, x))
    return output + steps[:, None], True

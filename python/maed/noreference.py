"""Checks of a denoiser on real scans, which have no clean reference to compare with.

Both checks look at the input ``a`` and the output ``b`` after the same levelling (the best
plane and line offsets that the denoiser takes off, so the intended line-offset removal is no
part of the residual ``a - b``):

- residual whiteness: the normalised autocorrelation of the residual, less each row's median
  (the line offsets), at lags 2 to 8 pixels along the rows (x) and across them (y), averaged
  in absolute value. What a good denoiser
  removes is noise, uncorrelated beyond a pixel or so; structure removed with it (edges,
  atoms) or leftover streaks correlate over several pixels. White noise gives about
  ``0.8 / sqrt(pixels)``, a few thousandths; structure gives tenths.
- lattice-peak power: the input's significant non-central Fourier peaks (atomic lattices,
  superstructures, and periodic noise alike) are found, and the power in them is compared
  between input, output and residual: ``kept`` is the output's share of the input's peak power
  and ``in_residual`` the residual's. A denoiser that keeps a lattice has kept near 1 and
  in_residual near 0; one that smooths it away has the reverse.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from .classical import robust_spread
from .lattice import peak_mask, power_spectrum, significant_peaks

LAGS = range(2, 9)


def autocorrelation(residual: np.ndarray, axis: int, lags=LAGS) -> np.ndarray:
    """Normalised autocorrelation of ``residual`` (mean removed) at ``lags`` pixels along ``axis``."""
    r = residual - residual.mean()
    energy = float((r * r).sum())
    if energy == 0:
        return np.zeros(len(lags))
    r = np.moveaxis(r, axis, 0)
    return np.array([float((r[:-k] * r[k:]).sum()) / energy for k in lags])


def whiteness(residual: np.ndarray) -> dict[str, float]:
    """Mean |autocorrelation| at lags 2-8 along the rows (x), across them (y), and both, beyond line offsets.

    Each row's median comes off the residual first: line offsets are scan noise the denoiser
    removes on purpose, and constant along a row they would dominate the correlation along x.
    """
    residual = residual - np.median(residual, axis=1, keepdims=True)
    x = float(np.abs(autocorrelation(residual, axis=1)).mean())
    y = float(np.abs(autocorrelation(residual, axis=0)).mean())
    return {"x": x, "y": y, "mean": (x + y) / 2}


def lattice_power(levelled_input: np.ndarray, levelled_output: np.ndarray) -> dict:
    """Number of the input's spectral peaks, and the shares of their power kept and in the residual."""
    p_in = power_spectrum(levelled_input)
    peaks = significant_peaks(p_in)
    if len(peaks) == 0:
        return {"peaks": 0, "kept": None, "in_residual": None}
    mask = peak_mask(p_in.shape, peaks)
    total = float(p_in[mask].sum())
    kept = float(power_spectrum(levelled_output)[mask].sum()) / total
    removed = float(power_spectrum(levelled_input - levelled_output)[mask].sum()) / total
    return {"peaks": int(len(peaks)), "kept": kept, "in_residual": removed}


# ---- the checks of ``maed eval --real`` that use both passes, and point defects -------------------


def slow_axis_whiteness(residual: np.ndarray, lags=LAGS) -> float:
    """Mean |autocorrelation| at ``lags`` of the residual across its rows (the slow axis), each row's mean off.

    Raw STM noise is correlated along the rows (the fast axis: the feedback loop and the
    preamplifier filter it in time) and independent from one row to the next, so a residual of
    noise alone is white across the rows, while removed structure is not.
    """
    r = residual - residual.mean(axis=1, keepdims=True)
    return float(np.abs(autocorrelation(r, axis=0, lags=lags)).mean())


def removed_rms(residual: np.ndarray) -> float:
    """Root mean square of the residual with each row's mean off: how much a method removed beyond line offsets."""
    r = residual - residual.mean(axis=1, keepdims=True)
    return float(np.sqrt((r * r).mean()))


def match_rows(levelled_input: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``output`` with the per-row offsets of ``input - output`` put back: row levelling is not judged.

    Each method levels the rows its own way (row medians, medians of row differences); the
    offsets it chose are line noise removed on purpose, so they come off every residual alike.
    """
    residual = levelled_input - output
    return output + residual.mean(axis=1, keepdims=True)


SAME_PLACE = 0.5
"""A trace peak is a lattice peak if the retrace holds at least this share of its power at the same place."""


def classify_peaks(trace: np.ndarray, retrace: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The trace's significant spectral peaks split into (lattice, moving).

    A lattice peak sits at the same place in the trace's and the retrace's spectra: the retrace's
    3x3-bin power at the peak (its strongest 3x3 within one bin of it) is at least ``SAME_PLACE``
    of the trace's. A peak that moved between the passes is pick-up in time (its place in the
    spectrum depends on the pass's time order), and a denoiser should remove it.
    """
    p_trace, p_retrace = power_spectrum(trace), power_spectrum(retrace)
    peaks = significant_peaks(p_trace)
    box = np.ones((3, 3))
    sum_t = ndimage.correlate(p_trace, box, mode="wrap")
    best_r = ndimage.maximum_filter(ndimage.correlate(p_retrace, box, mode="wrap"), size=3, mode="wrap")
    if len(peaks) == 0:
        return peaks, peaks
    same = best_r[tuple(peaks.T)] >= SAME_PLACE * sum_t[tuple(peaks.T)]
    return peaks[same], peaks[~same]


def peak_power(levelled_input: np.ndarray, levelled_output: np.ndarray, peaks: np.ndarray) -> dict:
    """Shares of the input's power at ``peaks`` (3x3 bins each) kept in the output and left in the residual."""
    if len(peaks) == 0:
        return {"peaks": 0, "kept": None, "in_residual": None}
    p_in = power_spectrum(levelled_input)
    mask = peak_mask(p_in.shape, peaks)
    total = float(p_in[mask].sum())
    kept = float(power_spectrum(levelled_output)[mask].sum()) / total
    removed = float(power_spectrum(levelled_input - levelled_output)[mask].sum()) / total
    return {"peaks": int(len(peaks)), "kept": kept, "in_residual": removed}


DEFECT_RADIUS = 4
"""Pixels, at scale 1: a point defect is the extremum of the classical output over a square of this half-side."""
ANNULUS = (6, 10)
"""Pixels, at scale 1: the ring around a defect whose median is its local level, and where new extrema are sought."""
SCALES = (1.0, 1.4, 2.0, 2.8, 4.0, 5.6, 8.0)
"""Defects are sought at these multiples of ``DEFECT_RADIUS`` and ``ANNULUS``: they range from a pixel to tens."""
DEFECTS = 3
"""At most this many point defects per scan: the most isolated extrema."""
MIN_ISOLATION = 6.0
"""A defect stands this many robust standard deviations of its ring (and of the classical residual) out of it."""


def _ring(scale: float) -> tuple[int, np.ndarray]:
    """Outer radius (whole pixels) and the boolean ring ``ANNULUS`` x ``scale`` in a square of that half-side."""
    inner, outer = ANNULUS[0] * scale, ANNULUS[1] * scale
    k = int(np.ceil(outer))
    y, x = np.mgrid[-k : k + 1, -k : k + 1]
    d = np.hypot(y, x)
    return k, (d >= inner) & (d <= outer)


def _ring_values(image: np.ndarray, defect: dict) -> np.ndarray:
    k, ring = _ring(defect["scale"])
    r, c = defect["row"], defect["col"]
    return image[r - k : r + k + 1, c - k : c + k + 1][ring]


VALUES_AT_ONCE = 1 << 20
"""Values ``find_defects`` gathers at once (8 MB of float64): its candidates' rings and squares go in chunks."""
BLOCK = 4
"""Pixels: the side of the blocks whose lowest values bound a candidate's ring from below (``find_defects``)."""


@lru_cache(maxsize=64)
def _ring_offsets(scale: float, cols: int) -> tuple[int, np.ndarray]:
    """``_ring``'s outer radius, and its pixels as offsets from its centre in a flattened image of ``cols`` columns."""
    k, ring = _ring(scale)
    rows_in, cols_in = np.nonzero(ring)
    offsets = (rows_in - k) * cols + (cols_in - k)
    offsets.flags.writeable = False  # shared by every call through the cache
    return k, offsets


def _chunks(count: int, width: int) -> list[slice]:
    """Slices of ``count`` candidates whose rows of ``width`` gathered values hold at most ``VALUES_AT_ONCE``."""
    step = max(1, VALUES_AT_ONCE // width)
    return [slice(start, start + step) for start in range(0, count, step)]


def _isolations(flat: np.ndarray, centres: np.ndarray, offsets: np.ndarray, noise_rms: float) -> np.ndarray:
    """Isolation of each candidate maximum (``find_defects``), NaN where it has no chance of ``MIN_ISOLATION``.

    ``centres`` are the candidates' indices into the flattened image ``flat``, ``offsets`` the ring's pixels
    relative to a centre: each chunk of candidates gathers its rings as one array, a row per candidate, so the
    medians are taken along the rows at once rather than a candidate at a time.
    """
    isolation = np.full(len(centres), np.nan)
    floor = max(noise_rms, 1e-300)
    for part in _chunks(len(centres), len(offsets)):
        at = centres[part]
        values = flat[at[:, None] + offsets]
        median = np.median(values, axis=1)
        depth = flat[at] - median
        # The spread only ever lowers the isolation below depth / noise_rms: where that is short already, the
        # ring's spread is not measured.
        hope = (depth > 0) & (depth / floor >= MIN_ISOLATION)
        spread = robust_spread(values[hope], axis=1)
        isolation[part][hope] = depth[hope] / np.maximum(np.maximum(spread, noise_rms), 1e-300)
    return isolation


def _spaced(reach: int, step: int) -> np.ndarray:
    """Offsets from ``-reach`` to ``reach``, both included, no more than ``step`` apart."""
    return np.unique(np.r_[np.arange(-reach, reach, step), reach])


def _isolated_maxima(image: np.ndarray, noise_rms: float) -> list[tuple[float, int, int, float]]:
    """(isolation, row, column, scale) of the local maxima of ``image`` that ``find_defects`` could keep as bright.

    Each scale's candidates are among the last scale's (a maximum over a larger square is one over the smaller
    square too; ``SCALES`` grow), so the image is filtered once, at the first scale: a larger square is the
    union of first-scale squares no further apart than their side, and its maximum the largest of theirs.
    """
    rows, cols = image.shape
    flat = image.ravel()
    half = round(DEFECT_RADIUS * SCALES[0])
    first = ndimage.maximum_filter(image, size=2 * half + 1, mode="nearest").ravel()
    centres = np.flatnonzero(flat == first)
    # Edge padding repeats a block's own pixels, so it leaves each block's lowest value as it is.
    padded = np.pad(image, ((0, -rows % BLOCK), (0, -cols % BLOCK)), mode="edge")
    block_low = padded.reshape(padded.shape[0] // BLOCK, BLOCK, padded.shape[1] // BLOCK, BLOCK).min(axis=(1, 3))
    floor = max(noise_rms, 1e-300)
    found = []
    for scale in SCALES:
        k, offsets = _ring_offsets(scale, cols)
        if 2 * k + 1 > min(rows, cols):
            break
        r, c = np.divmod(centres, cols)
        centres = centres[(r >= k) & (r < rows - k) & (c >= k) & (c < cols - k)]
        steps = _spaced(round(DEFECT_RADIUS * scale) - half, 2 * half + 1)
        squares = (steps[:, None] * cols + steps[None, :]).ravel()
        largest = np.empty(len(centres))
        for part in _chunks(len(centres), len(squares)):
            largest[part] = first[centres[part, None] + squares].max(axis=1)
        centres = centres[flat[centres] == largest]
        # The blocks within ceil(k / BLOCK) of a candidate's block hold its ring, so their lowest value is at
        # most the ring's median, and the spread's floor is noise_rms: a candidate under MIN_ISOLATION by this
        # bound cannot reach it (rounding is monotonic, so the bound holds in floating point too).
        low = ndimage.minimum_filter(block_low, size=2 * -(-k // BLOCK) + 1, mode="nearest")
        r, c = np.divmod(centres, cols)
        hopeful = centres[(flat[centres] - low[r // BLOCK, c // BLOCK]) / floor >= MIN_ISOLATION]
        isolation = _isolations(flat, hopeful, offsets, noise_rms)
        kept = isolation >= MIN_ISOLATION
        found += [(float(i), int(at // cols), int(at % cols), scale) for i, at in zip(isolation[kept], hopeful[kept])]
    return found


def find_defects(classical: np.ndarray, noise_rms: float, count: int = DEFECTS) -> list[dict]:
    """The few most isolated local extrema of the classical output: the scan's point defects.

    At each scale of ``SCALES``, a candidate is a pixel that is the maximum (bright) or minimum
    (dark) of the classical output over the square of half-side ``DEFECT_RADIUS`` x scale around
    it, with its whole ring (``ANNULUS`` x scale) inside the scan. Its isolation is its depth
    (value less the ring's median) over the larger of the ring's robust spread (1.4826 MAD) and
    the classical residual's rms (``noise_rms``): a step edge (whose ring spans both terraces)
    or an atom of a lattice (whose ring holds the lattice) scores low, an isolated adsorbate or
    vacancy high, and highest at the scale whose ring just clears it. The ``count`` most
    isolated candidates over all scales with at least ``MIN_ISOLATION`` are kept, none within
    another's ring.

    A candidate whose height above the lowest value near its ring (the ``BLOCK``-pixel blocks that hold it) is
    under ``MIN_ISOLATION`` x ``noise_rms`` cannot reach ``MIN_ISOLATION``, so its ring is never measured: on a
    noisy or flat scan most candidates go so, and the rest are measured together. On 256 x 256 simulated scans
    (CPU time on a busy core) that takes 7 to 15 ms with the simulator's noise and up to 30 ms on nearly clean
    ones, where measuring candidate by candidate took 40 to 170 ms.
    """
    classical = np.asarray(classical, dtype=np.float64)
    # A minimum is a maximum of the negated image, with the same isolation: negation is exact, medians too.
    scored = [
        (isolation, r, c, sign, scale) for sign in (1, -1) for isolation, r, c, scale in _isolated_maxima(sign * classical, noise_rms)
    ]
    scored.sort(reverse=True)
    chosen: list[dict] = []
    for isolation, r, c, sign, scale in scored:
        if len(chosen) == count:
            break
        reach = ANNULUS[1] * scale
        if all(np.hypot(r - d["row"], c - d["col"]) > max(reach, ANNULUS[1] * d["scale"]) for d in chosen):
            chosen.append({"row": r, "col": c, "kind": "bright" if sign > 0 else "dark", "scale": scale, "isolation": isolation})
    return chosen


def defect_depth(image: np.ndarray, defect: dict) -> float:
    """Mean height of ``image`` over the 3x3 pixels at the defect less the median of its ring.

    The 3x3 mean keeps a raw image's pixel noise out of its depth (to a third, where white);
    every image is measured alike, so the depths' ratios compare them.
    """
    r, c = defect["row"], defect["col"]
    return float(image[r - 1 : r + 2, c - 1 : c + 2].mean() - np.median(_ring_values(image, defect)))


def change_beside(residual: np.ndarray, defect: dict) -> float:
    """Largest |3x3 mean of the residual| over the defect's ring: a new (or erased) extremum beside it.

    Averaging over 3x3 pixels takes most of the removed pixel noise out of the residual (to a
    third of its rms where it is white, about half where it is correlated along the rows), so
    what remains is a change on the scale of a feature: ringing or a pattern the method put
    there, or structure it took away.
    """
    return changes_beside(residual, [defect])[0]


def changes_beside(residual: np.ndarray, defects: list[dict]) -> list[float]:
    """``change_beside`` of each of ``defects``, the residual smoothed once."""
    smoothed = ndimage.uniform_filter(residual, size=3, mode="nearest")
    return [float(np.abs(_ring_values(smoothed, defect)).max()) for defect in defects]

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

import numpy as np

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

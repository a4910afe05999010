"""BM3D as a reference denoiser for ``maed eval --real``, where the ``bm3d`` package is installed.

``bm3d`` (PyPI; Tampere University) filters noise of a given power spectral density, so it can
be told that STM noise is correlated along the rows. Its licence allows non-commercial use
only: it is an optional evaluation extra (``pip install maed[eval]``), never a dependency of the
product, and nothing but this module imports it.

The noise PSD is estimated from the one pass being denoised, robustly, from row-to-row
differences: rows are recorded at different times, so their noise is independent while the
surface changes little from one row to the next. Each difference row's spectrum along x holds
twice the noise's 1-D spectrum; the median over the rows of the power in each frequency bin,
divided by ln 2 (the median of an exponential variable over its mean), estimates it and
shrugs off the few rows that cross an edge or a defect; a running median over 5 bins smooths
it. The 2-D PSD is that spectrum along x, the same for every frequency across the rows (noise
independent between rows), in the package's convention (white noise of variance s^2 on M x N
pixels: M N s^2 in every bin). Structure that changes from row to row (a lattice of a few
pixels' period across the rows) counts as noise here, so the estimate errs high there.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_LN2 = np.log(2.0)


def available() -> bool:
    """Whether the optional ``bm3d`` package can be imported."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def noise_psd(image: np.ndarray) -> np.ndarray:
    """The noise PSD of a levelled image, as ``bm3d`` takes it (unshifted, M N s^2 for white noise)."""
    rows, cols = image.shape
    d = np.diff(np.asarray(image, dtype=np.float64), axis=0)
    d = d - np.median(d, axis=1, keepdims=True)  # what is left of the line offsets
    per_row = np.abs(np.fft.fft(d, axis=1)) ** 2
    spectrum = np.median(per_row, axis=0) / _LN2
    spectrum = ndimage.median_filter(spectrum, size=5, mode="wrap")
    spectrum[0] = spectrum[1]  # the zero bin holds the (removed) offsets, not noise
    return np.tile(rows * spectrum / 2, (rows, 1))


def equivalent_sigma(psd: np.ndarray) -> float:
    """The standard deviation of the noise a PSD describes (its mean over M N, square-rooted)."""
    return float(np.sqrt(psd.mean() / psd.size))


class _NumpyWithTrapz:
    """numpy as ``bm4d`` (which ``bm3d`` runs on) expects it: bm4d 4.2.5 calls ``np.trapz``, gone in numpy 2.4."""

    def __getattr__(self, name: str):
        return np.trapezoid if name == "trapz" else getattr(np, name)


def _import_bm3d():
    import bm3d
    import bm4d

    if not hasattr(np, "trapz") and bm4d.np is np:
        bm4d.np = _NumpyWithTrapz()  # only bm4d's own reference changes; numpy itself is left alone
    return bm3d


def denoise(image: np.ndarray) -> tuple[np.ndarray, float]:
    """BM3D's estimate of a levelled image under its own estimated noise PSD, and that noise's sigma."""
    bm3d = _import_bm3d()

    image = np.asarray(image, dtype=np.float64)
    scale = float(image.std()) or 1.0
    psd = noise_psd(image / scale)
    out = bm3d.bm3d(image / scale, psd)
    return np.asarray(out, dtype=np.float64) * scale, equivalent_sigma(psd) * scale

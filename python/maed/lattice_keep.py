"""Lattice peaks the network removed, given back from the scan itself where the other pass confirms them.

A network that damps or erases a lattice (softened atoms, a weaker superstructure) has taken
real, periodic structure into its residual. Periodic structure is what a Fourier peak is, and
the raw scan carries it with the noise of only a few bins, so the removed part can be given back
exactly: the residual's Fourier components in the bins around each lattice peak are added back
to the output, which then holds the input's lattice in full, with the network's denoising
everywhere else.

Periodic noise (mains pick-up, vibration) is a Fourier peak too, and must stay removed. The two
passes of a scan line tell them apart (``maed.noreference.classify_peaks``): a lattice peak sits
at the same place in the trace's and the retrace's spectra, while pick-up in time lands
elsewhere in a pass recorded the other way. So peaks are given back only where the other pass
is at hand; a single pass cannot tell a lattice from pick-up (giving back every peak of one
pass restores pick-up too, several dB worse on simulated scans), and is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .noreference import classify_peaks

HALF_WIDTH = 2
"""Bins each side of a peak given back: a lattice between bins, drifting or creeping, spreads over them."""


def _symmetric_mask(shape: tuple[int, int], centred_peaks: np.ndarray) -> np.ndarray:
    """Bins within ``HALF_WIDTH`` of each peak and of its mirror image, in numpy's unshifted order."""
    rows, cols = shape
    mask = np.zeros(shape, dtype=bool)
    # Centred index i is frequency i - n // 2 (fftshift); unshifted, that frequency sits at (i - n // 2) % n.
    r = (centred_peaks[:, 0] - rows // 2) % rows
    c = (centred_peaks[:, 1] - cols // 2) % cols
    mask[r, c] = True
    mask[(-r) % rows, (-c) % cols] = True  # a real image's spectrum is symmetric: both halves or none
    size = 2 * HALF_WIDTH + 1
    return ndimage.binary_dilation(np.pad(mask, HALF_WIDTH, mode="wrap"), np.ones((size, size), bool))[
        HALF_WIDTH:HALF_WIDTH + rows, HALF_WIDTH:HALF_WIDTH + cols]


@dataclass(frozen=True)
class LatticePeaks:
    """The Fourier bins of a scan's lattice peaks, confirmed by its other pass."""

    mask: np.ndarray
    """Bins within ``HALF_WIDTH`` of each lattice peak and its mirror image, numpy's unshifted order."""
    peaks: int
    """Lattice peaks (a peak and its mirror image count as two)."""

    def give_back(self, levelled_input: np.ndarray, output: np.ndarray) -> np.ndarray:
        """``output`` with the input's Fourier components at the lattice bins in place of its own."""
        if not self.peaks:
            return np.asarray(output, dtype=np.float64)
        residual = np.asarray(levelled_input, dtype=np.float64) - output
        return output + np.fft.ifft2(np.fft.fft2(residual) * self.mask).real


def lattice_peaks(levelled_input: np.ndarray, levelled_other_pass: np.ndarray) -> LatticePeaks:
    """The input's lattice peaks: its significant Fourier peaks that the other pass shows at the same place.

    ``levelled_other_pass``: the same rows of the other pass, in this pass's orientation (as the
    readers return a retrace); no registration is needed, as a shift does not move a peak.
    """
    x = np.asarray(levelled_input, dtype=np.float64)
    if np.shape(levelled_other_pass) != x.shape:
        raise ValueError(f"the other pass {np.shape(levelled_other_pass)} and this pass {x.shape} differ in shape")
    lattice, _ = classify_peaks(x, np.asarray(levelled_other_pass, dtype=np.float64))
    if not len(lattice):
        return LatticePeaks(np.zeros(x.shape, dtype=bool), 0)
    return LatticePeaks(_symmetric_mask(x.shape, lattice), len(lattice))

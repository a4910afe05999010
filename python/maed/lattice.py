"""Fourier peaks of a scan (lattices, superstructures, periodic noise), and whether a denoiser keeps them.

A denoiser must not move, invent or reshape a lattice: the physicist reads lattice constants and
symmetry off the positions of the spectrum's peaks and the kind of reconstruction off their
relative strengths. ``significant_peaks`` finds the peaks that stand out of a spectrum;
``find_peaks`` keeps the strongest of a reference image's (the clean surface, or the raw scan
where there is no clean one); ``check_peaks`` finds the same peaks in another image, each within
one bin, and says how far they moved and how their power changed. Peak power is the power summed
over the 3 x 3 bins around the peak, so a peak that falls between bins is not undercounted.
Used by Fig. 6 of ``maed eval`` and by the no-reference checks of ``maed eval --real``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .classical import level_plane

BACKGROUND_BINS = 15  # median window of the spectral background: wider than a peak, narrower than its spacing
MIN_RADIUS = 4  # bins; nearer the centre is the scan's overall shape (terraces, bow), not a lattice
FALSE_PEAKS = 0.1  # expected number of noise bins passing the threshold in a pure-noise spectrum
MIN_SHARE = 1e-5  # of the power outside the centre: weaker peaks are invisible in the image and its spectrum


def power_spectrum(image: np.ndarray) -> np.ndarray:
    """Centred Fourier power of the plane-levelled image under a Hann window (which keeps peaks compact)."""
    window = np.outer(np.hanning(image.shape[0]), np.hanning(image.shape[1]))
    return np.abs(np.fft.fftshift(np.fft.fft2(level_plane(image) * window))) ** 2


def _segment_medians(power: np.ndarray, rows: np.ndarray, cols: np.ndarray, axis: int) -> np.ndarray:
    """Per bin (``rows``, ``cols``: index arrays of one shape), the median of the ``BACKGROUND_BINS`` bins centred on it
    along ``axis`` (0: its column, 1: its row), the spectrum taken as periodic."""
    steps = np.arange(BACKGROUND_BINS) - BACKGROUND_BINS // 2
    if axis == 0:
        segments = power[(rows[..., None] + steps) % power.shape[0], cols[..., None]]
    else:
        segments = power[rows[..., None], (cols[..., None] + steps) % power.shape[1]]
    return np.median(segments, axis=-1)


FULL_MAP_SHARE = 40
"""``background_at`` asked for more than 1/``FULL_MAP_SHARE`` of a spectrum's bins computes the whole map instead: at each
bin alone the medians cost about as much as the whole map's filters once 1/37 of the bins are asked for (256 x 256
and 128 x 128, one core)."""


def _background_map(power: np.ndarray) -> np.ndarray:
    """The local background of every bin of ``power``: three median filters over the whole spectrum."""
    n = BACKGROUND_BINS
    along_rows = ndimage.median_filter(power, size=(1, n), mode="wrap")
    return np.maximum.reduce(
        [ndimage.median_filter(along_rows, size=(n, 1), mode="wrap"), ndimage.median_filter(power, size=(n, 1), mode="wrap"), along_rows]
    )


def background_at(power: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The spectrum's local background (see ``significant_peaks``) at the bins ``rows``, ``cols`` (index arrays of
    one shape, taken modulo the spectrum's).

    Computed at those bins alone (once each, however often asked): the peak search and the lattice give-back need it
    at a few hundred bins, and three median filters over the whole spectrum were a third of what the live guard spent
    on a frame. Where they ask for many bins (a textured scan's many candidate lattices), the whole map is cheaper."""
    rows, cols = np.broadcast_arrays(np.asarray(rows, dtype=np.intp), np.asarray(cols, dtype=np.intp))
    flat = np.ravel_multi_index((rows % power.shape[0], cols % power.shape[1]), power.shape)
    bins, where = np.unique(flat, return_inverse=True)
    if bins.size * FULL_MAP_SHARE > power.size:
        return _background_map(power).ravel()[flat]
    r, c = np.unravel_index(bins, power.shape)
    steps = np.arange(BACKGROUND_BINS) - BACKGROUND_BINS // 2
    column_rows = (r[:, None] + steps) % power.shape[0]
    # The square's median: the median over its column of each of its rows' medians.
    square = np.median(_segment_medians(power, column_rows, np.broadcast_to(c[:, None], column_rows.shape), 1), axis=-1)
    values = np.maximum.reduce([square, _segment_medians(power, r, c, 0), _segment_medians(power, r, c, 1)])
    return values[where].reshape(rows.shape)


def outside_centre(shape: tuple[int, int]) -> np.ndarray:
    """The bins of a centred spectrum of ``shape`` at ``MIN_RADIUS`` or more from its centre: beyond the scan's overall
    shape."""
    r, c = np.indices(shape)
    return np.hypot(r - shape[0] // 2, c - shape[1] // 2) >= MIN_RADIUS


def significant_peaks(power: np.ndarray) -> np.ndarray:
    """(row, column) of the spectrum's significant isolated peaks, as an (n, 2) array.

    A peak is a local maximum (3x3) that stands ``log2(10 * bins)`` times above its spectral
    background (``background_at``): the largest of the median power in the ``BACKGROUND_BINS`` square around it (a
    separable median: the median over the square's column of its rows' medians, as robust and
    eight times cheaper than the square's own, so that the live guard can afford it) and the
    medians in the row and the column segments of that length through it. Noise power is
    exponentially distributed, so a bin passes by chance with probability 2**-threshold, and
    about one pure-noise spectrum in ten shows a false peak (with its mirror image). The
    segment medians reject lines in the spectrum (streaks, and interference whose phase
    changes from scan line to scan line) and the steep falloff near the centre, which are not
    lattice peaks; bins within ``MIN_RADIUS`` of the centre are left out, and so are peaks
    with less than ``MIN_SHARE`` of the power outside that centre (in smooth scans the local
    background falls so low that specks nobody could see pass the contrast test).
    """
    threshold = np.log2(power.size / FALSE_PEAKS)
    outside = outside_centre(power.shape)
    candidate = (power == ndimage.maximum_filter(power, size=3, mode="wrap")) & outside
    candidate &= power >= MIN_SHARE * power[outside].sum()
    at = np.argwhere(candidate)
    # The background is the largest of three medians: the row segment's, the cheapest, rules most candidates out.
    at = at[power[tuple(at.T)] > threshold * _segment_medians(power, at[:, 0], at[:, 1], 1)]
    return at[power[tuple(at.T)] > threshold * background_at(power, at[:, 0], at[:, 1])]


def peak_mask(shape: tuple[int, int], peaks: np.ndarray) -> np.ndarray:
    """The 3x3 bins around each peak: a Hann-windowed peak between bins spreads over them."""
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(peaks.T)] = True
    return ndimage.binary_dilation(mask, structure=np.ones((3, 3), dtype=bool))


@dataclass(frozen=True)
class Peaks:
    """Peaks of a centred spectrum, one row per peak: the strongest bin, the power-weighted centre of
    the 3 x 3 bins around it (a sub-bin position, as a peak rarely falls on a bin), and their power."""

    positions: np.ndarray
    centres: np.ndarray
    power: np.ndarray

    @property
    def relative(self) -> np.ndarray:
        """Each peak's share of the peaks' total power."""
        total = self.power.sum()
        return self.power / total if total > 0 else self.power


def peaks_at(spectrum: np.ndarray, positions: np.ndarray) -> Peaks:
    """The spectrum's peaks at ``positions`` (centred (row, column) bins), with sub-bin centres and power."""
    padded = np.pad(spectrum, 1, mode="wrap")
    patches = np.array([padded[r : r + 3, c : c + 3] for r, c in positions]).reshape(-1, 3, 3)
    power = patches.sum(axis=(1, 2))
    offsets = np.arange(-1, 2)
    centres = (
        positions
        + np.stack([(patches.sum(axis=2) * offsets).sum(axis=1), (patches.sum(axis=1) * offsets).sum(axis=1)], axis=-1)
        / np.maximum(power, 1e-300)[:, None]
    )
    return Peaks(positions, centres.reshape(-1, 2), power)


def find_peaks(reference: np.ndarray, count: int = 6) -> Peaks:
    """The ``count`` strongest significant peaks of the reference's spectrum (none for a featureless scan)."""
    spectrum = power_spectrum(reference)
    positions = significant_peaks(spectrum)
    strongest = np.argsort(spectrum[tuple(positions.T)])[::-1][:count] if len(positions) else []
    return peaks_at(spectrum, positions[strongest].reshape(-1, 2))


def measure_peaks(image: np.ndarray, reference: Peaks, search: int = 1) -> Peaks:
    """The reference's peaks as found in ``image``: the strongest bin within ``search`` bins of each."""
    spectrum = power_spectrum(image)
    rows, cols = spectrum.shape
    offsets = np.arange(-search, search + 1)
    found = []
    for r, c in reference.positions:
        # The spectrum is periodic: a peak near Nyquist (a lattice of ~2.5 pixels) searches across the edge.
        window = spectrum[np.ix_((r + offsets) % rows, (c + offsets) % cols)]
        dr, dc = np.unravel_index(int(np.argmax(window)), window.shape)
        found.append(((r + offsets[dr]) % rows, (c + offsets[dc]) % cols))
    return peaks_at(spectrum, np.array(found, dtype=int).reshape(-1, 2))


@dataclass(frozen=True)
class PeakCheck:
    """How an image's peaks compare with the reference's."""

    shift_bins: float
    """Mean displacement of the peaks' centres, in frequency bins (0: every peak where it was)."""
    power_kept: float
    """Total peak power of the image over that of the reference (1: all lattice contrast kept)."""
    relative_error: float
    """Largest change in a peak's share of the total power (0: relative strengths unchanged)."""


def check_peaks(image: np.ndarray, reference: Peaks) -> PeakCheck:
    measured = measure_peaks(image, reference)
    shift = float(np.hypot(*(measured.centres - reference.centres).T).mean()) if len(reference.positions) else 0.0
    kept = float(measured.power.sum() / reference.power.sum()) if reference.power.sum() > 0 else float("nan")
    rel = float(np.abs(measured.relative - reference.relative).max()) if len(reference.positions) else 0.0
    return PeakCheck(shift, kept, rel)

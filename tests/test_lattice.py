"""The lattice-peak check of Fig. 6: finds real peaks, and notices moved, weakened or reshaped ones."""

import numpy as np
from scipy import ndimage

from maed.lattice import BACKGROUND_BINS, background_at, check_peaks, find_peaks, power_spectrum

SIZE = 128


def _lattice(k1=(12, 5), k2=(-4, 14), a1=1.0, a2=0.5) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    return a1 * np.cos(2 * np.pi * (k1[0] * y + k1[1] * x)) + a2 * np.cos(2 * np.pi * (k2[0] * y + k2[1] * x))


def test_peaks_are_the_lattice_frequencies_in_pairs():
    peaks = find_peaks(_lattice(), count=4)
    centre = SIZE // 2
    found = {tuple(p - centre) for p in peaks.positions}
    assert found == {(12, 5), (-12, -5), (-4, 14), (4, -14)}
    # Amplitudes 1 and 0.5: power shares 0.4 each for the strong pair, 0.1 for the weak one.
    np.testing.assert_allclose(sorted(peaks.relative), [0.1, 0.1, 0.4, 0.4], atol=0.01)


def test_noise_alone_has_no_peaks():
    noise = np.random.default_rng(0).standard_normal((SIZE, SIZE))
    assert len(find_peaks(noise).positions) == 0


def test_identical_image_passes_and_changes_are_caught():
    reference = find_peaks(_lattice(), count=4)
    same = check_peaks(_lattice(), reference)
    assert same.shift_bins < 1e-9 and abs(same.power_kept - 1) < 1e-9 and same.relative_error < 1e-9

    # Half the peaks one bin further out: a mean displacement of half a bin.
    moved = check_peaks(_lattice(k1=(13, 5)), reference)
    assert abs(moved.shift_bins - 0.5) < 0.1

    smoothed = check_peaks(ndimage.gaussian_filter(_lattice(), 1.5), reference)
    assert smoothed.power_kept < 0.5

    reweighted = check_peaks(_lattice(a2=1.0), reference)
    assert reweighted.relative_error > 0.1 and reweighted.shift_bins < 0.05


def test_a_peak_at_the_spectrum_edge_is_measured_across_it():
    from maed.lattice import Peaks, measure_peaks, power_spectrum

    r, c = np.indices((64, 64))
    image = np.cos(2 * np.pi * c / 2.06)  # a period just above Nyquist: its peak sits in the first column
    spectrum = power_spectrum(image)
    edge = Peaks(np.array([[32, 0]]), np.array([[32.0, 0.0]]), np.array([1.0]))
    found = measure_peaks(image, edge)
    assert found.positions[0, 0] == 32 and found.positions[0, 1] in (0, 1, 63)
    assert found.power[0] > 0.1 * spectrum.sum() / 2


def test_the_background_at_a_few_bins_is_the_whole_spectrum_s_background_there():
    # The background's definition over the whole spectrum: the largest of the square's separable median and the row
    # and column segments' medians, the spectrum periodic; computed at a few bins only, it must not differ.
    rng = np.random.default_rng(3)
    for shape in [(SIZE, SIZE), (40, 27), (9, 70)]:
        power = power_spectrum(_lattice()[: shape[0], : shape[1]] + rng.standard_normal(shape))
        along_rows = ndimage.median_filter(power, size=(1, BACKGROUND_BINS), mode="wrap")
        whole = np.maximum.reduce(
            [
                ndimage.median_filter(along_rows, size=(BACKGROUND_BINS, 1), mode="wrap"),
                ndimage.median_filter(power, size=(BACKGROUND_BINS, 1), mode="wrap"),
                along_rows,
            ]
        )
        rows, cols = rng.integers(0, shape[0], (5, 4)), rng.integers(0, shape[1], (5, 4))
        np.testing.assert_array_equal(background_at(power, rows, cols), whole[rows, cols])
        every = np.indices(shape)  # so many bins that the whole map is computed instead, to the same values
        np.testing.assert_array_equal(background_at(power, *every), whole)

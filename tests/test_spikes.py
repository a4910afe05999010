"""Spikes (maed.spikes): a few pixels on one line that no tip can image are found, and nothing a tip can image is;
what is published after the network never gives them back (maed.publish)."""

import numpy as np

from maed.denoise_files import denoise_file, record_notes
from maed.engine import load_backend
from maed.publish import publish
from maed.spikes import MAX_RUN, spike_pixels, without_spikes

R, C = np.indices((128, 128), dtype=float)
LATTICE = 0.5 * sum(np.cos(2 * np.pi / 7.0 * (C * np.cos(t) + R * np.sin(t))) for t in (0.2, 0.2 + 2 * np.pi / 3))
# An adatom three rows tall and a pit: what a tip images is wider than one line.
ADATOM = 8.0 * np.exp(-((R - 30) ** 2 + (C - 90) ** 2) / (2 * 1.2**2))
PIT = -6.0 * np.exp(-((R - 90) ** 2 + (C - 30) ** 2) / (2 * 2.0**2))
SURFACE = LATTICE + ADATOM + PIT + 2.0 * (C > 64)
SPIKES = [(20, 20, 1, 12.0), (50, 70, 2, -10.0), (75, 100, 3, 15.0), (110, 50, 1, 9.0)]
"""(row, first column, length along the row, height) of each spike laid on the scan."""


def _noisy(seed: int = 3) -> np.ndarray:
    return SURFACE + 0.3 * np.random.default_rng(seed).standard_normal(SURFACE.shape)


def _with_spikes(scan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scan, where = scan.copy(), np.zeros(scan.shape, dtype=bool)
    for row, col, length, height in SPIKES:
        scan[row, col : col + length] += height
        where[row, col : col + length] = True
    return scan, where


def test_spikes_are_found_and_nothing_a_tip_images():
    scan, where = _with_spikes(_noisy())
    found = spike_pixels(scan)
    np.testing.assert_array_equal(found, where)


def test_white_noise_and_a_surface_without_spikes_have_none():
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert not spike_pixels(rng.standard_normal((256, 256))).any()
    assert not spike_pixels(_noisy(7)).any()


def test_a_scar_is_no_spike():
    scan = _noisy()
    scan[40, 20 : 21 + MAX_RUN] += 10.0  # one pixel longer than a spike can be
    assert not spike_pixels(scan)[40].any()


def test_a_step_edge_that_jitters_from_line_to_line_is_no_spike():
    # The edge sits two pixels further right on one line: those pixels stand out from the lines above and below
    # it, but not from the terrace beside them on their own line.
    scan = _noisy()
    scan[60, 65:67] += 2.0 + 8.0  # the upper terrace's height there, far above the noise of 0.3
    scan[:, 65:] += 8.0
    scan[60, 65:67] -= 8.0  # that line's own terrace reaches two pixels further
    assert not spike_pixels(scan)[55:66].any()


def test_the_noise_of_a_noisy_region_sets_its_own_bar():
    # A current image's noise grows with the current: over a molecule, its pixels stand far out of the substrate's
    # noise, and none is a spike.
    rng = np.random.default_rng(4)
    scan = 0.05 * rng.standard_normal((128, 128))
    scan[40:88, 40:88] += 5.0 + 1.0 * rng.standard_normal((48, 48))
    assert spike_pixels(scan).sum() <= 1


def test_without_spikes_takes_the_mean_of_the_lines_above_and_below():
    scan, where = _with_spikes(_noisy())
    cleaned = without_spikes(scan, spike_pixels(scan))
    rows, cols = np.nonzero(where)
    np.testing.assert_allclose(cleaned[rows, cols], 0.5 * (scan[rows - 1, cols] + scan[rows + 1, cols]))
    np.testing.assert_array_equal(cleaned[~where], scan[~where])


def test_what_is_published_keeps_no_spike_and_every_feature():
    # Sixty spikes of one to three pixels over a terrace with an adatom and a pit, and a network that took the noise
    # and the spikes off, and half of the adatom and the pit: the give-backs bring the adatom and the pit back, and
    # not the spikes (drawn from the scan as measured, the guard took them for structure the network erased, and
    # published the conservative result, spikes and all).
    rng = np.random.default_rng(3)
    surface = ADATOM + PIT + 2.0 * (C > 64)
    scan, where = surface + 0.3 * rng.standard_normal(surface.shape), np.zeros(surface.shape, dtype=bool)
    for _ in range(60):
        row, col, length = rng.integers(2, 126), rng.integers(2, 124), rng.integers(1, MAX_RUN + 1)
        scan[row, col : col + length] += rng.choice([-1, 1]) * rng.uniform(3, 15)
        where[row, col : col + length] = True
    published = publish(scan, surface - 0.5 * (ADATOM + PIT), rows_aligned=True)
    assert published.spikes >= 0.9 * where.sum()
    assert published.verdict.output == "network"
    assert np.abs(published.image - surface)[where].max() < 1.0
    assert published.image[30, 90] - surface[30, 90] > -0.25 * ADATOM[30, 90]
    assert published.image[90, 30] - surface[90, 30] < -0.25 * PIT[90, 30]


def test_maed_denoise_counts_the_spikes_and_says_so(tmp_path):
    scan, where = _with_spikes(_noisy())
    np.save(tmp_path / "scan.npy", (scan * 1e-10).astype(np.float32))
    _, record = denoise_file(tmp_path / "scan.npy", tmp_path / "denoised", load_backend("onnx", "rt-plane", threads=1))
    assert record["features"]["spike_pixels"] == where.sum()
    assert any(
        f"{where.sum()} pixels on single lines taken for spikes" in note for note in record_notes(tmp_path / "scan.npy", record, "trace")
    )

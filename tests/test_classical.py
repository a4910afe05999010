"""Tests for maed.classical: each step on a case where the right answer is known."""

import numpy as np
import pytest

from maed.classical import (
    ALIGNMENT_LAGS,
    PIPELINES,
    align_after,
    align_rows,
    fft_notch,
    gaussian_smooth,
    level_plane,
    median_smooth,
    remove_scars,
    run_pipeline,
    scar_runs,
)


def _smooth_surface(shape=(64, 96), seed=0):
    """Smooth, non-periodic topography of unit-order amplitude."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape, dtype=float)
    bumps = gaussian_smooth(rng.standard_normal(shape), sigma=4.0)
    return np.sin(rows / 9.0) + 0.5 * np.cos(cols / 13.0 + rows / 30.0) + 5.0 * bumps


def _rms(a):
    return float(np.sqrt(np.mean(np.square(a))))


def _rms_up_to_constant(a, b):
    diff = a - b
    return _rms(diff - diff.mean())


def _power_at(img, ky, kx):
    return float(np.abs(np.fft.fft2(img)[ky, kx]) ** 2)


# --- level_plane ----------------------------------------------------------


def test_level_plane_removes_exact_plane():
    rows, cols = np.indices((50, 70), dtype=float)
    plane = 3e-9 + 2e-11 * cols - 5e-12 * rows
    assert np.max(np.abs(level_plane(plane))) < 1e-12 * np.max(np.abs(plane))


def test_level_plane_keeps_non_planar_content():
    surface = level_plane(_smooth_surface())
    rows, cols = np.indices(surface.shape, dtype=float)
    tilted = surface + 0.3 + 0.01 * cols + 0.02 * rows
    np.testing.assert_allclose(level_plane(tilted), surface, atol=1e-12)


# --- align_rows -----------------------------------------------------------


@pytest.mark.parametrize("method", ["median", "median_diff", "median_diff_lags"])
def test_align_rows_removes_row_offsets(method):
    rows, cols = np.indices((40, 60), dtype=float)
    # Varies along the fast axis only, so every row has the same median and
    # the same row-to-row differences: both methods must recover it exactly.
    surface = np.sin(cols / 5.0) + 0.1 * cols
    offsets = np.random.default_rng(1).normal(0.0, 2.0, size=(40, 1))
    result = align_rows(surface + offsets, method=method)
    assert _rms_up_to_constant(result, surface) < 1e-12


@pytest.mark.parametrize("method", ["median_diff", "median_diff_lags"])
def test_median_diff_keeps_diagonal_step_that_median_destroys(method):
    rows, cols = np.indices((60, 60), dtype=float)
    step = np.where(cols > rows, 1.0, 0.0)  # terrace edge crossing the rows at 45 degrees
    offsets = np.random.default_rng(2).normal(0.0, 0.5, size=(60, 1))
    scanned = step + offsets

    error_median = _rms_up_to_constant(align_rows(scanned, "median"), step)
    error_median_diff = _rms_up_to_constant(align_rows(scanned, method), step)
    assert error_median > 0.2  # plain median drops rows where most pixels are on the upper terrace
    assert error_median_diff < 1e-12
    assert error_median_diff < 0.01 * error_median


def test_aligning_to_several_rows_before_drifts_less_across_the_frame():
    """Each row aligned to the one before takes that median's error along to every later row: a random walk that
    reads as bands across the rows. Aligned to the rows 1, 2 and 4 before, it wanders less than half as far (over 8
    frames: a single frame's walk varies by a factor of 3)."""
    drift = {"median_diff": [], "median_diff_lags": []}
    for seed in range(8):
        rng = np.random.default_rng(seed)
        flat = rng.normal(0.0, 1.0, (256, 256))
        scanned = flat + rng.normal(0.0, 3.0, (256, 1))
        for method, found in drift.items():
            found.append(np.std((align_rows(scanned, method) - flat).mean(axis=1)))
    assert np.mean(drift["median_diff"]) > 0.15
    assert np.mean(drift["median_diff_lags"]) < 0.7 * np.mean(drift["median_diff"])


def test_rows_aligned_a_few_at_a_time_match_the_whole_frame():
    rng = np.random.default_rng(6)
    scanned = rng.normal(0.0, 1.0, (64, 48)) + rng.normal(0.0, 3.0, (64, 1))
    whole = align_rows(scanned, "median_diff_lags")
    live = whole[:1]
    for start in range(1, 64, 5):  # rows arrive in bands, each aligned after the rows already aligned
        live = np.vstack([live, align_after(live[-max(ALIGNMENT_LAGS) :], scanned[start : start + 5])])
    np.testing.assert_allclose(live, whole, atol=1e-12)


def test_align_rows_unknown_method_names_allowed_ones():
    with pytest.raises(ValueError, match="median, median_diff"):
        align_rows(np.zeros((4, 4)), method="mean")


# --- remove_scars ---------------------------------------------------------


def _noisy_surface(seed=3):
    """Smooth surface plus white measurement noise of 0.02."""
    surface = _smooth_surface(seed=seed)
    return surface + 0.02 * np.random.default_rng(seed).standard_normal(surface.shape)


def test_remove_scars_repairs_full_row_spike():
    noisy = _noisy_surface()
    scarred = noisy.copy()
    scarred[30] += 1.5
    before = _rms(scarred - noisy)
    after = _rms(remove_scars(scarred) - noisy)
    # what is left is the noise the interpolation cannot know
    assert after < 0.05 * before


def test_remove_scars_repairs_partial_double_row_scar():
    noisy = _noisy_surface(seed=4)
    scarred = noisy.copy()
    scarred[20:22, 10:50] -= 0.8  # two lines, part of the width
    before = _rms(scarred - noisy)
    after = _rms(remove_scars(scarred, max_width=2) - noisy)
    assert after < 0.05 * before


def test_remove_scars_keeps_features_wider_than_max_width():
    noisy = _noisy_surface(seed=5)
    ridge = noisy.copy()
    ridge[20:24] += 1.0  # four rows: a real feature for max_width=2
    np.testing.assert_array_equal(remove_scars(ridge, max_width=2), ridge)


def test_remove_scars_leaves_clean_image_nearly_unchanged():
    noisy = _noisy_surface(seed=6)
    change = _rms(remove_scars(noisy) - noisy)
    assert change < 1e-3 * _rms(noisy)


def test_scar_runs_are_the_lone_scars_along_a_row():
    noisy = _noisy_surface(seed=8)
    scarred = noisy.copy()
    scarred[30, 20:45] += 1.0  # a scar of 25 pixels
    scarred[50, 40:42] += 1.0  # two pixels: noise or an atom, no scar
    found = scar_runs(scarred)
    assert found[30, 20:45].mean() > 0.8
    assert found.sum() == found[30, 20:45].sum()


def test_scar_runs_leave_rows_of_a_lattice_along_the_fast_axis():
    noisy = _noisy_surface(seed=9)
    rows = noisy.copy()
    rows[20:50:3, 10:40] += 1.0  # a patch of a row lattice: each row stands out from both neighbours, as a scar does
    assert not np.allclose(remove_scars(rows), rows)
    assert not scar_runs(rows).any()


# --- smoothing ------------------------------------------------------------


def test_smoothing_reduces_white_noise_and_keeps_shape():
    noise = np.random.default_rng(7).standard_normal((64, 64))
    for smoothed in (gaussian_smooth(noise, sigma=1.0), median_smooth(noise, size=3)):
        assert smoothed.shape == noise.shape
        assert _rms(smoothed) < 0.7 * _rms(noise)


# --- fft_notch ------------------------------------------------------------


def _with_pickup(surface, cycles_per_line=30, amplitude=0.3):
    """Add pick-up phase-locked to the line start: a sinusoid along the fast axis.

    A whole number of cycles per line puts it in one frequency bin; the notch
    does not claim to handle the leakage of a between-bin frequency.
    """
    cols = np.arange(surface.shape[1])
    return surface + amplitude * np.sin(2 * np.pi * cycles_per_line * cols / surface.shape[1] + 0.4)


def test_fft_notch_removes_fast_axis_pickup():
    clean = _noisy_surface(seed=8)
    clean = level_plane(clean)
    noisy = _with_pickup(clean)

    drop_db = 10 * np.log10(_power_at(noisy, 0, 30) / _power_at(fft_notch(noisy), 0, 30))
    assert drop_db > 20.0
    assert _rms(fft_notch(noisy) - clean) < 0.1 * _rms(noisy - clean)


def test_fft_notch_changes_clean_image_little():
    clean = _noisy_surface(seed=9)
    for fast_only in (True, False):
        change = _rms(fft_notch(clean, along_fast_axis_only=fast_only) - clean)
        assert change < 0.01 * _rms(clean)


def test_fft_notch_fast_axis_mode_leaves_off_axis_peaks():
    # A diagonal periodic pattern (like a lattice) peaks off ky = 0: only the
    # unrestricted notch may touch it.
    clean = _noisy_surface(seed=10)
    rows, cols = np.indices(clean.shape)
    wave = 0.3 * np.cos(2 * np.pi * (8 * rows / clean.shape[0] + 12 * cols / clean.shape[1]))
    patterned = level_plane(clean + wave)

    kept = _power_at(fft_notch(patterned, along_fast_axis_only=True), 8, 12)
    removed = _power_at(fft_notch(patterned, along_fast_axis_only=False), 8, 12)
    assert kept == pytest.approx(_power_at(patterned, 8, 12))
    assert 10 * np.log10(kept / removed) > 20.0


def test_fft_notch_never_touches_dc_region():
    rows, cols = np.indices((64, 64), dtype=float)
    coarse = np.cos(2 * np.pi * 2 * cols / 64)  # a peak at kx = 2, inside protect_radius=3
    np.testing.assert_allclose(fft_notch(coarse, protect_radius=3), coarse, atol=1e-12)


# --- pipelines ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipelines_return_finite_image_of_input_shape(name):
    noisy = _noisy_surface(seed=11)
    result = run_pipeline(name, noisy * 1e-10)
    assert result.shape == noisy.shape
    assert result.dtype == np.float64
    assert np.isfinite(result).all()


def test_pipeline_names():
    assert set(PIPELINES) == {"level", "level+gauss", "level+median", "level+scars+notch+gauss"}


def test_unknown_pipeline_names_available_ones():
    with pytest.raises(ValueError, match="level\\+gauss"):
        run_pipeline("wiener", np.zeros((8, 8)))


def test_non_2d_input_raises():
    with pytest.raises(ValueError, match="2-D"):
        level_plane(np.zeros(10))

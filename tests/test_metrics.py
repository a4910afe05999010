"""Tests for maed.metrics: hand-computed values, independent re-implementations, invariances, errors."""

import numpy as np
import pytest

from maed.metrics import _quality_map, align_to_reference, all_metrics, psnr, ssim, uqi


def _ramp(shape=(32, 32)):
    """Reference height ramp spanning exactly 0..1."""
    rows, cols = np.indices(shape, dtype=float)
    return (rows + cols) / (rows + cols).max()


def _checkerboard(shape, amplitude):
    """+/-amplitude checkerboard; on an even grid it is orthogonal to any plane."""
    rows, cols = np.indices(shape)
    return amplitude * np.where((rows + cols) % 2 == 0, 1.0, -1.0)


def _bowl(shape):
    """Centrally symmetric surface: its least-squares plane is flat (no tilt)."""
    rows, cols = np.indices(shape, dtype=float)
    return (rows - (shape[0] - 1) / 2) ** 2 + (cols - (shape[1] - 1) / 2) ** 2


def _rough_pair(seed=0, shape=(40, 48)):
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(shape, dtype=float)
    reference = np.sin(rows / 4.0) * np.cos(cols / 6.0) + 0.3 * rng.standard_normal(shape)
    estimate = reference + 0.2 * rng.standard_normal(shape) + 5.0 + 0.01 * cols
    return estimate, reference


def _tilt(shape):
    rows, cols = np.indices(shape, dtype=float)
    return 3.0 + 0.2 * cols - 0.1 * rows


# --- alignment ------------------------------------------------------------


def test_align_removes_offset_and_tilt_and_normalises_reference():
    reference = 2e-10 * _bowl((16, 20)) + 7e-10
    est_n, ref_n = align_to_reference(reference + 1e-9 * _tilt((16, 20)), reference)
    assert ref_n.min() == 0.0 and ref_n.max() == 1.0
    np.testing.assert_allclose(est_n, ref_n, atol=1e-9)


def test_align_keeps_non_planar_error():
    reference = _ramp((16, 16))
    pattern = _checkerboard((16, 16), 0.05)
    est_n, ref_n = align_to_reference(reference + pattern, reference)
    np.testing.assert_allclose(est_n - ref_n, pattern, atol=1e-12)


# --- PSNR -----------------------------------------------------------------


def test_psnr_ignores_offset_and_tilt():
    reference = _ramp()
    assert psnr(reference + _tilt(reference.shape), reference) > 200.0


def test_psnr_of_identical_images_is_infinite():
    reference = _ramp()
    assert psnr(reference, reference) == np.inf


def test_psnr_matches_hand_computed_value():
    # Reference spans 0..1, error is a +/-0.01 checkerboard (no planar part),
    # so MSE = 1e-4 and PSNR = 10*log10(1/1e-4) = 40 dB.
    reference = _ramp()
    estimate = reference + _checkerboard(reference.shape, 0.01)
    assert psnr(estimate, reference) == pytest.approx(40.0, abs=1e-9)


def test_psnr_uses_reference_range():
    # Doubling the reference range (and the error with it) keeps the
    # normalised MSE, so PSNR is unchanged; doubling only the error costs 6 dB.
    reference = _ramp()
    error = _checkerboard(reference.shape, 0.01)
    base = psnr(reference + error, reference)
    assert psnr(2 * (reference + error), 2 * reference) == pytest.approx(base)
    assert psnr(reference + 2 * error, reference) == pytest.approx(base - 20 * np.log10(2))


# --- SSIM -----------------------------------------------------------------


def _gaussian_window(sigma=1.5, radius=5):
    # radius = int(3.5 * sigma + 0.5), the support of the filter skimage uses
    offsets = np.arange(-radius, radius + 1)
    g = np.exp(-(offsets**2) / (2 * sigma**2))
    w = np.outer(g, g)
    return w / w.sum()


def _direct_ssim(x, y, data_range=1.0):
    """Wang et al. 2004 mean SSIM over every fully contained Gaussian window, by explicit loops."""
    w = _gaussian_window()
    size = w.shape[0]
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a, b = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = (w * a).sum(), (w * b).sum()
            vx = (w * (a - mx) ** 2).sum()
            vy = (w * (b - my) ** 2).sum()
            cxy = (w * (a - mx) * (b - my)).sum()
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_of_identical_images_is_one():
    _, reference = _rough_pair()
    assert ssim(reference, reference) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_direct_gaussian_window_formula():
    estimate, reference = _rough_pair(seed=3, shape=(17, 19))
    expected = _direct_ssim(*align_to_reference(estimate, reference))
    assert expected < 0.95  # the pair is far enough apart for the check to mean something
    assert ssim(estimate, reference) == pytest.approx(expected, rel=1e-10)


# --- UQI ------------------------------------------------------------------


def _direct_uqi(x, y, size=8):
    """Wang & Bovik 2002 Q per window with sample statistics, averaged, by explicit loops."""
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            a = x[i : i + size, j : j + size].ravel()
            b = y[i : i + size, j : j + size].ravel()
            cov = np.cov(a, b)  # ddof=1, as in the paper
            mx, my = a.mean(), b.mean()
            values.append(4 * cov[0, 1] * mx * my / ((cov[0, 0] + cov[1, 1]) * (mx**2 + my**2)))
    return float(np.mean(values))


def test_uqi_of_identical_images_is_one():
    _, reference = _rough_pair()
    assert uqi(reference, reference) == pytest.approx(1.0, abs=1e-12)


def test_uqi_of_half_contrast_copy_is_hand_computed():
    # One 8x8 window. The reference's plane is flat, so alignment only shifts
    # 0.5*ref + c until the means match: luminance term 1, correlation 1,
    # contrast term 2*sx*sy/(sx^2+sy^2) = 2*0.5/(1 + 0.25) = 0.8.
    reference = _bowl((8, 8))
    assert uqi(0.5 * reference + 7.0, reference) == pytest.approx(0.8, abs=1e-12)


def test_uqi_of_inverted_copy_is_minus_one():
    # Correlation -1 with equal means and contrasts after alignment.
    reference = _bowl((8, 8))
    assert uqi(-reference, reference) == pytest.approx(-1.0, abs=1e-12)


def test_uqi_averages_over_all_sliding_windows():
    estimate, reference = _rough_pair(seed=5, shape=(13, 11))
    expected = _direct_uqi(*align_to_reference(estimate, reference))
    assert uqi(estimate, reference) == pytest.approx(expected, rel=1e-10)


def test_uqi_drops_with_noise_and_ignores_offset_and_tilt():
    estimate, reference = _rough_pair(seed=7)
    assert uqi(reference + _tilt(reference.shape), reference) == pytest.approx(1.0, abs=1e-9)
    assert uqi(estimate, reference) < 0.95


def test_uqi_identical_flat_windows_count_as_one():
    # Terraces: many windows lie entirely on one flat level.
    reference = np.zeros((16, 24))
    reference[:, 12:] = 1.0
    assert uqi(reference, reference) == pytest.approx(1.0, abs=1e-12)


def test_uqi_zero_denominator_conventions():
    flat_a, flat_b = np.full((8, 8), 0.2), np.full((8, 8), 0.4)
    zeros = np.zeros((8, 8))
    # flat windows with different means: luminance term 2*0.2*0.4/(0.04+0.16)
    assert _quality_map(flat_a, flat_b) == pytest.approx(0.8)
    assert _quality_map(zeros, zeros) == pytest.approx(1.0)


# --- all metrics ----------------------------------------------------------


def test_all_metrics_agrees_with_individual_functions():
    estimate, reference = _rough_pair(seed=11)
    result = all_metrics(estimate, reference)
    assert set(result) == {"psnr", "ssim", "uqi"}
    assert result["psnr"] == pytest.approx(psnr(estimate, reference))
    assert result["ssim"] == pytest.approx(ssim(estimate, reference))
    assert result["uqi"] == pytest.approx(uqi(estimate, reference))


def test_metrics_are_scale_invariant():
    estimate, reference = _rough_pair(seed=13)
    in_units = all_metrics(estimate, reference)
    in_metres = all_metrics(estimate * 1e-10, reference * 1e-10)
    for name, value in in_units.items():
        assert in_metres[name] == pytest.approx(value, rel=1e-9), name


# --- errors ---------------------------------------------------------------


@pytest.mark.parametrize("metric", [psnr, ssim, uqi, all_metrics, align_to_reference])
def test_shape_mismatch_raises(metric):
    with pytest.raises(ValueError, match="shape mismatch"):
        metric(np.zeros((16, 16)), _ramp((16, 17)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_raise(bad):
    reference = _ramp((16, 16))
    estimate = reference.copy()
    estimate[3, 4] = bad
    with pytest.raises(ValueError, match="finite"):
        psnr(estimate, reference)
    with pytest.raises(ValueError, match="finite"):
        psnr(reference, estimate)


def test_constant_reference_raises():
    with pytest.raises(ValueError, match="constant"):
        ssim(_ramp((16, 16)), np.full((16, 16), 3e-10))


def test_non_2d_input_raises():
    with pytest.raises(ValueError, match="2-D"):
        uqi(np.arange(10.0), np.arange(10.0))


def test_uqi_too_small_image_raises():
    with pytest.raises(ValueError, match="at least 8x8"):
        uqi(_ramp((6, 12)), _ramp((6, 12)))

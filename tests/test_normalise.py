"""Levelling and normalisation around the network: stable statistics and an exact inverse."""

import numpy as np
import pytest

from maed.classical import align_rows, fit_plane
from maed.line_offsets import STRIP_BANDING, strip_banding
from maed.normalise import OFFSET_DOMINANCE, PLANE, PLANE_AND_ROWS, ROW_ALIGNMENT, denormalise, levelling_of, normalise


def smooth_surface(n=64):
    y, x = np.mgrid[0:n, 0:n] / n
    return 30e-12 * np.sin(9 * x + 4 * y) * np.cos(5 * y)


def test_normalised_scan_has_zero_mean_and_unit_variance():
    x, _ = normalise(smooth_surface() + 1e-9)
    assert x.dtype == np.float32
    assert abs(float(x.mean())) < 1e-6 and float(x.std()) == pytest.approx(1.0, rel=1e-5)


def test_denormalise_restores_units_and_plane():
    rows = np.arange(64)[:, None]
    cols = np.arange(64)[None, :]
    tilt = 2e-9 + 0.3e-11 * cols - 0.2e-11 * rows
    scan = smooth_surface() + tilt
    x, norm = normalise(scan)
    back = denormalise(x, norm)
    assert back.dtype == np.float32
    # Identity network: the scan comes back up to its row offsets, which are noise by design.
    residual = back - scan
    residual -= residual.mean(axis=1, keepdims=True)
    assert np.abs(residual).max() < 1e-3 * np.ptp(scan)
    assert np.ptp(back) == pytest.approx(np.ptp(scan), rel=0.05)  # still metres, tilt included


def test_row_offsets_are_removed_before_the_network():
    scan = smooth_surface() + np.random.default_rng(0).normal(0, 200e-12, 64)[:, None]
    x, norm = normalise(scan)
    clean_x, clean_norm = normalise(smooth_surface())
    # The offsets, 7x the relief, barely change the normalised image.
    a = x * norm.scale
    b = clean_x * clean_norm.scale
    assert np.abs((a - a.mean(axis=1, keepdims=True)) - (b - b.mean(axis=1, keepdims=True))).max() < 0.2 * np.ptp(smooth_surface())


def test_flat_scan_does_not_divide_by_zero_and_stays_flat():
    x, norm = normalise(np.full((16, 16), 5e-9))
    assert np.all(np.isfinite(x)) and norm.scale == 0.0
    # Whatever a network answers for it, the scan comes back as it was.
    np.testing.assert_allclose(denormalise(np.full((16, 16), 0.27), norm), 5e-9, rtol=1e-6)


def _with_line_offsets(step_m, seed=0, n=64):
    """A smooth surface under a random walk of line offsets, as the slow axis records them."""
    rng = np.random.default_rng(seed)
    return smooth_surface(n) + np.cumsum(rng.normal(0, step_m, n))[:, None]


def test_plane_levelling_leaves_small_line_offsets_to_the_network():
    scan = _with_line_offsets(2e-12)
    aligned, _ = normalise(scan, PLANE_AND_ROWS)
    plane_only, norm = normalise(scan, PLANE)
    assert not norm.rows_aligned
    assert np.std(np.diff(aligned.mean(axis=1))) < 0.5 * np.std(np.diff(plane_only.mean(axis=1)))
    np.testing.assert_allclose(denormalise(plane_only, norm), scan, atol=1e-6 * np.ptp(scan))  # nothing taken


def test_plane_levelling_aligns_rows_where_the_offsets_dominate():
    scan = _with_line_offsets(20e-12)  # a walk of several times the relief
    aligned, rows_norm = normalise(scan, PLANE_AND_ROWS)
    plane_only, norm = normalise(scan, PLANE)
    assert norm.rows_aligned and rows_norm.rows_aligned
    np.testing.assert_allclose(plane_only, aligned)


def test_a_feature_that_fills_part_of_its_rows_is_not_aligned_away():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:128, 0:128]
    # A wide dark molecule over the middle columns of a constant-height image, flat beside it.
    molecule = -np.exp(-((((x - 64) / 30) ** 2 + ((y - 64) / 18) ** 2) ** 2))
    scan = molecule + 0.02 * rng.standard_normal((128, 128))
    levelled = scan - fit_plane(scan)
    judged = align_rows(levelled, ROW_ALIGNMENT)
    # Aligning would lower the spread as line offsets would (dominance) but band the flat strips beside it.
    assert levelled.std() > OFFSET_DOMINANCE * judged.std() and strip_banding(levelled, judged) > STRIP_BANDING
    assert not normalise(scan, PLANE)[1].rows_aligned
    # With a random walk of line offsets over it, every strip gets flatter once aligned: the rows are aligned.
    walked = scan + np.cumsum(rng.standard_normal(128))[:, None] * 0.3
    assert normalise(walked, PLANE)[1].rows_aligned


def test_an_unknown_levelling_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown levelling 'rows'"):
        normalise(smooth_surface(), "rows")


def test_a_back_end_that_does_not_say_aligns_rows():
    class Silent:
        pass

    class Plane:
        levelling = PLANE

    assert levelling_of(Silent()) == PLANE_AND_ROWS and levelling_of(Plane()) == PLANE

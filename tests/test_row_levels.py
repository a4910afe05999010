"""The scan's own row levels are kept where it shows no line offsets, their slow profile where the offsets are
independent from line to line; where the offsets wander, the network's stand."""

import numpy as np

from maed.denoise import denoise_guarded
from maed.line_offsets import INDEPENDENT_OFFSETS, changes_correlation
from maed.normalise import PLANE
from maed.row_levels import OFFSET_EVIDENCE, keep_row_levels, offset_evidence

SIZE = 128


def levels_kept(scan: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``keep_row_levels``' output alone."""
    return keep_row_levels(scan, output)[0]


def _surface() -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    return np.cos(2 * np.pi * (x + 0.3 * y) / 7.0) + np.cos(2 * np.pi * (y - 0.2 * x) / 9.0)


def _trend() -> np.ndarray:
    """A slow bend across the rows that the surface does not have."""
    return 0.4 * np.sin(np.linspace(0, 2.5, SIZE))[:, None]


def test_a_trend_drawn_across_the_rows_of_a_scan_without_line_offsets_is_taken_back():
    rng = np.random.default_rng(0)
    surface = _surface()
    scan = surface + rng.normal(0, 0.1, surface.shape)
    output = surface + _trend()
    assert offset_evidence(scan, output) < OFFSET_EVIDENCE
    kept = levels_kept(scan, output)
    error = lambda image: np.sqrt(np.mean((image - surface) ** 2))  # noqa: E731
    assert error(kept) < 0.1 * error(output)


def test_a_drift_every_column_shares_that_the_network_took_off_stays_off():
    """No line offsets, but a slow drift of the tip height across the rows, alike in every column (a lattice's own rows
    hold no such profile): the network that took it off keeps it off, and the scan is said to show (slow) offsets. A
    profile across the rows that only part of the columns hold is relief: the levels the network took off it come
    back."""
    rng = np.random.default_rng(7)
    surface = _surface()
    drift = _trend()
    scan = surface + drift + rng.normal(0, 0.1, surface.shape)
    output = surface + rng.normal(0, 0.02, surface.shape)
    assert offset_evidence(scan, output) < OFFSET_EVIDENCE
    kept, shows_offsets = keep_row_levels(scan, output)
    assert np.array_equal(kept, output) and shows_offsets
    relief = np.zeros_like(surface)
    relief[:, : SIZE // 2] = 2 * drift  # a terrace over the left half of the rows
    scan = surface + relief + rng.normal(0, 0.1, surface.shape)
    levelled = surface + relief - relief.mean(axis=1, keepdims=True)  # the rows levelled as if the relief were offsets
    kept, shows_offsets = keep_row_levels(scan, levelled)
    error = lambda image: np.sqrt(np.mean((image - image.mean() - surface - relief + (surface + relief).mean()) ** 2))  # noqa: E731
    assert error(kept) < 0.2 * error(levelled) and not shows_offsets


def test_line_offsets_the_network_removed_stay_removed():
    """Offsets of a random walk: the removed row levels jump from row to row, and their slow part is the walk's."""
    rng = np.random.default_rng(1)
    surface = _surface()
    scan = surface + np.cumsum(rng.normal(0, 0.1, SIZE))[:, None] + rng.normal(0, 0.1, surface.shape)
    assert offset_evidence(scan, surface) > 2 * OFFSET_EVIDENCE
    assert changes_correlation(np.median(scan - surface, axis=1)) > INDEPENDENT_OFFSETS
    assert np.array_equal(levels_kept(scan, surface), surface)


def test_the_first_rows_of_a_live_scan_never_get_a_walk_s_slow_part_back():
    """Over a few dozen rows a random walk's changes pass as independent now and then (``MIN_SLOW_ROWS``)."""
    y, x = np.mgrid[0:16, 0:SIZE].astype(float)
    surface = np.cos(2 * np.pi * (x + 0.3 * y) / 7.0)
    for seed in range(100):
        rng = np.random.default_rng(200 + seed)
        scan = surface + np.cumsum(rng.normal(0, 0.1, 16))[:, None] + rng.normal(0, 0.1, surface.shape)
        assert np.array_equal(levels_kept(scan, surface), surface)


def test_independent_line_offsets_the_network_removed_stay_removed_to_their_own_slow_part():
    """Offsets drawn line by line, over a surface without a profile across the rows: nothing comes back in nearly
    every draw (``SLOW_SIGNIFICANCE``); where something does, it is the offsets' own slow part in a draw where that
    came out large, shrunk."""
    surface = _surface()
    given = []
    for seed in range(40):
        rng = np.random.default_rng(10 + seed)
        offsets = rng.normal(0, 0.1, SIZE)
        scan = surface + offsets[:, None] + rng.normal(0, 0.1, surface.shape)
        given.append(np.sqrt(np.mean((levels_kept(scan, surface) - surface) ** 2)) / np.std(offsets))
    assert sum(g > 0 for g in given) <= 2
    assert max(given) < 0.5


def _profile() -> np.ndarray:
    """A profile across the rows: a terrace a step higher, its edges smooth over a few rows."""
    rows = np.arange(SIZE, dtype=float)
    return 0.5 * (np.tanh((rows - 40) / 3) - np.tanh((rows - 90) / 3))[:, None]


def _error_kept_over_before(surface: np.ndarray, output: np.ndarray, seed: int) -> float:
    """How much of ``output``'s error ``keep_row_levels`` leaves, on the surface with independent offsets."""
    rng = np.random.default_rng(seed)
    scan = surface + rng.normal(0, 0.1, SIZE)[:, None] + rng.normal(0, 0.1, surface.shape)
    error = lambda image: np.sqrt(np.mean((image - image.mean() - surface + surface.mean()) ** 2))  # noqa: E731
    return error(levels_kept(scan, output)) / error(output)


def test_a_profile_across_the_rows_removed_with_independent_offsets_comes_back():
    """The surface's own profile across the rows, which a network that took it for offsets removed with them. Over 128
    rows the offsets' changes pass as independent in most draws, not all (``INDEPENDENT_OFFSETS``)."""
    left = [_error_kept_over_before(_surface() + _profile(), _surface(), seed) for seed in range(20)]
    assert np.median(left) < 0.35
    assert max(left) <= 1.0 + 1e-9


def test_a_trend_drawn_across_the_rows_of_a_scan_with_independent_offsets_is_taken_back():
    left = [_error_kept_over_before(_surface(), _surface() + _trend(), seed) for seed in range(20)]
    assert np.median(left) < 0.35
    assert max(left) <= 1.0 + 1e-9


def _rows_error(image: np.ndarray, surface: np.ndarray) -> float:
    """The spread of the rows' levels against the surface's, their least-squares line across the rows aside."""
    error = np.median(image - surface, axis=1)
    rows = np.arange(len(error))
    return float(np.ptp(error - np.polyval(np.polyfit(rows, error, 1), rows)))


def test_steps_along_the_rows_the_network_took_for_offsets_come_back():
    """A quiet scan of a terrace whose edges run along the rows, without offsets: a network that levels the rows itself
    took the edges for offsets and flattened the terrace; the steps come back, within a twentieth of their height."""
    rng = np.random.default_rng(4)
    terrace = 3.0 * _profile()
    surface = 0.1 * _surface() + terrace
    scan = surface + rng.normal(0, 0.02, surface.shape)
    flattened = surface - terrace + rng.normal(0, 0.005, surface.shape)
    assert _rows_error(flattened, surface) > 2.9
    assert _rows_error(levels_kept(scan, flattened), surface) < 0.15


def test_a_tip_change_the_network_took_out_stays_out():
    """A jump of one line is a tip change (or an offset): no step, whatever its height."""
    rng = np.random.default_rng(5)
    surface = 0.1 * _surface()
    scan = surface + 3.0 * (np.arange(SIZE) >= 64)[:, None] + rng.normal(0, 0.02, surface.shape)
    output = surface + rng.normal(0, 0.005, surface.shape)
    assert np.array_equal(levels_kept(scan, output), output)


class TrendBackend:
    """A plane-levelled back end that keeps the surface, trades the scan's noise for noise of its own, and draws a
    trend across the rows."""

    name = model = "trend"
    size_multiple, weights_sha256, levelling = 1, "0" * 64, PLANE

    def __init__(self):
        self.rng = np.random.default_rng(3)

    def denoise(self, batch):
        rows = batch.shape[-2]
        bend = 0.5 * np.sin(np.linspace(0, 2.5, rows))[:, None]
        return (batch + bend + self.rng.normal(0, 0.05, batch.shape)).astype(np.float32)


def test_maed_denoise_keeps_a_quiet_scan_s_row_levels_before_the_guard_judges():
    """The trend is taken back before the guard, which then has no smooth residual to fall back on."""
    rng = np.random.default_rng(2)
    surface = _surface()
    scan = surface + rng.normal(0, 0.02, surface.shape)
    result = denoise_guarded(scan, TrendBackend())
    assert result.verdict.output == "network"
    assert np.ptp(np.median(scan - result.data, axis=1)) < 0.05 * np.ptp(surface)


def test_levels_taken_off_rows_whose_noise_only_part_of_the_columns_hold_come_back():
    """A constant-height current image: a molecule in the middle columns, whose noise (growing with the current) jumps
    from line to line there alone, on a quiet substrate. A network that took that noise for line offsets removed it
    from the whole rows and drew bands across the substrate; an offset moves every column of a line, and the
    substrate's strips do not move, so the scan's own row levels come back. Offsets in every column stay off."""
    rng = np.random.default_rng(3)
    surface = _surface() * 0.01
    molecule = np.zeros_like(surface)
    molecule[:, SIZE // 3 : 2 * SIZE // 3] = 1.0
    line_noise = rng.normal(0, 0.3, SIZE)[:, None]
    scan = surface + molecule * (5.0 + line_noise) + rng.normal(0, 0.01, surface.shape)
    output = scan - line_noise / 3  # the molecule's line noise, averaged over its rows, taken off each row whole
    assert offset_evidence(scan, output) > OFFSET_EVIDENCE  # the removed levels jump: the offsets' branch
    kept, shows_offsets = keep_row_levels(scan, output)
    substrate = np.median(kept[:, : SIZE // 3] - scan[:, : SIZE // 3], axis=1)
    assert not shows_offsets and np.abs(substrate).max() < 1e-12
    offsets = scan + line_noise  # the same levels, now in every column
    kept, shows_offsets = keep_row_levels(offsets, offsets - line_noise)
    assert shows_offsets and np.allclose(kept, offsets - line_noise)

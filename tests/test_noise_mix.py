"""Noise mixes for training: artefact groups present or absent per sample, white noise over decades."""

from dataclasses import replace

import numpy as np

from maed.classical import level_plane
from maed.data import TRAIN_RANGES, make_pair
from maed.data.scan_noise import NoiseParams, feedback_lag
from maed.training.dataset import TrainingPairs
from maed.training.noise_mix import GROUPS, MIX_RANGES, PRESENT, WHITE_FLOOR_M, mixed_ranges


def test_each_group_is_present_at_its_rate_and_absent_means_zero():
    rng = np.random.default_rng(0)
    draws = [mixed_ranges(rng) for _ in range(2000)]
    for fields in GROUPS.values():
        present = np.array([getattr(r, fields[0]) != (0.0, 0.0) for r in draws])
        assert abs(present.mean() - PRESENT) < 0.04
        for r, here in zip(draws, present):  # a group is on or off as a whole, and on means the mixes' range
            assert all((getattr(r, f) == getattr(MIX_RANGES, f)) == here for f in fields)


def test_white_noise_spans_decades_down_to_nearly_none():
    rng = np.random.default_rng(1)
    white = np.array([mixed_ranges(rng).white_m[0] for _ in range(8000)])  # the shares below within 0.05: 5 sigma
    assert white.min() >= WHITE_FLOOR_M and white.max() <= TRAIN_RANGES.white_m[1]
    # Log-uniform: as many draws in the lowest decade as in the highest; the uniform range gives almost none.
    low = np.mean(white < 10 * WHITE_FLOOR_M)
    assert low > 0.2 and abs(low - np.mean(white > TRAIN_RANGES.white_m[1] / 10)) < 0.05


def test_a_quiet_mix_gives_a_scan_close_to_its_surface():
    """Every group off and the white noise at its floor: the simulator's scan is the surface, up to tilt and offset."""
    silent = {name: (0.0, 0.0) for fields in GROUPS.values() for name in fields}
    quiet = replace(TRAIN_RANGES, **silent, white_m=(WHITE_FLOOR_M, WHITE_FLOOR_M))
    pair = make_pair(7, 64, quiet)
    residual = level_plane(pair.noisy - pair.clean)  # tilt and offset are not noise
    assert residual.std() < 0.05 * pair.clean.std()


def test_the_stream_draws_mixes_only_when_asked():
    plain, mixed = TrainingPairs(32, first_seed=10), TrainingPairs(32, first_seed=10, noise_mix=True)
    a, b = plain.sample(10), mixed.sample(10)
    np.testing.assert_array_equal(a[1], b[1])  # the same surface
    assert not np.array_equal(a[0], b[0])  # under another mix of noise
    np.testing.assert_array_equal(make_pair(10, 32).noisy, a[0])  # the plain stream is the simulator's own draw


def test_the_mixes_draw_offsets_of_each_line_of_its_own_which_the_test_ranges_never_draw():
    """Independent line offsets: the row levels' changes from one row to the next undo each other (correlation near
    -0.5), unlike the random walk's; the test ranges leave them out, and their seeds' scans as they were."""
    assert TRAIN_RANGES.line_jitter_m == (0.0, 0.0) and MIX_RANGES.line_jitter_m[1] > 0
    silent = {name: (0.0, 0.0) for fields in GROUPS.values() for name in fields}
    ranges = replace(TRAIN_RANGES, **silent | {"white_m": (1e-13, 1e-13), "line_jitter_m": (10e-12, 10e-12)})
    pair = make_pair(3, 256, ranges)
    levels = np.median(level_plane(pair.noisy - pair.clean), axis=1)
    changes = np.diff(levels)
    assert 8e-12 < levels.std() < 12e-12
    assert np.corrcoef(changes[:-1], changes[1:])[0, 1] < -0.35


def test_the_mixes_draw_spikes_single_pixels_which_the_test_ranges_never_draw():
    assert TRAIN_RANGES.spike_rate == (0.0, 0.0) and MIX_RANGES.spike_rate[1] > 0
    silent = {name: (0.0, 0.0) for fields in GROUPS.values() for name in fields}
    ranges = replace(TRAIN_RANGES, **silent | {"white_m": (1e-13, 1e-13), "spike_rate": (0.004, 0.004), "spike_m": (50e-12, 50e-12)})
    pair = make_pair(4, 256, ranges)
    hit = np.abs(level_plane(pair.noisy - pair.clean)) > 5e-12
    assert 0.002 < hit.mean() < 0.006
    assert (hit[:, 1:] & hit[:, :-1]).sum() <= 0.05 * hit.sum()  # single pixels, not runs


def test_the_mixes_draw_the_z_loops_lag_which_smears_along_the_fast_axis_only():
    """A bump on one row: the lagged scan keeps it (no change before it, height back after it) but smears it toward
    the line's end; a flat line stays flat. The test ranges leave the lag out, and their seeds' scans as they were."""
    assert TRAIN_RANGES.feedback_fn == (0.0, 0.0) and MIX_RANGES.feedback_fn[0] > 0
    clean = np.zeros((3, 96))
    clean[1, 30:36] = 1.0
    lagged = feedback_lag(clean, NoiseParams(feedback_fn=0.08, feedback_zeta=0.7))
    np.testing.assert_array_equal(lagged[[0, 2]], 0.0)
    assert np.abs(lagged[1, :30]).max() < 1e-12  # causal: nothing before the bump
    centre = lambda row: (row * np.arange(96)).sum() / row.sum()  # noqa: E731
    assert centre(lagged[1]) > centre(clean[1]) + 1.5  # smeared toward the scan's end of the line
    assert lagged[1].max() < 0.97 and abs(lagged[1].sum() - 6.0) < 0.1 and abs(lagged[1, -1]) < 1e-3
    offset = feedback_lag(np.full((2, 40), 7.0), NoiseParams(feedback_fn=0.1))  # settled: no transient at line start
    np.testing.assert_allclose(offset, 7.0)


def test_the_mixes_draw_a_slow_wander_rows_rising_and_falling_together_smoothly():
    """The wander moves every row's level by its slow profile, smooth from line to line (no jumps that give it away
    as offsets) and nearly constant along each line; the test ranges leave it out, and their seeds' scans as they
    were."""
    assert TRAIN_RANGES.wander_m == (0.0, 0.0) and MIX_RANGES.wander_m[1] > 0
    silent = {name: (0.0, 0.0) for fields in GROUPS.values() for name in fields}
    ranges = replace(TRAIN_RANGES, **silent | {"white_m": (1e-14, 1e-14), "wander_m": (20e-12, 20e-12)})
    pair = make_pair(5, 128, ranges)
    wander = level_plane(pair.noisy - pair.clean)  # tilt and offset are not the wander
    levels = wander.mean(axis=1)
    assert 5e-12 < levels.std() < 20e-12  # the plane takes its straight part
    assert np.abs(np.diff(levels)).max() < 0.1 * np.ptp(levels)  # smooth from row to row
    assert np.abs(wander - levels[:, None] - (wander - levels[:, None]).mean(axis=0)).max() < 0.05 * np.ptp(levels)
    np.testing.assert_array_equal(make_pair(5, 128, replace(ranges, wander_m=(0.0, 0.0))).clean, pair.clean)

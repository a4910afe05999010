"""The simulator: determinism, physical units, and the statistics of each noise model."""

from dataclasses import replace

import numpy as np
import pytest

from maed.data import TEST_SEED_BASE, TRAIN_RANGES, NoiseParams, evaluation_set, make_pair
from maed.data.scan_noise import add_scan_noise, colored_noise, drift, periodic, pixel_times, plane, scars
from maed.data.surfaces import ALONG_ROWS_DEG, STEPS_ALONG_ROWS, _coordinates, islands, step_angle, terraces

QUIET = NoiseParams(
    white_m=0.0,
    line_walk_m=0.0,
    tip_jump_rate=0.0,
    scar_rate=0.0,
    drift_m=0.0,
    mains_m=0.0,
    resonance_m=0.0,
    tilt=(0.0, 0.0),
    offset_m=0.0,
)


def only(**changes) -> NoiseParams:
    return replace(QUIET, **changes)


def noise_of(p: NoiseParams, seed: int = 0, shape=(128, 128)) -> np.ndarray:
    clean = np.zeros(shape)
    return add_scan_noise(clean, 1e-10, p, np.random.default_rng(seed))


def test_pairs_are_deterministic_by_seed():
    a, b, c = make_pair(7), make_pair(7), make_pair(8)
    np.testing.assert_array_equal(a.noisy, b.noisy)
    np.testing.assert_array_equal(a.clean, b.clean)
    assert np.abs(a.clean - c.clean).max() > 1e-12


def test_heights_are_in_metres():
    for seed in range(20):
        pair = make_pair(seed, 64)
        relief = np.ptp(pair.clean)
        assert 1e-12 < relief < 5e-9, f"seed {seed}: relief {relief} m is not an STM surface"
        assert 1e-10 < pair.surface["field_of_view_m"] < 1e-7


def test_quiet_scan_is_the_clean_surface():
    pair = make_pair(3, 64)
    recorded = add_scan_noise(pair.clean, pair.pixel_m, QUIET, np.random.default_rng(0))
    np.testing.assert_allclose(recorded, pair.clean, atol=1e-20)


def test_line_offsets_are_constant_along_each_line():
    n = noise_of(only(line_walk_m=10e-12))
    assert np.abs(n - n[:, :1]).max() < 1e-24
    steps = np.diff(n[:, 0])
    assert steps.std() > 5e-12  # and they do change from line to line


def test_tip_changes_persist_from_the_instant_they_happen():
    n = noise_of(only(tip_jump_rate=0.05, tip_jump_m=50e-12), seed=1, shape=(400, 64))
    lines = np.flatnonzero(np.ptp(np.diff(n, axis=0), axis=1) > 0) + 1  # lines whose change from the line before varies
    within = np.flatnonzero(np.ptp(n, axis=1) > 0)  # lines that jump within themselves: changes during their trace
    assert len(within) >= 5
    assert set(within) <= set(lines)
    # during a retrace: the next line jumps as a whole. About half of all changes, as the trace takes half the period.
    whole = np.flatnonzero(np.abs(np.diff(n[:, 0])) > 0) + 1
    whole = [r for r in whole if r - 1 not in within]
    assert 0.25 < len(within) / (len(within) + len(whole)) < 0.75
    for r in within:  # one change, from its pixel on to the line's end
        col = int(np.flatnonzero(n[r] != n[r, 0])[0])
        assert np.ptp(n[r, :col]) == 0 and np.ptp(n[r, col:]) == 0


def test_z_creep_settles_exponentially_over_the_frame():
    n = noise_of(only(creep_m=300e-12, creep_tau=0.1))
    rows = n.shape[0]
    first, at_tau, last = n[0].mean(), n[round(0.1 * rows)].mean(), n[-1].mean()
    assert 280e-12 < first <= 300e-12  # the first line is creep_m up
    assert abs(at_tau / first - np.exp(-1)) < 0.05  # down by e after creep_tau of the frame
    assert abs(last) < 1e-3 * first  # settled by the end (e^-10)
    assert np.ptp(n[0]) < 0.2 * first  # a bow along the slow axis: nearly constant along one line


def test_white_noise_rms_and_independence():
    n = noise_of(only(white_m=7e-12), shape=(256, 256))
    assert n.std() == pytest.approx(7e-12, rel=0.03)
    lag1 = np.corrcoef(n[:, 1:].ravel(), n[:, :-1].ravel())[0, 1]
    assert abs(lag1) < 0.02


@pytest.mark.parametrize("exponent", [0.8, 1.0, 1.5])
def test_drift_spectrum_falls_as_one_over_f(exponent):
    rng = np.random.default_rng(0)
    psd = np.zeros(2**14 // 2 + 1)
    for _ in range(32):
        psd += np.abs(np.fft.rfft(colored_noise(2**14, 1000.0, exponent, 1.0, rng))) ** 2
    f = np.fft.rfftfreq(2**14, 1e-3)
    band = (f > 1) & (f < 400)
    slope = np.polyfit(np.log(f[band]), np.log(psd[band]), 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.1)


def test_drift_power_is_mostly_below_100_hz():
    p = only(drift_m=20e-12, line_rate_hz=10.0)
    series = drift(256, 256, p, np.random.default_rng(2))
    assert series.std() == pytest.approx(20e-12, rel=0.5)
    # Sample rate: 2 * 256 samples per line at 10 lines/s; rows keep only the forward half.
    flat = colored_noise(2**16, 5120.0, 1.0, 1.0, np.random.default_rng(3))
    psd = np.abs(np.fft.rfft(flat)) ** 2
    f = np.fft.rfftfreq(flat.size, 1 / 5120.0)
    assert psd[(f > 0) & (f < 100)].sum() / psd[f > 0].sum() > 0.5


def test_mains_pickup_appears_at_its_frequency():
    p = only(mains_m=5e-12, mains_hz=50.0, line_rate_hz=2.0)
    t = np.arange(4096) / 1000.0  # a regular 1 kHz time grid
    signal = periodic(t, dwell_s=0.0, p=p, rng=np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(signal))
    f = np.fft.rfftfreq(t.size, 1e-3)
    peaks = f[np.argsort(spectrum)[-2:]]
    assert sorted(np.round(peaks / 5) * 5) == [50.0, 100.0]  # fundamental and 2nd harmonic


def test_long_dwell_attenuates_fast_tones():
    p = only(resonance_m=5e-12, resonance_hz=900.0)
    t = np.arange(2048) / 5000.0
    fast = periodic(t, dwell_s=1 / 1000.0, p=p, rng=np.random.default_rng(0))
    direct = periodic(t, dwell_s=0.0, p=p, rng=np.random.default_rng(0))
    assert fast.std() < 0.2 * direct.std()


def test_pixel_times_follow_the_raster():
    t = pixel_times(4, 8, line_rate_hz=2.0)
    assert t[0, 0] == 0 and t[1, 0] == pytest.approx(0.5)
    assert np.all(np.diff(t, axis=1) > 0)  # time runs along the fast axis
    assert t[0, -1] < t[1, 0]  # and a line ends before the next begins (retrace in between)


def test_tilt_is_an_exact_plane():
    z = plane(32, 32, 1e-10, only(tilt=(0.03, -0.02), offset_m=2e-9))
    assert np.allclose(np.diff(z, axis=1), 0.03e-10) and np.allclose(np.diff(z, axis=0), -0.02e-10)
    assert z[0, 0] == pytest.approx(2e-9)


def test_scars_are_short_segments_of_single_lines():
    s = scars(400, 128, only(scar_rate=0.05, scar_m=50e-12), np.random.default_rng(4))
    hit_rows = np.flatnonzero(np.abs(s).max(axis=1) > 0)
    assert 8 <= len(hit_rows) <= 40  # about 5% of 400 lines
    for r in hit_rows:
        nz = np.flatnonzero(s[r])
        assert nz.size < 128 and np.ptp(nz) == nz.size - 1  # one contiguous segment


def test_terraces_have_monatomic_steps():
    x, y = _coordinates(128, 0.2e-9)
    z = terraces(x, y, 2, 0.235e-9, 0.3, np.random.default_rng(5))
    levels = np.unique(np.round(z / 0.235e-9))
    assert len(levels) == 3 and np.allclose(np.diff(levels), 1)


def test_a_share_of_step_edges_runs_along_the_scan_lines():
    rng = np.random.default_rng(3)
    angles = np.array([step_angle(rng) for _ in range(4000)])
    from_rows = np.degrees(np.abs((angles % np.pi) - np.pi / 2))  # 0: the edge runs along a row
    near = from_rows <= ALONG_ROWS_DEG
    uniform_share = (1 - STEPS_ALONG_ROWS) * 2 * ALONG_ROWS_DEG / 180
    assert abs(near.mean() - (STEPS_ALONG_ROWS + uniform_share)) < 0.03
    assert np.histogram(np.degrees(angles % (2 * np.pi)), bins=36, range=(0, 360))[0].min() > 0  # every angle


def test_step_edges_run_from_straight_to_meandering():
    """A straight step along the rows is what a network must learn to keep apart from a tip change; simulator 3 drew
    none (every edge wandered by 3 pixels or more over 128), and the shipped network erased such steps."""
    x, y = _coordinates(128, 0.2e-9)
    wander = []
    for seed in range(60):
        z = terraces(x, y, 1, 0.235e-9, np.pi / 2, np.random.default_rng(seed))  # the edge along the rows
        edge_row = (z != z[0]).argmax(axis=0)  # per column, the first row on the other terrace
        wander.append(edge_row[(edge_row > 0)].std())
    wander = np.array(wander)
    assert np.mean(wander < 1.0) > 0.25  # straight: within a pixel over the whole frame
    assert np.mean(wander > 3.0) > 0.25  # and meandering


def test_islands_are_flat_monatomic_and_cover_part_of_the_frame():
    for seed in range(20):
        z = islands(96, 0.235e-9, np.random.default_rng(seed))
        levels = np.unique(np.round(z / 0.235e-9))
        assert set(levels) <= {-2, -1, 0, 1, 2} and np.allclose(z / 0.235e-9, np.round(z / 0.235e-9))
        assert 0.08 < np.mean(z != 0) < 0.72


def test_hard_test_set_lies_outside_training_noise():
    hard = TRAIN_RANGES.scaled(1.6)
    assert hard.white_m[0] == TRAIN_RANGES.white_m[1]
    for pair in evaluation_set(3, size=32, hard=True):
        assert pair.seed >= TEST_SEED_BASE
        assert pair.noise.white_m >= TRAIN_RANGES.white_m[1]


def test_point_defects_on_a_lattice_stand_far_above_a_weak_corrugation():
    """An adatom stands 50-150 pm above a metal whose atoms corrugate by a few pm; a network that never saw one levelled
    the rows through it as through a line offset (simulator 4 drew defects up to 3 times the corrugation)."""
    ratios = []
    for seed in range(200):
        pair = make_pair(seed, 96, families=("lattice",))
        if pair.surface.get("point_defects") and pair.surface["corrugation_m"] < 10e-12 and "steps" not in pair.surface:
            relief = np.percentile(pair.clean, 99.9) - np.median(pair.clean)
            ratios.append(relief / pair.surface["corrugation_m"])
    assert len(ratios) >= 10
    assert np.mean(np.array(ratios) > 6) > 0.2

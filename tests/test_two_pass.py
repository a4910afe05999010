"""``maed.data.two_pass``: simulated trace/retrace pairs with shared and independent noise, opposite
feedback lag and an x-warp; and single-pass draws unchanged by the option."""

import numpy as np
import pytest

from maed.data import make_pair
from maed.data.scan_noise import NoiseParams
from maed.data.two_pass import PassParams, pass_times, record_passes

QUIET = NoiseParams(
    white_m=0.0, line_walk_m=0.0, tip_jump_rate=0.0, scar_rate=0.0, drift_m=0.0, mains_m=0.0, resonance_m=0.0, tilt=(0.0, 0.0), offset_m=0.0
)
STILL = PassParams(lag_px=0.0, feedback_noise_m=0.0, creep_px=0.0, hysteresis_px=0.0, warp_trend=0.0, turnaround_m=0.0)


def test_both_passes_keep_the_seeds_surface_and_noise_draw():
    single, both = make_pair(5, 64), make_pair(5, 64, both_passes=True)
    assert np.array_equal(single.clean, both.clean) and single.noise == both.noise
    assert single.retrace is None and both.retrace.shape == both.noisy.shape
    assert (both.noisy - both.retrace).std() > 1e-3 * both.noisy.std()


def test_aligned_passes_put_both_where_the_trace_was_and_keep_every_other_draw():
    drawn, aligned = make_pair(5, 64, both_passes=True), make_pair(5, 64, both_passes=True, aligned_passes=True)
    assert np.array_equal(drawn.clean, aligned.clean) and drawn.noise == aligned.noise
    columns = np.arange(64.0)[None, :]
    assert np.array_equal(aligned.geometry.trace_x, np.broadcast_to(columns, (64, 64)))
    assert np.array_equal(aligned.geometry.retrace_x, aligned.geometry.trace_x)
    assert aligned.passes.speed_ratio == 1.0 and aligned.passes.lag_px == 0.0
    assert aligned.passes.feedback_noise_m == drawn.passes.feedback_noise_m  # the independent noise stays
    assert np.abs(drawn.geometry.displacement[:, 8:-8]).max() > 0.1  # the seed's own passes are warped
    with pytest.raises(ValueError, match="needs both_passes"):
        make_pair(5, 64, aligned_passes=True)


def _step(rows: int = 32, cols: int = 128, at: int = 64) -> np.ndarray:
    return np.where(np.arange(cols) >= at, 1e-10, 0.0)[None, :].repeat(rows, axis=0)


def _edge_centre(image: np.ndarray) -> float:
    g = np.abs(np.diff(image.mean(axis=0)))
    return float((g * (np.arange(len(g)) + 0.5)).sum() / g.sum())


def test_feedback_lag_smears_an_edge_right_in_the_trace_and_left_in_the_retrace():
    rng = np.random.default_rng(0)
    lagged = PassParams(**{**STILL.as_dict(), "lag_px": 3.0})
    trace, retrace, geometry = record_passes(_step(), 1e-10, QUIET, lagged, rng)
    assert _edge_centre(trace) > 64 + 2.0  # the step lies between columns 63 and 64
    assert _edge_centre(retrace) < 64 - 2.0
    # Faster retrace: the same lag in seconds is more of its pixels.
    _, fast, geometry = record_passes(_step(), 1e-10, QUIET, PassParams(**{**STILL.as_dict(), "lag_px": 2.0, "speed_ratio": 2.0}), rng)
    assert geometry.lag_retrace_px == pytest.approx(4.0)
    assert _edge_centre(fast) < 64 - 3.0


@pytest.mark.parametrize("speed_ratio", [1.0, 2.0])
def test_a_ramped_slow_axis_puts_the_retrace_a_line_further_at_the_left_end_and_none_at_the_turnaround(speed_ratio):
    """A surface that rises by 1 per line: each pixel reads where the slow axis was at its instant. The trace moves
    on across its line (by the trace's share of the line pair), the retrace lies a whole line further than the
    trace at its left end (it is scanned last there) and level with it at the turnaround, whatever the speeds."""
    rows, cols = 32, 100
    ramp = np.arange(rows, dtype=float)[:, None].repeat(cols, axis=1)
    q = PassParams(**{**STILL.as_dict(), "speed_ratio": speed_ratio, "slow_lines": 1.0})
    trace, retrace, geometry = record_passes(ramp, 1e-10, QUIET, q, np.random.default_rng(0))
    inner = np.s_[10:-10]  # the cubic spline's mirror beyond the frame bends the ramp near its ends
    share = speed_ratio / (1 + speed_ratio)
    assert np.allclose(trace[inner] - ramp[inner], share * np.arange(cols) / cols, atol=1e-4)
    moved = (retrace - trace)[inner]
    assert np.allclose(moved[:, 0], 1 - (1 - share) / cols, atol=1e-4) and np.allclose(moved[:, -1], share / cols, atol=1e-4)
    assert geometry.slow_shift == pytest.approx(1 - 1 / cols, abs=1e-9)
    stepped, stepped_retrace, still = record_passes(ramp, 1e-10, QUIET, STILL, np.random.default_rng(0))
    assert np.allclose(stepped, ramp) and np.allclose(stepped_retrace, ramp) and still.slow_shift == 0.0


def test_the_warp_is_strongest_at_the_turnaround_and_opposite_in_the_two_passes():
    q = PassParams(**{**STILL.as_dict(), "creep_px": 3.0, "creep_decay": 0.1, "hysteresis_px": 1.0})
    _, _, geometry = record_passes(np.zeros((16, 200)), 1e-10, QUIET, q, np.random.default_rng(1))
    lag_t = np.arange(200) - geometry.trace_x[0]  # how far the tip trails its command going right
    assert lag_t[0] > lag_t[100] > lag_t[-1] > -1e-9  # creep at the left turnaround, then the bow
    lag_r = geometry.retrace_x[0] - np.arange(200)
    assert np.allclose(lag_r, lag_t[::-1])  # the same going left, mirrored
    u = geometry.displacement[0]
    seen = np.flatnonzero(np.isfinite(u))  # the trace's first columns lie left of all the retrace saw
    assert 0 < seen[0] < 10 and seen[-1] == 199
    assert np.all(u[seen] < 0) and abs(u[seen[0]]) > abs(u[100]) > 0


def test_what_the_passes_share_cancels_in_their_difference_and_what_they_do_not_stays():
    shared = NoiseParams(**{**QUIET.__dict__, "line_walk_m": 20e-12, "tip_jump_rate": 0.05, "tip_jump_m": 50e-12})
    trace, retrace, _ = record_passes(np.zeros((256, 64)), 1e-10, shared, STILL, np.random.default_rng(2))
    assert trace.mean(axis=1).std() > 20e-12
    differ = np.flatnonzero(np.abs(trace - retrace).max(axis=1) > 1e-15)
    # Offsets and lasting tip changes are shared: the passes differ only in a line where a tip
    # change fell between them (about 5 % of lines), and there by one step.
    assert 0 < len(differ) < 0.12 * 256
    for r in differ:
        assert len(np.unique(np.round((trace - retrace)[r] / 1e-15))) <= 3
    own = NoiseParams(**{**QUIET.__dict__, "white_m": 5e-12})
    q = PassParams(**{**STILL.as_dict(), "feedback_noise_m": 3e-12, "lag_px": 2.0})
    trace, retrace, _ = record_passes(np.zeros((256, 64)), 1e-10, own, q, np.random.default_rng(3))
    assert (trace - retrace).std() == pytest.approx(np.sqrt(2 * (5e-12**2 + 3e-12**2)), rel=0.05)
    # The feedback noise is coloured along x only: neighbours along a row correlate, across rows not.
    n = trace - trace.mean()
    along = (n[:, 1:] * n[:, :-1]).mean() / n.var()
    across = (n[1:] * n[:-1]).mean() / n.var()
    assert along > 0.1 and abs(across) < 0.03


def test_the_retrace_is_recorded_after_the_trace_and_takes_its_share_of_the_line():
    t, r = pass_times(4, 100, 2.0, speed_ratio=3.0)  # the retrace three times as fast
    assert np.all(np.diff(t, axis=1) > 0) and np.all(np.diff(r, axis=1) < 0)  # real-space columns
    assert t[0, -1] < r[0, -1] < r[0, 0] < t[1, 0]
    assert (t[0, -1] - t[0, 0]) == pytest.approx(3 * (r[0, 0] - r[0, -1]), rel=0.02)

"""Ground-truth scan-health events of the simulator: opt-in, listed, and where the list says."""

from __future__ import annotations

import numpy as np

from maed.data import EventSpec, line_noise, make_pair
from maed.data.scan_noise import NoiseRanges

QUIET = NoiseRanges(tip_jump_rate=(0.0, 0.0), scar_rate=(0.0, 0.0))


def test_events_are_opt_in_and_leave_the_scan_otherwise_unchanged():
    plain = make_pair(7, 64, QUIET, both_passes=True)
    again = make_pair(7, 64, QUIET, both_passes=True)
    assert plain.events == () and np.array_equal(plain.noisy, again.noisy)
    spec = EventSpec(tip_changes=1, scars=1, ringing=1, missing=1, repeated=1, size=5.0, gap_rows=6)
    with_events = make_pair(7, 64, QUIET, both_passes=True, events=spec)
    assert np.array_equal(with_events.clean, plain.clean)
    assert sorted(e.kind for e in with_events.events) == ["line_missing", "line_repeated", "ringing", "scar", "tip_change"]
    # Rows the events touch differ; the rows before the first event are byte-identical.
    first = min(e.row for e in with_events.events)
    assert np.array_equal(with_events.noisy[:first], plain.noisy[:first])


def test_each_event_is_where_its_record_says():
    pair = make_pair(3, 128, QUIET, events=EventSpec(tip_changes=1, scars=1, missing=1, repeated=1, noisy_tip_share=0))
    plain = make_pair(3, 128, QUIET)
    sigma = line_noise(plain.noisy)
    delta = pair.noisy - plain.noisy
    for event in pair.events:
        lo, hi = event.columns
        if event.kind == "scar" and event.pass_ == "trace":
            assert np.allclose(delta[event.row, lo:hi], event.size_m) and abs(event.size_m) == 5.0 * sigma
            assert np.allclose(np.delete(delta[event.row], np.arange(lo, hi)), 0)
        if event.kind == "tip_change":  # the step from its columns on, and on every later row
            assert np.allclose(delta[event.row, lo:hi], event.size_m)
            assert np.allclose(delta[event.row + 1 : event.row + 4], event.size_m) or np.isnan(delta[event.row + 1 : event.row + 4]).any()
        if event.kind == "line_missing":
            assert np.isnan(pair.noisy[event.row]).all()
        if event.kind == "line_repeated":
            assert np.array_equal(pair.noisy[event.row], pair.noisy[event.row - 1])


def test_a_crash_holds_z_at_one_value_beyond_the_surface():
    pair = make_pair(5, 64, QUIET, events=EventSpec(tip_changes=0, scars=0, crashes=1, gap_rows=6))
    (crash,) = pair.events
    rail = pair.noisy[crash.row, crash.columns[0]]
    assert (pair.noisy[crash.row + 1 :] == rail).all() and rail > np.nanmax(pair.noisy[: crash.row])

"""Scan-health alerts (maed.bridge.alerts) on simulated scans whose events are known."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from maed.bridge.alerts import HealthMonitor, late_findings, late_rows, scan_findings
from maed.bridge.alerts.feedback import RingWindows, spectra, strongest_tone
from maed.bridge.alerts.medians import median
from maed.bridge.alerts.monitor import LATE_CONTEXT
from maed.data import TEST_SEED_BASE, EventSpec, make_pair
from maed.data.scan_noise import NoiseRanges

QUIET = NoiseRanges(tip_jump_rate=(0.0, 0.0), scar_rate=(0.0, 0.0), white_corr_px=(0.0, 0.0))


def scan(trace: np.ndarray, retrace: np.ndarray | None = None, slow_axis: str = "down") -> list:
    """Every finding of a monitor fed the scan's lines in acquisition order (trace, then retrace, per row)."""
    return [finding for finding, _ in scan_findings(trace, retrace, slow_axis)]


def hits(found: list, kind: str, row: int) -> list:
    return [f for f in found if f.kind == kind and abs(f.row - row) <= 1]


@pytest.mark.parametrize("both", [False, True])
def test_tip_changes_and_scars_are_found_once_each_where_they_happened(both):
    # With the trace alone, a tip change between two lines is a whole line's offset, which the offsets'
    # random walk can hide (docs/results/alerts.md): that case needs both passes.
    spec = EventSpec(tip_changes=2 if both else 0, scars=3, size=8.0, gap_rows=16, noisy_tip_share=0.0)
    pair = make_pair(11, 128, QUIET, both_passes=both, events=spec)
    found = scan(pair.noisy, pair.retrace)
    for event in pair.events:
        assert len(hits(found, event.kind, event.row)) == 1, (event, found)
    # Nothing else: one alert per event.
    assert len(found) == len(pair.events), found


def test_a_clean_scan_raises_no_alert():
    pair = make_pair(11, 128, QUIET, both_passes=True)
    assert scan(pair.noisy, pair.retrace) == []


def test_lost_and_repeated_lines_are_flagged_by_row_and_a_crash_once():
    spec = EventSpec(tip_changes=0, scars=0, missing=1, repeated=1, crashes=1, gap_rows=16)
    pair = make_pair(12, 128, QUIET, events=spec)
    found = scan(pair.noisy)
    kinds = {e.kind: e for e in pair.events}
    (missing,) = [f for f in found if f.kind == "line_missing"]
    assert missing.row == kinds["line_missing"].row and missing.evidence["rows_missing"] == 1
    (repeated,) = [f for f in found if f.kind == "line_repeated"]
    assert repeated.row == kinds["line_repeated"].row
    (crash,) = [f for f in found if f.kind == "crash"]
    assert crash.row == kinds["crash"].row and crash.severity == "critical"


def test_an_up_scan_reports_frame_rows():
    spec = EventSpec(tip_changes=0, scars=2, size=8.0, gap_rows=16)
    pair = make_pair(13, 128, QUIET, events=spec)
    # The same surface scanned upwards: flip it, so that acquisition order meets the events alike.
    found = scan(pair.noisy[::-1].copy(), slow_axis="up")
    for event in pair.events:
        assert hits(found, "scar", 127 - event.row), (event, found)


def test_feedback_ringing_is_one_alert_per_episode():
    spec = EventSpec(tip_changes=0, scars=0, ringing=1, size=8.0, gap_rows=16)
    pair = make_pair(14, 128, QUIET, events=spec)
    (event,) = pair.events
    found = scan(pair.noisy)
    assert [f.kind for f in found] == ["ringing"] and abs(found[0].row - event.row) <= 1
    assert abs(found[0].evidence["period_px"] - event.extra["period_px"]) < 0.25 * event.extra["period_px"]


def _edge_and_noise(seed: int, rows: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A surface with an edge every line crosses at column 120, and white noise of unit rms."""
    surface = np.where(np.arange(256) >= 120, 10.0, 0.0)[None, :].repeat(rows, axis=0)
    return surface, np.random.default_rng(seed).standard_normal((rows, 256))


def _damped(amplitude: float, period: float = 6.0, decay: float = 25.0, phase: float = 0.0) -> np.ndarray:
    """A damped oscillation along a line from column 120 on (the feedback's ringing after the edge there)."""
    out = np.zeros(256)
    n = np.arange(256 - 120)
    out[120:] = amplitude * np.exp(-n / decay) * np.sin(2 * np.pi * n / period + phase)
    return out


def test_a_short_oscillation_after_an_edge_rings_where_it_is_and_bumps_a_period_apart_do_not():
    """Ringing is judged in windows along the line (``feedback.RingWindows``): an oscillation that dies out within
    some 25 pixels of its edge, over 4 lines, is found there, its period read between the window's bins (over the
    whole line its tone was lost in the noise of the rest: 8 times the noise, not found before); features that appear
    a period apart (a pair of adsorbates' tops, ``feedback.RING_LOW``) are not."""
    surface, noise = _edge_and_noise(8)
    surface[100:104] += _damped(8.0)
    found = scan(surface + noise)
    assert [(f.kind, f.row) for f in found] == [("ringing", 100)], found
    start, stop = found[0].columns
    assert start <= 120 < stop and stop - start <= 128  # where it rings, not the whole row
    assert abs(found[0].evidence["period_px"] - 6.0) < 0.3 and found[0].evidence["low"] < 0.2
    # A clean simulated scan whose adsorbates come in pairs: in row 40 the tops of two, 13 pixels apart, appear
    # together, a tone of 12.8 pixels to a window's spectrum (a development seed RING_LOW was set on; its rows hold
    # 0.25 to 2.4 against the bar of 0.2). A ringing oscillation elsewhere on those lines is still found: the pair's
    # window, which rises more, must not be the one the line is judged by.
    pair = make_pair(TEST_SEED_BASE + 910_081, 256, NoiseRanges(tip_jump_rate=(0.0, 0.0), scar_rate=(0.0, 0.0)))
    assert [f for f in scan(pair.noisy) if f.kind == "ringing"] == []
    noise_rms = float(np.median(np.abs(np.diff(pair.noisy[:, 150:], axis=1)))) * 1.4826 / np.sqrt(2)
    rings = pair.noisy.copy()
    n = np.arange(256 - 150)
    rings[40:44, 150:] += 8 * noise_rms * np.exp(-n / 25.0) * np.sin(2 * np.pi * n / 6.0)
    assert [(f.kind, f.row) for f in scan(rings) if f.kind == "ringing"] == [("ringing", 40)]


def test_ringing_is_one_alert_per_episode_and_not_what_a_line_alone_or_a_noisier_tip_shows():
    surface, noise = _edge_and_noise(22, rows=200)
    # An oscillation whose phase drifts from line to line for 8 lines: one alert, and nothing else in its lines.
    drifting = surface.copy()
    for k in range(8):
        drifting[100 + k] += _damped(8.0, phase=0.8 * k)
    found = scan(drifting + noise)
    assert [f.kind for f in found] == ["ringing"] and abs(found[0].row - 100) <= 1, found
    # One that lasts 14 lines: its end (the line less its lines before rings, the tone having left it) is no alert.
    lasting = surface.copy()
    lasting[100:114] += _damped(8.0)
    assert [(f.kind, f.row) for f in scan(lasting + noise)] == [("ringing", 100)]
    # A tone in one line alone is no ringing: a feedback oscillation lasts.
    once = surface.copy()
    once[100] += _damped(8.0)
    assert "ringing" not in {f.kind for f in scan(once + noise)}
    # Three times the noise from row 60 on (a noisier tip): a noise change, and no ringing from the history it cleared
    # (these two scans rang at rows 61 and 74 when ringing was judged right after it).
    for seed in (0, 37):
        louder = np.random.default_rng(seed).standard_normal((200, 256))
        louder[60:] *= 3.0
        assert "ringing" not in {f.kind for f in scan(louder)}


def test_ringing_in_both_passes_is_one_alert_and_unrelated_phases_ring_on_a_flat_surface():
    # The trace rings from row 100, the retrace (an episode of its own) from row 106: one event within 12 rows.
    surface, noise = _edge_and_noise(22)
    retrace_noise = np.random.default_rng(23).standard_normal(noise.shape)
    trace, retrace = surface + noise, surface + retrace_noise
    trace[100:104] += _damped(8.0)
    retrace[106:110] += _damped(8.0)[::-1]  # the retrace meets the edge from the right
    assert [f.kind for f in scan(trace, retrace)] == ["ringing"]
    # A feedback oscillation on a flat terrace in both passes at unrelated phases: with no surface in the lines before
    # to register the passes by, they keep the scan's last shift (0 here) instead of laying the tones on each other.
    cols = np.arange(256)
    flat_trace, flat_retrace = noise.copy(), retrace_noise.copy()
    flat_trace[100:106, 60:200] += 2.5 * np.sin(2 * np.pi * cols[60:200] / 7.0)
    flat_retrace[100:106, 60:200] += 2.5 * np.sin(2 * np.pi * cols[60:200] / 7.0 + 2.0)
    assert "ringing" in {f.kind for f in scan(flat_trace, flat_retrace)}


@pytest.mark.parametrize("width", [32, 48, 64, 100])
def test_a_tone_anywhere_in_the_band_keeps_its_own_power_out_of_the_low_bins(width):
    """The band starts at a window's bin 4 (``RingWindows.band``), so a tone's main lobe stays clear of the low bins
    whose gain tells a feature that appeared: a tone at the band's longest period rings on lines of any width (on a
    32-pixel line a 12-pixel tone once read as a feature, 0.2 and more of its band in the low bins)."""
    windows = RingWindows.of(width)
    rng = np.random.default_rng(width)
    typical = np.median([spectra(rng.standard_normal(width), windows) for _ in range(24)], axis=0)
    for at in (windows.band.start, windows.band.stop - 1):
        line = rng.standard_normal(width) + 6.0 * np.sin(2 * np.pi * np.arange(width) * at / windows.size)
        tone = strongest_tone(spectra(line, windows), typical, windows.band)
        assert tone.rings() and tone.at == at and tone.low < 0.05, (at, tone)
        assert abs(windows.period(spectra(line, windows)[tone.window], tone.at) - windows.size / at) < 0.05 * windows.size / at


def test_an_oscillation_that_stays_is_one_alert_and_does_not_hide_a_later_scar():
    """An oscillation that stays from row 100 on is one ringing alert, and the scar at row 140 is still found: a pass
    whose lines all ring is not a pass whose runs go unjudged."""
    rng = np.random.default_rng(9)
    cols = np.arange(256)
    lines = rng.standard_normal((200, 256))
    lines[100:, 120:184] += 4.0 * np.sin(2 * np.pi * cols[120:184] / 6.0)
    lines[140, 30:42] += 12.0
    found = [(f.kind, f.row) for f in scan(lines)]
    assert found == [("ringing", 100), ("scar", 140)], found


def test_lines_not_judged_still_get_the_cheap_checks_and_judging_resumes():
    spec = EventSpec(tip_changes=0, scars=2, missing=1, size=8.0, gap_rows=16)
    pair = make_pair(15, 128, QUIET, events=spec)
    scars = [e for e in pair.events if e.kind == "scar"]
    missing = next(e for e in pair.events if e.kind == "line_missing")
    skipped = range(scars[0].row - 2, scars[0].row + 2)  # the first scar's lines go unjudged
    monitor = HealthMonitor(128, 128)
    found = []
    for row in range(128):
        if np.isfinite(pair.noisy[row]).all():
            found += monitor.feed(row, pair.noisy[row], judge=row not in skipped)
    assert monitor.unjudged == len(skipped)
    assert not hits(found, "scar", scars[0].row) and hits(found, "scar", scars[1].row)
    assert hits(found, "line_missing", missing.row)


def test_lines_left_unjudged_are_judged_when_the_scan_is_over():
    spec = EventSpec(tip_changes=0, scars=2, missing=1, size=8.0, gap_rows=16)
    pair = make_pair(15, 128, QUIET, events=spec)
    scars = [e for e in pair.events if e.kind == "scar"]
    skipped = range(scars[0].row - 2, scars[0].row + 2)
    monitor, everything = HealthMonitor(128, 128), HealthMonitor(128, 128)
    for row in range(128):
        if np.isfinite(pair.noisy[row]).all():
            monitor.feed(row, pair.noisy[row], judge=row not in skipped)
            everything.feed(row, pair.noisy[row])
    assert not hits(monitor.findings, "scar", scars[0].row)
    # The skipped lines and their context are judged again, not the whole scan; only the event the live detectors
    # missed comes late, once, marked; the scar and the lost line they found do not.
    assert late_rows(monitor) == (max(0, skipped[0] - 1 - LATE_CONTEXT), min(128, skipped[-1] + 1 + LATE_CONTEXT))
    (late,) = late_findings(monitor, pair.noisy)
    assert late.kind == "scar" and abs(late.row - scars[0].row) <= 1 and late.evidence["late"] == 1
    assert late_rows(everything) is None and late_findings(everything, pair.noisy) == []


def test_a_tip_change_judged_against_a_history_the_skipped_lines_thinned_comes_late():
    # Every 6th line unjudged: the lines between are judged, but the whole-line offsets they are judged against
    # are too few for the offset bar (monitor.OFFSET_MIN), so the tip change at row 40 passes live unseen.
    spec = EventSpec(tip_changes=2, scars=0, size=8.0, gap_rows=16, noisy_tip_share=0.0)
    pair = make_pair(2, 128, QUIET, events=spec)
    event = min(pair.events, key=lambda e: e.row)
    monitor = HealthMonitor(128, 128)
    for row in range(128):
        monitor.feed(row, pair.noisy[row], judge=row % 6 != 0)
    assert not hits(monitor.findings, "tip_change", event.row)
    assert hits(late_findings(monitor, pair.noisy), "tip_change", event.row)


def _track_with_peaks(peaks: np.ndarray):
    from maed.bridge.alerts.monitor import PassTrack

    track = PassTrack(128)
    for _ in range(8):  # the other figures the bars are taken from (their values do not matter here)
        track.spreads.append(np.ones((len(track.lengths), 2)))
        track.sigma.append(1.0)
        track.noise.append(1.0)
        track.steps.append(0.0)
        track.power.append(np.ones(65))
    track.peaks.extend(peaks)
    return track


def test_a_scan_whose_lines_stand_out_more_often_gets_a_higher_bar():
    from maed.bridge.alerts.monitor import GUMBEL_Q, PEAKS
    from maed.bridge.alerts.steps import Z_SCAR, Z_STEP

    rng = np.random.default_rng(0)
    # Lines whose scan statistic follows a Gumbel law (location 4, scale 0.5): the bar is q scales above it.
    wide = _track_with_peaks(rng.gumbel(4.0, 0.5, PEAKS))
    bars = wide.bars()
    assert abs(bars["z_step"] - (4.0 + GUMBEL_Q * 0.5)) < 0.2 * GUMBEL_Q * 0.5
    assert bars["z_scar"] > bars["z_step"]
    # A quiet scan (a narrow law well under the floor) keeps the global floors.
    quiet = _track_with_peaks(rng.gumbel(3.0, 0.05, PEAKS))
    assert quiet.bars()["z_step"] == Z_STEP and quiet.bars()["z_scar"] == Z_SCAR
    # Too few lines yet: the floors.
    assert _track_with_peaks(rng.gumbel(4.0, 0.5, PEAKS // 4)).bars()["z_step"] == Z_STEP


def test_the_bar_rises_on_a_scan_with_terrace_edges_and_an_alert_carries_it():
    # The lines of a scan with jittering terrace edges reach higher statistics than those of a scan of
    # adsorbates on flat terraces, so its bar ends higher; a large scar is still found in it, and its
    # evidence says which bar it cleared.
    from maed.bridge.alerts.steps import Z_STEP

    bars = {}
    for family in ("steps", "adsorbates"):
        pair = make_pair(16, 256, QUIET, families=(family,), events=EventSpec(tip_changes=0, scars=1, size=12.0, gap_rows=40))
        monitor = HealthMonitor(256, 256)
        found = []
        for row in range(256):
            found += monitor.feed(row, pair.noisy[row])
        (scar,) = pair.events
        (hit,) = hits(found, "scar", scar.row)
        assert hit.evidence["z"] >= hit.evidence["bar"] >= Z_STEP
        bars[family] = monitor.tracks["trace"].bars()["z_step"]
    assert bars["steps"] > Z_STEP + 2 > Z_STEP + 1 > bars["adsorbates"], bars


def _noise_changes(lines: np.ndarray) -> list:
    monitor = HealthMonitor(*lines.shape)
    found = []
    for row, line in enumerate(lines):
        found += monitor.feed(row, line)
    return [f for f in found if f.kind == "tip_change" and "noise_ratio" in f.evidence]


def test_a_noise_change_is_judged_against_how_much_the_scans_lines_vary(monkeypatch):
    import maed.bridge.alerts.monitor as monitor_module

    rng = np.random.default_rng(1)
    # Lines whose noise varies a lot from line to line (log rms spread 0.6, as rows through molecules and
    # between them, or bands of streaks): no lasting change of the tip.
    varying = rng.standard_normal((256, 256)) * np.exp(0.6 * rng.standard_normal((256, 1)))
    assert _noise_changes(varying) == []
    # The same lines against the ratio 2 alone raise noise changes (what the scan's own law prevents).
    monkeypatch.setattr(monitor_module, "NOISE_Q", 0.0)
    assert len(_noise_changes(varying)) >= 2
    monkeypatch.undo()
    # A quiet scan whose noise quadruples from row 128 on: one noise change, there.
    steady = rng.standard_normal((256, 256)) * np.where(np.arange(256) < 128, 1.0, 4.0)[:, None]
    (change,) = _noise_changes(steady)
    assert abs(change.row - 128) <= 1 and change.evidence["ratio_bar"] == 2.0


def test_a_step_edge_nearly_along_the_rows_is_no_noise_change():
    # A terrace edge that crosses a line over much of its length puts a level into the line less the lines
    # before: its robust rms doubles for a line or two, as a noisier tip's would; the noise does not change.
    rng = np.random.default_rng(2)
    rows, cols = np.mgrid[:256, :256]
    edge = 100 + 2 * np.sin(cols / 25)  # meanders across rows 98 to 102
    lines = 5.0 * (rows > edge) + rng.standard_normal((256, 256))
    assert _noise_changes(lines) == []
    # The same lines' noise tripling at row 160 is still a noise change.
    lines[160:] += 2.8 * rng.standard_normal((96, 256))
    (change,) = _noise_changes(lines)
    assert abs(change.row - 160) <= 1


def test_noise_that_swells_and_fades_over_tens_of_lines_is_no_noise_change():
    # A scan's noise may rise and fall slowly (by 3 over 25 lines, `A200622.190818.dat`): the recent
    # median lags it by more than the bar, but no line's noise jumps from the lines just before it.
    rng = np.random.default_rng(3)
    swell = np.exp(np.log(3.0) * 0.5 * (1 - np.cos(2 * np.pi * np.arange(256) / 50)))
    assert _noise_changes(rng.standard_normal((256, 256)) * swell[:, None]) == []


def _lines_with_offsets(seed: int, rows: int = 160, cols: int = 256) -> np.ndarray:
    """White noise with line offsets that wander a little from line to line (the feedback's walk)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, cols)) + np.cumsum(0.3 * rng.standard_normal(rows))[:, None]


def test_a_whole_line_off_and_back_is_a_scar_and_the_line_after_it_no_tip_change():
    # A whole line 6 noise low for one line, then back: a scar the width of the line. The line after it steps
    # back up and the next keeps that level, which the line before alone would call a tip change.
    lines = _lines_with_offsets(4)
    lines[100] -= 6.0
    found = scan(lines)
    assert [(f.kind, f.row, f.columns) for f in found] == [("scar", 100, (0, 256))]
    # A whole line 6 noise low from row 100 on: a tip change at the line's start, not a scar.
    lines[100] += 6.0
    lines[100:] -= 6.0
    assert [(f.kind, f.row) for f in scan(lines)] == [("tip_change", 100)]


def test_a_tip_change_in_a_scan_s_first_lines_is_found_against_a_bar_for_few_offsets():
    """Whole-line offsets are judged from the 24th line on, against a bar that the few offsets seen so far raise
    (``monitor.offset_bar``): a jump of 20 spreads at line 28 is a tip change (judged from line 32 on before, it was
    missed), and the first 40 lines of 150 clean scans raise no whole-line alert."""
    lines = _lines_with_offsets(5, rows=64)
    lines[28:] -= 6.0
    assert [(f.kind, f.row) for f in scan(lines)] == [("tip_change", 28)]
    whole = [f for seed in range(150) for f in scan(_lines_with_offsets(100 + seed, rows=40)) if f.columns == (0, 256)]
    assert whole == []


def test_a_tone_both_passes_carry_at_one_place_is_the_surface_and_one_pass_alone_rings():
    # Rows 100 to 105 hold a periodic structure along the row (pores, a molecule's lobes): in the trace and the
    # retrace alike it is the surface. The same oscillation in the trace alone is the feedback ringing.
    rng = np.random.default_rng(5)
    cols = np.arange(256)
    tone = np.zeros((160, 256))
    tone[100:106, 60:200] = 2.0 * np.sin(2 * np.pi * cols[60:200] / 7.0)
    trace, retrace = rng.standard_normal((2, 160, 256))
    assert [f.kind for f in scan(trace + tone, retrace + tone)] == []
    found = scan(trace + tone, retrace)  # rings where the tone comes and where it goes
    assert {(f.kind, f.pass_) for f in found} == {("ringing", "trace")} and abs(found[0].row - 100) <= 1
    assert "other_pass_share" in found[0].evidence  # the other pass was asked
    # A feedback oscillation in both passes, at phases unrelated from pass to pass, rings too: the surface both
    # passes share (a smooth relief, here) lays them on each other, and there the tones do not agree.
    from scipy import ndimage

    relief = ndimage.gaussian_filter(rng.standard_normal((160, 256)), 3.0) * 40.0
    phase = np.zeros((160, 256))
    phase[100:106, 60:200] = 2.0 * np.sin(2 * np.pi * cols[60:200] / 7.0 + 2.0)
    found = scan(trace + relief + tone, retrace + relief + phase)
    assert "ringing" in {f.kind for f in found} and min(abs(f.row - 100) for f in found) <= 1


def test_a_rough_patch_both_passes_show_is_no_noise_change_and_a_noisier_tip_is():
    # From row 100 on the surface is rough at the pixel scale (a disordered film): its line less the lines
    # before holds three times the steps of the noise, as a noisier tip's would, but at the same place in both
    # passes. One pass alone cannot tell; with both, only noise each pass draws anew is a change of the tip.
    rng = np.random.default_rng(6)
    rough = np.zeros((160, 256))
    rough[100:] = 3.0 * rng.standard_normal((60, 256))
    trace, retrace = rng.standard_normal((2, 160, 256))
    assert [f.row for f in scan(trace + rough) if "noise_ratio" in f.evidence] == [100]
    assert scan(trace + rough, retrace + rough) == []
    noisier = 3.0 * rng.standard_normal((2, 160, 256)) * (np.arange(160) >= 100)[:, None]
    found = [f for f in scan(trace + noisier[0], retrace + noisier[1]) if "noise_ratio" in f.evidence]
    assert len(found) == 1 and abs(found[0].row - 100) <= 1 and found[0].evidence["other_pass_correlation"] < 0.2


@pytest.mark.parametrize("cols", [2, 5])
def test_a_scan_too_narrow_to_judge_gets_the_cheap_checks_and_no_error(cols):
    # A controller may send a scan a few pixels wide; the window statistics have no room there, so its lines
    # are not judged, but a repeated line is still one.
    lines = np.random.default_rng(7).standard_normal((64, cols))
    lines[40] = lines[39]
    found = scan(lines)
    assert [(f.kind, f.row) for f in found] == [("line_repeated", 40)]


def test_pixel_noise_is_the_rms_of_white_noise_and_blind_to_a_level_over_a_run():
    from maed.bridge.alerts.pixel_noise import pixel_noise

    noise = np.random.default_rng(8).standard_normal(4096)
    assert abs(pixel_noise(2.0 * noise) - 2.0) < 0.1
    with_run = 2.0 * noise + 50.0 * (np.arange(4096) > 1000)
    assert abs(pixel_noise(with_run) - 2.0) < 0.1


def test_a_low_tip_change_within_a_line_counts_where_the_other_pass_confirms_it():
    """A relief that changes steadily from line to line (features longer along the slow axis than a few lines) makes
    a line less the lines before it vary more than the noise does, which raises the height an event must have
    (``steps.MIN_HEIGHT``); a real tip change within a retrace line was missed so (`A200622.190818`). Below that height
    a tip change counts where its split stands twice the scan's bar and the trace's next line moved by its step."""
    from scipy import ndimage

    rng = np.random.default_rng(8)
    relief = ndimage.gaussian_filter(rng.standard_normal((160, 256)), (6.0, 3.0))
    relief *= 1.0 / np.std(np.diff(relief, axis=0))
    trace, retrace = rng.standard_normal((2, 160, 256)) + relief
    # During the retrace of row 100, which runs right to left, at column 160: its columns left of there and every
    # later line of both passes are 2.5 noise higher.
    retrace[100, :160] += 2.5
    retrace[101:] += 2.5
    alone = retrace.copy()
    trace[101:] += 2.5
    found = scan(trace, retrace)
    assert [(f.kind, f.row, f.pass_, f.columns) for f in found] == [("tip_change", 100, "retrace", (160, 256))]
    assert found[0].evidence["confirmed_below_height"] == 1
    # The trace alone shows only whole lines moved from row 101, lower than a tip change must be on one pass's
    # evidence; a change the trace does not share is no tip's (one tip scans both passes).
    assert scan(trace) == []
    assert scan(trace - (np.arange(160) >= 101)[:, None] * 2.5, alone) == []
    # A scan of one pass: the same split, as a trace from column 96 on, is too low to count on its own evidence;
    # twice as high, it counts.
    one_pass = alone[:, ::-1]
    assert scan(one_pass) == []
    higher = one_pass + (np.arange(160) >= 101)[:, None] * 2.5
    higher[100, 96:] += 2.5
    assert [(f.kind, f.row, f.columns) for f in scan(higher)] == [("tip_change", 100, (0, 96))]  # the part before


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 24, 255, 256])
def test_the_detectors_median_is_numpys_bit_for_bit(count):
    """``alerts.medians.median`` replaces ``np.median`` on the per-line path: same values, NaN for no values."""
    rng = np.random.default_rng(count)
    values = rng.normal(size=count) * 1e-10
    stacked = rng.normal(size=(count, 5))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # np.median of no values warns
        expected, expected_axis = np.median(values), np.median(stacked, axis=0)
    np.testing.assert_array_equal(median(values), expected)
    np.testing.assert_array_equal(median(stacked, axis=0), expected_axis)
    np.testing.assert_array_equal(median(list(values)), expected)  # a deque or list of figures

"""A tip change that the published frame keeps is taken off and named; a step edge along the rows is kept
(``maed.line_jumps``): a jump of whole lines, abrupt in the raw scan's columns, far beyond the rows' own line noise, that the
other pass (where at hand) does not show at the same rows."""

import json

import numpy as np
import pytest

from maed.denoise import denoise_guarded
from maed.denoise_files import denoise_file, record_notes
from maed.engine import load_backend
from maed.line_jumps import FoundJump, find_line_jumps, take_off_line_jumps
from maed.scanfiles import read_file, write_gwy

SIZE = 256
ROW, COL = 150, 100
"""Where the tip changes: from this column of this row of the trace on."""
JUMP = 0.6


def lattice() -> np.ndarray:
    """A hexagonal lattice of 8 pixels: the rows of a scan that holds one stay unaligned before the network
    (``maed.normalise.level_rows``), so the network sees the jump."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(float)
    k = 2 * np.pi / 8
    return sum(np.cos(k * (xx * np.cos(a) + yy * np.sin(a))) for a in (0.3, 0.3 + 2 * np.pi / 3, 0.3 + 4 * np.pi / 3)) / 3


def tip_change(surface: np.ndarray, row: int = ROW, col: int = COL) -> np.ndarray:
    """``surface`` as the tip saw it when its height moved by ``JUMP`` at ``col`` of ``row``."""
    moved = surface.copy()
    moved[row, col:] += JUMP
    moved[row + 1 :] += JUMP
    return moved


def noisy(image: np.ndarray, seed: int = 0, spread: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return image + rng.normal(0, spread, image.shape) + rng.normal(0, 0.01, (len(image), 1))


def step_along_rows(width_rows: float) -> np.ndarray:
    """Two terraces whose edge runs exactly along the scan lines at ``ROW``, ``width_rows`` wide."""
    rows = np.arange(SIZE, dtype=float)[:, None]
    return np.repeat(JUMP / 2 * (1 + np.tanh((rows - ROW - 0.5) / max(width_rows, 1e-6))), SIZE, axis=1)


def judged(found: list[FoundJump]) -> list[tuple[int, bool]]:
    """Each jump found as its row and whether the other pass judged it."""
    return [(jump.row, jump.judged) for jump in found]


@pytest.fixture(scope="module")
def backend():
    return load_backend("onnx", "rt-plane", threads=1)


def test_maed_denoise_takes_a_tip_change_off_and_names_it(backend):
    surface = lattice()
    scan = noisy(tip_change(surface)) * 1e-10
    result = denoise_guarded(scan, backend)
    published = result.data / 1e-10
    assert len(result.line_jumps) == 1
    jump = result.line_jumps[0]
    assert (jump.start, jump.stop) == (ROW, SIZE)  # the fewer rows moved; most of the split line had moved
    assert jump.height / 1e-10 == pytest.approx(JUMP, rel=0.1)
    assert not jump.both_passes
    # The rows after the change lie where the rows before lie: the lattice's mean over rows is flat.
    levels = (published - surface).mean(axis=1)
    assert abs(np.median(levels[ROW + 10 :]) - np.median(levels[: ROW - 10])) < 0.1 * JUMP
    # The split line's part recorded before the change was mended with it: no scar where the line was split.
    error = published - surface - np.median(levels)
    assert abs(error[ROW, :COL].mean()) < 0.15 * JUMP and abs(error[ROW, COL:].mean()) < 0.15 * JUMP
    # Without the change the same scan has no jump to take off.
    assert denoise_guarded(noisy(surface) * 1e-10, backend).line_jumps == ()


def test_a_step_edge_along_the_rows_wider_than_a_row_is_kept():
    """A terrace edge spreads over the rows its width spans; a tip change moves each column between two lines."""
    for width in (1.0, 2.0):
        scan = noisy(step_along_rows(width), seed=1)
        assert find_line_jumps(scan, scan) == []
    abrupt = noisy(step_along_rows(0.0), seed=1)
    assert judged(find_line_jumps(abrupt, abrupt)) == [(ROW, False)]  # one pass cannot tell it from a tip change


def test_the_other_pass_tells_a_step_edge_from_a_tip_change():
    """A step edge narrower than a row lies at the same rows in both passes; a tip change during the trace of a line
    splits that trace line at its column and leaves the retrace of the line (scanned after it) moved whole."""
    edge = step_along_rows(0.0)
    trace, retrace = noisy(edge, seed=2), noisy(edge, seed=3)
    assert find_line_jumps(trace, trace, retrace) == []
    retrace[ROW - 10 : ROW + 10] = np.nan  # the other pass has not measured the jump's rows: one pass judges it
    assert judged(find_line_jumps(trace, trace, retrace)) == [(ROW, False)]
    flat = np.zeros((SIZE, SIZE))
    trace = noisy(tip_change(flat), seed=2)
    retrace = noisy(tip_change(flat, col=0), seed=3)
    found = find_line_jumps(trace, trace, retrace)
    assert judged(found) == [(ROW - 1, True)]  # most of the split line moved: the jump lies before it
    mended, (jump,) = take_off_line_jumps(trace, found)
    assert jump.height == pytest.approx(JUMP, rel=0.1) and jump.both_passes
    # The trace line split by the change is mended too: every line lies at the level of the lines before the change.
    levels = np.median(mended, axis=1)
    assert np.abs(levels - np.median(levels[: ROW - 1])).max() < 0.15 * JUMP


def test_a_split_made_in_the_retrace_or_bottom_to_top_is_taken_off_with_its_own_sign():
    """The contrast of a split reads a trace's rise, mirrored, as a retrace's fall: a tip change during a retrace
    line (its columns left of the moment scanned after it) or in a scan recorded from the bottom up is taken off, not
    doubled."""
    flat = np.zeros((SIZE, SIZE))
    retrace = flat.copy()
    retrace[ROW, :COL] += JUMP
    retrace[ROW + 1 :] += JUMP
    for seed in range(3):
        for raw in (noisy(retrace, seed), noisy(tip_change(flat), seed)[::-1]):
            found = find_line_jumps(raw, raw)
            assert len(found) == 1 and abs(found[0].height) == pytest.approx(JUMP, rel=0.15), found
            mended, _ = take_off_line_jumps(raw, found)
            levels = np.median(mended, axis=1)
            assert np.abs(levels - np.median(levels)).max() < 0.15 * JUMP


def test_the_rows_moved_are_where_the_raw_scan_jumps():
    """The published frame may place a jump a row away from the raw scan's (the network spreads it): the rows moved
    are the raw scan's, so no line is left a whole jump off."""
    flat = np.zeros((SIZE, SIZE))
    raw = noisy(tip_change(flat, col=0), seed=6)
    frame = tip_change(flat, row=ROW + 1, col=0)  # the frame's jump one row later
    found = find_line_jumps(frame, raw)
    assert judged(found) == [(ROW - 1, False)]
    mended, _ = take_off_line_jumps(raw, found)
    assert np.abs(np.median(mended, axis=1)).max() < 0.1 * JUMP


def test_no_jump_that_only_one_of_frame_and_raw_scan_makes_or_at_the_frame_s_edge():
    flat = noisy(np.zeros((SIZE, SIZE)), seed=7)
    jumped = tip_change(flat, col=0)
    assert find_line_jumps(jumped, flat) == []  # the frame's alone
    assert find_line_jumps(flat, jumped) == []  # the raw scan's, which the network took off with the line offsets
    ramp = flat + np.clip((np.arange(SIZE) - ROW + 3) / 6, 0, 1)[:, None] * 0.3 * JUMP  # kept in part, as a ramp
    assert judged(find_line_jumps(ramp, jumped)) == [(ROW - 1, False)]
    first, last = flat.copy(), flat.copy()
    first[0] += JUMP  # one odd first line: settling, not a tip change
    last[-1] += JUMP
    assert find_line_jumps(first, first) == [] and find_line_jumps(last, last) == []
    unfinished = jumped.copy()
    unfinished[100, :10] = np.nan  # a row not measured in full gives no bar to judge by
    assert find_line_jumps(unfinished, unfinished) == []


def test_a_one_line_excursion_is_no_jump_and_line_noise_raises_the_bar():
    quiet = noisy(np.zeros((SIZE, SIZE)), seed=4)
    scarred = quiet.copy()
    scarred[ROW] += JUMP  # one line off and back: a scar, not a lasting change
    assert find_line_jumps(scarred, scarred) == []
    jumped = tip_change(quiet, col=0)
    assert judged(find_line_jumps(jumped, jumped)) == [(ROW - 1, False)]
    rough = jumped + np.random.default_rng(4).normal(0, 0.2, (SIZE, 1))  # the same jump within strong line noise
    assert find_line_jumps(rough, rough) == []


def test_a_line_off_and_back_over_two_lines_is_no_jump():
    """As on ``createc_scan_close_100nm``'s retrace: a line drops, comes back over the next line split mid-line, and a
    lasting change follows four lines on, so the rows' changes around the return sum to about the return itself."""
    scan = noisy(np.zeros((SIZE, SIZE)), seed=4)
    scan[101] -= JUMP
    scan[102, :128] += 0.12 * JUMP
    scan[102, 128:] -= JUMP
    scan[103:107] += 0.12 * JUMP
    scan[107:] += 0.99 * JUMP
    assert find_line_jumps(scan, scan) == []


def test_a_scan_recorded_in_converter_steps_has_its_line_noise_measured():
    """Noise within a converter's step leaves most rows' changes exactly 0, so the rows' robust spread is 0 and every
    drift of a step would pass for a jump; the step bounds the spread from below."""
    rng = np.random.default_rng(8)
    steps = 0.02 * np.round(rng.normal(0, 0.3, (SIZE, SIZE)) + np.cumsum(rng.choice([-1, 0, 0, 0, 1], SIZE))[:, None])
    assert find_line_jumps(steps, steps) == []
    jumped = tip_change(steps, col=0)  # a jump of 30 steps
    assert judged(find_line_jumps(jumped, jumped)) == [(ROW - 1, False)]


def test_a_tip_change_in_a_scan_recorded_in_converter_steps_stands_against_its_unrounded_line_noise():
    """Line offsets of about a step: the median of each row's differences is a whole step, most often 0, so the
    rows' robust spread says one step however large the offsets are, and a jump of ten steps stood only ten times
    it. Each row's interquartile mean of differences is not rounded, and the jump stands 17 times its spread."""
    rng = np.random.default_rng(9)
    offsets = rng.normal(0, 0.5, (SIZE, 1))
    steps = 0.02 * np.round(rng.normal(0, 0.3, (SIZE, SIZE)) + offsets)
    assert find_line_jumps(steps, steps) == []
    jumped = steps.copy()
    jumped[ROW + 1 :] += 0.2  # ten steps, between two lines
    assert judged(find_line_jumps(jumped, jumped)) == [(ROW, False)]


def test_the_jump_lies_in_the_record_and_the_terminal_note(backend, tmp_path):
    scan = noisy(tip_change(lattice())) * 1e-10
    np.save(tmp_path / "scan.npy", scan.astype(np.float32))
    _, record = denoise_file(tmp_path / "scan.npy", tmp_path / "denoised", backend)
    assert json.loads((tmp_path / "denoised.json").read_text())["line_jumps"] == record["line_jumps"]
    (jump,) = record["line_jumps"]
    assert jump["rows_moved"] == [ROW, SIZE] and jump["both_passes"] is False
    (note,) = record_notes(tmp_path / "scan.npy", record, "trace")
    assert f"rows {ROW} to {SIZE - 1} moved by {-jump['height']:+.4g}" in note and "the other pass" in note


def test_a_tip_change_within_a_line_is_found_within_strong_line_noise():
    """Line offsets move every column of a line alike; a tip change within a line splits it, the columns after the
    moment jumping in that line and those before it in the next, which no offset does (``SPLIT_Z``). Within line
    offsets that hide a jump between lines (the test above), the split one is found, and the offsets alone give
    none."""
    quiet = noisy(np.zeros((SIZE, SIZE)), seed=4)
    offsets = np.random.default_rng(4).normal(0, 0.2, (SIZE, 1))
    rough = tip_change(quiet) + offsets
    found = find_line_jumps(rough, rough)
    assert len(found) == 1 and found[0].row in (ROW - 1, ROW), found
    assert found[0].height == pytest.approx(JUMP, rel=0.1)  # read from the split, free of the offsets
    assert find_line_jumps(quiet + offsets, quiet + offsets) == []
    # The same split, but the lines go back two lines on, in a frame that keeps a change at the row as a network that
    # took it for an edge would: nothing lasts (``_lasting``). On a surface that slopes across the rows, the slope is
    # no lasting change (``_trend``: a slope over fewer than half the rows, which the scan's own slope leaves in).
    kept = JUMP * (np.arange(SIZE) > ROW)[:, None]
    slope = 0.15 * np.clip(np.arange(SIZE, dtype=float) - 120, 0, 100)[:, None]
    for base in (quiet + offsets, quiet + slope):
        back = base.copy()
        back[ROW, COL:] += JUMP
        back[ROW + 1 : ROW + 3] += JUMP
        assert find_line_jumps(back + kept, back) == [], base is quiet + slope


def test_where_the_scan_order_is_known_a_split_is_taken_off_only_when_read_in_it():
    """A step edge crossing a whole line within two rows looks like a split too, read in one scan order or the
    other: where the pass's order is known (``mirrored``: a retrace, or a scan from the bottom, not both), a split
    read the other way is no tip change. Within line offsets that hide a jump between lines, only the split can
    find it."""
    for seed in range(3):
        quiet = noisy(np.zeros((SIZE, SIZE)), seed=seed)
        offsets = np.random.default_rng(seed).normal(0, 0.1, (SIZE, 1))
        in_trace = tip_change(quiet) + offsets
        in_retrace = quiet + offsets
        in_retrace[ROW, :COL] += JUMP
        in_retrace[ROW + 1 :] += JUMP
        for raw, mirrored in ((in_trace, False), (in_retrace, True), (in_trace[::-1], True)):
            assert len(find_line_jumps(raw, raw)) == 1
            assert len(find_line_jumps(raw, raw, mirrored=mirrored)) == 1
            assert find_line_jumps(raw, raw, mirrored=not mirrored) == []


def test_a_file_that_does_not_record_its_scan_order_is_judged_in_either(backend, tmp_path):
    """A scan that ran up, its tip change split within a line: the Nanonis file says which way the slow axis ran, and
    the split is read in that order; the same image in a Gwyddion file (which names every channel a trace and does
    not say which way the slow axis ran) is judged in either order, and the tip change is taken off there too."""
    from scanfile_helpers import write_sxm

    rng = np.random.default_rng(0)
    recorded = tip_change(lattice())  # in the order the rows were scanned: the first row scanned first
    recorded = (recorded + rng.normal(0, 0.1, recorded.shape) + rng.normal(0, 0.1, (SIZE, 1))) * 1e-10
    write_sxm(tmp_path / "up.sxm", channels=(("Z", "m", "forward"),), rows=SIZE, cols=SIZE, scan_dir="up", planes=[recorded])
    image = read_file(tmp_path / "up.sxm").images[0]
    write_gwy(tmp_path / "up.gwy", image, {"Z (Forward)": image.data})
    for name in ("up.sxm", "up.gwy"):
        _, record = denoise_file(tmp_path / name, tmp_path / f"out_{name.replace('.', '_')}", backend)
        (jump,) = record["line_jumps"]
        assert jump["height"] == pytest.approx(-JUMP * 1e-10, rel=0.1) or jump["height"] == pytest.approx(JUMP * 1e-10, rel=0.1)

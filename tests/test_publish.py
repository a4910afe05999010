"""One chain after the network (maed.publish) for maed denoise and the live guard: the live guard publishes what it
decides, in the scan's unit; what it gives back reaches the network's part and the conservative part alike."""

import numpy as np
import pytest

from bridge.streaming import GuardJob, Levelling, judge
from maed.publish import publish
from maed.research.guard_calibration import invent
from maed.trust import ROW_LEVELS_KEPT, Thresholds

R, C = np.indices((128, 128), dtype=float)
LATTICE = 0.3 * sum(np.cos(2 * np.pi / 6.0 * (C * np.cos(t) + R * np.sin(t))) for t in (0.3, 0.3 + 2 * np.pi / 3))
PIT = -6.0 * np.exp(-((R - 64) ** 2 + (C - 40) ** 2) / (2 * 3.0**2))
CLEAN = LATTICE + PIT + 1.5 * (C > 90)


def _depth(image: np.ndarray) -> float:
    """The pit's depth below the median of the terrace around it (negative: a pit)."""
    return float(image[62:67, 38:43].mean() - np.median(image[44:84, 52:60]))


@pytest.mark.parametrize("kind", ["pit filled", "bands"])
def test_the_live_guard_publishes_what_publish_decides(kind):
    x = CLEAN + 0.3 * np.random.default_rng(5).standard_normal(CLEAN.shape)
    # What a network might have made of the noisy scan: the surface with its pit filled in, or with bands drawn.
    y = CLEAN - PIT if kind == "pit filled" else invent(CLEAN, "bands", np.random.default_rng(2))
    decided = publish(x, y, rows_aligned=True)
    scale, centre, plane = 2.5, 0.7, 0.01 * C
    level = Levelling(coeffs=np.zeros(3), centre=centre, scale=scale, rows=128, cols=128)
    # A step edge along the rows over five rows, which the alignment took off with the offsets: the live guard finds
    # it in what the alignment took (``streaming.job_steps``) and gives it back with the verdict.
    rng = np.random.default_rng(6)
    levels = 0.2 * (1 + np.tanh((np.arange(128) - 64) / 3.0)) + 0.002 * rng.standard_normal(128)  # and the offsets
    unaligned = levels[:, None] + 0.001 * rng.standard_normal((128, 128))
    job = GuardJob(
        start=0,
        rows=128,
        measured=np.ones(128, dtype=bool),
        x=x,
        y=y,
        plane=plane,
        levels=levels,
        unaligned=unaligned,
        step_above=0.0,
        newest_last=False,
        level=level,
        limits=Thresholds(),
        rows_aligned=True,
    )
    live = judge(job)
    assert abs((live.steps[-1] - live.steps[0]) - 0.4) < 0.02
    # As StreamingDenoiser._compose publishes a verdict:
    network = y * scale + centre + plane + live.given_back
    shown = network if live.conservative is None else (1 - live.weight) * network + live.weight * live.conservative
    np.testing.assert_allclose(shown, decided.image * scale + centre + plane + live.steps[:, None], atol=1e-9)
    assert live.verdict.output == decided.verdict.output
    if kind == "bands":
        assert decided.conservative is not None and decided.weight.mean() > 0.3
    else:
        assert _depth(y) > 0.2 * _depth(CLEAN)
        assert _depth(decided.image) < 0.7 * _depth(CLEAN)  # the pit is given back


def _picked_up(offsets: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A terrace with a step and a pit, oblique pick-up stripes of 5 pixels (one pass cannot tell them from a row
    lattice), white noise and, where ``offsets``, a line offset in every row; and the surface itself, as a network
    that took all that off would give it."""
    rng = np.random.default_rng(7)
    surface = PIT + 1.5 * (C > 90)
    pick_up = 0.6 * np.cos(2 * np.pi * (C * np.cos(0.5) + R * np.sin(0.5)) / 5.0)
    x = surface + pick_up + 0.3 * rng.standard_normal(surface.shape)
    if offsets:
        x = x + 0.8 * rng.standard_normal((128, 1))
    return x, surface


STRICT = Thresholds(whiteness_y=0.05)
"""A bar on the correlation across rows that the residual fails even without the stripes' bins (the white noise
the network took off correlates a little too)."""


def _row_levels(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.median(image - reference, axis=1)


def test_stripes_taken_off_alone_do_not_make_the_guard_fall_back():
    """The residual's correlation across rows is the pick-up the network took off: judged without its bins, the frame
    passes, and the network's output is published, the stripes named as removed."""
    x, y = _picked_up()
    published = publish(x, y, rows_aligned=False)
    assert published.lattice.unconfirmed and published.verdict.output == "network"
    assert published.verdict.figures.whiteness_y > Thresholds().whiteness_y
    assert "by stripes it took off that one pass cannot confirm" in published.verdict.reasons[0]


def _moved_pick_up(x: np.ndarray) -> np.ndarray:
    """The other pass of ``_picked_up``'s scan: the same surface, its pick-up landed at another angle (pick-up in
    time lands elsewhere in a pass recorded the other way), noise of its own."""
    surface = PIT + 1.5 * (C > 90)
    pick_up = 0.6 * np.cos(2 * np.pi * (C * np.cos(1.1) + R * np.sin(1.1)) / 7.0)
    return surface + pick_up + 0.3 * np.random.default_rng(8).standard_normal(surface.shape)


def test_stripes_the_other_pass_shows_moved_do_not_make_the_guard_fall_back():
    """With both passes, stripes at a place the other pass does not hold them are pick-up: the residual is judged
    across the rows without their bins, and the network's output is published."""
    x, y = _picked_up(offsets=False)
    published = publish(x, y, rows_aligned=False, other=_moved_pick_up(x), other_rows=np.ones(128, dtype=bool))
    assert published.lattice.evidence == "both passes" and len(published.lattice.pickup)
    assert published.verdict.output == "network"
    assert published.verdict.figures.whiteness_y > Thresholds().whiteness_y
    assert "by stripes it took off that the other pass shows moved (pick-up)" in published.verdict.reasons[-1]


def test_pick_up_and_smooth_structure_taken_off_together_publish_the_network_with_the_smooth_part_back():
    """A network that took off the pick-up and a broad hill: neither the smooth part given back alone nor the
    stripes' bins left out alone make the residual white across the rows; both together do."""
    x, y = _picked_up(offsets=False)
    hill = 8.0 * np.exp(-((R - 40) ** 2 + (C - 64) ** 2) / (2 * 20.0**2))
    x = x + hill
    published = publish(x, y, rows_aligned=False, other=_moved_pick_up(x) + hill, other_rows=np.ones(128, dtype=bool))
    assert published.verdict.output == "network" and published.verdict.smooth_given_back
    assert published.verdict.reasons[0].startswith("smooth structure given back")
    assert "the other pass shows moved (pick-up)" in published.verdict.reasons[1]
    assert abs(published.image[40, 64] - published.image[120, 64] - 8.0) < 0.5  # the hill is back


def test_a_fallback_for_stripes_keeps_the_network_s_row_levels_and_the_scan_s_content():
    x, y = _picked_up()
    published = publish(x, y, rows_aligned=False, limits=STRICT)
    assert published.verdict.output == "fallback" and published.lattice.unconfirmed
    assert published.verdict.reasons[0].startswith("residual correlated across rows")
    assert published.verdict.reasons[-1] == ROW_LEVELS_KEPT
    image = published.image
    # The network's row levels: no line offsets left (the input's are 0.8 rms), up to what the pick-up moves them.
    assert np.std(_row_levels(image, y)) < 0.15 < np.std(_row_levels(x, y))
    # The content is the conservative result's: the stripes the network took off are still there.
    stripes = np.abs(np.fft.fft2(image - y)).max()
    assert stripes > 0.5 * np.abs(np.fft.fft2(x - y - _row_levels(x, y)[:, None])).max()


def test_a_fallback_for_more_than_stripes_keeps_the_conservative_result_s_rows():
    x, surface = _picked_up()
    y = surface.copy()
    y[:, 20:30] += 1.0  # and a ridge the scan does not have: the structure test fails too
    published = publish(x, y, rows_aligned=False, limits=STRICT)
    assert published.verdict.output == "fallback" and len(published.verdict.reasons) > 1
    assert ROW_LEVELS_KEPT not in published.verdict.reasons


def test_a_fallback_for_stripes_keeps_rows_measured_without_offsets_as_they_are():
    """Rows that agree without aligning (no line offsets) keep their measured levels: the network's could only add
    its own errors (a step along the rows taken for an offset)."""
    x, y = _picked_up(offsets=False)
    published = publish(x, y, rows_aligned=False, limits=STRICT)
    assert published.verdict.output == "fallback" and published.lattice.unconfirmed
    assert ROW_LEVELS_KEPT not in published.verdict.reasons


def test_on_a_scan_without_line_offsets_publish_gives_the_smooth_height_back_with_its_row_levels():
    """Where the network levelled the rows of a scan that shows no line offsets, the guard's smooth give-back keeps
    the residual's row levels (``maed.trust.guard_parts``, ``row_offsets``): no bands through the features whose
    height the network took."""
    rows, cols = np.indices((256, 256), dtype=float)
    surface = sum(np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * r**2)) for y, x, r in ((60, 70, 25), (150, 190, 30), (210, 60, 20)))
    scan = surface + 0.01 * np.random.default_rng(3).standard_normal(surface.shape)
    published = publish(scan, 0.5 * surface, rows_aligned=False)
    assert published.verdict.smooth_given_back and "its row levels too" in published.verdict.reasons[0]
    levels = np.median(published.image - surface, axis=1)
    assert np.abs(levels - np.median(levels)).max() < 0.01
    # Rows aligned before the network: the residual's row levels are the alignment's, never given back.
    assert not any("its row levels too" in reason for reason in publish(scan, 0.5 * surface, rows_aligned=True).verdict.reasons)

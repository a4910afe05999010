"""The alerts page's ceiling (``benchmarks/alerts_ceiling.py``): how far a known scar stands out where it is."""

import numpy as np
from benchmark_modules import load_benchmark

from maed.data.scan_events import ScanEvent

ceiling = load_benchmark("alerts_ceiling")


def _scan(seed: int, rows: int = 96, cols: int = 128, walk: float = 0.0) -> np.ndarray:
    """White noise of unit rms, plus a smooth wander along each line of ``walk`` rms (coloured noise)."""
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((rows, cols))
    if walk:
        wander = np.cumsum(rng.standard_normal((rows, cols)), axis=1)
        wander -= wander.mean(axis=1, keepdims=True)
        image += walk * wander / wander.std()
    return image


def test_a_scar_stands_out_by_its_height_over_the_noise_of_its_run_mean():
    image = _scan(1)
    image[40, 30:62] += 3.0  # a 32-pixel run of 3 pixel-noise rms: its mean is 3 / sqrt(1.5 / 32) spreads out
    scar = ScanEvent("scar", 40, (30, 62), "trace", 3.0, {})
    [(_, spreads)] = ceiling.stands_out([scar], {"trace": image})
    assert 8 < spreads < 18  # about 13.9 for this mean; the median elsewhere and the spread estimated add noise
    faint = image.copy()
    faint[40, 30:62] -= 2.8
    [(_, faint_spreads)] = ceiling.stands_out([scar], {"trace": faint})
    assert faint_spreads < ceiling.STANDS_OUT


def test_coloured_noise_along_the_lines_hides_a_scar_that_white_noise_shows():
    white, coloured = _scan(2), _scan(2, walk=3.0)
    for image in (white, coloured):
        image[50, 20:80] += 2.0
    scar = ScanEvent("scar", 50, (20, 80), "trace", 2.0, {})
    [(_, on_white)] = ceiling.stands_out([scar], {"trace": white})
    [(_, on_coloured)] = ceiling.stands_out([scar], {"trace": coloured})
    assert on_white >= ceiling.STANDS_OUT > on_coloured


def test_a_scar_is_measured_in_its_own_pass_and_other_kinds_not_at_all():
    trace, retrace = _scan(3), _scan(4)
    retrace[60, 10:50] += 3.0
    scar = ScanEvent("scar", 60, (10, 50), "retrace", 3.0, {})
    change = ScanEvent("tip_change", 30, (0, 128), "both", 3.0, {})
    [(event, spreads)] = ceiling.stands_out([scar, change], {"trace": trace, "retrace": retrace})
    assert event is scar and spreads >= ceiling.STANDS_OUT
    [(_, on_trace)] = ceiling.stands_out([scar], {"trace": trace, "retrace": trace})
    assert on_trace < ceiling.STANDS_OUT  # the trace holds no scar there

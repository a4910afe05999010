"""``maed.trace_retrace``: the trace/retrace error (with ``maed.registration``'s registration), on
simulated pairs of passes that share a surface and differ by independent noise."""

import numpy as np
import pytest
from scipy import ndimage

from maed.noreference import removed_rms
from maed.registration import Registration, align, register
from maed.trace_retrace import estimated_true_error, removed_noise, row_errors, summarise

SIZE = 192
NOISE = 0.3


def _surface(seed: int = 0, size: int = SIZE, margin: int = 64) -> np.ndarray:
    """A wide surface: a lattice, a few pits and bumps, smooth terrain; ``margin`` extra columns each side."""
    rng = np.random.default_rng(seed)
    rows, cols = size, size + 2 * margin
    y, x = np.mgrid[:rows, :cols].astype(float)
    lattice = 0.6 * (np.cos(2 * np.pi * (0.09 * x + 0.04 * y)) + np.cos(2 * np.pi * (-0.05 * x + 0.1 * y)))
    features = np.zeros((rows, cols))
    for _ in range(12):
        r, c = rng.uniform(0, rows), rng.uniform(0, cols)
        features += rng.choice([-3.0, 3.0]) * np.exp(-((y - r) ** 2 + (x - c) ** 2) / (2 * rng.uniform(2, 6) ** 2))
    terrain = ndimage.gaussian_filter(rng.standard_normal((rows, cols)), 12) * 30
    return lattice + features + terrain


def _crop(wide: np.ndarray, shift: float = 0.0, margin: int = 64) -> np.ndarray:
    """The surface sampled at x - shift (so it appears moved right by ``shift``), cropped to the scan."""
    moved = align(wide, Registration.shift(np.full(wide.shape[0], -shift), wide.shape[1]))
    return moved[:, margin : margin + SIZE]


def _pair(shift: float, seed: int = 0):
    wide = _surface(seed)
    rng = np.random.default_rng(seed + 100)
    clean_t, clean_r = _crop(wide), _crop(wide, shift)
    noise_t, noise_r = rng.standard_normal((2, SIZE, SIZE)) * NOISE
    return clean_t, clean_r, noise_t, noise_r


@pytest.mark.parametrize("shift", [1.37, -2.62, 0.0])
def test_registration_recovers_a_sub_pixel_shift(shift):
    clean_t, clean_r, noise_t, noise_r = _pair(shift)
    reg = register(clean_t + noise_t, clean_r + noise_r)
    inside = (reg.band_warps - shift)[:, reg.crop : -reg.crop]  # each band of 64 rows, along the row
    assert np.sqrt((inside**2).mean()) < 0.1 and np.abs(inside.mean(axis=1)).max() < 0.1
    assert abs(reg.shifts.mean() - shift) < 0.05


def test_align_keeps_noise_power_where_interpolation_would_not():
    noise = np.random.default_rng(5).standard_normal((128, 128))
    moved = align(noise, Registration.shift(np.full(128, 0.5), 128))[:, 4:-4]
    assert abs(moved.std() / noise.std() - 1) < 0.02
    linear = 0.5 * (noise[:, :-1] + noise[:, 1:])  # a half-pixel shift by linear interpolation
    assert linear.std() / noise.std() < 0.75


def _lag(image: np.ndarray, tau: float, reverse: bool) -> np.ndarray:
    """A first-order feedback lag of ``tau`` pixels along the rows, in the pass's own time order."""
    a = np.exp(-1.0 / tau)
    out = image[:, ::-1].copy() if reverse else image.copy()
    for j in range(1, out.shape[1]):
        out[:, j] = a * out[:, j - 1] + (1 - a) * out[:, j]
    return out[:, ::-1] if reverse else out


def test_registration_undoes_a_feedback_lag_smear():
    tau = 2.0
    wide = _surface(1)
    rng = np.random.default_rng(7)
    # the trace lags to the right, the retrace (recorded right to left, returned mirrored) to the left
    trace = _lag(wide, tau, reverse=False)[:, 64 : 64 + SIZE] + rng.standard_normal((SIZE, SIZE)) * NOISE
    retrace = _lag(wide, tau, reverse=True)[:, 64 : 64 + SIZE] + rng.standard_normal((SIZE, SIZE)) * NOISE
    reg = register(trace, retrace)
    # The lag is found, and the warp left is near the nothing the passes differ by besides it.
    assert reg.lag_px[0] == pytest.approx(tau, rel=0.25)
    assert np.sqrt((reg.warp[:, reg.crop : -reg.crop] ** 2).mean()) < 0.3
    registered = summarise(row_errors(trace, retrace, trace, retrace, reg)).value
    none = Registration.shift(np.zeros(SIZE), SIZE)
    unregistered = summarise(row_errors(trace, retrace, trace, retrace, none)).value
    floor = NOISE * np.sqrt(2)  # rms of the difference of the two passes' noise
    assert registered < 1.05 * floor < 1.3 * floor < unregistered


def test_error_ranks_noise_removal_above_raw_and_erasure_or_invention_below():
    clean_t, clean_r, noise_t, noise_r = _pair(0.8, seed=3)
    trace, retrace = clean_t + noise_t, clean_r + noise_r
    reg = register(trace, retrace)

    def error(f):
        return summarise(row_errors(f(trace, noise_t), f(retrace, noise_r), trace, retrace, reg))

    raw = error(lambda x, n: x)
    assert raw.value == pytest.approx(NOISE * np.sqrt(2), rel=0.05)  # rms(trace - retrace): both passes' noise
    assert raw.low < raw.value < raw.high

    denoised = error(lambda x, n: x - 0.8 * n)  # removes most of the independent noise, nothing else
    perfect = error(lambda x, n: x - n)
    assert perfect.value == pytest.approx(NOISE, rel=0.05)  # only the other pass's noise is left
    assert perfect.value < denoised.value < raw.value
    assert estimated_true_error(perfect.value, raw.value) < 0.2 * NOISE
    assert estimated_true_error(raw.value, raw.value) == pytest.approx(raw.value / np.sqrt(2))

    y, x = np.mgrid[:SIZE, :SIZE]
    erased = error(lambda img, n: ndimage.gaussian_filter(img, 3))  # noise gone, and the lattice with it
    invented = error(lambda img, n: img - n + 0.5 * np.cos(2 * np.pi * 0.13 * (x + y)))  # noise gone, a pattern added
    assert erased.value > raw.value
    assert invented.value > raw.value


def test_per_row_offsets_and_a_tilt_between_the_passes_do_not_count():
    clean_t, clean_r, noise_t, noise_r = _pair(0.0, seed=4)
    rng = np.random.default_rng(9)
    offsets = rng.standard_normal((SIZE, 1)) * 5
    tilt = 0.01 * np.arange(SIZE)[None, :]
    trace, retrace = clean_t + noise_t, clean_r + noise_r + offsets + tilt
    reg = register(trace, retrace)
    plain = summarise(row_errors(trace, clean_r + noise_r, trace, clean_r + noise_r, reg)).value
    assert summarise(row_errors(trace, retrace, trace, retrace, reg)).value == pytest.approx(plain, rel=0.02)


def test_removed_noise_counts_the_noise_taken_off_and_not_the_structure():
    clean_t, clean_r, noise_t, noise_r = _pair(0.8, seed=4)
    trace, retrace = clean_t + noise_t, clean_r + noise_r
    reg = register(trace, retrace)

    def removed(f):
        return removed_noise(trace - f(trace, noise_t), retrace - f(retrace, noise_r), reg)

    assert removed(lambda x, n: x - 0.8 * n) == pytest.approx(0.8 * NOISE, rel=0.1)
    # A blur removes much of the noise and much of the lattice: its residual's rms is far above the noise it took,
    # and the figure counts only the noise.
    blurred = lambda x, n: ndimage.gaussian_filter(x, 3)  # noqa: E731
    assert removed_rms(trace - blurred(trace, noise_t)) > 1.5 * NOISE
    assert removed(blurred) < 1.1 * NOISE
    assert removed(lambda x, n: x) == 0.0


def test_figures_are_shown_in_a_unit_that_fits_them():
    """A rough scan's trace/retrace error of 1.88 nm was printed as 1.88e+03 pm."""
    from maed.passes import display_unit

    assert display_unit("m", 1.36e-12) == (1e12, "pm") and display_unit("m", 1.88e-9) == (1e9, "nm")
    assert display_unit("A", 2.5e-6) == (1e6, "µA") and display_unit("A") == (1e12, "pA")
    assert display_unit("V", 0.3) == (1.0, "V")

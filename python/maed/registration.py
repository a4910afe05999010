"""Registration of the retrace onto the trace: a smooth x-warp per band of lines, the feedback lag, and the slow
axis's motion during the lines.

The readers return the retrace mirrored into the trace's orientation, but the two passes still do
not line up, and not by one shift:

- **feedback lag**: the z loop follows the surface with a delay, a causal first-order filter in
  each pass's own time order; an edge is smeared to the right in the trace and to the left in the
  retrace. Its time constant is fixed in seconds, so in pixels the retrace's is ``speed_ratio``
  times the trace's (retrace speed over trace speed). At equal speeds the two lags have the same
  magnitude response, so the operator that turns the retrace's lag into the trace's,
  H_trace / H_retrace, is an all-pass: applied in Fourier space it moves edges without changing
  the noise power. At unequal speeds only its phase is applied, for the same reason.
- **x-warp**: creep after each reversal and hysteresis put the tip elsewhere than its x command,
  most near the turnaround, differently in the two passes, and slowly changing over the frame.
- **the slow axis moving during the lines**: where the controller ramps the slow axis on while a line
  pair is scanned (Nanonis does), a column's retrace pixel lies further along the slow axis than its
  trace pixel by the time between them: nothing at the turnaround (the right end, where the trace
  ends and the retrace starts), a whole line at the left end, linearly between, whatever the two
  speeds. On a lattice or an edge along the rows this difference dwarfs the noise
  (``example_FFT.sxm``: 4.9 pm rms at the left end, 1.4 pm once moved, against 1.4 pm at the
  turnaround); a controller that steps the slow axis between lines has none.

``register`` estimates them from the raw passes:

1. the whole scan's shift, from the peak of the rows' cross-correlation (a lattice correlates with
   itself one period away too; the whole scan's defects and edges pick the right period);
2. per band of ``BAND_ROWS`` lines, a warp u(x), a cubic spline with knots every ``KNOT_PX``
   pixels, by Gauss-Newton on trace(x) - retrace(x + u(x)) ~ -retrace'(x) du (Lucas-Kanade along
   x), coarse to fine, on both passes less their slow changes (``HIGH_PASS_PX``: a sample's slope
   and drift that differs between the passes' instants would mimic a warp), with priors on the
   spline's second differences and on its distance from the whole scan's shift, so that where the
   surface has nothing to match the warp follows its neighbours. Robust to what differs between
   the passes that is not noise: lines whose difference is an outlier among its neighbours' (a
   scar, a tip change between the passes) are left out, and pixels far out in the residual are
   down-weighted (Tukey's biweight). Its standard error combines the posterior's (where the
   surface has no slope above its noise's, as large as the priors allow) with half the difference
   of the warps the even and the odd lines alone would give (which sees noise that is not white);
3. the lags: the time constant whose all-pass, with the warp moved by its delay, leaves the
   smallest difference, kept only if it matches clearly better than the warp alone
   (``LAG_GAIN``); and the warp once more with it;
4. per band, one shift instead of the warp where that leaves the smaller plain difference: the
   warp's fit is robust and smoothed, the trace/retrace error it serves is neither, and it must
   never match worse than the one shift per band it replaced.
5. on the retrace so registered, the slow axis's motion during the lines: how many lines
   (``slow_shift``, within ``MAX_SLOW_ROWS``) the retrace lies further along the slow axis at the
   left end, falling linearly to none at the right, read by one Fourier phase per column along the
   slow axis (which keeps the noise power), judged on the features finer than ``HIGH_PASS_PX``
   (the z drift, sampled later by each column's retrace than by its trace, is like the next
   line's too), kept only where it matches clearly better (``SLOW_GAIN``), not at either end of the
   grid sought, and the passes as they are match no worse; where kept, steps 1 to 4 again on the
   retrace moved by it, and the motion refined with that warp (within ``_SLOW_REFINE``), in turn
   for at most ``_SLOW_ROUNDS`` rounds (a warp sought with the motion in place takes up part of it
   along slanted features, and the motion sought before the warp took up the warp's creep instead:
   simulated pairs without motion were given 0.7 line); the result stands only where the passes
   as they are still match no worse than along the rows alone and the motion is not refined away.

``align`` applies the result: the slow axis's motion as one Fourier phase per column (the first and
last lines read what lies beyond the frame as its mirror image), the all-pass and each line's mean
displacement as one Fourier phase per line (which keeps the noise power), the rest of the warp, smooth
and small, by windowed-sinc interpolation. Columns that only one pass covers are left out of every comparison
(``Registration.crop``).

numpy and scipy only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage, optimize, special
from scipy.interpolate import BSpline

from .classical import fit_plane, robust_spread

BAND_ROWS = 64
"""Lines per band: enough for a well-determined warp, few enough to follow creep over the frame."""

KNOT_PX = 24
"""Pixels between the warp spline's knots: creep decays over a few percent of a line and more."""

CURVATURE_PX = 0.1
"""Prior spread (pixels) of the warp spline's second differences: creep bends the warp, noise must not."""

PRIOR_PX = 2.0
"""Prior spread (pixels) of the warp about the whole scan's shift."""

HIGH_PASS_PX = 6.0
"""Gaussian (pixels along x) whose smoothing is taken off both passes before the warp is sought."""

COARSE_TO_FINE = (2.0, 1.0, 0.5, 0.0, 0.0, 0.0)
"""Gaussian smoothing (pixels along x) of both passes at each Gauss-Newton step: wide first, so
that a displacement of a few pixels is still within reach of the linearisation."""

BAND_REACH = 3.0
"""Pixels: how far a band's single shift may stray from its warp's mean."""

MAX_STEP_PX = 1.0
"""Largest change of the warp in one Gauss-Newton step."""

MAX_LAG_PX = 6.0
"""Largest feedback time constant sought, in trace pixels."""

LAG_GAIN = 0.01
"""Share of the difference's mean square a lag must take off, beyond the warp alone, to be kept."""

LAG_LINES = 96
"""Lines (spread over the frame) the time constant is sought on."""

OUTLIER_MADS = 5.0
"""Lines whose difference's rms exceeds its neighbours' by this many robust spreads are left out."""

TUKEY = 4.685
"""Tukey's biweight constant (robust spreads): pixels beyond it get no weight."""

AMBIGUITY_APART_PX = 2
"""Pixels: how far from the best shift another correlation peak must be to count as another candidate."""

MAX_SLOW_ROWS = 1.5
"""Lines: the largest slow-axis displacement at the left end sought (a controller that ramps the slow axis moves it
one line per line pair; its sign says whether the slow axis runs up or down)."""

SLOW_GAIN = 0.02
"""Share of the difference's mean square the slow axis's motion must take off to be kept: on scans without it, the
best fit to noise takes off a fraction of a percent."""

_SLOW_GRID = 0.25  # lines: the grid on which the slow shift is sought before it is refined
_SLOW_REFINE = 0.5  # lines either side of an estimate within which it is refined once the warp is known
_SLOW_ROUNDS = 3  # the warp along the rows and the slow axis's motion, sought in turn at most this often
_SLOW_SETTLED = 0.05  # lines: a refinement that moves the motion less ends the rounds
_MIN_SLOW_LINES = 16  # fewer lines than this are not searched for the motion

_FINE_STEP = 0.01  # pixels: the grid on which the sub-pixel correlation peak is sought
_REFINE = 2  # times the shift left after moving the retrace by the estimate is sought again
_SINC_TAPS = 8  # half-width of the interpolation kernel for the non-uniform rest of the warp
_KAISER_BETA = 4.0


@dataclass(frozen=True, eq=False)
class Registration:
    """Where the retrace must be read to match the trace, and the passes' feedback lags.

    ``warp[r, c]``: the retrace, its lag turned into the trace's, read at column c + warp[r, c]
    matches the trace at c. Per band (lines around ``band_centres``): the warp along the line,
    ``band_warps``, and its standard error, ``band_sigma``; ``warp`` interpolates between bands.
    ``lag_px`` is the (trace, retrace) feedback time constant in each pass's own pixels. ``slow_shift``: how many
    lines further along the slow axis the retrace's first column lies than the trace's (0 at the last column,
    linearly between: the slow axis moving during the lines); the retrace is read that much back first.
    """

    band_centres: np.ndarray
    band_warps: np.ndarray
    band_sigma: np.ndarray
    warp: np.ndarray
    lag_px: tuple[float, float] = (0.0, 0.0)
    slow_shift: float = 0.0

    @property
    def shifts(self) -> np.ndarray:
        """Each line's mean displacement."""
        return self.warp.mean(axis=1)

    @property
    def crop(self) -> int:
        """Columns left out at each side: those not covered by both passes, and the lag filter's settling."""
        return int(np.ceil(np.abs(self.warp).max() + 3 * max(self.lag_px))) + 1

    def columns(self, width: int, crop: int | None = None) -> slice:
        """The columns of a ``width``-pixel pass that both passes cover: ``crop`` cut at each side, at least
        ``self.crop``; a clear error where fewer than 4 are left."""
        crop = self.crop if crop is None else max(crop, self.crop)
        if width - 2 * crop < 4:
            raise ValueError(f"registration leaves fewer than 4 columns to compare ({crop} cut at each side)")
        return slice(crop, width - crop)

    def lines(self, height: int) -> slice:
        """The lines of a ``height``-line pass compared: all, but where the slow axis moved during the lines, the
        first and last ``_inner_lines`` leaves out (the retrace read at one end lies beyond the frame, at the top
        where ``slow_shift`` is positive, at the bottom where negative; both ends are cut, as either sign may be
        found)."""
        return _inner_lines(height) if self.slow_shift else slice(0, height)

    @classmethod
    def shift(cls, shifts: np.ndarray, cols: int) -> "Registration":
        """A registration by one shift per line and no lag (``shifts[r]`` for every column of line r)."""
        shifts = np.asarray(shifts, dtype=np.float64)
        warp = np.repeat(shifts[:, None], cols, axis=1)
        return cls(np.array([(len(shifts) - 1) / 2]), warp.mean(axis=0, keepdims=True), np.zeros((1, cols)), warp)

    def moved_by(self, pixels: float, lags: tuple[float, float] | None = None) -> "Registration":
        """This registration with ``pixels`` added to the warp everywhere (and other ``lags``, if given)."""
        return dataclasses.replace(
            self, band_warps=self.band_warps + pixels, warp=self.warp + pixels, lag_px=self.lag_px if lags is None else lags
        )


def speed_ratio(header: Mapping[str, Any]) -> float:
    """The retrace's speed over the trace's, from a scan file's header; 1 where it does not say.

    Nanonis stores both speeds; Createc a delay per step for each pass (speed's inverse).
    """
    for faster, slower in (("Scan>speed backw. (m/s)", "Scan>speed forw. (m/s)"), ("Delay X+", "Delay X-")):
        try:
            ratio = float(header[faster]) / float(header[slower])
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        if np.isfinite(ratio) and ratio > 0:
            return ratio
    return 1.0


# ---- one shift along the rows ----------------------------------------------------------------------


def _profiles(band: np.ndarray) -> np.ndarray:
    """The rows of a band, each row's mean off, under a Hann window (so the zero padding adds no edge)."""
    d = np.asarray(band, dtype=np.float64)
    d = d - d.mean(axis=1, keepdims=True)
    return d * np.hanning(d.shape[1])


def _cross(trace: np.ndarray, retrace: np.ndarray) -> np.ndarray:
    """Summed over the rows: the cross-power spectrum of the row profiles, zero-padded to twice their length."""
    a, b = _profiles(trace), _profiles(retrace)
    return (np.conj(np.fft.rfft(a, 2 * a.shape[1], axis=1)) * np.fft.rfft(b, 2 * a.shape[1], axis=1)).sum(axis=0)


def _correlation(cross: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The integer lags and the correlation at each of them, from the cross-power spectrum ``_cross``."""
    size = 2 * (len(cross) - 1)
    lags = np.arange(size)
    lags[lags >= size // 2] -= size
    return lags, np.fft.irfft(cross, size)


def _peak(cross: np.ndarray, centre: float, reach: float) -> float:
    """The lag within ``reach`` of ``centre`` where the band-limited correlation of ``cross`` is largest.

    Integer lags first, then a 0.01-pixel grid between the integer lags next to the best one.
    """
    size = 2 * (len(cross) - 1)
    lags, xc = _correlation(cross)
    allowed = np.abs(lags - centre) <= reach
    if not allowed.any():
        allowed = lags == int(round(centre))
    best = int(lags[allowed][np.argmax(xc[allowed])])
    fine = best + np.arange(-1.0, 1.0 + _FINE_STEP / 2, _FINE_STEP)
    fine = fine[np.abs(fine - centre) <= reach + 1e-9]  # never empty: ``best`` itself is within reach
    k = np.arange(len(cross))
    weight = np.where((k == 0) | (k == size // 2), 1.0, 2.0)  # rfft bins other than 0 and Nyquist count twice
    values = (weight * cross * np.exp(2j * np.pi * np.outer(fine, k) / size)).real.sum(axis=1)
    return float(fine[int(np.argmax(values))])


def band_shift(trace: np.ndarray, retrace: np.ndarray, max_shift: float, centre: float = 0.0) -> float:
    """Shift ``s`` (pixels along the rows) with retrace(x + s) ~ trace(x), within ``max_shift`` of ``centre``.

    The rows' cross-correlation is summed over the rows (zero-padded, so it does not wrap) and
    its peak is located to 0.01 pixel on the band-limited correlation: with the passes' energies
    fixed, the largest correlation is the smallest mean squared difference. The window pulls the
    peak a little towards 0, so the retrace is moved by the estimate and what shift is left is
    sought again, twice, within a pixel.
    """
    shift = _peak(_cross(trace, retrace), centre, max_shift)
    for _ in range(_REFINE):
        moved = _fourier(retrace, np.full(retrace.shape[0], shift), 0.0, 0.0)
        shift += _peak(_cross(trace, moved), 0.0, 1.0)
    return float(np.clip(shift, centre - max_shift, centre + max_shift))


def period_ambiguity(trace: np.ndarray, retrace: np.ndarray, max_shift: float | None = None) -> float:
    """How nearly another shift matches the passes as well as the best one: the largest magnitude of the rows'
    summed correlation at its other turns (peaks and troughs) at least ``AMBIGUITY_APART_PX`` from the best shift,
    over the best's (within ``max_shift``, default as ``register``'s). Near 1 on a lattice with nothing but the
    lattice to match, where a period's error is as likely as none, and above it where noise swamps the surface and
    the correlation swings as far below zero as its best is above; near 0 where edges, defects or molecules pick
    one shift and the correlation falls off smoothly from it; 1 where no shift correlates the passes at all (the
    best correlation is not positive)."""
    max_shift = max(2.0, trace.shape[1] / 8) if max_shift is None else max_shift
    lags, xc = _correlation(_cross(trace, retrace))
    order = np.argsort(lags)
    lags, xc = lags[order], xc[order]
    within = np.flatnonzero(np.abs(lags) <= max_shift)
    best = within[np.argmax(xc[within])]
    inner = within[(within > 0) & (within < len(xc) - 1)]
    rise, fall = xc[inner] - xc[inner - 1], xc[inner + 1] - xc[inner]
    turns = inner[(rise * fall <= 0) & (np.abs(lags[inner] - lags[best]) >= AMBIGUITY_APART_PX)]
    if xc[best] <= 0:
        return 1.0
    return float(np.abs(xc[turns]).max() / xc[best]) if len(turns) else 0.0


# ---- applying a registration ---------------------------------------------------------------------


def _lag_response(k: np.ndarray, tau_px: float) -> np.ndarray:
    """Frequency response of a causal first-order lag of ``tau_px`` pixels at rfft frequencies ``k`` (cycles/px)."""
    if tau_px <= 0:
        return np.ones_like(k, dtype=np.complex128)
    a = np.exp(-1.0 / tau_px)
    return (1 - a) / (1 - a * np.exp(-2j * np.pi * k))


def _fourier(image: np.ndarray, shifts: np.ndarray, lag_trace: float, lag_retrace: float, pad: int | None = None) -> np.ndarray:
    """Each row read at x + shifts[row], with the retrace's lag (anti-causal) turned into the trace's (causal).

    Rows are padded by reflection, so the columns within the lag's settling and the shift of the
    ends are not to be compared. Returns the padded result when ``pad`` is given, else cropped.
    """
    # The retrace ran right to left: its lag is the causal response mirrored, i.e. conjugated.
    # Unequal lags (unequal speeds) differ in magnitude too; undoing that would amplify the
    # retrace's noise, so only the phase is turned: edges line up, the noise power stays.
    keep = pad is None
    pad = int(np.ceil(np.abs(shifts).max() + 6 * max(lag_trace, lag_retrace))) + 8 if pad is None else pad
    moved = _phased(image, shifts, lambda k: _lag_response(k, lag_trace) / np.conj(_lag_response(k, lag_retrace)), pad)
    return moved[:, pad : pad + image.shape[1]] if keep else moved


def _phased(image: np.ndarray, shifts: np.ndarray, response: Callable[[np.ndarray], np.ndarray], pad: int) -> np.ndarray:
    """Each row, padded by ``pad`` reflected pixels each side, read at x + shifts[row] through the phase of
    ``response(k)`` (rfft frequencies, cycles/px); the padded result."""
    padded = np.pad(np.asarray(image, dtype=np.float64), ((0, 0), (pad, pad)), mode="reflect")
    n = padded.shape[1]
    k = np.fft.rfftfreq(n)
    phase = response(k)
    ramp = np.exp(2j * np.pi * np.outer(shifts, k)) * (phase / np.abs(phase))
    if n % 2 == 0:
        ramp[:, -1] = ramp[:, -1].real  # the Nyquist bin must stay real
    return np.fft.irfft(np.fft.rfft(padded, axis=1) * ramp, n, axis=1)


def _sinc_kernel(phases: int) -> np.ndarray:
    """Kaiser-windowed sinc weights (summing to 1) for ``phases`` fractional positions in [0, 1)."""
    taps = np.arange(-_SINC_TAPS + 1, _SINC_TAPS + 1)
    x = (np.arange(phases) / phases)[:, None] - taps
    weights = np.sinc(x) * special.i0(_KAISER_BETA * np.sqrt(np.clip(1 - (x / _SINC_TAPS) ** 2, 0, None)))
    return weights / weights.sum(axis=1, keepdims=True)


_PHASES = 128  # fractional positions tabulated: 1/128 pixel is far below any warp's uncertainty
_KERNEL = _sinc_kernel(_PHASES)


def _sinc_read(padded: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``padded`` read along each row at fractional ``positions`` by a Kaiser-windowed sinc."""
    taps = np.arange(-_SINC_TAPS + 1, _SINC_TAPS + 1)
    phase = np.rint(positions * _PHASES).astype(np.int64)
    first, phase = np.divmod(phase, _PHASES)
    index = np.clip(first[..., None] + taps, 0, padded.shape[1] - 1)
    values = np.take_along_axis(padded, index.reshape(len(padded), -1), axis=1).reshape(index.shape)
    return np.einsum("rct,rct->rc", values, _KERNEL[phase])


def align(image: np.ndarray, registration: Registration) -> np.ndarray:
    """``image`` (a retrace, or a denoised copy of it, as read) moved onto the trace.

    The lag's all-pass and each row's mean displacement are one Fourier phase per row; the rest of
    the warp, smooth and under a few pixels, is read by windowed-sinc interpolation.
    """
    lag_trace, lag_retrace = registration.lag_px
    allpass = lambda k: _lag_response(k, lag_trace) / np.conj(_lag_response(k, lag_retrace))  # noqa: E731
    image = slow_moved(image, registration.slow_shift)
    return _read(image, registration.warp, allpass, max(registration.lag_px))


def slow_moved(image: np.ndarray, shift: float) -> np.ndarray:
    """``image`` read ``shift`` lines back along the slow axis at its first column, falling linearly to none at its
    last (``Registration.slow_shift``): one Fourier phase per column, over each column followed by its mirror image
    (a period without a jump, so that neither end rings into the frame; lines read beyond an end read its mirror).
    Every pixel of a column depends on all its lines: a NaN spreads over the frame, so callers pass measured lines
    only."""
    if shift == 0.0:
        return np.asarray(image, dtype=np.float64)
    rows, cols = image.shape
    padded = np.concatenate([image, image[::-1]])
    k = np.fft.fftfreq(2 * rows)[:, None]
    moved = shift * (1 - np.arange(cols) / max(cols - 1, 1))
    return np.fft.ifft(np.fft.fft(padded, axis=0) * np.exp(-2j * np.pi * k * moved), axis=0).real[:rows]


def _read(image: np.ndarray, warp: np.ndarray, response: Callable[[np.ndarray], np.ndarray], lag_px: float) -> np.ndarray:
    """Each row of ``image`` read at x + warp[row, x] through the phase of ``response``: the row's mean
    displacement and the phase in Fourier space, the rest of the warp by windowed-sinc interpolation
    (``lag_px``: the longer lag in ``response``, whose settling the padding must hold)."""
    cols = image.shape[1]
    shifts = warp.mean(axis=1)
    rest = warp - shifts[:, None]
    pad = int(np.ceil(np.abs(warp).max() + 6 * lag_px)) + _SINC_TAPS + 8
    moved = _phased(image, shifts, response, pad=pad)
    if np.abs(rest).max() < 1e-3:
        return moved[:, pad : pad + cols]
    return _sinc_read(moved, pad + np.arange(cols)[None, :] + rest)


def midway(trace: np.ndarray, retrace: np.ndarray, registration: Registration) -> tuple[np.ndarray, np.ndarray]:
    """Both passes moved to where the tip really was: each without its own feedback lag's phase, and each moved
    half the warp (and half the slow axis's motion) towards the other.

    The tip trails its command one way going right and the other way going left (creep, hysteresis), and each
    pass's feedback delays the surface in its own order of time, so the surface lies between the passes:
    halfway where the two passes ran at one speed. Columns only one pass covered hold the other's reflection at
    its end (``Registration.crop`` of each side).
    """
    lag_trace, lag_retrace = registration.lag_px
    half = 0.5 * registration.warp
    trace, retrace = slow_moved(trace, -0.5 * registration.slow_shift), slow_moved(retrace, 0.5 * registration.slow_shift)
    return (
        _read(trace, -half, lambda k: np.conj(_lag_response(k, lag_trace)), lag_trace),
        _read(retrace, half, lambda k: _lag_response(k, lag_retrace), lag_retrace),
    )


# ---- estimating one ----------------------------------------------------------------------------------


def _good_rows(trace: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Lines whose difference is not an outlier among its neighbours': a scar or a tip change between
    the passes touches one line, structure the registration has not yet matched touches several."""
    d = trace - moved
    rms = np.sqrt(((d - d.mean(axis=1, keepdims=True)) ** 2).mean(axis=1))
    excess = rms - ndimage.median_filter(rms, size=7, mode="nearest")
    spread = robust_spread(excess)
    good = excess <= np.median(excess) + OUTLIER_MADS * max(spread, 1e-6 * float(np.median(rms)))
    return good if good.sum() >= len(good) // 2 else np.ones_like(good)


def _basis(cols: int) -> np.ndarray:
    """Cubic B-splines along a line (cols x coefficients), knots every ``KNOT_PX`` pixels."""
    inner = max(1, int(round((cols - 1) / KNOT_PX)))
    edges = np.linspace(0.0, cols - 1.0, inner + 1)
    knots = np.r_[[edges[0]] * 3, edges, [edges[-1]] * 3]
    return BSpline.design_matrix(np.arange(cols, dtype=np.float64), knots, 3).toarray()


def _band_step(
    trace: np.ndarray, moved: np.ndarray, basis: np.ndarray, penalty: np.ndarray, away: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray]:
    """One Gauss-Newton step of a band's warp: the change of the spline coefficients and their covariance.

    A Bayesian least-squares step: the data's precision, plus a prior on the spline's second
    differences (``CURVATURE_PX``) and on how far the warp strays from the whole scan's shift
    (``PRIOR_PX``; ``away`` is where the coefficients are now, relative to that). The slopes are
    noisy, and noise has slopes that carry no information about the warp (the passes' noises are
    independent): for the covariance, the expected share of noise in the squared slopes, from the
    difference's own slopes, is taken off, so that a flat, noisy stretch counts as no information.
    """
    # Slow changes along a line (the sample's slope, drift that differs between the passes' instants)
    # would mimic a warp: only features narrower than ``HIGH_PASS_PX`` inform it.
    trace = trace - ndimage.gaussian_filter1d(trace, HIGH_PASS_PX, axis=1, mode="nearest")
    moved = moved - ndimage.gaussian_filter1d(moved, HIGH_PASS_PX, axis=1, mode="nearest")
    if smoothing > 0:
        trace = ndimage.gaussian_filter1d(trace, smoothing, axis=1, mode="nearest")
        moved = ndimage.gaussian_filter1d(moved, smoothing, axis=1, mode="nearest")
    # Both passes' slopes: the retrace's alone would carry its noise into the regressor.
    slope = 0.5 * (np.gradient(trace, axis=1) + np.gradient(moved, axis=1))
    error = trace - moved
    error = error - error.mean(axis=1, keepdims=True)  # line offsets are not displacement
    slope = slope - slope.mean(axis=1, keepdims=True)
    # Identical passes have no noise to scale by: the trace's own spread sets a floor.
    noise = max(robust_spread(error), 1e-6 * float(trace.std()), 1e-300)
    weight = np.clip(1 - (error / (TUKEY * noise)) ** 2, 0, None) ** 2
    prior = penalty / CURVATURE_PX**2 + np.eye(len(penalty)) / PRIOR_PX**2
    # The step counts every slope as information: noise in the slopes only shortens it.
    normal = basis.T @ ((weight * slope**2).sum(axis=0)[:, None] * basis) / noise**2
    step = np.linalg.solve(normal + prior, basis.T @ (weight * slope * error).sum(axis=0) / noise**2 - prior @ away)
    # Its uncertainty does not: half the sum of two independent noises' slopes has a quarter of
    # the variance of their difference's slopes, and that much of each squared slope is no information.
    slope_noise = (1.4826 * np.median(np.abs(np.gradient(error, axis=1)))) ** 2 / 4
    information = np.clip((weight * (slope**2 - slope_noise)).sum(axis=0), 0, None)
    covariance = np.linalg.inv(basis.T @ (information[:, None] * basis) / noise**2 + prior)
    return step, covariance


def _bands(rows: int, band_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges and centre lines of the bands of about ``band_rows`` lines."""
    edges = np.linspace(0, rows, max(1, rows // band_rows) + 1).round().astype(int)
    return edges, (edges[:-1] + edges[1:] - 1) / 2


def _from_curves(centres: np.ndarray, curves: np.ndarray, sigma: np.ndarray, rows: int, lags: tuple[float, float]) -> Registration:
    """A registration from each band's warp along the line, interpolated between the bands' centres."""
    warp = np.stack([np.interp(np.arange(rows), centres, curves[:, c]) for c in range(curves.shape[1])], axis=1)
    return Registration(centres, curves, sigma, warp, lags)


def _warp(trace: np.ndarray, retrace: np.ndarray, good: np.ndarray, first: Registration, band_rows: int) -> Registration:
    """Per band of lines, the warp from ``first`` on by Gauss-Newton, coarse to fine (``COARSE_TO_FINE``)."""
    rows, cols = trace.shape
    basis = _basis(cols)
    second = np.diff(np.eye(basis.shape[1]), 2, axis=0)
    penalty = second.T @ second
    edges, centres = _bands(rows, band_rows)
    bands = len(centres)
    lines = [np.flatnonzero(good[a:b]) + a for a, b in zip(edges[:-1], edges[1:])]
    # Coefficients reproducing ``first``'s warp at each band's centre line.
    fit = np.linalg.pinv(basis)
    coefficients = np.array([fit @ first.warp[int(round(c))] for c in centres])
    prior = np.full(basis.shape[1], first.warp.mean())
    covariance = np.zeros((bands, basis.shape[1], basis.shape[1]))
    registration = first
    split = np.zeros((bands, cols))
    for smoothing in COARSE_TO_FINE:
        moved = align(retrace, registration)
        for band, keep in enumerate(lines):
            away = coefficients[band] - prior
            step, covariance[band] = _band_step(trace[keep], moved[keep], basis, penalty, away, smoothing)
            coefficients[band] += step * min(1.0, MAX_STEP_PX / max(float(np.abs(basis @ step).max()), 1e-12))
            if smoothing == COARSE_TO_FINE[-1] and len(keep) >= 4:
                # The even and the odd lines alone: half their difference is the spread of the whole
                # band's estimate, whatever the noise is (the posterior assumes it white).
                even, _ = _band_step(trace[keep[::2]], moved[keep[::2]], basis, penalty, away, smoothing)
                odd, _ = _band_step(trace[keep[1::2]], moved[keep[1::2]], basis, penalty, away, smoothing)
                split[band] = ndimage.gaussian_filter1d(np.abs(basis @ (even - odd)) / 2, KNOT_PX / 2, mode="nearest")
        sigma = np.sqrt(np.einsum("ij,bjk,ik->bi", basis, covariance, basis) + split**2)
        registration = _from_curves(centres, coefficients @ basis.T, sigma, rows, first.lag_px)
    return registration


def lag_delay(tau_px: float) -> float:
    """How far (pixels) a first-order lag of ``tau_px`` moves a smooth profile: its group delay at 0 frequency."""
    return 0.0 if tau_px <= 0 else 1.0 / np.expm1(1.0 / tau_px)


def _mismatch(trace: np.ndarray, moved: np.ndarray, margin: int) -> float:
    """Mean squared difference of the compared columns, each row's mean off; infinite where none is left."""
    d = (trace - moved)[:, margin : trace.shape[1] - margin]  # margin 0 keeps every column ([:, 0:-0] would keep none)
    return float(((d - d.mean(axis=1, keepdims=True)) ** 2).mean()) if d.size else float("inf")


def _with_lags(registration: Registration, lags: tuple[float, float]) -> Registration:
    """``registration`` with other lags, its warp moved by the change of their delays (edges stay matched)."""
    return registration.moved_by(sum(map(lag_delay, lags)) - sum(map(lag_delay, registration.lag_px)), lags)


def _lag(trace: np.ndarray, retrace: np.ndarray, registration: Registration, good: np.ndarray, speed_ratio: float) -> tuple[float, float]:
    """The feedback time constants (trace pixels, retrace pixels) that, with the warp found without
    them (moved by their delay and what uniform shift is left), leave the smallest difference."""
    margin = int(np.ceil(np.abs(registration.warp).max() + 3 * MAX_LAG_PX * max(speed_ratio, 1.0))) + 2
    if trace.shape[1] - 2 * margin < 16:
        return 0.0, 0.0
    # One time constant for the frame: a subset of the good lines, spread over it, is enough.
    lines = np.flatnonzero(good)
    lines = lines[np.linspace(0, len(lines) - 1, min(len(lines), LAG_LINES)).round().astype(int)]
    trace, retrace = trace[lines], retrace[lines]
    registration = Registration(
        registration.band_centres, registration.band_warps, registration.band_sigma, registration.warp[lines], registration.lag_px
    )

    def cost(tau: float) -> float:
        trial = _with_lags(registration, (tau, tau * speed_ratio))
        trial = trial.moved_by(band_shift(trace, align(retrace, trial), 1.0))
        return _mismatch(trace, align(retrace, trial), margin)

    grid = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, MAX_LAG_PX])
    costs = np.array([cost(t) for t in grid])
    i = int(np.argmin(costs))
    low, high = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    found = optimize.minimize_scalar(cost, bounds=(low, high), method="bounded", options={"xatol": 0.05})
    tau, best = (float(found.x), float(found.fun)) if found.fun <= costs[i] else (float(grid[i]), float(costs[i]))
    # A lag and a warp both move edges; only a lag that matches clearly better than the warp alone is one.
    return (tau, tau * speed_ratio) if best < (1 - LAG_GAIN) * costs[0] else (0.0, 0.0)


def _no_worse_than_shifts(trace: np.ndarray, retrace: np.ndarray, registration: Registration, band_rows: int) -> Registration:
    """Per band, the warp or one shift (sought within ``BAND_REACH`` of the warp's mean), whichever
    leaves the smaller plain mean squared difference: the warp's own fit is robust and smoothed,
    the trace/retrace error is neither, and one shift per band must remain the floor it improves on."""
    rows, cols = trace.shape
    edges, centres = _bands(rows, band_rows)
    unlagged = _fourier(retrace, np.zeros(rows), *registration.lag_px)
    shifts = np.array(
        [
            band_shift(trace[a:b], unlagged[a:b], BAND_REACH, float(registration.band_warps[i].mean()))
            for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))
        ]
    )
    flat = _from_curves(centres, np.repeat(shifts[:, None], cols, axis=1), registration.band_sigma, rows, registration.lag_px)
    margin = max(flat.crop, registration.crop)
    curves = registration.band_warps.copy()
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        part = slice(a, b)
        warped = _mismatch(trace[part], align(retrace, registration)[part], margin)
        shifted = _mismatch(trace[part], align(retrace, flat)[part], margin)
        if shifted < warped:
            curves[i] = shifts[i]
    return _from_curves(centres, curves, registration.band_sigma, rows, registration.lag_px)


def _slow_shift(trace: np.ndarray, retrace: np.ndarray, registration: Registration) -> float:
    """The slow axis's motion during the lines (``Registration.slow_shift``) that leaves the smallest difference
    between ``trace`` and ``retrace`` moved along the rows by ``registration``, or 0 where none matches
    ``SLOW_GAIN`` better than none, the best lies at either end of the grid sought (within ``MAX_SLOW_ROWS``), or
    the passes as they are match worse. Compared over the lines either motion reads within the frame and the
    columns both passes cover."""
    rows, cols = trace.shape
    if rows < _MIN_SLOW_LINES:
        return 0.0
    keep = _inner_lines(rows)
    margin = max(registration.crop, cols // 32)
    if cols - 2 * margin < 16:
        return 0.0
    retrace = align(retrace, registration)
    fine = _fine(trace)[keep]

    def cost(shift: float) -> float:
        return _mismatch(fine, _fine(slow_moved(retrace, shift))[keep], margin)

    grid = np.arange(-MAX_SLOW_ROWS, MAX_SLOW_ROWS + _SLOW_GRID / 2, _SLOW_GRID)
    costs = np.array([cost(float(v)) for v in grid])
    i = int(np.argmin(costs))
    if i in (0, len(grid) - 1):
        # Still falling at the range's end: something else differs between the passes (a lattice matched a period
        # further along the slow axis, a current image whose passes differ; seen on two real scans).
        return 0.0
    found = optimize.minimize_scalar(cost, bounds=(grid[i - 1], grid[i + 1]), method="bounded")
    shift, best = (float(found.x), float(found.fun)) if found.fun <= costs[i] else (float(grid[i]), float(costs[i]))
    if best >= (1 - SLOW_GAIN) * costs[np.argmin(np.abs(grid))]:  # the grid holds 0: no motion
        return 0.0
    return shift if _no_worse_plain(trace, retrace, registration, shift, margin) else 0.0


def _no_worse_plain(trace: np.ndarray, moved: np.ndarray, registration: Registration, shift: float, margin: int) -> bool:
    """Whether ``moved`` (the retrace moved along the rows by ``registration``) moved ``shift`` lines along the slow
    axis too matches ``trace`` no worse as they are: the features may match better while the passes, which the
    trace/retrace error compares, match worse (``createc_scan_close_100nm``: 0.15 line by its features)."""
    keep = _inner_lines(trace.shape[0])
    return _mismatch(trace[keep], slow_moved(moved, shift)[keep], margin) <= _mismatch(trace[keep], moved[keep], margin)


def _fine(image: np.ndarray) -> np.ndarray:
    """``image`` less its changes slower than ``HIGH_PASS_PX`` along the rows: the slow axis's motion is judged on
    the surface's features. Drift in z, sampled later by the retrace of each column than by its trace, matches the
    next line's too (simulated pairs of passes on one line were given 0.4 to 1 line by the plain difference)."""
    return image - ndimage.gaussian_filter1d(image, HIGH_PASS_PX, axis=1, mode="nearest")


def _inner_lines(rows: int) -> slice:
    """The lines a slow-axis motion of up to ``MAX_SLOW_ROWS`` reads within the frame (the others read its mirror)."""
    edge = int(np.ceil(MAX_SLOW_ROWS)) + 1
    return slice(edge, rows - edge)


def _refined_slow_shift(trace: np.ndarray, retrace: np.ndarray, registration: Registration, slow: float) -> float:
    """The slow axis's motion within ``_SLOW_REFINE`` of ``slow`` that leaves the smallest difference once the
    retrace is moved along the rows by ``registration`` (found on the retrace moved by ``slow``)."""
    keep = _inner_lines(trace.shape[0])
    margin = registration.crop
    fine = _fine(trace)[keep]

    def cost(shift: float) -> float:
        return _mismatch(fine, _fine(align(slow_moved(retrace, shift), registration))[keep], margin)

    low, high = max(slow - _SLOW_REFINE, -MAX_SLOW_ROWS), min(slow + _SLOW_REFINE, MAX_SLOW_ROWS)
    found = optimize.minimize_scalar(cost, bounds=(low, high), method="bounded", options={"xatol": 0.01})
    return float(found.x) if found.fun < cost(slow) else slow


def register(
    trace: np.ndarray, retrace: np.ndarray, speed_ratio: float = 1.0, band_rows: int = BAND_ROWS, max_shift: float | None = None
) -> Registration:
    """Estimate where the retrace (real-space orientation) must be read to match the trace, and the lags.

    ``speed_ratio`` is the retrace's speed over the trace's (Nanonis' speed ratio; 1 where equal).
    Along the rows first (``_along_rows``); then the slow axis's motion during the lines, sought on the retrace so
    registered (before, the warp's creep at the line's ends was taken up by it); where there is one, along the rows
    again on the retrace moved by it, and the motion refined with that warp (a warp sought with the motion
    still in place takes up part of it along slanted features).
    """
    if retrace.shape != trace.shape:
        raise ValueError(f"trace {trace.shape} and retrace {retrace.shape} differ in shape")
    trace, retrace = np.asarray(trace, dtype=np.float64), np.asarray(retrace, dtype=np.float64)
    along = _along_rows(trace, retrace, speed_ratio, band_rows, max_shift)
    slow = _slow_shift(trace, retrace, along)
    if not slow:
        return along
    for _ in range(_SLOW_ROUNDS):
        registration = _along_rows(trace, slow_moved(retrace, slow), speed_ratio, band_rows, max_shift)
        refined = _refined_slow_shift(trace, retrace, registration, slow)
        moved, slow = abs(refined - slow), refined
        if moved < _SLOW_SETTLED:
            break
    if moved >= _SLOW_SETTLED:  # the warp was sought for the motion before the last refinement
        registration = _along_rows(trace, slow_moved(retrace, slow), speed_ratio, band_rows, max_shift)
    result = dataclasses.replace(registration, slow_shift=slow)
    # Where the rounds moved the motion to nothing, or the passes as they are match worse than along the rows alone,
    # the registration along the rows stands.
    margin = max(result.crop, along.crop)
    inner = _inner_lines(trace.shape[0])
    if abs(slow) < _SLOW_SETTLED or _mismatch(trace[inner], align(retrace, result)[inner], margin) > _mismatch(
        trace[inner], align(retrace, along)[inner], margin
    ):
        return along
    return result


def _along_rows(trace: np.ndarray, retrace: np.ndarray, speed_ratio: float, band_rows: int, max_shift: float | None) -> Registration:
    """The registration along the rows: the whole scan's shift, sought within ``max_shift`` (default the larger of
    2 pixels and 1/8 of the line); then each band's warp from there without lags; then the lags with that warp;
    then the warp again with them."""
    rows, cols = trace.shape
    max_shift = max(2.0, cols / 8) if max_shift is None else max_shift
    whole = Registration.shift(np.full(rows, band_shift(trace, retrace, max_shift)), cols)
    good = _good_rows(trace, align(retrace, whole))
    registration = _warp(trace, retrace, good, whole, band_rows)
    good = _good_rows(trace, align(retrace, registration))
    lags = _lag(trace, retrace, registration, good, speed_ratio)
    if lags[0] > 0:
        trial = _with_lags(registration, lags)
        trial = trial.moved_by(band_shift(trace[good], align(retrace, trial)[good], 1.0))
        registration = _warp(trace, retrace, good, trial, band_rows)
    return _no_worse_than_shifts(trace, retrace, registration, band_rows)


@dataclass(frozen=True, eq=False)
class TwoPassInput:
    """What a two-pass model takes of a scan's passes: ``first``, the frame its correction is added to, and
    ``second``, the retrace in the same frame.

    ``frame`` ``midway``: both passes moved to where the tip really was (``midway``), ``first`` their mean (a
    pass's own where only it covers a column). ``trace``: where the passes match nearly as well a few pixels
    apart (``period_ambiguity`` above ``AMBIGUOUS``: a lattice and nothing else), a wrong period would move the
    whole frame by half of it, so ``first`` is the trace as recorded and ``second`` the retrace registered onto it.
    """

    first: np.ndarray
    second: np.ndarray
    frame: str
    ambiguity: float


AMBIGUOUS = 0.25
"""``period_ambiguity`` above which the passes stay in the trace's frame. On 160 simulated scans recorded in both
passes (20 of each family, 128 x 128, development seeds from ``TEST_SEED_BASE`` + 950 000; 2026-12-04), 86 came
under it, one of them registered more than 2.5 pixels off (a moire, 10.9); of the 74 above it, 31 were. Any bar
from 0.15 to 0.3 splits them alike; at 0.5, 5 of the 98 under it were off."""


def two_pass_input(trace: np.ndarray, retrace: np.ndarray, speed_ratio: float = 1.0) -> TwoPassInput:
    """A two-pass model's input from the trace and the retrace (real-space orientation): ``register`` on the
    passes less their planes, then both moved midway, or, where the registration could be a period off, the
    retrace moved onto the trace (``TwoPassInput``)."""
    trace, retrace = np.asarray(trace, dtype=np.float64), np.asarray(retrace, dtype=np.float64)
    levelled_trace, levelled_retrace = trace - fit_plane(trace), retrace - fit_plane(retrace)
    ambiguity = period_ambiguity(levelled_trace, levelled_retrace)
    registration = register(levelled_trace, levelled_retrace, speed_ratio)
    if ambiguity > AMBIGUOUS:
        return TwoPassInput(trace, align(retrace, registration), "trace", ambiguity)
    first, retrace_mid = midway_mean(trace, retrace, registration)
    return TwoPassInput(first, retrace_mid, "midway", ambiguity)


def seen(warp: np.ndarray, width: int) -> np.ndarray:
    """Per pixel, whether an image of ``width`` columns read at x + ``warp`` (as ``align`` and ``midway`` read it)
    reads a column it holds, not one beyond its ends."""
    x = np.arange(width)[None, :] + warp
    return (x >= 0) & (x <= width - 1)


def midway_mean(trace: np.ndarray, retrace: np.ndarray, registration: Registration) -> tuple[np.ndarray, np.ndarray]:
    """The mean of both passes (or of two images made of them, such as denoised copies) moved ``midway``, each
    pass's own where only it saw a column; and the retrace moved midway."""
    trace_mid, retrace_mid = midway(trace, retrace, registration)
    half = 0.5 * registration.warp
    trace_seen, retrace_seen = seen(-half, trace.shape[1]), seen(half, trace.shape[1])
    both = trace_seen == retrace_seen  # seen by both (or, at a narrow frame's ends, by neither)
    return np.where(both, 0.5 * (trace_mid + retrace_mid), np.where(trace_seen, trace_mid, retrace_mid)), retrace_mid

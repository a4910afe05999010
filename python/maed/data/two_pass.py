"""Both passes of a scan: a simulated trace and retrace of one surface, in scan-time order.

Every line is recorded twice, left to right (the trace) and right to left (the retrace), and the
retrace is returned mirrored into real-space orientation, column 0 on the left, as the file
readers return it. What the two passes share and what they do not is what makes a pair useful
(Noise2Noise removes only what differs) and what registration must undo:

- **Shared**, because it lives in time or per line and both passes sample it: drift and creep in
  z (one 1/f series sampled at each pass's instants), the line offsets, lasting tip changes (a
  jump at an instant: every later pixel of either pass moves), mains and resonance pick-up (one
  set of tones, sampled at each pass's instants, so it lands at other places in the two images),
  and the turnaround ringing of the fast-axis piezo (a damped oscillation in z after each
  reversal, the same each line: at the left of the trace, at the right of the retrace).
- **Independent**: the preamplifier's white noise and the fast feedback noise (a causal low-pass
  of white noise with the feedback's time constant, so both are coloured along x, never across
  lines), scars (brief in time, so in one pass only), and the z read-out's quantisation.
- **Opposite**: the feedback lag is a causal first-order filter in each pass's own time order,
  smearing an edge to the right in the trace and to the left in the retrace; feedback ringing
  after an edge follows it in the pass's own time order.
- **x-warp**: the tip is not where the x piezo was told to be. Creep after each reversal makes it
  lag behind its command by an amount that decays over the first part of the line (strongest near
  the turnaround), and hysteresis bows the middle of the line one way going right and the other
  way going left. The warp's amplitude changes slowly from line to line. The surface is sampled
  where the tip really was.
- **Speeds**: the retrace may run faster or slower than the trace (Nanonis' speed ratio). The
  lag's time constant is fixed in seconds, so in pixels it scales with the pass's speed; pixel
  instants follow each pass's own timing.
- **The slow axis moving during the lines**: a controller that ramps the slow axis on while it scans
  (Nanonis, Omicron MATRIX: ``maed.registration`` found it on eight of their real scans) records each pixel
  further along the slow axis the later it comes in its line pair, so the retrace lies a whole line further
  than the trace at the left end and none at the turnaround (``slow_lines``); one that steps the slow axis
  between lines (Createc) records both passes on one line.

The recorded trace at line r and column c is the surface at column ``trace_x[r, c]`` (and, where the slow axis
ramps, a little further along it than line r), lagged; the retrace at column c is the surface at ``retrace_x[r, c]``,
lagged the other way. ``PassGeometry.displacement`` is where the retrace must be read to match the trace, and
``PassGeometry.slow_shift`` how far along the slow axis: the truth a registration is tested against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage, signal

from .scan_noise import NoiseParams, colored_noise, periodic, ringing, scars, white


@dataclass(frozen=True)
class PassParams:
    """How the two passes of one scan differ (pixels are the trace's unless said otherwise)."""

    speed_ratio: float = 1.0
    """Retrace speed over trace speed."""
    lag_px: float = 1.0
    """Feedback time constant in trace pixels."""
    feedback_noise_m: float = 2e-12
    """rms of the fast feedback noise, per pass, independent."""
    creep_px: float = 2.0
    """How far the tip lags behind its x command just after a reversal."""
    creep_decay: float = 0.1
    """Fraction of the line over which the creep lag decays."""
    hysteresis_px: float = 1.0
    """Bow of the line's middle: + going right (tip behind), the opposite going left."""
    warp_trend: float = 0.1
    """Relative change of the warp's amplitude from the first line to the last."""
    turnaround_m: float = 2e-12
    turnaround_period_px: float = 8.0
    turnaround_decay_px: float = 5.0
    slow_lines: float = 0.0
    """Lines the slow axis moves on during one line pair (trace and retrace), towards the later lines: 1 where the
    controller ramps it while scanning, 0 where it steps it between lines."""

    def as_dict(self) -> dict:
        return asdict(self)


def draw_pass_params(rng: np.random.Generator) -> PassParams:
    """A random, physically plausible difference between the passes."""
    equal = rng.random() < 0.5  # most scans run both passes at one speed
    return PassParams(
        speed_ratio=1.0 if equal else float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))),
        lag_px=float(rng.uniform(0.0, 3.0)),
        feedback_noise_m=float(rng.uniform(0.0, 8e-12)),
        creep_px=float(rng.uniform(0.0, 4.0)),
        creep_decay=float(rng.uniform(0.03, 0.2)),
        hysteresis_px=float(rng.uniform(0.0, 2.5)),
        warp_trend=float(rng.uniform(-0.3, 0.3)),
        turnaround_m=float(rng.uniform(0.0, 5e-12)),
        turnaround_period_px=float(rng.uniform(3.0, 15.0)),
        turnaround_decay_px=float(rng.uniform(2.0, 10.0)),
        slow_lines=1.0 if rng.random() < 0.5 else 0.0,  # ramped (Nanonis, MATRIX) or stepped (Createc)
    )


@dataclass(frozen=True, eq=False)
class PassGeometry:
    """Where each pass's pixels really lay (columns of the surface), and each pass's lag (its own pixels)."""

    trace_x: np.ndarray
    retrace_x: np.ndarray
    lag_trace_px: float
    lag_retrace_px: float
    slow_shift: float = 0.0
    """How many lines further along the slow axis the retrace's first column lies than the trace's, less the same
    at the last column (``maed.registration.Registration.slow_shift``): the truth its search is tested against."""

    @property
    def displacement(self) -> np.ndarray:
        """u[r, c]: the retrace read at column c + u shows the surface point the trace shows at c.

        NaN where the trace saw a point the retrace never reached (near the frame's ends).
        """
        cols = self.trace_x.shape[1]
        return np.stack(
            [np.interp(t, r, np.arange(cols), left=np.nan, right=np.nan) for t, r in zip(self.trace_x, self.retrace_x)]
        ) - np.arange(cols)


def _positions(rows: int, cols: int, p: PassParams) -> tuple[np.ndarray, np.ndarray]:
    """Where the tip really was at each pixel of the trace and (real-space columns) of the retrace."""
    c = np.arange(cols, dtype=np.float64)
    amplitude = 1.0 + p.warp_trend * (np.arange(rows) / max(rows - 1, 1) - 0.5)
    bow = p.hysteresis_px * np.sin(np.pi * c / max(cols - 1, 1))
    decay = p.creep_decay * cols
    # Moving right the tip trails its command (smaller x); moving left it trails on the other side.
    trace = c - amplitude[:, None] * (p.creep_px * np.exp(-c / decay) + bow)[None, :]
    retrace = c + amplitude[:, None] * (p.creep_px * np.exp(-(cols - 1 - c) / decay) + bow)[None, :]
    return trace, retrace


def _sample(image: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``image`` read at the real rows ``y`` and columns ``x`` (cubic spline, mirrored beyond the frame)."""
    return ndimage.map_coordinates(image, [y, x], order=3, mode="mirror")


def _lag(image: np.ndarray, tau_px: float) -> np.ndarray:
    """A first-order lag of ``tau_px`` pixels along each row, causal from left to right, settled at the start."""
    if tau_px <= 0.01:
        return image
    a = np.exp(-1.0 / tau_px)
    b, den = [1.0 - a], [1.0, -a]
    zi = signal.lfilter_zi(b, den)[None, :] * image[:, :1]
    return signal.lfilter(b, den, image, axis=1, zi=zi)[0]


def _feedback_noise(rows: int, cols: int, rms: float, tau_px: float, rng: np.random.Generator) -> np.ndarray:
    """Independent noise coloured by the feedback's own low-pass (causal along the pass)."""
    noise = _lag(rng.standard_normal((rows, cols)), max(tau_px, 0.5))
    return noise / max(float(noise.std()), 1e-30) * rms


def pass_times(rows: int, cols: int, line_rate_hz: float, speed_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Instants (s) of the trace's and the retrace's pixels (retrace in real-space columns).

    A line period is the trace and then the retrace; each takes time inversely to its speed.
    """
    trace_share = speed_ratio / (1.0 + speed_ratio)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    trace = (r + trace_share * c / cols) / line_rate_hz
    retrace = (r + trace_share + (1 - trace_share) * (cols - 1 - c) / cols) / line_rate_hz
    return trace, retrace


def record_passes(
    clean: np.ndarray, pixel_m: float, p: NoiseParams, q: PassParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, PassGeometry]:
    """The trace and the retrace (real-space orientation) an STM would record of ``clean``."""
    rows, cols = clean.shape
    t_trace, t_retrace = pass_times(rows, cols, p.line_rate_hz, q.speed_ratio)
    trace_x, retrace_x = _positions(rows, cols, q)
    lag_trace, lag_retrace = q.lag_px, q.lag_px * q.speed_ratio
    # The slow axis, where it ramps, has moved on by the share of its line pair a pixel's instant lies into it. The
    # surface beyond the last line is not drawn: the last line's pixels read that line (a mirror would fold them back).
    lines = np.arange(rows)[:, None]
    trace_y = lines + q.slow_lines * (t_trace * p.line_rate_hz - lines)
    retrace_y = lines + q.slow_lines * (t_retrace * p.line_rate_hz - lines)
    moved = retrace_y - trace_y
    trace_y, retrace_y = np.minimum(trace_y, rows - 1), np.minimum(retrace_y, rows - 1)

    def surface(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        # The tilted, offset sample, seen where the tip really was.
        return _sample(clean, y, x) + p.offset_m + (p.tilt[0] * x + p.tilt[1] * y) * pixel_m

    # Each pass's feedback sees the surface in its own time order: the retrace from the right.
    seen_trace = _lag(surface(trace_y, trace_x), lag_trace)
    seen_trace = seen_trace + ringing(seen_trace, p)
    seen_retrace = _lag(surface(retrace_y, retrace_x)[:, ::-1], lag_retrace)
    seen_retrace = (seen_retrace + ringing(seen_retrace, p))[:, ::-1]

    # Shared: one time series each, sampled at both passes' instants.
    walk = np.cumsum(rng.standard_normal(rows) * p.line_walk_m)
    jump_lines = np.flatnonzero(rng.random(rows) < p.tip_jump_rate)
    jump_times = jump_lines + rng.random(len(jump_lines))  # each at its own instant within its line
    jump_sizes = rng.standard_normal(len(jump_times)) * p.tip_jump_m
    line_period = 1.0 / p.line_rate_hz

    def tip(t: np.ndarray) -> np.ndarray:
        return (jump_sizes[None, None, :] * (t[..., None] >= jump_times[None, None, :] * line_period)).sum(axis=-1)

    per_line = 2 * cols
    series = colored_noise((rows + 1) * per_line, p.line_rate_hz * per_line, p.drift_exponent, p.drift_m, rng)
    grid = np.arange(len(series)) / (p.line_rate_hz * per_line)
    dwell = 1.0 / (2 * cols * p.line_rate_hz)
    tones = periodic(np.concatenate([t_trace, t_retrace]), dwell, p, rng)
    n = np.arange(cols)
    turnaround = q.turnaround_m * np.exp(-n / q.turnaround_decay_px) * np.sin(2 * np.pi * n / q.turnaround_period_px)

    def shared(t: np.ndarray, tones: np.ndarray, since_reversal: np.ndarray) -> np.ndarray:
        return walk[:, None] + tip(t) + np.interp(t, grid, series) + tones + since_reversal[None, :]

    trace = seen_trace + shared(t_trace, tones[:rows], turnaround)
    retrace = seen_retrace + shared(t_retrace, tones[rows:], turnaround[::-1])
    # Independent: each pass's own preamplifier and feedback noise and scars.
    trace = trace + white(rows, cols, p, rng) + _feedback_noise(rows, cols, q.feedback_noise_m, lag_trace, rng) + scars(rows, cols, p, rng)
    retrace = (
        retrace
        + white(rows, cols, p, rng)
        + _feedback_noise(rows, cols, q.feedback_noise_m, lag_retrace, rng)[:, ::-1]
        + scars(rows, cols, p, rng)
    )
    if p.dac_lsb_m > 0:
        trace = np.round(trace / p.dac_lsb_m) * p.dac_lsb_m
        retrace = np.round(retrace / p.dac_lsb_m) * p.dac_lsb_m
    return trace, retrace, PassGeometry(trace_x, retrace_x, lag_trace, lag_retrace, float(moved[0, 0] - moved[0, -1]))

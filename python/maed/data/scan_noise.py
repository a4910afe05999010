"""Raster-scan artefacts of an STM, generated in scan-time order.

A frame of ``rows x cols`` is acquired line by line: the fast axis (columns) is time within
a line, the slow axis (rows) is line after line. A line period is the forward trace plus
the equally long retrace, so pixel ``(r, c)`` of the forward image is recorded at

    t[r, c] = (r + 0.5 * c / cols) / line_rate

Noise that lives in time (drift, mains pick-up, mechanical resonances, white noise) is
sampled at those instants, which is why it appears as streaks and tilted stripes.
Noise that lives per line (feedback offsets, scars) is applied per row; a tip change from the
pixel whose instant it happened at.

The knobs of ``NoiseParams`` and their physical meaning:

- ``line_rate_hz``: lines per second (trace + retrace), 1-20 Hz for ordinary scans.
- ``white_m``: rms of the white (broadband) height noise: preamplifier and feedback noise.
- ``line_walk_m``: rms of the per-line step of a random walk in z offset: feedback set-point
  drift and creep that shift every scan line as a whole (the streaks of Fig. 1a).
- ``line_jitter_m``: rms of an offset of each line of its own, drawn anew per line (not a walk):
  a line levelled alone by the controller or the software, or a set-point that settles somewhere
  else each line. Off (0) in ``TRAIN_RANGES``, the ranges the test sets are drawn from; training's
  noise mixes draw it (``maed.training.noise_mix``).
- ``spike_rate`` / ``spike_m``: probability per pixel and rms of a spike: one pixel read wrong
  (an electronic glitch, a read-out error), narrower than any tip can image. Off (0) in
  ``TRAIN_RANGES``; training's noise mixes draw it.
- ``creep_m`` / ``creep_tau``: z-piezo creep after a large move (an approach, a z offset, a new frame's start): the
  height settling exponentially, by ``creep_m`` at the first pixel with a time constant of ``creep_tau`` of the
  frame's time. A bow along the slow axis of up to hundreds of pm, which the plane leaves. Off (0) in
  ``TRAIN_RANGES``; training's noise mixes draw it.
- ``wander_m``: rms of a smooth wander of z over the frame's time (a few slow cycles: the tip-sample gap drifting
  with temperature, the set-point's slow loop): rows rising and falling together, smooth from line to line, with no
  jumps that show them for offsets. Off (0) in ``TRAIN_RANGES``; training's noise mixes draw it.
- ``tip_jump_rate``: probability per line of a tip change, which shifts every later pixel by ``tip_jump_m`` (rms)
  until the next change. It happens at an instant within the line's period: during the trace, from its pixel on
  (half of them); during the retrace, in the trace from the next line on.
- ``scar_rate``: probability per line of a scar: a segment of the line (a few to tens of
  pixels) where the tip briefly jumps by ``scar_m`` (rms).
- ``drift_m`` / ``drift_exponent``: rms and spectral exponent alpha of the low-frequency
  drift whose power spectral density falls as 1/f^alpha (Fig. 2 of the paper: most noise
  power below 100 Hz); thermal drift and piezo creep in z.
- ``mains_m`` / ``mains_hz``: amplitude of pick-up from the mains (50 or 60 Hz) and its
  second harmonic.
- ``resonance_m`` / ``resonance_hz``: amplitude and frequency of a mechanical resonance of
  the scanner or the building (tens of Hz to ~1 kHz).
- ``tilt``: sample slope (dz/dx, dz/dy), dimensionless; ``offset_m``: absolute z offset.
- ``white_corr_px``: correlation length along the fast axis of the white noise (pixels): the
  feedback and preamplifier bandwidth colour it along x, never across lines.
- ``ringing_gain`` / ``ringing_period_px`` / ``ringing_decay_px``: feedback ringing after a
  sharp height change, a damped oscillation that follows the edge along the fast axis, as the tip moves.
- ``dac_lsb_m``: the height resolution of the z read-out (DAC or ADC quantisation).
- ``feedback_fn`` / ``feedback_zeta``: the z feedback loop's bandwidth (cycles per pixel) and damping: the closed loop
  follows the surface as a second-order low-pass in the trace's time order, so the recorded height lags behind the
  surface along the fast axis and smears each feature toward the scan's end of the line. Off (0) in
  ``TRAIN_RANGES``; training's noise mixes draw it.

The recorded pixel averages the signal over its dwell time, so a periodic component at f is
attenuated by sinc(f * dwell) before it aliases; this is modelled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from scipy import ndimage, signal


@dataclass(frozen=True)
class NoiseParams:
    """One concrete set of scan artefacts (see module docstring for each knob)."""

    line_rate_hz: float = 5.0
    white_m: float = 5e-12
    line_walk_m: float = 5e-12
    tip_jump_rate: float = 0.01
    tip_jump_m: float = 30e-12
    scar_rate: float = 0.02
    scar_m: float = 50e-12
    drift_m: float = 20e-12
    drift_exponent: float = 1.0
    mains_m: float = 3e-12
    mains_hz: float = 50.0
    resonance_m: float = 3e-12
    resonance_hz: float = 230.0
    tilt: tuple[float, float] = (0.02, -0.01)
    offset_m: float = 1e-9
    white_corr_px: float = 0.0
    ringing_gain: float = 0.0
    ringing_period_px: float = 6.0
    ringing_decay_px: float = 4.0
    dac_lsb_m: float = 0.0
    line_jitter_m: float = 0.0
    spike_rate: float = 0.0
    spike_m: float = 0.0
    creep_m: float = 0.0
    creep_tau: float = 0.1
    feedback_fn: float = 0.0
    feedback_zeta: float = 0.7
    wander_m: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class NoiseRanges:
    """Uniform ranges (low, high) from which ``NoiseParams`` are drawn."""

    line_rate_hz: tuple[float, float] = (1.0, 20.0)
    white_m: tuple[float, float] = (0.3e-12, 20e-12)
    line_walk_m: tuple[float, float] = (0.0, 25e-12)
    tip_jump_rate: tuple[float, float] = (0.0, 0.02)
    tip_jump_m: tuple[float, float] = (0.0, 80e-12)
    scar_rate: tuple[float, float] = (0.0, 0.03)
    scar_m: tuple[float, float] = (0.0, 100e-12)
    drift_m: tuple[float, float] = (0.0, 60e-12)
    drift_exponent: tuple[float, float] = (0.8, 1.5)
    mains_m: tuple[float, float] = (0.0, 12e-12)
    resonance_m: tuple[float, float] = (0.0, 12e-12)
    resonance_hz: tuple[float, float] = (20.0, 1000.0)
    tilt: tuple[float, float] = (-0.05, 0.05)
    offset_m: tuple[float, float] = (-50e-9, 50e-9)
    white_corr_px: tuple[float, float] = (0.0, 1.5)
    ringing_gain: tuple[float, float] = (0.0, 0.25)
    ringing_period_px: tuple[float, float] = (3.0, 15.0)
    ringing_decay_px: tuple[float, float] = (1.5, 8.0)
    dac_lsb_m: tuple[float, float] = (0.0, 2e-12)
    line_jitter_m: tuple[float, float] = (0.0, 0.0)
    spike_rate: tuple[float, float] = (0.0, 0.0)
    spike_m: tuple[float, float] = (0.0, 0.0)
    creep_m: tuple[float, float] = (0.0, 0.0)
    creep_tau: tuple[float, float] = (0.0, 0.0)
    feedback_fn: tuple[float, float] = (0.0, 0.0)
    feedback_zeta: tuple[float, float] = (0.0, 0.0)
    wander_m: tuple[float, float] = (0.0, 0.0)

    def scaled(self, factor: float) -> "NoiseRanges":
        """Ranges whose noise amplitudes reach ``factor`` times higher (for held-out tests).

        The lower bound moves to the old upper bound so every draw lies outside the
        training range.
        """
        amplitude = ("white_m", "line_walk_m", "tip_jump_m", "scar_m", "drift_m", "mains_m", "resonance_m", "line_jitter_m", "spike_m")
        changes = {}
        for name in amplitude:
            low, high = getattr(self, name)
            changes[name] = (high, high * factor)
        return replace(self, **changes)


TRAIN_RANGES = NoiseRanges()
DRAWN_WHERE_OPEN = ("line_jitter_m", "spike_rate", "spike_m", "creep_m", "creep_tau", "feedback_fn", "feedback_zeta", "wander_m")
"""Artefacts added after the test sets were drawn: drawn (a random number taken) only where their range is not
(0, 0), so that every seed's scan from ranges without them stays what it was."""


def draw_params(rng: np.random.Generator, ranges: NoiseRanges = TRAIN_RANGES) -> NoiseParams:
    """Draw a random but physically plausible set of artefacts."""
    values = {}
    for f in fields(NoiseRanges):
        low, high = getattr(ranges, f.name)
        if f.name in DRAWN_WHERE_OPEN and low == high == 0.0:
            values[f.name] = 0.0
        elif f.name == "tilt":
            values["tilt"] = (float(rng.uniform(low, high)), float(rng.uniform(low, high)))
        else:
            values[f.name] = float(rng.uniform(low, high))
    values["mains_hz"] = float(rng.choice([50.0, 60.0]))
    return NoiseParams(**values)


def pixel_times(rows: int, cols: int, line_rate_hz: float) -> np.ndarray:
    """Acquisition instant (s) of each pixel of the forward image."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return (r + 0.5 * c / cols) / line_rate_hz


def line_offsets(rows: int, cols: int, p: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """z offsets of the tip's height: a random walk from line to line, and persistent tip changes, each at its own
    instant within its line's period (trace, then retrace). One during a trace shifts that line from its pixel on;
    one during a retrace shows in the trace from the next line on, a whole line's jump."""
    walk = np.cumsum(rng.standard_normal(rows) * p.line_walk_m)
    jumps = (rng.random(rows) < p.tip_jump_rate) * rng.standard_normal(rows) * p.tip_jump_m
    # The instant within the line's period (the trace takes its first half); drawn only where tip changes can happen,
    # so that a scan without them stays what it was.
    when = rng.random(rows) if p.tip_jump_rate > 0 else np.ones(rows)
    offsets = np.repeat((walk + np.cumsum(jumps) - jumps)[:, None], cols, axis=1)
    for line in np.flatnonzero(jumps):
        offsets[line, min(int(when[line] * 2 * cols), cols) :] += jumps[line]
    return offsets


def z_creep(t: np.ndarray, p: NoiseParams) -> np.ndarray:
    """z-piezo creep at the pixels' instants ``t``: an exponential settling over the frame's first part."""
    frame_s = t.shape[0] / p.line_rate_hz
    return p.creep_m * np.exp(-t / (p.creep_tau * frame_s))


WANDER_CYCLES = 4
"""The slow wander's highest frequency, in cycles per frame; its modes fall as 1 over their frequency."""


def wander(t: np.ndarray, p: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """A smooth wander of z at the pixels' instants ``t``: cosines of random phase at 0.5 to ``WANDER_CYCLES``
    cycles per frame, each mode's amplitude random over its frequency, scaled to rms ``wander_m`` over the frame."""
    phase = t / (t.shape[0] / p.line_rate_hz)
    cycles = np.arange(0.5, WANDER_CYCLES + 0.5, 0.5)
    amplitudes = rng.standard_normal(cycles.size) / cycles
    phases = rng.uniform(0, 2 * np.pi, cycles.size)
    out = sum(a * np.cos(2 * np.pi * f * phase + ph) for a, f, ph in zip(amplitudes, cycles, phases))
    out -= out.mean()
    return out / max(float(out.std()), 1e-300) * p.wander_m


def line_jitter(rows: int, p: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """Each line's own offset, drawn anew per line."""
    return rng.standard_normal(rows) * p.line_jitter_m


def scars(rows: int, cols: int, p: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """Short segments of single lines where the tip briefly jumped."""
    out = np.zeros((rows, cols))
    for r in np.flatnonzero(rng.random(rows) < p.scar_rate):
        length = int(rng.integers(3, max(4, cols // 3)))
        start = int(rng.integers(0, cols - length + 1))
        out[r, start : start + length] = rng.standard_normal() * p.scar_m
    return out


def spikes(rows: int, cols: int, p: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """Single pixels read wrong, each by its own amount."""
    return (rng.random((rows, cols)) < p.spike_rate) * rng.standard_normal((rows, cols)) * p.spike_m


def colored_noise(n: int, sample_rate_hz: float, exponent: float, rms: float, rng: np.random.Generator) -> np.ndarray:
    """A time series of ``n`` samples whose PSD falls as 1/f^exponent, scaled to ``rms``."""
    if rms == 0:
        return np.zeros(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, d=1.0 / sample_rate_hz)
    f[0] = f[1]  # the DC bin carries no meaning for drift; keep it finite
    spectrum *= f ** (-exponent / 2)
    series = np.fft.irfft(spectrum, n)
    series -= series.mean()
    return series / max(series.std(), 1e-300) * rms


def drift(rows: int, cols: int, p: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """1/f drift sampled at the pixels' instants (trace and retrace both take time)."""
    samples_per_line = 2 * cols
    series = colored_noise(rows * samples_per_line, p.line_rate_hz * samples_per_line, p.drift_exponent, p.drift_m, rng)
    return series.reshape(rows, samples_per_line)[:, :cols]


def periodic(t: np.ndarray, dwell_s: float, p: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """Mains pick-up (fundamental and 2nd harmonic) and one mechanical resonance."""
    out = np.zeros_like(t)
    tones = [(p.mains_hz, p.mains_m), (2 * p.mains_hz, 0.5 * p.mains_m), (p.resonance_hz, p.resonance_m)]
    for freq, amp in tones:
        # Averaging over the dwell time attenuates a tone before it aliases.
        gain = abs(np.sinc(freq * dwell_s))
        out += amp * gain * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    return out


def plane(rows: int, cols: int, pixel_m: float, p: NoiseParams) -> np.ndarray:
    """Sample tilt and absolute z offset."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return p.offset_m + (p.tilt[0] * c + p.tilt[1] * r) * pixel_m


def white(rows: int, cols: int, p: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """Broadband noise of rms ``white_m``, correlated along the fast axis over ``white_corr_px``."""
    noise = rng.standard_normal((rows, cols))
    if p.white_corr_px > 0.05:
        noise = ndimage.gaussian_filter1d(noise, p.white_corr_px, axis=1, mode="reflect")
        noise /= max(float(noise.std()), 1e-30)
    return noise * p.white_m


def feedback_lag(clean: np.ndarray, p: NoiseParams) -> np.ndarray:
    """The height the closed z loop records of ``clean``: a second-order low-pass (bandwidth ``feedback_fn`` cycles
    per pixel, damping ``feedback_zeta``) along each line in the trace's time order, settled at its first pixel."""
    if p.feedback_fn <= 0:
        return clean
    w = 2 * np.pi * p.feedback_fn
    b, a = signal.bilinear([w * w], [1.0, 2 * p.feedback_zeta * w, w * w], fs=1.0)
    settled = signal.lfilter_zi(b, a)[None, :] * clean[:, :1]
    return signal.lfilter(b, a, clean, axis=1, zi=settled)[0]


def ringing(clean: np.ndarray, p: NoiseParams) -> np.ndarray:
    """Feedback ringing: each height change along a line excites a damped oscillation after it."""
    if p.ringing_gain <= 0:
        return np.zeros_like(clean)
    n = np.arange(int(np.ceil(5 * p.ringing_decay_px)) + 1)
    response = p.ringing_gain * np.exp(-n / p.ringing_decay_px) * np.sin(2 * np.pi * n / p.ringing_period_px)
    edges = np.diff(clean, axis=1, prepend=clean[:, :1])
    # A causal filter along the fast axis: the oscillation follows the edge, never precedes it.
    return ndimage.convolve1d(edges, response, axis=1, mode="constant", origin=-(len(response) // 2))


def add_scan_noise(clean: np.ndarray, pixel_m: float, p: NoiseParams, rng: np.random.Generator) -> np.ndarray:
    """The topograph an STM would record of ``clean`` with the artefacts ``p``."""
    rows, cols = clean.shape
    t = pixel_times(rows, cols, p.line_rate_hz)
    dwell = 1.0 / (2 * cols * p.line_rate_hz)
    seen = feedback_lag(clean, p)
    recorded = (
        seen
        + ringing(seen, p)
        + plane(rows, cols, pixel_m, p)
        + line_offsets(rows, cols, p, rng)
        + scars(rows, cols, p, rng)
        + drift(rows, cols, p, rng)
        + periodic(t, dwell, p, rng)
        + white(rows, cols, p, rng)
    )
    # Drawn only where on, so that a seed's scan without them stays what it was (tests/test_noise_mix.py).
    if p.line_jitter_m > 0:
        recorded = recorded + line_jitter(rows, p, rng)[:, None]
    if p.spike_rate > 0 and p.spike_m > 0:
        recorded = recorded + spikes(rows, cols, p, rng)
    if p.creep_m != 0:
        recorded = recorded + z_creep(t, p)
    if p.wander_m > 0:
        recorded = recorded + wander(t, p, rng)
    if p.dac_lsb_m > 0:
        recorded = np.round(recorded / p.dac_lsb_m) * p.dac_lsb_m
    return recorded

"""Trace against retrace: an error of a denoiser measured on real scans, which have no clean reference.

A scan line is recorded twice, left to right (the trace) and right to left (the retrace); the
readers return the retrace mirrored into the trace's orientation. Both passes see the same surface
and independent noise, so each pass denoised alone can be compared with the other, raw pass:

    E = sqrt(0.5 (|f(trace) - retrace|^2 + |f(retrace) - trace|^2))

(mean squares over the compared pixels). With ``f`` the identity, E is raw's own error,
rms(trace - retrace). Where the passes differ only by independent noise of variance s^2 each,
E^2 = e^2 + s^2 for a denoiser whose true error is e, and raw's E^2 = 2 s^2: so E ranks raw,
classical pipelines and models alike, blurring more does not win it (blurred structure is error
against the other pass too), and a denoiser that invents or erases structure loses.
``estimated_true_error`` takes the noise floor off: sqrt(E^2 - E_raw^2 / 2), raw's being
E_raw / sqrt(2) = rms(trace - retrace) / sqrt(2).

Before comparing, the retrace and its outputs are registered onto the trace
(``maed.registration``: the feedback lag's all-pass and a smooth x-warp per band of lines), and
only the columns both passes cover are compared. Each difference then loses its per-row offsets
(line offsets are removed by every method on purpose) and one common slope along the rows (each
pass is levelled by its own plane).

numpy only (and ``maed.registration``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registration import Registration, align

BOOTSTRAP = 2000
BLOCK_ROWS = 8
"""Rows resampled together for the confidence interval: neighbouring rows share structure and noise."""


def _matched(difference: np.ndarray) -> np.ndarray:
    """A difference less its per-row offsets and one common slope along the rows."""
    d = difference - difference.mean(axis=1, keepdims=True)
    x = np.arange(d.shape[1]) - (d.shape[1] - 1) / 2
    slope = float((d * x).sum() / max((x * x).sum() * d.shape[0], 1e-300))
    return d - slope * x


def row_errors(
    out_trace: np.ndarray,
    out_retrace: np.ndarray,
    trace: np.ndarray,
    retrace: np.ndarray,
    registration: Registration,
    crop: int | None = None,
    lines: slice | None = None,
) -> np.ndarray:
    """Per row: 0.5 (mean |f(trace) - retrace|^2 + mean |f(retrace) - trace|^2) over the compared columns, for the
    lines both passes cover (``Registration.lines``).

    ``out_retrace`` and ``retrace`` are in the retrace's own place (as read); both are aligned here.
    The columns compared leave out ``crop`` at each side (at least ``registration.crop``), and ``lines`` (default
    ``registration.lines``) are the lines compared, so that two registrations can be compared on the same pixels.
    """
    part = registration.lines(trace.shape[0]) if lines is None else lines, registration.columns(trace.shape[1], crop)
    retrace_on_trace = align(retrace, registration)[part]
    out_retrace_on_trace = align(out_retrace, registration)[part]
    first = _matched(np.asarray(out_trace, dtype=np.float64)[part] - retrace_on_trace)
    second = _matched(out_retrace_on_trace - np.asarray(trace, dtype=np.float64)[part])
    return 0.5 * ((first**2).mean(axis=1) + (second**2).mean(axis=1))


def removed_noise(residual_trace: np.ndarray, residual_retrace: np.ndarray, registration: Registration) -> float:
    """Root mean square of what a method took off the trace that the retrace does not share: noise.

    ``residual_trace`` and ``residual_retrace`` are what the method took off each pass (input less output, the retrace
    in its own place, as read). Structure taken off shows in both residuals at the same place, noise in one only: the
    residuals' mean product over the compared columns (each row's mean off: line offsets are in both passes and
    every method removes them on purpose) is the structure's power, and it comes off the trace residual's.
    """
    part = registration.lines(residual_trace.shape[0]), registration.columns(residual_trace.shape[1])
    trace = np.asarray(residual_trace, dtype=np.float64)[part]
    retrace = align(residual_retrace, registration)[part]
    trace = trace - trace.mean(axis=1, keepdims=True)
    retrace = retrace - retrace.mean(axis=1, keepdims=True)
    return float(np.sqrt(max(float((trace * trace).mean() - (trace * retrace).mean()), 0.0)))


@dataclass(frozen=True)
class Error:
    """A trace/retrace error and its 95 % interval (block bootstrap over rows), in the image's unit."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


def bootstrap_means(rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """``BOOTSTRAP`` resampled means of per-row values, resampling blocks of ``BLOCK_ROWS`` rows."""
    rows = np.asarray(rows, dtype=np.float64)
    blocks = [rows[i : i + BLOCK_ROWS] for i in range(0, len(rows), BLOCK_ROWS)]
    sums = np.array([b.sum() for b in blocks])
    counts = np.array([len(b) for b in blocks])
    pick = np.random.default_rng(seed).integers(0, len(blocks), size=(BOOTSTRAP, len(blocks)))
    return sums[pick].sum(axis=1) / counts[pick].sum(axis=1)


def summarise(rows: np.ndarray, seed: int = 0) -> Error:
    """sqrt of the mean of the per-row squared errors, with a 95 % interval over blocks of rows."""
    value = float(np.sqrt(np.mean(rows)))
    low, high = np.percentile(np.sqrt(bootstrap_means(rows, seed)), [2.5, 97.5])
    return Error(value, float(low), float(high))


def paired_change(new_rows: np.ndarray, old_rows: np.ndarray, seed: int = 0) -> Error:
    """The relative change of E^2, mean(new - old) / mean(old), with its 95 % interval.

    ``new_rows`` and ``old_rows`` are the per-row squared errors (``row_errors``) of two denoisers on the
    same rows (several scans' rows may be concatenated, each scan's divided by its own mean of
    ``old_rows`` first so that no scan weighs by its units); the rows are resampled together, in blocks.
    Below 0: the new one is better; an interval whose top is below 0 says so beyond the rows' scatter.
    """
    new_rows, old_rows = np.asarray(new_rows, dtype=np.float64), np.asarray(old_rows, dtype=np.float64)
    old = old_rows.mean()
    low, high = np.percentile(bootstrap_means(new_rows - old_rows, seed) / old, [2.5, 97.5])
    return Error(float((new_rows.mean() - old) / old), float(low), float(high))


def estimated_true_error(error: float, raw_error: float) -> float:
    """The error less the noise floor: sqrt(max(E^2 - E_raw^2 / 2, 0)).

    E_raw^2 / 2 estimates the noise variance of one pass; it also holds whatever else differs
    between the passes (a smear registration did not undo, a pick-up that moved, a tip change),
    so the estimate errs low.
    """
    return float(np.sqrt(max(error**2 - raw_error**2 / 2, 0.0)))

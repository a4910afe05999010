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

Before comparing, the passes are registered: the feedback loop lags behind the tip, so the
trace shows every edge a little to the right and the retrace a little to the left, and creep or
drift can shift them further. ``register`` estimates the retrace's shift along the rows against
the trace over the whole scan and then per band of rows within a few pixels of that (sub-pixel,
from the cross-correlation of the rows, summed over the rows), ``align`` moves
the retrace by it (a Fourier shift of each row, which keeps noise power as it is, unlike
interpolation), and only the columns both passes cover after the shift are compared. Each
difference then loses its per-row offsets (line offsets are removed by every method on purpose)
and one common slope along the rows (each pass is levelled by its own plane).

numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BAND_ROWS = 64
"""Rows per registration band: enough rows for a clear correlation peak, few enough to follow creep."""

BAND_REACH = 3.0
"""Pixels: how far a band's shift may stray from the whole scan's."""

BOOTSTRAP = 2000
BLOCK_ROWS = 8
"""Rows resampled together for the confidence interval: neighbouring rows share structure and noise."""

_FINE_STEP = 0.01  # pixels: the grid on which the sub-pixel correlation peak is sought
_REFINE = 2  # times the shift left after moving the retrace by the estimate is sought again


def _profiles(band: np.ndarray) -> np.ndarray:
    """The rows of a band, each row's mean off, under a Hann window (so the zero padding adds no edge)."""
    d = np.asarray(band, dtype=np.float64)
    d = d - d.mean(axis=1, keepdims=True)
    return d * np.hanning(d.shape[1])


def _cross(trace: np.ndarray, retrace: np.ndarray) -> np.ndarray:
    """Summed over the rows: the cross-power spectrum of the row profiles, zero-padded to twice their length."""
    a, b = _profiles(trace), _profiles(retrace)
    return (np.conj(np.fft.rfft(a, 2 * a.shape[1], axis=1)) * np.fft.rfft(b, 2 * a.shape[1], axis=1)).sum(axis=0)


def _peak(cross: np.ndarray, centre: float, reach: float) -> float:
    """The lag within ``reach`` of ``centre`` where the band-limited correlation of ``cross`` is largest.

    Integer lags first, then a 0.01-pixel grid between the integer lags next to the best one.
    """
    size = 2 * (len(cross) - 1)
    xc = np.fft.irfft(cross, size)
    lags = np.arange(size)
    lags[lags >= size // 2] -= size
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
    """Shift ``s`` (pixels along the rows) with retrace(x) ~ trace(x - s), within ``max_shift`` of ``centre``.

    The rows' cross-correlation is summed over the rows (zero-padded, so it does not wrap) and
    its peak is located to 0.01 pixel on the band-limited correlation. With the passes' energies
    fixed, the largest correlation is the smallest mean squared difference: the shift that best
    matches the raw passes, found on raw data alone and used for every method alike. The window
    pulls the peak a little towards 0, so the retrace is moved by the estimate and what shift
    is left is sought again, twice, within a pixel.
    """
    shift = _peak(_cross(trace, retrace), centre, max_shift)
    for _ in range(_REFINE):
        moved = align(retrace, np.full(retrace.shape[0], shift))
        shift += _peak(_cross(trace, moved), 0.0, 1.0)
    return float(np.clip(shift, centre - max_shift, centre + max_shift))


@dataclass(frozen=True)
class Registration:
    """The retrace's shift against the trace: per band of rows and, interpolated between bands, per row."""

    band_centres: np.ndarray
    band_shifts: np.ndarray
    shifts: np.ndarray

    @property
    def crop(self) -> int:
        """Columns left out at each side: those not covered by both passes after the shift."""
        return int(np.ceil(np.abs(self.shifts).max())) + 1


def register(trace: np.ndarray, retrace: np.ndarray, band_rows: int = BAND_ROWS,
             max_shift: float | None = None, band_reach: float = BAND_REACH) -> Registration:
    """Estimate the retrace's shift along the rows against the trace, per band of ``band_rows`` rows.

    The whole scan's shift comes first (within ``max_shift``, default the larger of 2 pixels and
    1/8 of the row); each band's is then sought within ``band_reach`` pixels of it. A lattice
    correlates with itself one period away as well as at the true shift, so a band alone, with
    few features that are not periodic, could pick the wrong period; the whole scan's defects and
    edges pick the right one, and the bands follow creep from there.
    """
    rows, cols = trace.shape
    if retrace.shape != trace.shape:
        raise ValueError(f"trace {trace.shape} and retrace {retrace.shape} differ in shape")
    max_shift = max(2.0, cols / 8) if max_shift is None else max_shift
    whole = band_shift(trace, retrace, max_shift)
    bands = max(1, rows // band_rows)
    edges = np.linspace(0, rows, bands + 1).round().astype(int)
    centres = (edges[:-1] + edges[1:] - 1) / 2
    shifts = np.array([band_shift(trace[a:b], retrace[a:b], band_reach, whole) for a, b in zip(edges[:-1], edges[1:])])
    per_row = np.interp(np.arange(rows), centres, shifts)
    return Registration(centres, shifts, per_row)


def align(image: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """``image`` (a retrace, or its denoised copy) moved by ``-shifts[row]`` along each row: onto the trace.

    Each row is padded by reflection, shifted by a Fourier phase ramp and cropped back; the
    columns near the ends that the shift brought in from the padding are not to be compared
    (``Registration.crop``).
    """
    rows, cols = image.shape
    pad = int(np.ceil(np.abs(shifts).max())) + 8
    padded = np.pad(np.asarray(image, dtype=np.float64), ((0, 0), (pad, pad)), mode="reflect")
    n = padded.shape[1]
    k = np.fft.rfftfreq(n)
    ramp = np.exp(2j * np.pi * np.outer(shifts, k))  # f(x + s): content moves left by s
    if n % 2 == 0:
        ramp[:, -1] = np.cos(2 * np.pi * shifts * k[-1])  # the Nyquist bin must stay real
    moved = np.fft.irfft(np.fft.rfft(padded, axis=1) * ramp, n, axis=1)
    return moved[:, pad:pad + cols]


def _matched(difference: np.ndarray) -> np.ndarray:
    """A difference less its per-row offsets and one common slope along the rows."""
    d = difference - difference.mean(axis=1, keepdims=True)
    x = np.arange(d.shape[1]) - (d.shape[1] - 1) / 2
    slope = float((d * x).sum() / max((x * x).sum() * d.shape[0], 1e-300))
    return d - slope * x


def row_errors(out_trace: np.ndarray, out_retrace: np.ndarray, trace: np.ndarray, retrace: np.ndarray,
               registration: Registration) -> np.ndarray:
    """Per row: 0.5 (mean |f(trace) - retrace|^2 + mean |f(retrace) - trace|^2) over the compared columns.

    ``out_retrace`` and ``retrace`` are in the retrace's own place (as read); both are aligned here.
    """
    crop = registration.crop
    cols = slice(crop, trace.shape[1] - crop)
    if cols.stop - cols.start < 4:
        raise ValueError(f"shift of {crop - 1} pixels leaves fewer than 4 columns to compare")
    retrace_on_trace = align(retrace, registration.shifts)[:, cols]
    out_retrace_on_trace = align(out_retrace, registration.shifts)[:, cols]
    first = _matched(np.asarray(out_trace, dtype=np.float64)[:, cols] - retrace_on_trace)
    second = _matched(out_retrace_on_trace - np.asarray(trace, dtype=np.float64)[:, cols])
    return 0.5 * ((first ** 2).mean(axis=1) + (second ** 2).mean(axis=1))


@dataclass(frozen=True)
class Error:
    """A trace/retrace error and its 95 % interval (block bootstrap over rows), in the image's unit."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


def summarise(rows: np.ndarray, seed: int = 0) -> Error:
    """sqrt of the mean of the per-row squared errors, with a 95 % interval over blocks of rows."""
    rows = np.asarray(rows, dtype=np.float64)
    value = float(np.sqrt(rows.mean()))
    blocks = [rows[i:i + BLOCK_ROWS] for i in range(0, len(rows), BLOCK_ROWS)]
    sums = np.array([b.sum() for b in blocks])
    counts = np.array([len(b) for b in blocks])
    pick = np.random.default_rng(seed).integers(0, len(blocks), size=(BOOTSTRAP, len(blocks)))
    boot = np.sqrt(sums[pick].sum(axis=1) / counts[pick].sum(axis=1))
    low, high = np.percentile(boot, [2.5, 97.5])
    return Error(value, float(low), float(high))


def estimated_true_error(error: float, raw_error: float) -> float:
    """The error less the noise floor: sqrt(max(E^2 - E_raw^2 / 2, 0)).

    E_raw^2 / 2 estimates the noise variance of one pass; it also holds whatever else differs
    between the passes (a smear registration did not undo, a pick-up that moved, a tip change),
    so the estimate errs low.
    """
    return float(np.sqrt(max(error ** 2 - raw_error ** 2 / 2, 0.0)))

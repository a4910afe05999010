"""Classical STM image-processing steps: the baselines MAED-RT is compared against.

Every step takes a 2-D height map and returns a new float64 array in the same
units. Rows are scan lines: axis 0 is the slow scan axis, axis 1 the fast axis
(time within one line). The steps can also be used as pre-processing before the
network, and ``PIPELINES`` names the complete baseline chains.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

Image = NDArray[np.float64]

_ROW_METHODS = ("median", "median_diff", "median_diff_lags")
ALIGNMENT_LAGS = (1, 2, 4)
"""Rows before each row that ``"median_diff_lags"`` aligns it to (see ``align_after``)."""


# Length (in frequency bins) of the 1-D median windows that estimate the
# spectral background in fft_notch. Long enough that the two to four bins a
# sinusoid between bins leaks into stay a minority of the window.
_NOTCH_BACKGROUND_BINS = 21


def _as_image(img: ArrayLike) -> Image:
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D height map, got an array of shape {arr.shape}")
    return arr


def plane_coefficients(img: ArrayLike, row_centre: float | None = None) -> NDArray[np.float64]:
    """Least-squares plane ``a + b * (col - col_centre) + c * (row - row_centre)`` over the rows of ``img``
    that hold no NaN (rows not measured), as ``(a, b, c)``.

    ``row_centre`` defaults to the middle of ``img``; a scan still arriving passes its frame's middle, so
    the plane fitted on the first rows evaluates on the later ones.

    Solved in closed form, not by ``np.linalg.lstsq`` on a design matrix of every pixel: whole rows are fitted, so
    the centred column coordinate sums to zero along each row and its slope is apart from the other two, which a
    regression of the row means on the row coordinate gives. Same plane, in reductions that take a few ms for
    1024 x 1024 and let other threads run; ``lstsq`` held the interpreter lock for about 45 ms there, and the live
    bridge's control thread waited that long (``docs/reliability.md``).
    """
    img = _as_image(img)
    rows, cols = img.shape
    valid = ~np.isnan(img).any(axis=1)
    measured = img[valid]
    x = np.arange(cols, dtype=np.float64) - (cols - 1) / 2
    y = np.flatnonzero(valid) - ((rows - 1) / 2 if row_centre is None else row_centre)
    slope_x = float(measured.mean(axis=0) @ x / (x @ x)) if cols > 1 else 0.0
    normal = np.array([[y.size, y.sum()], [y.sum(), y @ y]], dtype=np.float64)
    means = measured.mean(axis=1)
    a, slope_y = np.linalg.lstsq(normal, np.array([means.sum(), means @ y]), rcond=None)[0]
    return np.array([a, slope_x, slope_y])


def evaluate_plane(coeffs: ArrayLike, rows: ArrayLike, cols: int, row_centre: float) -> Image:
    """The plane of ``plane_coefficients`` on ``rows`` (frame row numbers) of a frame ``cols`` wide."""
    a, b, c = np.asarray(coeffs, dtype=np.float64)
    r = np.asarray(rows, dtype=np.float64)[:, None] - row_centre
    return a + b * (np.arange(cols, dtype=np.float64)[None, :] - (cols - 1) / 2) + c * r


def fit_plane(img: ArrayLike) -> Image:
    """Return the least-squares plane ``a + b*x + c*y`` evaluated on the grid of ``img``."""
    img = _as_image(img)
    centre = (img.shape[0] - 1) / 2
    return evaluate_plane(plane_coefficients(img, centre), np.arange(img.shape[0]), img.shape[1], centre)


def level_plane(img: ArrayLike) -> Image:
    """Subtract the least-squares plane (sample tilt and offset)."""
    img = _as_image(img)
    return img - fit_plane(img)


def align_rows(img: ArrayLike, method: str = "median") -> Image:
    """Remove per-scan-line offsets.

    ``"median"`` subtracts each row's median. ``"median_diff"`` shifts each row
    so that the median of its differences to the previous row is zero (Gwyddion's
    "median of differences"); the first row is kept as it is. The latter keeps
    features that change the row median, such as a step edge crossing the rows
    at an angle. ``"median_diff_lags"`` does the same against each of the rows
    ``ALIGNMENT_LAGS`` before, taking the median of those estimates (``align_after``).
    """
    img = _as_image(img)
    if method == "median":
        return img - np.median(img, axis=1, keepdims=True)
    if method == "median_diff":
        return np.concatenate([img[:1], align_after(img[0], img[1:], lags=(1,))])
    if method == "median_diff_lags":
        return np.concatenate([img[:1], align_after(img[:1], img[1:])])
    raise ValueError(f"unknown row alignment method {method!r}; allowed: {', '.join(_ROW_METHODS)}")


def align_after(previous: ArrayLike, rows: ArrayLike, lags: tuple[int, ...] = ALIGNMENT_LAGS) -> Image:
    """``rows`` aligned after the aligned rows ``previous`` (one row, or the last rows before them, oldest first):
    each row's offset is the median, over ``lags``, of the median of its differences to the aligned row that many
    rows before it. The incremental form of ``align_rows(..., "median_diff_lags")`` (``"median_diff"`` with
    ``lags=(1,)``) for rows that arrive a few at a time: given the rows before, it aligns exactly as the whole frame.

    Against the row before alone, each median's error stays in every later row: over 256 rows a random walk of
    about 1.8 times a pixel's noise, which reads as bands across the rows. With the rows 1, 2 and 4 before, the
    walk's steps are medians of three estimates, and a row that one of them misjudges (an edge running nearly along
    the rows, crossing many columns within 4 rows) is outvoted; longer lags misjudge those edges more often
    (``docs/model.md``, twenty-first session).
    """
    before = np.atleast_2d(np.asarray(previous, dtype=np.float64))[-max(lags) :]
    rows = _as_image(rows)
    stack = np.vstack([before, rows])
    start = len(before)
    # The median difference of each row from the row ``lag`` before it, all in the offsets of ``stack`` as read
    # (the rows before are aligned already: their offsets are 0).
    medians = {lag: np.median(stack[lag:] - stack[:-lag], axis=1) for lag in lags if lag < len(stack)}
    if tuple(medians) == (1,):  # one estimate a row: the offsets are the running sum of the medians, at numpy's speed
        return rows - np.cumsum(medians[1][start - 1 :])[:, None]
    offsets = [0.0] * len(stack)
    for r in range(start, len(stack)):
        estimates = sorted(offsets[r - lag] + float(medians[lag][r - lag]) for lag in medians if lag <= r)
        half = len(estimates) // 2
        offsets[r] = estimates[half] if len(estimates) % 2 else 0.5 * (estimates[half - 1] + estimates[half])
    return rows - np.asarray(offsets[start:])[:, None]


def robust_spread(values: ArrayLike, axis: int | None = None) -> float | NDArray[np.float64]:
    """Gaussian-equivalent sigma of ``values`` from their median absolute deviation (1.4826 MAD): outliers (a
    scar, a feature) barely move it. Over all values (a float), or along ``axis`` (an array)."""
    values = np.asarray(values, dtype=np.float64)
    spread = 1.4826 * np.median(np.abs(values - np.median(values, axis=axis, keepdims=True)), axis=axis)
    return float(spread) if axis is None else spread


def row_difference_spread(img: ArrayLike) -> float:
    """``robust_spread`` of the differences between neighbouring rows, where STM noise is independent; 0 for a
    single row, which has no neighbour to tell its noise by."""
    differences = np.diff(_as_image(img), axis=0)
    return robust_spread(differences) if differences.size else 0.0


def _scar_mask(img: Image, limit: float, max_width: int) -> NDArray[np.bool_]:
    """Mark pixels in vertical runs of 1..max_width rows that stand out from both bounding rows."""
    n_rows = img.shape[0]
    mask = np.zeros(img.shape, dtype=bool)
    for width in range(1, min(max_width, n_rows - 2) + 1):
        n_starts = n_rows - width - 1  # runs start at rows 1 .. n_rows - width - 1
        above = img[:n_starts]
        below = img[width + 1 :]
        high = np.ones((n_starts, img.shape[1]), dtype=bool)
        low = np.ones_like(high)
        for k in range(width):
            run_row = img[1 + k : 1 + k + n_starts]
            high &= (run_row - above > limit) & (run_row - below > limit)
            low &= (run_row - above < -limit) & (run_row - below < -limit)
        for k in range(width):
            mask[1 + k : 1 + k + n_starts] |= high | low
    return mask


def _scar_pixels(img: Image, threshold: float, max_width: int) -> NDArray[np.bool_]:
    """``_scar_mask`` at ``threshold`` times the noise of the differences between neighbouring rows; none where that
    noise is 0 (a noise-free image, or a single row), against which no deviation can be judged."""
    sigma = row_difference_spread(img) if img.shape[0] > 1 else 0.0
    return _scar_mask(img, threshold * sigma, max_width) if sigma > 0.0 else np.zeros(img.shape, dtype=bool)


def _interpolate_columns(img: Image, mask: NDArray[np.bool_]) -> Image:
    """Replace masked pixels by linear interpolation between the nearest good rows of their column."""
    out = img.copy()
    rows = np.arange(img.shape[0])
    for col in np.flatnonzero(mask.any(axis=0)):
        bad = mask[:, col]
        out[bad, col] = np.interp(rows[bad], rows[~bad], img[~bad, col])
    return out


SCAR_RUN = 4
"""Fewest pixels along a row that make a scar in ``scar_runs``: single pixels standing out are noise or atoms."""
SCAR_ALONE_ROWS = (2, 3, 4)
SCAR_ALONE_SHARE = 0.25
"""A scar is alone: of its pixels, at most this share may have scar pixels ``SCAR_ALONE_ROWS`` rows above or below in
the same column. The rows of a lattice along the fast axis stand out from the rows either side as a scar does, and
repeat."""
SCAR_MAX_SHARE = 0.02
"""Where more of a frame than this passes for scars, they are its structure, and ``scar_runs`` finds none."""


def scar_runs(img: ArrayLike, threshold: float = 3.0, max_width: int = 2) -> NDArray[np.bool_]:
    """The pixels of a frame's scars as ``remove_scars`` finds them (runs of up to ``max_width`` rows standing out
    from the rows on both sides by ``threshold`` noise scales), kept where they run along a row for ``SCAR_RUN``
    pixels or more and stand alone (``SCAR_ALONE_SHARE``); none where they would cover more than
    ``SCAR_MAX_SHARE`` of the frame."""
    mask = _scar_pixels(_as_image(img), threshold, max_width)
    runs = ndimage.binary_opening(mask, structure=np.ones((1, SCAR_RUN), dtype=bool))
    if not runs.any():
        return runs
    nearby = np.zeros_like(mask)
    for rows in SCAR_ALONE_ROWS:
        nearby[rows:] |= mask[:-rows]
        nearby[:-rows] |= mask[rows:]
    labels, _ = ndimage.label(runs)
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        run = labels[box] == index
        if nearby[box][run].mean() > SCAR_ALONE_SHARE:
            runs[box][run] = False
    return runs if runs.mean() <= SCAR_MAX_SHARE else np.zeros_like(runs)


def remove_scars(img: ArrayLike, threshold: float = 3.0, max_width: int = 2) -> Image:
    """Repair scars: short row segments where the tip briefly jumped.

    A pixel belongs to a scar when it lies in a vertical run of at most
    ``max_width`` rows whose every pixel (in that column) is higher than both
    the row just above and the row just below the run, or lower than both, by
    more than ``threshold`` times the robust noise scale (MAD of the row-to-row
    differences, converted to a sigma). Requiring the same sign against both
    neighbours keeps slopes and wider features, which exceed only one of them.
    Because the test is per column, partial-row scars are found as well as
    whole rows. Marked pixels are replaced by linear interpolation, along the
    column, between the nearest unmarked rows. The first and last rows have
    only one neighbour and are never changed; a noise-free image (zero MAD) is
    returned unchanged because no deviation can be judged against it.
    """
    img = _as_image(img)
    return _interpolate_columns(img, _scar_pixels(img, threshold, max_width))


def gaussian_smooth(img: ArrayLike, sigma: float = 1.0) -> Image:
    """Gaussian low-pass filter with standard deviation ``sigma`` pixels."""
    return ndimage.gaussian_filter(_as_image(img), sigma=sigma, mode="reflect")


def median_smooth(img: ArrayLike, size: int = 3) -> Image:
    """Median filter over a ``size`` x ``size`` neighbourhood."""
    return ndimage.median_filter(_as_image(img), size=size, mode="reflect")


def _frequency_indices(shape: tuple[int, int]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Signed integer frequency index of every FFT bin along axis 0 (ky) and axis 1 (kx)."""
    ky = np.fft.fftfreq(shape[0], d=1.0 / shape[0])
    kx = np.fft.fftfreq(shape[1], d=1.0 / shape[1])
    return ky[:, None], kx[None, :]


def _spectral_background(magnitude: Image) -> Image:
    """Local background of the magnitude spectrum for isolated-peak detection.

    Taken as the larger of the running medians along kx and along ky. The
    image's non-periodic borders put bright lines through DC along both axes;
    those are smooth along their own direction, so the median along that
    direction follows them and they are not taken for peaks. An isolated peak
    stands above both medians.
    """
    n = _NOTCH_BACKGROUND_BINS
    along_kx = ndimage.median_filter(magnitude, size=(1, n), mode="wrap")
    along_ky = ndimage.median_filter(magnitude, size=(n, 1), mode="wrap")
    return np.maximum(along_kx, along_ky)


def fft_notch(
    img: ArrayLike,
    threshold: float = 8.0,
    protect_radius: int = 3,
    along_fast_axis_only: bool = True,
) -> Image:
    """Suppress isolated sharp peaks in the 2-D spectrum, such as mains pick-up.

    A frequency bin is a peak when its magnitude exceeds ``threshold`` times the
    local background (see ``_spectral_background``). Its magnitude is then set
    to the background, keeping the phase. Bins within ``protect_radius`` bins of
    DC are never touched, so the large-scale topography survives.

    With ``along_fast_axis_only`` (the default) only bins with |ky| <= 1 are
    candidates. Pick-up that is phase-locked to the line start repeats
    identically in every scan line, so it varies only along the fast axis and
    lands at ky = 0 (|ky| <= 1 allows a slight drift); this is the common case
    in STM. With ``along_fast_axis_only=False`` peaks anywhere in the plane are
    removed.

    Limitation: a real atomic lattice (or any periodic surface structure) also
    makes sharp spectral peaks, and this filter cannot tell them from noise.
    With ``along_fast_axis_only=False`` it will remove lattice peaks and flatten
    the atomic corrugation; even in the default mode, lattice peaks that happen
    to lie on the ky = 0 band (a lattice row along the fast axis) are removed.
    The notch is meant for noise peaks off the lattice; as a baseline it may
    remove lattice too.

    Peaks are judged bin by bin, so pick-up whose frequency falls between two
    bins (not a whole number of cycles per line) leaks into many neighbouring
    bins and raises their background; it is then removed only in part, or not
    at all when no single bin clears the threshold.
    """
    img = _as_image(img)
    spectrum = np.fft.fft2(img)
    magnitude = np.abs(spectrum)
    background = _spectral_background(magnitude)

    ky, kx = _frequency_indices(img.shape)
    peaks = (magnitude > threshold * background) & (np.hypot(ky, kx) > protect_radius)
    if along_fast_axis_only:
        peaks &= np.abs(ky) <= 1

    spectrum[peaks] *= background[peaks] / magnitude[peaks]
    # The peak mask is point-symmetric, so the spectrum stays Hermitian and the
    # imaginary part is rounding error only.
    return np.fft.ifft2(spectrum).real


def _chain(*steps: Callable[[Image], Image]) -> Callable[[ArrayLike], Image]:
    def pipeline(img: ArrayLike) -> Image:
        out = _as_image(img)
        for step in steps:
            out = step(out)
        return out

    return pipeline


PIPELINES: dict[str, Callable[[ArrayLike], Image]] = {
    "level": _chain(level_plane, partial(align_rows, method="median")),
    "level+gauss": _chain(level_plane, partial(align_rows, method="median"), partial(gaussian_smooth, sigma=1.0)),
    "level+median": _chain(level_plane, partial(align_rows, method="median"), partial(median_smooth, size=3)),
    "level+scars+notch+gauss": _chain(
        level_plane,
        partial(align_rows, method="median_diff"),
        remove_scars,
        fft_notch,
        partial(gaussian_smooth, sigma=1.0),
    ),
}


def run_pipeline(name: str, img: ArrayLike) -> Image:
    """Run the baseline pipeline called ``name`` on ``img``."""
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r}; available: {', '.join(PIPELINES)}")
    return PIPELINES[name](img)

"""Image-quality metrics for a denoised STM height map against a clean reference.

STM heights carry an arbitrary offset and tilt (sample mounting, piezo drift),
so before any metric the best-fit plane of the difference is taken out of the
estimate, and both images are scaled by the reference's height range. All
metrics therefore work on dimensionless images where the reference spans
[0, 1], whatever the original units.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .classical import fit_plane

Image = NDArray[np.float64]

_UQI_WINDOW = 8


def _check_pair(estimate: ArrayLike, reference: ArrayLike) -> tuple[Image, Image]:
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if est.ndim != 2 or ref.ndim != 2:
        raise ValueError(f"estimate and reference must be 2-D height maps, got shapes {est.shape} and {ref.shape}")
    if est.shape != ref.shape:
        raise ValueError(f"shape mismatch: estimate {est.shape} vs reference {ref.shape}")
    if not (np.isfinite(est).all() and np.isfinite(ref).all()):
        raise ValueError("estimate and reference must contain only finite values (no NaN or inf)")
    if ref.max() == ref.min():
        raise ValueError("reference is constant: its height range is zero, so it cannot be normalised")
    return est, ref


def align_to_reference(estimate: ArrayLike, reference: ArrayLike) -> tuple[Image, Image]:
    """Remove the plane of ``estimate - reference`` from the estimate, then normalise both.

    The normalisation is ``(img - ref.min()) / (ref.max() - ref.min())`` for both
    images, so the aligned reference spans exactly [0, 1].
    """
    est, ref = _check_pair(estimate, reference)
    est = est - fit_plane(est - ref)
    low, span = ref.min(), ref.max() - ref.min()
    return (est - low) / span, (ref - low) / span


def _psnr(est_n: Image, ref_n: Image) -> float:
    # A perfect match has zero error; infinity is the right answer, not a warning.
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(ref_n, est_n, data_range=1.0))


def _ssim(est_n: Image, ref_n: Image) -> float:
    return float(
        structural_similarity(
            est_n,
            ref_n,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            K1=0.01,
            K2=0.03,
        )
    )


def _window_means(img: Image) -> Image:
    """Mean over every fully contained UQI window, sliding by one pixel."""
    return sliding_window_view(img, (_UQI_WINDOW, _UQI_WINDOW)).mean(axis=(-2, -1))


def _window_is_flat(img: Image) -> NDArray[np.bool_]:
    """True for every UQI window whose pixels are all equal."""
    windows = sliding_window_view(img, (_UQI_WINDOW, _UQI_WINDOW))
    return windows.max(axis=(-2, -1)) == windows.min(axis=(-2, -1))


def _quality_map(x: Image, y: Image) -> Image:
    """Wang & Bovik's Q for every 8x8 window, with their reference code's zero-denominator rules.

    Q = 4*sxy*mx*my / ((sx2 + sy2) * (mx^2 + my^2)). Where both windows are
    flat (sx2 + sy2 == 0) but not both zero-mean, Q reduces to the luminance
    term 2*mx*my / (mx^2 + my^2), which is 1 for identical flat windows. Where
    the whole denominator is still zero, Q = 1. Population and sample
    (co)variances give the same Q because the normalisation cancels.
    """
    mx, my = _window_means(x), _window_means(y)
    flat_x, flat_y = _window_is_flat(x), _window_is_flat(y)
    # E[x^2] - E[x]^2 leaves rounding residue instead of an exact zero on flat
    # windows, which would make 0/0 windows come out arbitrary; flat windows
    # are therefore detected exactly, and the clip guards nearly flat ones.
    sx2 = np.where(flat_x, 0.0, np.maximum(_window_means(x * x) - mx * mx, 0.0))
    sy2 = np.where(flat_y, 0.0, np.maximum(_window_means(y * y) - my * my, 0.0))
    sxy = np.where(flat_x | flat_y, 0.0, _window_means(x * y) - mx * my)

    contrast_den = sx2 + sy2
    luminance_den = mx * mx + my * my
    denominator = contrast_den * luminance_den

    quality = np.ones_like(denominator)
    flat = (contrast_den == 0) & (luminance_den != 0)
    quality[flat] = 2 * mx[flat] * my[flat] / luminance_den[flat]
    defined = denominator != 0
    quality[defined] = 4 * sxy[defined] * mx[defined] * my[defined] / denominator[defined]
    return quality


def _uqi(est_n: Image, ref_n: Image) -> float:
    if min(est_n.shape) < _UQI_WINDOW:
        raise ValueError(f"UQI needs images of at least {_UQI_WINDOW}x{_UQI_WINDOW} pixels, got {est_n.shape}")
    return float(_quality_map(est_n, ref_n).mean())


def psnr(estimate: ArrayLike, reference: ArrayLike) -> float:
    """Peak signal-to-noise ratio in dB (data range 1) of the aligned pair; inf for a perfect match."""
    return _psnr(*align_to_reference(estimate, reference))


def ssim(estimate: ArrayLike, reference: ArrayLike) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03) of the aligned pair.

    Needs images of at least 11x11 pixels (the Gaussian window's support).
    """
    return _ssim(*align_to_reference(estimate, reference))


def uqi(estimate: ArrayLike, reference: ArrayLike) -> float:
    """Universal quality index (Wang & Bovik 2002) of the aligned pair.

    Q is computed in every fully contained 8x8 window (uniform weights, step one
    pixel) and averaged. See ``_quality_map`` for windows with a zero denominator.
    """
    return _uqi(*align_to_reference(estimate, reference))


def all_metrics(estimate: ArrayLike, reference: ArrayLike) -> dict[str, float]:
    """PSNR, SSIM and UQI of one pair, aligning it only once."""
    est_n, ref_n = align_to_reference(estimate, reference)
    return {"psnr": _psnr(est_n, ref_n), "ssim": _ssim(est_n, ref_n), "uqi": _uqi(est_n, ref_n)}


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and its 95 % confidence interval (normal approximation)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return mean, mean - half, mean + half

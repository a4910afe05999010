"""Reading scans from disk into 2-D float64 height arrays, with one-line errors for bad files.

Supported now: ``.npy`` (a 2-D array in instrument units), greyscale ``.png`` and
``.tif``/``.tiff``. Every problem a user can cause raises ``ScanError`` whose message names
the file and what is wrong with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

MIN_SIZE = 8  # below this a scan has no structure to denoise
SUFFIXES = (".npy", ".png", ".tif", ".tiff")


class ScanError(ValueError):
    """A user's input file cannot be denoised; the message says why in one line."""


def _read_image(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".png":
        with Image.open(path) as im:
            array = np.asarray(im)
    else:
        array = tifffile.imread(path)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        rgb = array[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise ScanError(f"{path}: colour image; a colour map cannot be turned back into heights, save the height channel as greyscale")
        array = rgb[..., 0]
    return array


def check_scan(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as float64 if it is a usable 2-D scan, else a ``ScanError`` naming ``name``."""
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ScanError(f"{name}: data type {array.dtype} is not a real-valued height map")
    if array.size == 0:
        raise ScanError(f"{name}: empty array {array.shape}")
    if array.ndim != 2:
        raise ScanError(f"{name}: expected a 2-D scan, got {array.ndim}-D array of shape {array.shape}")
    if min(array.shape) < MIN_SIZE:
        raise ScanError(f"{name}: scan {array.shape} is smaller than {MIN_SIZE}x{MIN_SIZE} pixels")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ScanError(f"{name}: {int(bad.sum())} non-finite values (NaN or Inf)")
    return array


def read_scan(path: Path) -> np.ndarray:
    """The scan in ``path`` as a 2-D float64 array in the file's units."""
    path = Path(path)
    if not path.exists():
        raise ScanError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ScanError(f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(SUFFIXES)}")
    try:
        array = np.load(path, allow_pickle=False) if suffix == ".npy" else _read_image(path)
    except ScanError:
        raise
    except Exception as exc:  # any reader failure on a user's file is a bad file, not a crash
        raise ScanError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    return check_scan(np.asarray(array), str(path))

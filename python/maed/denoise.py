"""Denoising whole scans of any size: normalise, run the network tile by tile, undo the scale.

Scans larger than ``tile`` pixels are cut into overlapping tiles so memory stays bounded
whatever the scan size; overlapping results are blended with linear ramps so no seam shows.
Each tile is padded by reflection up to the back end's size multiple.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .engine import Backend
from .io import ScanError, read_scan
from .normalise import denormalise, normalise

TILE = 256
OVERLAP = 48


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    return starts + [length - tile]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """Blending weights along one axis of a tile, where a neighbouring tile overlaps.

    The outermost quarter of the overlap gets weight 0: there the tile's padding shows in its
    output, and the neighbour covers it fully. The rest ramps linearly; the two ramps of a pair
    of neighbours add up to 1.
    """
    margin = overlap // 4
    k = np.arange(overlap) + 0.5
    ramp = np.clip((k - margin) / (overlap - 2 * margin), 0.0, 1.0)
    w = np.ones(length)
    if not at_start:
        w[:overlap] = ramp
    if not at_end:
        w[-overlap:] = ramp[::-1]
    return w


def run_padded(x: np.ndarray, backend: Backend) -> np.ndarray:
    """Run one 2-D normalised array through the back end, padding to its size multiple."""
    h, w = x.shape
    m = backend.size_multiple
    padded = np.pad(x, ((0, _round_up(h, m) - h), (0, _round_up(w, m) - w)), mode="reflect")
    return backend.denoise(padded[None, None])[0, 0, :h, :w]


def run_tiled(x: np.ndarray, backend: Backend, tile: int = TILE, overlap: int = OVERLAP) -> np.ndarray:
    """The network's output for a normalised scan of any size, in bounded memory."""
    h, w = x.shape
    if h <= tile and w <= tile:
        return run_padded(x, backend)
    total = np.zeros((h, w))
    weight = np.zeros((h, w))
    rows, cols = _starts(h, tile, overlap), _starts(w, tile, overlap)
    for r in rows:
        for c in cols:
            patch = x[r:r + tile, c:c + tile]
            ph, pw = patch.shape
            wy = _ramp(ph, overlap, r == rows[0], r == rows[-1])
            wx = _ramp(pw, overlap, c == cols[0], c == cols[-1])
            window = np.outer(wy, wx)
            total[r:r + ph, c:c + pw] += run_padded(patch, backend) * window
            weight[r:r + ph, c:c + pw] += window
    return total / weight


def denoise_array(scan: np.ndarray, backend: Backend, tile: int = TILE) -> np.ndarray:
    """Denoised float32 copy of a 2-D scan, in the scan's units and shape."""
    x, norm = normalise(scan)
    return denormalise(run_tiled(x, backend, tile), norm)


def denoise_files(
    inputs: Iterable[Path], out_dir: Path, backend: Backend, on_error: Callable[[str], None]
) -> list[Path]:
    """Denoise each input into ``out_dir/<stem>.npy``; bad inputs are reported and skipped."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in map(Path, inputs):
        try:
            scan = read_scan(path)
        except ScanError as exc:
            on_error(str(exc))
            continue
        dest = out_dir / f"{path.stem}.npy"
        if dest.resolve() == path.resolve():
            on_error(f"{path}: output would overwrite the input; choose another output folder")
            continue
        np.save(dest, denoise_array(scan, backend))
        written.append(dest)
    return written

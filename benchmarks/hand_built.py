"""Models on hand-built scans that no simulator of this project draws: where the network takes structure for artefacts.

Sets of hand-built scans, each through ``maed denoise``'s path (``denoise_guarded``), 256 x 256, white noise of 5 pm:

- ``steps``: one or three straight steps of 100 pm at 0 to 12 degrees from the scan lines, with no line offsets,
  offsets drawn per line, or a random walk of them (6 scans an angle); and at 0 and 2 degrees with edges that wander
  by 3 pixels. Printed: PSNR and the share of the step kept
  near its edge. Within a few degrees of the rows a step crosses a row over many pixels, and a network that
  takes it for a tip change (a jump of whole lines) removes it.
- ``islands``: a flat elliptical island 130 to 240 pixels wide, 20 to 100 pm high, under line offsets drawn per line
  or a random walk of them (8 scans each): a feature that fills most of the rows it lies in.
- ``tip jumps``: molecules on a flat terrace with one tip change of 30 to 100 pm (whole lines shifted from one row
  on), which the product should remove (8 scans).
- ``z creep``: the same molecules with the z piezo's creep from the first row (50 to 300 pm, 10 to 80 rows), which
  the product should remove (8 scans); ``mound``: the same molecules on a wide mound, a profile across the rows that
  is the surface's (8 scans).
- ``rows``: a 1-D row structure (a cosine and its second harmonic, 25 pm) of period 4 to 14 pixels at 30 to 80
  degrees from the columns, under ``foreign_noise.foreign`` noise of 0.3 of its rms (one scan each). To one pass,
  such rows are pick-up, which lies on oblique lines in time.

The model card's hand-built steps, islands, tip jumps and rows (twelfth session) come from this script.

Usage (from the repository root):

    .venv/bin/python benchmarks/hand_built.py rt-plane runs/wide8/last.pt
"""

from __future__ import annotations

import argparse

import numpy as np
from foreign_noise import foreign
from scipy import ndimage

from maed.classical import PIPELINES
from maed.denoise import denoise_guarded
from maed.engine import load_backend
from maed.metrics import psnr

SIZE = 256
NOISE_M = 5e-12
STEP_M = 100e-12
ANGLES_DEG = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0)
MEANDER_PX = 3.0
"""Also measured: steps at 0 and 2 degrees whose edges wander by this much (rms), as simulator 3's all did."""
CLASSICAL = "level+gauss"


def _grid() -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[:SIZE, :SIZE].astype(float)


def step_scans(
    angle_deg: float, rng: np.random.Generator, meander_px: float = 0.0
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(noisy, clean, the upper side of the middle edge, the band beside that edge) for each offset kind and step count;
    the edges straight, or wandering by ``meander_px`` (rms, a smooth walk along them)."""
    yy, xx = _grid()
    scans = []
    for offsets in ("none", "per line", "walk"):
        for n_steps in (1, 3):
            slope = np.tan(np.radians(angle_deg * rng.choice([-1, 1])))
            walk = np.zeros(SIZE)
            if meander_px:  # drawn only then, so that straight steps are the scans they were before
                walk = ndimage.gaussian_filter1d(rng.standard_normal(SIZE), 10.0, mode="wrap")
                walk *= meander_px / walk.std()

            def above(y0: float, slope: float = slope, walk: np.ndarray = walk) -> np.ndarray:
                return (yy - y0 - slope * (xx - SIZE / 2) - walk[None, :]) > 0

            edges = np.linspace(SIZE / 2 - 40 * (n_steps - 1), SIZE / 2 + 40 * (n_steps - 1), n_steps)
            clean = sum(ndimage.gaussian_filter(above(y0).astype(float), 1.0) for y0 in edges) * STEP_M
            line = rng.normal(0, NOISE_M, (SIZE, 1))
            drawn = {"none": 0 * line, "per line": line, "walk": np.cumsum(line, axis=0) * 0.5}[offsets]
            noisy = clean + rng.normal(0, NOISE_M, clean.shape) + drawn
            band = (np.abs(yy - SIZE / 2 - slope * (xx - SIZE / 2)) < 25 + 2 * meander_px) & (xx > 20) & (xx < SIZE - 20)
            scans.append((noisy, clean, above(SIZE / 2), band))
    return scans


def step_kept(image: np.ndarray, clean: np.ndarray, upper: np.ndarray, band: np.ndarray) -> float:
    """The step across the middle edge in ``image`` over the clean one's, both measured in the band beside it."""
    inside, up = image[band], upper[band]
    return float((inside[up].mean() - inside[~up].mean()) / (clean[band][up].mean() - clean[band][~up].mean()))


def island_scans(walk: bool, rng: np.random.Generator, count: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    yy, xx = _grid()
    scans = []
    for _ in range(count):
        width, height, rise = rng.uniform(130, 240), rng.uniform(30, 150), rng.uniform(20e-12, 100e-12)
        inside = ((xx - SIZE / 2) / (width / 2)) ** 2 + ((yy - SIZE / 2) / (height / 2)) ** 2 <= 1
        clean = ndimage.gaussian_filter(inside.astype(float), 2) * rise
        line = rng.normal(0, 0.6 * NOISE_M, (SIZE, 1))
        scans.append((clean + rng.normal(0, NOISE_M, clean.shape) + (np.cumsum(line, axis=0) if walk else line), clean))
    return scans


def _molecules(rng: np.random.Generator) -> np.ndarray:
    """12 molecules of 100 pm, 3 to 8 pixels wide, on a flat terrace."""
    yy, xx = _grid()
    clean = np.zeros((SIZE, SIZE))
    for _ in range(12):
        cx, cy, width = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(3, 8)
        clean += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2)) * 100e-12
    return clean


def tip_jump_scans(rng: np.random.Generator, count: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    scans = []
    for _ in range(count):
        clean = _molecules(rng)
        jump = np.zeros((SIZE, 1))
        jump[rng.integers(40, SIZE - 40) :] = rng.choice([-1, 1]) * rng.uniform(30e-12, 100e-12)
        scans.append((clean + jump + rng.normal(0, NOISE_M, clean.shape), clean))
    return scans


def creep_scans(rng: np.random.Generator, count: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Molecules with the z piezo's creep from the first row (50 to 300 pm relaxing over 10 to 80 rows), which the
    product should remove."""
    scans = []
    for _ in range(count):
        clean = _molecules(rng)
        creep = rng.choice([-1, 1]) * rng.uniform(50e-12, 300e-12) * np.exp(-np.arange(SIZE) / rng.uniform(10, 80))
        scans.append((clean + creep[:, None] + rng.normal(0, NOISE_M, clean.shape), clean))
    return scans


def mound_scans(rng: np.random.Generator, count: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Molecules on a wide mound (100 to 300 pm, 40 to 100 pixels wide, its top anywhere in the frame's upper half):
    a profile across the rows that is the surface's, which the product should keep."""
    yy, xx = _grid()
    scans = []
    for _ in range(count):
        cx, cy, width = rng.uniform(0, SIZE), rng.uniform(0, SIZE / 2), rng.uniform(40, 100)
        mound = rng.uniform(100e-12, 300e-12) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2))
        clean = _molecules(rng) + mound
        scans.append((clean + rng.normal(0, NOISE_M, clean.shape), clean))
    return scans


def row_scans(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    yy, xx = _grid()
    scans = []
    for period in (4, 6, 10, 14):
        for angle in np.radians((30, 45, 60, 80)):
            phase = 2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period
            clean = (np.cos(phase) + 0.3 * np.cos(2 * phase)) * 25e-12
            scans.append((foreign(clean, 0.3, rng), clean))
    return scans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped names or checkpoints")
    args = parser.parse_args()
    methods = {"raw": lambda scan: scan, CLASSICAL: PIPELINES[CLASSICAL]}
    for model in args.models:
        backend = load_backend("auto", model, threads=1)
        methods[model] = lambda scan, backend=backend: denoise_guarded(scan, backend).data
    rng = np.random.default_rng(7)
    print("case | " + " | ".join(methods))
    meander_rng = np.random.default_rng(8)  # its own, so that the other sets draw what they drew before
    for angle, meander in [(angle, 0.0) for angle in ANGLES_DEG] + [(angle, MEANDER_PX) for angle in (0.0, 2.0)]:
        scans = step_scans(angle, meander_rng if meander else rng, meander)
        cells = []
        for method in methods.values():
            outputs = [method(noisy) for noisy, *_ in scans]
            score = np.mean([psnr(out, clean) for out, (_, clean, _, _) in zip(outputs, scans)])
            kept = np.mean([step_kept(out, clean, upper, band) for out, (_, clean, upper, band) in zip(outputs, scans)])
            cells.append(f"{score:.2f} dB, kept {kept:.2f}")
        shape = f", wandering {meander:g} px" if meander else ""
        print(f"steps at {angle:g} degrees{shape} | " + " | ".join(cells), flush=True)
    for label, scans in (
        ("islands, offsets per line", island_scans(False, rng)),
        ("islands, random walk", island_scans(True, rng)),
        ("tip jumps", tip_jump_scans(rng)),
        ("rows at 30-80 degrees, foreign noise", row_scans(rng)),
        # their own generator, so that the sets above draw what they drew before
        ("z creep from the first row", creep_scans(np.random.default_rng(9))),
        ("molecules on a mound", mound_scans(np.random.default_rng(10))),
    ):
        cells = [f"{np.mean([psnr(method(noisy), clean) for noisy, clean in scans]):.2f} dB" for method in methods.values()]
        print(f"{label} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()

"""Crystal lattices built atom by atom: a Bravais lattice, a basis, a motif and its defects.

A sum of a few cosines cannot hold a vacancy, a two-atom cell or a molecule; this module places
every site explicitly and renders it with a motif kernel, so one code path gives:

- simple lattices (hexagonal, square), cells with several atoms (honeycomb, kagome) and row
  phases (elongated motifs; row motifs merged into continuous rows along a cell vector, as dimer or
  missing rows and stripe phases show), and molecular crystals (a multi-lobed molecule per site);
- vacancies (sites left out), substitutions and adatoms of every size, dark and bright;
- lattices seen through lateral drift and piezo creep: site positions are warped as the slow
  scan goes on (``warp``), so the lattice is sheared and compressed as real scans show it.

Sites are splatted with bilinear weights onto the pixel grid and convolved with the motif
(``scipy.signal.fftconvolve``), so a lattice of thousands of sites costs one FFT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

BASES = {
    # (cell vectors as multiples of the lattice constant, basis positions in cell coordinates)
    "hexagonal": (((1.0, 0.0), (0.5, np.sqrt(3) / 2)), ((0.0, 0.0),)),
    "square": (((1.0, 0.0), (0.0, 1.0)), ((0.0, 0.0),)),
    "rectangular": (((1.0, 0.0), (0.0, 1.6)), ((0.0, 0.0),)),
    "honeycomb": (((1.0, 0.0), (0.5, np.sqrt(3) / 2)), ((0.0, 0.0), (1 / 3, 1 / 3))),
    "kagome": (((1.0, 0.0), (0.5, np.sqrt(3) / 2)), ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5))),
    "dimer_rows": (((1.0, 0.0), (0.0, 1.3)), ((0.0, 0.0), (0.35, 0.0))),
}
"""Bravais cell and basis of each lattice kind."""

MOTIFS = ("atom", "elongated", "row", "molecule")


@dataclass(frozen=True)
class Warp:
    """Lateral distortion of a scan: where a surface point at (x, y) pixels appears in the image.

    ``shear``: x shift per row from constant lateral drift (pixels per row); ``stretch``: the
    slow axis is stretched by ``1 + stretch`` (drift along y); ``creep``/``creep_rows``: piezo
    creep after a large offset, an x shift decaying exponentially over the first rows.
    """

    shear: float = 0.0
    stretch: float = 0.0
    creep: float = 0.0
    creep_rows: float = 30.0

    def apply(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y_img = y * (1.0 + self.stretch)
        x_img = x + self.shear * y_img + self.creep * np.exp(-y_img / max(self.creep_rows, 1e-6))
        return x_img, y_img


def random_warp(rng: np.random.Generator, strength: float = 1.0) -> Warp:
    """A plausible drift and creep: shears up to ~0.08 px/row, stretch +-6 %, creep up to a few px."""
    return Warp(
        shear=float(rng.normal(0, 0.03)) * strength,
        stretch=float(rng.uniform(-0.06, 0.06)) * strength,
        creep=float(rng.exponential(1.5)) * strength * float(rng.choice([-1.0, 1.0])),
        creep_rows=float(rng.uniform(10, 80)),
    )


def lattice_sites(
    shape: tuple[int, int], kind: str, period_px: float, angle: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Site positions (x, y in pixels) covering ``shape`` (with a margin), and the basis index of each."""
    cell, basis = BASES[kind]
    a1 = period_px * np.array(cell[0])
    a2 = period_px * np.array(cell[1])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    a1, a2 = rot @ a1, rot @ a2
    rows, cols = shape
    reach = int(np.ceil(1.6 * max(rows, cols) / (period_px * min(np.linalg.norm(cell[0]), np.linalg.norm(cell[1]))))) + 2
    i, j = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1), indexing="ij")
    origin = np.array([cols / 2, rows / 2]) + rng.uniform(0, 1, 2) * period_px
    xs, ys, which = [], [], []
    for b, (u, v) in enumerate(basis):
        pos = origin[:, None] + np.outer(a1, (i + u).ravel()) + np.outer(a2, (j + v).ravel())
        xs.append(pos[0])
        ys.append(pos[1])
        which.append(np.full(pos.shape[1], b))
    x, y, which = np.concatenate(xs), np.concatenate(ys), np.concatenate(which)
    margin = 2 * period_px + 4
    keep = (x > -margin) & (x < cols + margin) & (y > -margin) & (y < rows + margin)
    return np.stack([x[keep], y[keep]], 1), which[keep]


def splat(shape: tuple[int, int], xy: np.ndarray, weights: np.ndarray, pad: int) -> np.ndarray:
    """Bilinear deposit of weighted points onto a grid padded by ``pad`` pixels on every side."""
    rows, cols = shape
    grid = np.zeros((rows + 2 * pad, cols + 2 * pad))
    x, y = xy[:, 0] + pad, xy[:, 1] + pad
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < grid.shape[1]) & (yi >= 0) & (yi < grid.shape[0])
        np.add.at(grid, (yi[ok], xi[ok]), (weights * w)[ok])
    return grid


def motif_kernel(kind: str, size_px: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """Apparent height of one site's motif, peak 1, on a square grid a few ``size_px`` wide."""
    sigma = max(size_px / 2.355, 0.45)  # size is the full width at half maximum
    # A row motif reaches far enough along the row to merge with its neighbours there: a row, modulated or smooth.
    along = sigma * rng.uniform(2.5, 4.0) if kind == "row" else 0.0
    half = int(np.ceil(max(2.5 * size_px, 3 * along))) + 1
    r = np.arange(-half, half + 1, dtype=float)
    x, y = np.meshgrid(r, r)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    if kind == "atom":
        k = np.exp(-0.5 * (u**2 + v**2) / sigma**2)
    elif kind == "elongated":
        k = np.exp(-0.5 * ((u / (sigma * rng.uniform(1.6, 3.0))) ** 2 + (v / sigma) ** 2))
    elif kind == "row":
        k = np.exp(-0.5 * ((u / along) ** 2 + (v / sigma) ** 2))
    else:  # a molecule: a ring of 2-6 lobes, optionally with a centre
        lobes = int(rng.integers(2, 7))
        radius = size_px * rng.uniform(0.25, 0.45)
        lobe_sigma = max(sigma * rng.uniform(0.35, 0.6), 0.45)
        k = np.zeros_like(x)
        for n in range(lobes):
            t = angle + 2 * np.pi * n / lobes
            k = np.maximum(k, np.exp(-0.5 * ((x - radius * np.cos(t)) ** 2 + (y - radius * np.sin(t)) ** 2) / lobe_sigma**2))
        if rng.random() < 0.5:
            k = np.maximum(k, rng.uniform(0.4, 1.0) * np.exp(-0.5 * (x**2 + y**2) / lobe_sigma**2))
    return k / max(k.max(), 1e-30)


def render_lattice(
    shape: tuple[int, int],
    kind: str,
    period_px: float,
    motif: str,
    corrugation: float,
    rng: np.random.Generator,
    warp: Warp = Warp(),
    vacancy_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A lattice of ``motif`` on ``kind`` sites, peak-to-valley ``corrugation``, and its image-space sites.

    Vacancies are sites left empty; ``warp`` moves every site to where a drifting scan records it.
    """
    angle = float(rng.uniform(0, np.pi))
    xy, which = lattice_sites(shape, kind, period_px, angle, rng)
    keep = rng.random(len(xy)) >= vacancy_fraction
    xy, which = xy[keep], which[keep]
    x_img, y_img = warp.apply(xy[:, 0], xy[:, 1])
    xy_img = np.stack([x_img, y_img], 1)
    # Atoms of a cell differ a little in apparent height (chemical contrast).
    basis_height = 1.0 - 0.3 * rng.random(int(which.max()) + 1 if len(which) else 1)
    nearest = period_px / np.sqrt(len(BASES[kind][1]))
    size = nearest * (rng.uniform(0.9, 1.6) if motif == "molecule" else rng.uniform(0.45, 0.8))
    turned = float(rng.uniform(0, np.pi))
    # A row motif lies along the lattice's first cell vector, so that the sites along it merge into rows.
    kernel = motif_kernel(motif, size, angle if motif == "row" else turned, rng)
    pad = kernel.shape[0]
    grid = splat(shape, xy_img, basis_height[which] if len(which) else np.zeros(0), pad)
    z = signal.fftconvolve(grid, kernel, mode="same")[pad:-pad, pad:-pad]
    span = float(np.percentile(z, 99.5) - np.percentile(z, 0.5))
    z = (z - z.min()) / max(span, 1e-30) * corrugation
    inside = (xy_img[:, 0] >= 0) & (xy_img[:, 0] < shape[1]) & (xy_img[:, 1] >= 0) & (xy_img[:, 1] < shape[0])
    return z, xy_img[inside]


def point_defects(
    shape: tuple[int, int],
    count: int,
    height: float,
    size_px: tuple[float, float],
    rng: np.random.Generator,
    bright_fraction: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """Dark and bright point defects of every size (Gaussian FWHM drawn from ``size_px``) and their centres."""
    rows, cols = shape
    z = np.zeros(shape)
    centres = np.column_stack([rng.uniform(0, cols, count), rng.uniform(0, rows, count)])
    yy, xx = np.mgrid[0:rows, 0:cols]
    for cx, cy in centres:
        fwhm = float(np.exp(rng.uniform(*np.log(size_px))))
        sigma = max(fwhm / 2.355, 0.4)
        sign = 1.0 if rng.random() < bright_fraction else -1.0
        amp = height * rng.uniform(0.3, 1.5)
        z += sign * amp * np.exp(-0.5 * ((xx - cx) ** 2 + (yy - cy) ** 2) / sigma**2)
    return z, centres


def standing_waves(
    shape: tuple[int, int],
    centres: np.ndarray,
    wavelength_px: float,
    amplitude: float,
    decay_px: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Friedel oscillations of a surface state around scatterers: rings of half the Fermi wavelength."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    z = np.zeros(shape)
    for cx, cy in centres:
        r = np.hypot(xx - cx, yy - cy)
        phase = rng.uniform(0, 2 * np.pi)
        z += np.cos(2 * np.pi * r / wavelength_px + phase) * np.exp(-r / decay_px) / np.sqrt(1.0 + r / wavelength_px)
    scale = float(np.abs(z).max())
    return z / max(scale, 1e-30) * amplitude


def double_tip(image: np.ndarray, shift_px: tuple[float, float], drop: float) -> np.ndarray:
    """The image of a tip with a second apex at ``shift_px`` that sits ``drop`` higher: ghost features."""
    ghost = ndimage.shift(image, shift_px, order=1, mode="nearest") - drop
    return np.maximum(image, ghost)

"""Clean STM topographs: what the surface would look like to a perfect, noise-free tip.

Heights are in metres, rows are the slow scan axis. A surface is built from physical
parts (a lattice with defects, terraces separated by monatomic steps, adsorbed molecules,
a long-period moire) and then imaged with a tip of finite radius. Every random choice is
drawn from a ``numpy.random.Generator`` so a seed fixes the surface.

The ranges in ``SurfaceRanges`` are the physical knobs; their meaning:

- ``field_of_view_m``: scan width in metres (a few nm for atomic resolution up to
  ~100 nm for terrace overviews; the lattice is only drawn where it is resolvable).
- ``lattice_constant_m``: nearest-neighbour spacing (Si(111) adatoms 0.77 nm, Au(111)
  0.29 nm, HOPG 0.246 nm, Cu(100) 0.255 nm, molecular crystals ~1 nm).
- ``corrugation_m``: peak-to-valley atomic corrugation (10-80 pm in constant current).
- ``step_height_m``: monatomic step height (HOPG 0.335 nm, Au(111) 0.235 nm,
  Si 0.31 nm, Cu(100) 0.18 nm).
- ``molecule_height_m`` / ``molecule_size_m``: apparent height and diameter of adsorbates.
- ``moire_period_m`` / ``moire_amplitude_m``: long-period superstructures
  (graphene/metal moire 2-3 nm, Au herringbone 6 nm).
- ``tip_radius_m``: radius of the tip apex; the image is the grey-scale dilation of the
  surface by the tip's paraboloid, which rounds steps and softens atoms as real tips do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

LATTICES = ("hexagonal", "square", "rows")


@dataclass(frozen=True)
class SurfaceRanges:
    """Uniform ranges (low, high) from which a random surface's parameters are drawn."""

    field_of_view_m: tuple[float, float] = (2e-9, 60e-9)
    lattice_constant_m: tuple[float, float] = (0.25e-9, 1.0e-9)
    corrugation_m: tuple[float, float] = (10e-12, 80e-12)
    step_height_m: tuple[float, float] = (0.18e-9, 0.34e-9)
    molecule_height_m: tuple[float, float] = (0.1e-9, 0.4e-9)
    molecule_size_m: tuple[float, float] = (0.6e-9, 2.5e-9)
    moire_period_m: tuple[float, float] = (2e-9, 6e-9)
    moire_amplitude_m: tuple[float, float] = (5e-12, 30e-12)
    tip_radius_m: tuple[float, float] = (0.3e-9, 3e-9)
    # Fraction of lattice sites that are vacancies (dark) or adatoms (bright).
    defect_fraction: tuple[float, float] = (0.0, 0.03)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _coordinates(size: int, pixel_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in metres; x along the fast axis, y along the slow axis."""
    axis = (np.arange(size) + 0.5) * pixel_m
    return np.meshgrid(axis, axis, indexing="xy")


def _lattice_vectors(kind: str, a: float, angle: float) -> list[np.ndarray]:
    """Reciprocal wave vectors whose cosines sum to the lattice's corrugation."""
    if kind == "hexagonal":
        # Three waves at 120 degrees give a hexagonal array with spacing a.
        k = 4 * np.pi / (np.sqrt(3) * a)
        angles = [angle, angle + 2 * np.pi / 3, angle + 4 * np.pi / 3]
    elif kind == "square":
        k = 2 * np.pi / a
        angles = [angle, angle + np.pi / 2]
    else:  # rows: one strong wave, as on reconstructed or molecular row phases
        k = 2 * np.pi / a
        angles = [angle]
    return [k * np.array([np.cos(t), np.sin(t)]) for t in angles]


def lattice(
    x: np.ndarray, y: np.ndarray, kind: str, a: float, corrugation: float, angle: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Atomic corrugation and the positions of its maxima (sites), both in metres."""
    waves = _lattice_vectors(kind, a, angle)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    shift = phase / (2 * np.pi) * a
    z = sum(np.cos(k[0] * (x - shift[0]) + k[1] * (y - shift[1])) for k in waves)
    z = (z - z.min()) / max(np.ptp(z), 1e-30) * corrugation
    sites = np.argwhere(z == ndimage.maximum_filter(z, size=3))
    return z, sites


def defects(
    shape: tuple[int, int], sites: np.ndarray, fraction: float, depth: float, width_px: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Vacancies (dips) and adatoms (bumps) at a random subset of lattice sites."""
    out = np.zeros(shape)
    n = rng.binomial(len(sites), fraction) if len(sites) else 0
    if n == 0:
        return out
    chosen = sites[rng.choice(len(sites), size=n, replace=False)]
    signs = np.where(rng.random(n) < 0.7, -1.0, 1.0)  # vacancies are more common
    out[chosen[:, 0], chosen[:, 1]] = signs
    return ndimage.gaussian_filter(out, width_px) * (2 * np.pi * width_px**2) * depth


def _smooth_walk(n: int, scale: float, correlation: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random curve (Gaussian-filtered white noise) with the given rms."""
    walk = ndimage.gaussian_filter1d(rng.standard_normal(n), correlation, mode="wrap")
    return walk / max(walk.std(), 1e-30) * scale


def terraces(
    x: np.ndarray, y: np.ndarray, n_steps: int, step_height: float, angle: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Monatomic terraces separated by meandering step edges, running at ``angle``."""
    size = x.shape[0]
    extent = x.max()
    # Distance across the steps; meander is a smooth walk along the step direction.
    across = x * np.cos(angle) + y * np.sin(angle)
    along = -x * np.sin(angle) + y * np.cos(angle)
    along_px = np.clip(((along - along.min()) / max(np.ptp(along), 1e-30) * (size - 1)).astype(int), 0, size - 1)
    z = np.zeros_like(x)
    positions = np.sort(rng.uniform(across.min(), across.max(), n_steps))
    direction = rng.choice([-1.0, 1.0])
    for pos in positions:
        meander = _smooth_walk(size, rng.uniform(0.02, 0.08) * extent, rng.uniform(4, 20), rng)
        z += direction * step_height * (across > pos + meander[along_px])
    return z


def molecules(
    x: np.ndarray, y: np.ndarray, count: int, height: float, size_m: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Adsorbed molecules: elliptical blobs, some with two lobes, at random positions."""
    z = np.zeros_like(x)
    extent = x.max()
    for _ in range(count):
        cx, cy = rng.uniform(0, extent, 2)
        theta = rng.uniform(0, np.pi)
        sa = size_m / 2 * rng.uniform(0.7, 1.3)
        sb = sa * rng.uniform(0.4, 1.0)
        u = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
        v = -(x - cx) * np.sin(theta) + (y - cy) * np.cos(theta)
        blob = np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2) * 4)
        if rng.random() < 0.4:  # a nodal plane, as in imaged frontier orbitals
            blob *= 0.6 + 0.4 * np.abs(np.tanh(3 * u / sa))
        z = np.maximum(z, height * rng.uniform(0.8, 1.2) * blob)
    return z


def moire(x: np.ndarray, y: np.ndarray, period: float, amplitude: float, angle: float) -> np.ndarray:
    """A long-period hexagonal superstructure."""
    waves = _lattice_vectors("hexagonal", period, angle)
    z = sum(np.cos(k[0] * x + k[1] * y) for k in waves)
    return (z - z.min()) / max(np.ptp(z), 1e-30) * amplitude


def tip_image(surface: np.ndarray, pixel_m: float, tip_radius: float) -> np.ndarray:
    """Image of the surface through a paraboloid tip apex (grey-scale dilation)."""
    half = 3
    r = np.arange(-half, half + 1) * pixel_m
    rx, ry = np.meshgrid(r, r)
    # The apex height profile z = r^2 / 2R; dilation subtracts it from the neighbours.
    structure = -(rx**2 + ry**2) / (2 * tip_radius)
    return ndimage.grey_dilation(surface, structure=structure, mode="reflect")


def random_surface(
    rng: np.random.Generator, size: int = 128, ranges: SurfaceRanges = SurfaceRanges()
) -> tuple[np.ndarray, dict]:
    """Draw one clean topograph (metres) and the parameters that made it."""
    fov = float(np.exp(rng.uniform(*np.log(ranges.field_of_view_m))))
    pixel = fov / size
    x, y = _coordinates(size, pixel)
    info: dict = {"field_of_view_m": fov, "pixel_m": pixel}
    z = np.zeros((size, size))

    a = _uniform(rng, ranges.lattice_constant_m)
    if a / pixel >= 3.0:  # a lattice finer than ~3 px per period is not resolved
        kind = str(rng.choice(LATTICES))
        angle = rng.uniform(0, np.pi)
        corr = _uniform(rng, ranges.corrugation_m)
        atoms, sites = lattice(x, y, kind, a, corr, angle, rng)
        frac = _uniform(rng, ranges.defect_fraction)
        z += atoms + defects(z.shape, sites, frac, 1.5 * corr, max(0.25 * a / pixel, 0.7), rng)
        info.update(lattice=kind, lattice_constant_m=a, corrugation_m=corr, defect_fraction=frac)

    n_steps = int(rng.choice([0, 0, 1, 1, 2, 3])) if fov > 4e-9 else 0
    if n_steps:
        z += terraces(x, y, n_steps, _uniform(rng, ranges.step_height_m), rng.uniform(0, 2 * np.pi), rng)
        info["steps"] = n_steps

    if rng.random() < 0.35:
        mol_size = _uniform(rng, ranges.molecule_size_m)
        if mol_size / pixel >= 2.0:
            count = int(rng.integers(1, 12))
            z += molecules(x, y, count, _uniform(rng, ranges.molecule_height_m), mol_size, rng)
            info["molecules"] = count

    if rng.random() < 0.25:
        period = _uniform(rng, ranges.moire_period_m)
        if period / pixel >= 4.0 and period < fov:
            z += moire(x, y, period, _uniform(rng, ranges.moire_amplitude_m), rng.uniform(0, np.pi))
            info["moire_period_m"] = period

    if not np.ptp(z) > 0:  # nothing resolvable drawn: fall back to a terrace with molecules
        z += molecules(x, y, int(rng.integers(2, 8)), _uniform(rng, ranges.molecule_height_m), 6 * pixel, rng)
        info["molecules"] = info.get("molecules", 0) + 1

    tip = _uniform(rng, ranges.tip_radius_m)
    info["tip_radius_m"] = tip
    return tip_image(z, pixel, tip), info

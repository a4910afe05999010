"""Clean STM topographs: what the surface would look like to a perfect, noise-free tip.

Heights are in metres, rows are the slow scan axis. ``random_surface`` first draws a family
(``FAMILIES``: atomic lattices, cells of several atoms, molecular crystals, stepped terraces,
adsorbates, point defects with standing waves, moire) and then its physical parts, and images
the result with a tip of finite radius. Lattices are built atom by atom (``motifs``): periods
from 2.5 to 60 pixels, corrugations from 2 to 150 pm (log-uniform, so from far below to far
above the scan noise), vacancies and point defects of every size, lateral drift and creep, and
the same lattice on every terrace of a stepped surface, step edges along the scan lines as well as
across them, monatomic islands. Every random choice is drawn from a
``numpy.random.Generator`` so a seed fixes the surface.

The ranges in ``SurfaceRanges`` are the physical knobs; their meaning:

- ``field_of_view_m``: scan width in metres for the families without a lattice (terraces,
  adsorbates, standing waves, moire); lattice families set the pixel from the period instead.
- ``corrugation_m``: peak-to-valley atomic corrugation, drawn log-uniformly.
- ``step_height_m``: monatomic step height (HOPG 0.335 nm, Au(111) 0.235 nm,
  Si 0.31 nm, Cu(100) 0.18 nm).
- ``molecule_height_m`` / ``molecule_size_m``: apparent height and diameter of adsorbates.
- ``moire_amplitude_m``: amplitude of long-period superstructures.
- ``tip_radius_m``: radius of the tip apex; the image is the grey-scale dilation of the
  surface by the tip's paraboloid, which rounds steps and softens atoms as real tips do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import motifs


@dataclass(frozen=True)
class SurfaceRanges:
    """Uniform ranges (low, high) from which a random surface's parameters are drawn."""

    field_of_view_m: tuple[float, float] = (2e-9, 60e-9)
    corrugation_m: tuple[float, float] = (2e-12, 150e-12)
    step_height_m: tuple[float, float] = (0.18e-9, 0.34e-9)
    molecule_height_m: tuple[float, float] = (0.1e-9, 0.4e-9)
    molecule_size_m: tuple[float, float] = (0.6e-9, 2.5e-9)
    moire_amplitude_m: tuple[float, float] = (5e-12, 30e-12)
    tip_radius_m: tuple[float, float] = (0.3e-9, 3e-9)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _coordinates(size: int, pixel_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in metres; x along the fast axis, y along the slow axis."""
    axis = (np.arange(size) + 0.5) * pixel_m
    return np.meshgrid(axis, axis, indexing="xy")


def _smooth_walk(n: int, scale: float, correlation: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random curve (Gaussian-filtered white noise) with the given rms."""
    walk = ndimage.gaussian_filter1d(rng.standard_normal(n), correlation, mode="wrap")
    return walk / max(walk.std(), 1e-30) * scale


def terraces(
    x: np.ndarray,
    y: np.ndarray,
    n_steps: int,
    step_height: float,
    angle: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Monatomic terraces separated by step edges running at ``angle``, from straight to meandering (``MEANDER``)."""
    size = x.shape[0]
    extent = x.max()
    # Distance across the steps; meander is a smooth walk along the step edges.
    across = x * np.cos(angle) + y * np.sin(angle)
    along = -x * np.sin(angle) + y * np.cos(angle)
    along_px = np.clip(((along - along.min()) / max(np.ptp(along), 1e-30) * (size - 1)).astype(int), 0, size - 1)
    z = np.zeros_like(x)
    positions = np.sort(rng.uniform(across.min(), across.max(), n_steps))
    sign = rng.choice([-1.0, 1.0])  # terraces rising or falling across the steps
    for pos in positions:
        meander = _smooth_walk(size, _log_uniform(rng, *MEANDER) * extent, rng.uniform(4, 20), rng)
        z += sign * step_height * (across > pos + meander[along_px])
    return z


MEANDER = (0.002, 0.08)
"""Range (log-uniform) of a step edge's meander, rms over the frame's extent: from straight edges (cleaved HOPG, vicinal
silicon, noble metals at low temperature) to ones that wander by a tenth of the frame. With meander of 2 % or more
(simulator 3), no straight step was drawn; a step within 3 degrees of the scan lines that wanders by 3 pixels or more
is kept, a straight one was erased as a tip change (``docs/model.md``)."""

STEPS_ALONG_ROWS = 0.25
"""Share of stepped surfaces whose step edges run within ``ALONG_ROWS_DEG`` of the scan lines. Drawn uniformly over
all angles, 6 % would; there a step crosses a row only over many pixels, and a network that sees few of them
takes the step for a tip change (a jump of whole lines) and removes it (``docs/model.md``)."""
ALONG_ROWS_DEG = 8.0


def step_angle(rng: np.random.Generator) -> float:
    """The angle of ``terraces``: near the scan lines (``STEPS_ALONG_ROWS``), else uniform; one draw either way."""
    u = float(rng.random())
    if u < STEPS_ALONG_ROWS:
        v = u / STEPS_ALONG_ROWS  # uniform in [0, 1): which side, and how far from the rows
        side = np.pi / 2 if v < 0.5 else 3 * np.pi / 2
        return side + np.radians(ALONG_ROWS_DEG) * (4 * (v % 0.5) - 1)
    return 2 * np.pi * (u - STEPS_ALONG_ROWS) / (1 - STEPS_ALONG_ROWS)


TALL_DEFECT_M = 150e-12
"""Point defects on a lattice reach this height (or 3 times the corrugation, if more): an adatom or a cluster stands
50 to 150 pm above a metal whose atoms corrugate by a few pm. Up to simulator 4 they reached 3 times the corrugation,
and a network that never saw taller ones levelled the rows through a tall adatom as if it were a line offset,
drawing a band across the frame (``docs/model.md``)."""


def defect_heights(corrugation: float) -> tuple[float, float]:
    """Range (log-uniform) of a lattice's point defects' height for its ``corrugation``."""
    return 0.5 * corrugation, max(3 * corrugation, TALL_DEFECT_M)


def islands(size: int, step_height: float, rng: np.random.Generator) -> np.ndarray:
    """Monatomic islands or vacancy islands of irregular outline covering 10 % to 70 % of the frame, sometimes with a
    second layer on top: flat features wide enough to fill most of the rows they lie in, which no row levelling may
    take for line offsets."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), size * rng.uniform(0.04, 0.15), mode="wrap")
    cover = rng.uniform(0.1, 0.7)
    z = (field > np.quantile(field, 1 - cover)).astype(float)
    if rng.random() < 0.3:
        z += field > np.quantile(field, 1 - cover * rng.uniform(0.2, 0.5))
    return z * step_height * rng.choice([-1.0, 1.0])


def molecules(
    x: np.ndarray,
    y: np.ndarray,
    count: int,
    height: float,
    size_m: float,
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
    """A long-period hexagonal superstructure: three waves at 120 degrees, spacing ``period``."""
    k = 4 * np.pi / (np.sqrt(3) * period)
    z = sum(np.cos(k * (np.cos(t) * x + np.sin(t) * y)) for t in (angle, angle + 2 * np.pi / 3, angle + 4 * np.pi / 3))
    return (z - z.min()) / max(np.ptp(z), 1e-30) * amplitude


def tip_image(surface: np.ndarray, pixel_m: float, tip_radius: float) -> np.ndarray:
    """Image of the surface through a paraboloid tip apex (grey-scale dilation)."""
    half = 3
    r = np.arange(-half, half + 1) * pixel_m
    rx, ry = np.meshgrid(r, r)
    # The apex height profile z = r^2 / 2R; dilation subtracts it from the neighbours.
    structure = -(rx**2 + ry**2) / (2 * tip_radius)
    # A round footprint: a square one would print the apex's square outline around every bump.
    footprint = rx**2 + ry**2 <= (half * pixel_m) ** 2
    return ndimage.grey_dilation(surface, footprint=footprint, structure=structure, mode="reflect")


def smooth_background(shape: tuple[int, int], rms: float, rng: np.random.Generator) -> np.ndarray:
    """A random smooth height field of the given rms: a Gaussian random field of power ~ 1/(k0^2 + k^2)^(b/2).

    Real surfaces are rarely flat between their features: substrate roughness, subsurface
    defects, charge puddles and bent terraces add smooth height that is structure, not noise.
    Exponent b (3 to 5: steeper than 2, which in two dimensions has equal power in every octave and is
    rough, not smooth) and corner k0 (a period of 1/8 to 1 of the frame) are drawn at random,
    with a random anisotropy, so no one texture becomes a prior of the network.
    """
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    stretch = np.exp(rng.uniform(-0.7, 0.7))
    k2 = (kx * stretch) ** 2 + (ky / stretch) ** 2
    k0 = 1.0 / (max(shape) * rng.uniform(1 / 8, 1.0))
    amplitude = (k0**2 + k2) ** (-rng.uniform(3.0, 5.0) / 4)
    amplitude[0, 0] = 0.0
    spectrum = amplitude * (rng.standard_normal(amplitude.shape) + 1j * rng.standard_normal(amplitude.shape))
    field = np.fft.irfft2(spectrum, s=shape)
    return field / max(float(field.std()), 1e-300) * rms


FAMILIES = ("lattice", "multi_atom", "molecular_crystal", "steps", "adsorbates", "standing_waves", "moire", "kagome")
"""Kinds of surface ``random_surface`` draws, each equally often unless a family is asked for.

``kagome`` is held out of training (``HELD_OUT_FAMILIES``): it is scored as a lattice kind the
network has never seen, the generalisation column of ``maed eval``.
"""

HELD_OUT_FAMILIES = ("kagome",)
LATTICE_FAMILIES = ("lattice", "multi_atom", "molecular_crystal", "kagome")
"""The families whose surface is a lattice (their info holds ``period_px`` and ``corrugation_m``)."""
TRAINING_FAMILIES = tuple(f for f in FAMILIES if f not in HELD_OUT_FAMILIES)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _atomic_lattice(
    rng: np.random.Generator,
    size: int,
    kind: str,
    motif: str,
    period_px: float,
    ranges: SurfaceRanges,
) -> tuple[np.ndarray, dict]:
    """A drifting lattice with vacancies and point defects of every size, dark and bright."""
    shape = (size, size)
    corr = _log_uniform(rng, *ranges.corrugation_m)
    warp = motifs.random_warp(rng, strength=float(rng.uniform(0, 1.5)))
    vacancies = float(rng.choice([0.0, 0.0, rng.uniform(0, 0.04)]))
    z, sites = motifs.render_lattice(shape, kind, period_px, motif, corr, rng, warp, vacancies)
    n_defects = int(rng.poisson(size * size / 4000)) if rng.random() < 0.6 else 0
    if n_defects:
        spots, _ = motifs.point_defects(shape, n_defects, _log_uniform(rng, *defect_heights(corr)), (1.0, 4 * period_px), rng)
        z += spots
    info = {
        "lattice": kind,
        "motif": motif,
        "period_px": period_px,
        "corrugation_m": corr,
        "vacancy_fraction": vacancies,
        "point_defects": n_defects,
        "warp": warp.__dict__,
    }
    return z, info


def random_surface(
    rng: np.random.Generator,
    size: int = 128,
    ranges: SurfaceRanges = SurfaceRanges(),
    families: tuple[str, ...] = TRAINING_FAMILIES,
) -> tuple[np.ndarray, dict]:
    """Draw one clean topograph (metres) of one of ``families`` and the parameters that made it."""
    family = str(rng.choice(families))
    shape = (size, size)
    info: dict = {"family": family}
    z = np.zeros(shape)
    if family in ("lattice", "multi_atom", "molecular_crystal", "kagome"):
        if family == "lattice":
            kind, motif = str(rng.choice(["hexagonal", "square", "rectangular"])), str(rng.choice(["atom", "atom", "elongated", "row"]))
            period_px, a = _log_uniform(rng, 2.5, 40.0), _uniform(rng, (0.2e-9, 1.2e-9))
        elif family == "multi_atom":
            kind, motif = str(rng.choice(["honeycomb", "dimer_rows"])), "atom"
            period_px, a = _log_uniform(rng, 4.0, 50.0), _uniform(rng, (0.25e-9, 1.5e-9))
        elif family == "kagome":
            kind, motif = "kagome", "atom"
            period_px, a = _log_uniform(rng, 4.0, 50.0), _uniform(rng, (0.3e-9, 2.0e-9))
        else:
            kind, motif = str(rng.choice(["hexagonal", "square", "rectangular"])), "molecule"
            period_px, a = _log_uniform(rng, 8.0, 60.0), _uniform(rng, (0.8e-9, 3.0e-9))
        pixel = a / period_px
        z, lattice_info = _atomic_lattice(rng, size, kind, motif, period_px, ranges)
        info.update(lattice_info)
        if rng.random() < 0.35 and size * pixel > 3e-9:  # the same lattice on every terrace of a stepped surface
            x, y = _coordinates(size, pixel)
            n_steps = int(rng.integers(1, 4))
            z += terraces(x, y, n_steps, _uniform(rng, ranges.step_height_m), step_angle(rng), rng)
            info["steps"] = n_steps
    else:
        fov = _log_uniform(rng, *ranges.field_of_view_m)
        pixel = fov / size
        x, y = _coordinates(size, pixel)
        if family == "steps":
            n_steps = int(rng.integers(1, 13))  # up to a vicinal staircase
            z += terraces(x, y, n_steps, _uniform(rng, ranges.step_height_m), step_angle(rng), rng)
            info["steps"] = n_steps
            if rng.random() < 0.5:
                z += islands(size, _uniform(rng, ranges.step_height_m), rng)
                info["islands"] = True
            if rng.random() < 0.5:
                mol_size = max(_uniform(rng, ranges.molecule_size_m), 2.5 * pixel)
                count = int(rng.integers(1, 20))
                z += molecules(x, y, count, _uniform(rng, ranges.molecule_height_m), mol_size, rng)
                info["molecules"] = count
        elif family == "adsorbates":
            mol_size = max(_uniform(rng, ranges.molecule_size_m), 2.5 * pixel)
            count = int(rng.integers(1, 25))
            z += molecules(x, y, count, _uniform(rng, ranges.molecule_height_m), mol_size, rng)
            spots, _ = motifs.point_defects(shape, int(rng.integers(0, 30)), _log_uniform(rng, 3e-12, 60e-12), (1.0, 8.0), rng)
            z += spots
            info["molecules"] = count
        elif family == "standing_waves":
            count = int(rng.integers(1, 40))
            depth = _log_uniform(rng, 5e-12, 80e-12)
            spots, centres = motifs.point_defects(shape, count, depth, (1.5, 10.0), rng, bright_fraction=0.2)
            wavelength = _log_uniform(rng, 4.0, 40.0)
            z += spots + motifs.standing_waves(
                shape, centres, wavelength, depth * rng.uniform(0.1, 0.6), wavelength * rng.uniform(1, 6), rng
            )
            info.update(point_defects=count, wavelength_px=wavelength)
        else:  # moire: a long-period superstructure over a fine lattice
            period = _log_uniform(rng, 8.0, 80.0) * pixel
            z += moire(x, y, period, _log_uniform(rng, *ranges.moire_amplitude_m), rng.uniform(0, np.pi))
            fine = period / _log_uniform(rng, 3.0, 12.0)
            if fine / pixel >= 2.5:
                atoms, _ = motifs.render_lattice(shape, "hexagonal", fine / pixel, "atom", _log_uniform(rng, *ranges.corrugation_m), rng)
                z += atoms
            info["moire_period_m"] = period
    if not np.ptp(z) > 0:
        x, y = _coordinates(size, pixel)
        z += molecules(x, y, int(rng.integers(2, 8)), _uniform(rng, ranges.molecule_height_m), 6 * pixel, rng)
    info.update(pixel_m=pixel, field_of_view_m=pixel * size)
    tip = _uniform(rng, ranges.tip_radius_m)
    info["tip_radius_m"] = tip
    return tip_image(z, pixel, tip), info

"""A blind STM topograph simulator: an independent judge for the denoiser.

This module draws pairs (noisy, clean) of square constant-current STM topographs, deterministic by seed, so that a
denoiser trained on the project's own simulator (``maed.data``) can be scored on surfaces and instrument noise it has
never seen. It was written from general knowledge of STM physics and instrumentation, without looking at
``maed.data``, its documentation or its tests, and it imports nothing from ``maed``: only numpy and scipy.

Conventions
-----------
* Arrays are ``size x size`` float64 heights in metres. Axis 0 is the slow scan axis (rows, top to bottom),
  axis 1 the fast axis (time within one trace line, left to right).
* ``clean`` is the true topography as a perfect, noiseless instrument would sample it along the same (drifting)
  tip path: lateral drift, piezo creep and the fast-axis nonlinearity distort both arrays alike, since no denoiser
  can be asked to undo the scan geometry. Nothing else of the instrument is in ``clean``: no sample tilt, no plane
  removed, no offsets.
* ``noisy`` is what the controller records for the trace: the surface plus sample tilt and absolute z offset, passed
  through a second-order feedback loop (lag, overshoot and ringing after edges along the fast axis), plus white
  noise, noise low-passed along the raster (preamp / feedback bandwidth), 1/f noise, line-to-line offsets and a
  random walk of line levels, mains pick-up and mechanical vibration (sinusoids in time along the whole raster,
  trace and retrace, so they show as oblique stripes), z-piezo creep, tip changes (every later line shifted and
  noisier), scars (short runs of one line jumped) and height quantisation of the z DAC.

Every scan draws its own field of view (2 nm to 100 nm), so features have physical sizes, and its own noise strengths
(from very quiet to very noisy).

Families (``FAMILIES``): ``atomic``, ``steps``, ``molecules``, ``adatoms_and_waves``, ``islands``, ``mixed``.
The public entry is ``draw(family, seed, size)``; ``draw(..., noiseless=True)`` gives the same scan with no noise, events or
quantisation: the surface as the feedback loop and the fast-axis lag pass it, the most a denoiser that does not undo
them can return (``benchmarks/blind_score.py`` reports it beside the methods).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, signal

Array = NDArray[np.float64]

PM = 1e-12
ANGSTROM = 1e-10
NM = 1e-9

FAMILIES: tuple[str, ...] = ("atomic", "steps", "molecules", "adatoms_and_waves", "islands", "mixed")


# ----------------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------------


def _logu(rng: np.random.Generator, lo: float, hi: float) -> float:
    """Log-uniform draw in [lo, hi]."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


@dataclass(frozen=True)
class _Grid:
    """The padded rendering grid: ``n = size + 2 * pad`` pixels, coordinates in nm, (0, 0) at the frame's corner."""

    size: int
    pad: int
    pix: float  # nm per pixel

    @property
    def n(self) -> int:
        return self.size + 2 * self.pad

    @property
    def fov(self) -> float:
        return self.size * self.pix

    def coords(self) -> tuple[Array, Array]:
        c = (np.arange(self.n, dtype=np.float64) - self.pad) * self.pix
        return np.meshgrid(c, c)  # x varies along axis 1, y along axis 0

    def to_px(self, v_nm: float) -> float:
        return v_nm / self.pix


def _smooth_curve(rng: np.random.Generator, s: Array, rms: float, scale: float, n_terms: int = 3) -> Array:
    """A smooth random 1-D function of ``s`` (a sum of sinusoids with wavelengths 0.3-2 ``scale``) of rms ``rms``."""
    out = np.zeros_like(s)
    if rms <= 0:
        return out
    amps = rng.uniform(0.3, 1.0, n_terms)
    for amp in amps:
        lam = scale * _logu(rng, 0.3, 2.0)
        out += amp * np.sin(2 * np.pi * s / lam + rng.uniform(0, 2 * np.pi))
    return out * rms / np.sqrt(0.5 * np.sum(amps**2))


def _sigmoid_step(dist: Array, width: float) -> Array:
    """0 to 1 across an edge at ``dist = 0``; ``width`` (same units) is the tip-limited edge width scale."""
    return 0.5 * (1.0 + np.tanh(dist / max(width, 1e-9)))


def _blob_mask(rng: np.random.Generator, grid: _Grid, fraction: float) -> Array:
    """A smooth irregular region covering about ``fraction`` of the frame (a thresholded smooth random field)."""
    field = ndimage.gaussian_filter(rng.standard_normal((grid.n, grid.n)), grid.n * rng.uniform(0.08, 0.18), mode="wrap")
    thr = np.quantile(field[grid.pad : grid.pad + grid.size, grid.pad : grid.pad + grid.size], 1.0 - fraction)
    return (field >= thr).astype(np.float64)


# ----------------------------------------------------------------------------------------------------------------
# lattices
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class _Lattice:
    kind: str
    a1: Array  # nm, rotated
    a2: Array
    basis: list[tuple[float, float]]  # fractional
    sig_u: float  # nm, along ``u_angle``
    sig_v: float
    u_angle: float
    a: float  # the lattice constant (the shortest period), nm

    def site_xy(self, i1: Array | float, i2: Array | float, k: int = 0) -> tuple[Array, Array]:
        p1, p2 = self.basis[k]
        return (
            self.a1[0] * (np.asarray(i1) + p1) + self.a2[0] * (np.asarray(i2) + p2),
            self.a1[1] * (np.asarray(i1) + p1) + self.a2[1] * (np.asarray(i2) + p2),
        )

    def fractional(self, x: Array, y: Array) -> tuple[Array, Array]:
        inv = np.linalg.inv(np.column_stack([self.a1, self.a2]))
        return inv[0, 0] * x + inv[0, 1] * y, inv[1, 0] * x + inv[1, 1] * y


LATTICE_KINDS = ("hexagonal", "square", "rectangular", "centred_rectangular", "rows", "honeycomb")


def _draw_lattice(rng: np.random.Generator, a: float, kind: str | None = None) -> _Lattice:
    """A 2-D lattice of constant ``a`` nm (its shortest period), random orientation, Gaussian atoms."""
    if kind is None and a > 0.7:  # a reconstruction's superstructure (7x7-, c(4x2)-like)
        kind = str(rng.choice(["hexagonal", "square", "centred_rectangular"]))
    elif kind is None:
        kind = str(rng.choice(LATTICE_KINDS, p=[0.32, 0.16, 0.12, 0.12, 0.16, 0.12]))
    theta = rng.uniform(0, np.pi)
    basis: list[tuple[float, float]] = [(0.0, 0.0)]
    sig = a * rng.uniform(0.22, 0.38)
    sig_u = sig_v = sig
    if kind == "hexagonal":
        a1, a2 = np.array([a, 0.0]), np.array([a / 2, a * np.sqrt(3) / 2])
    elif kind == "honeycomb":  # graphene-like: two atoms per cell, nearest neighbours a / sqrt(3)
        a1, a2 = np.array([a, 0.0]), np.array([a / 2, a * np.sqrt(3) / 2])
        basis = [(1 / 3, 1 / 3), (2 / 3, 2 / 3)]
        sig_u = sig_v = a * rng.uniform(0.14, 0.22)
    elif kind == "square":
        a1, a2 = np.array([a, 0.0]), np.array([0.0, a])
    elif kind == "rectangular":
        b = a * rng.uniform(1.25, 2.2)
        a1, a2 = np.array([a, 0.0]), np.array([0.0, b])
        sig_v = b * rng.uniform(0.2, 0.32)
    elif kind == "centred_rectangular":
        b = a * rng.uniform(1.25, 2.0)
        # the primitive shortest period is a; the conventional cell a x b has a second atom in its centre
        a1, a2 = np.array([a, 0.0]), np.array([0.0, b])
        basis = [(0.0, 0.0), (0.5, 0.5)]
        sig_v = b * rng.uniform(0.16, 0.26)
    elif kind == "rows":  # added-row or dimer-row reconstruction: rows along a1, spacing b
        b = a * rng.uniform(1.8, 3.5)
        a1, a2 = np.array([a, 0.0]), np.array([0.0, b])
        if rng.random() < 0.5:  # dimer rows (Si(001)-2x1-like): two lobes across each row
            d = rng.uniform(0.1, 0.2)
            basis = [(0.0, -d), (0.0, d)]
            sig_u, sig_v = a * rng.uniform(0.3, 0.45), b * rng.uniform(0.07, 0.11)
        else:  # added rows (Cu(110)-(2x1)O-like): a weakly modulated continuous row
            sig_u, sig_v = a * rng.uniform(0.45, 0.7), b * rng.uniform(0.14, 0.24)
    else:
        raise ValueError(f"unknown lattice kind {kind!r}")
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return _Lattice(kind, rot @ a1, rot @ a2, basis, sig_u, sig_v, theta, a)


def _render_lattice(lat: _Lattice, x: Array, y: Array, amps: Callable[[Array, Array, int], Array] | None = None) -> Array:
    """Sum of the lattice's Gaussian atoms at (x, y); ``amps(i1, i2, k)`` gives each site's amplitude (default 1)."""
    f1, f2 = lat.fractional(x, y)
    b1, b2 = np.floor(f1), np.floor(f2)
    cu, su = np.cos(lat.u_angle), np.sin(lat.u_angle)
    out = np.zeros_like(x)
    for k in range(len(lat.basis)):
        for d1 in range(-2, 4):
            for d2 in range(-2, 4):
                i1, i2 = b1 + d1, b2 + d2
                sx, sy = lat.site_xy(i1, i2, k)
                dx, dy = x - sx, y - sy
                du, dv = dx * cu + dy * su, -dx * su + dy * cu
                g = np.exp(-0.5 * ((du / lat.sig_u) ** 2 + (dv / lat.sig_v) ** 2))
                if amps is not None:
                    g *= amps(i1, i2, k)
                out += g
    return out


class _SiteTable:
    """Per-site amplitudes of a lattice over the index range that covers a grid (1 unless a defect changed it)."""

    def __init__(self, lat: _Lattice, x: Array, y: Array):
        f1, f2 = lat.fractional(x, y)
        self.lo1, self.lo2 = int(np.floor(f1.min())) - 4, int(np.floor(f2.min())) - 4
        self.table = np.ones((int(np.ceil(f1.max())) - self.lo1 + 5, int(np.ceil(f2.max())) - self.lo2 + 5, len(lat.basis)))

    def __call__(self, i1: Array, i2: Array, k: int) -> Array:
        return self.table[i1.astype(np.int64) - self.lo1, i2.astype(np.int64) - self.lo2, k]

    def set(self, i1: int, i2: int, k: int, value: float) -> None:
        self.table[i1 - self.lo1, i2 - self.lo2, k] = value


def _lattice_layer(
    rng: np.random.Generator,
    grid: _Grid,
    a: float,
    corrugation: float,
    kind: str | None = None,
    n_defects: float | None = None,
    moire: bool | None = None,
) -> tuple[Array, dict[str, Any]]:
    """An atomic lattice of ``corrugation`` metres (peak to peak) with point defects; heights in metres."""
    x, y = grid.coords()
    lat = _draw_lattice(rng, a, kind)
    sites = _SiteTable(lat, x, y)
    extra = np.zeros_like(x)  # defect depressions / halos, in units of the corrugation
    adatoms = np.zeros_like(x)  # in metres
    fov = grid.fov
    lam = rng.uniform(1.0, 8.0) if n_defects is None else n_defects
    counts = {"vacancy": rng.poisson(lam * 0.45), "adatom": rng.poisson(lam * 0.25), "substitution": rng.poisson(lam * 0.4)}
    neighbours = [(1, 0), (0, 1), (-1, 0), (0, -1), (1, -1), (-1, 1)]
    for what, count in counts.items():
        for _ in range(count):
            px, py = rng.uniform(0.05, 0.95, 2) * fov
            f1, f2 = lat.fractional(np.array(px), np.array(py))
            i1, i2, k = int(np.round(f1)), int(np.round(f2)), int(rng.integers(len(lat.basis)))
            if what == "adatom":  # in a hollow site, above the surface
                hx, hy = lat.site_xy(i1 + 1 / 3, i2 + 1 / 3, k)
                h = max(rng.uniform(40, 150) * PM, 1.5 * corrugation)
                w = lat.a * rng.uniform(0.35, 0.6)
                adatoms += h * np.exp(-0.5 * ((x - hx) ** 2 + (y - hy) ** 2) / w**2)
                continue
            cluster = [(i1, i2)]
            for _ in range(int(rng.integers(0, 3))):
                d1, d2 = neighbours[int(rng.integers(len(neighbours)))]
                cluster.append((cluster[-1][0] + d1, cluster[-1][1] + d2))
            if what == "vacancy":
                value, halo = 0.0, -rng.uniform(0.15, 0.5)
            elif rng.random() < 0.55:  # dark substitution
                value, halo = rng.uniform(0.05, 0.5), -rng.uniform(0.0, 0.3)
            else:  # bright substitution
                value, halo = rng.uniform(1.5, 2.6), rng.uniform(0.0, 0.3)
            w = lat.a * rng.uniform(0.5, 1.2)
            for c1, c2 in cluster:
                sites.set(c1, c2, k, value)
                sx, sy = lat.site_xy(c1, c2, k)
                extra += halo * np.exp(-0.5 * ((x - sx) ** 2 + (y - sy) ** 2) / w**2)
    img = _render_lattice(lat, x, y, sites)
    perfect = _render_lattice(lat, x[:48, :48], y[:48, :48])
    span = float(np.ptp(perfect)) or 1.0
    img = (img - perfect.mean() + extra * span) / span * corrugation
    info: dict[str, Any] = {
        "lattice": lat.kind,
        "lattice_nm": round(lat.a, 4),
        "period_px": round(lat.a / grid.pix, 2),
        "angle_deg": round(np.degrees(lat.u_angle), 1),
        "corrugation_pm": round(corrugation / PM, 2),
        "defects": {k: int(v) for k, v in counts.items()},
    }
    if moire is None:
        moire = bool(rng.random() < 0.2)
    if moire:
        period = lat.a * rng.uniform(5, 14)
        if period < fov / 1.5:
            mo = _draw_lattice(rng, period, "hexagonal")
            mo.sig_u = mo.sig_v = period * rng.uniform(0.25, 0.35)
            m = _render_lattice(mo, x, y)
            m = (m - m.mean()) / (float(np.ptp(m)) or 1.0)
            amp = corrugation * rng.uniform(0.3, 1.5)
            img += amp * m
            info["moire_nm"] = round(period, 3)
            info["moire_pm"] = round(amp / PM, 2)
    return img + adatoms, info


def _lattice_scale(rng: np.random.Generator, size: int, superstructure_p: float = 0.2, fov_range=(2.0, 100.0)):
    """Lattice constant (nm) and pixel size (nm) such that the period is 3-25 pixels and the field of view in range."""
    a = _logu(rng, 0.8, 3.0) if rng.random() < superstructure_p else _logu(rng, 0.24, 0.6)
    lo = max(3.0, size * a / fov_range[1])
    hi = min(25.0, size * a / fov_range[0])
    if lo > hi:  # the range cannot hold this constant: take the nearest possible period
        period = lo if size * a / fov_range[1] > 3.0 else hi
    else:
        period = _logu(rng, lo, hi)
    return a, a / period


# ----------------------------------------------------------------------------------------------------------------
# steps
# ----------------------------------------------------------------------------------------------------------------


def _step_angle(rng: np.random.Generator) -> float:
    """Direction (radians) of step edges: often exactly or nearly along the fast axis (rows) or the slow axis."""
    u = rng.random()
    if u < 0.2:
        return 0.0
    if u < 0.35:
        return float(np.radians(rng.uniform(-3, 3)))
    if u < 0.45:
        return float(np.pi / 2)
    if u < 0.52:
        return float(np.pi / 2 + np.radians(rng.uniform(-3, 3)))
    return float(rng.uniform(0, np.pi))


def _steps_layer(
    rng: np.random.Generator,
    grid: _Grid,
    n_steps: int | None = None,
    height: float | None = None,
    angle: float | None = None,
) -> tuple[Array, dict[str, Any]]:
    """Terraces separated by monatomic steps (heights in metres)."""
    x, y = grid.coords()
    fov = grid.fov
    n_steps = int(rng.integers(1, 7)) if n_steps is None else n_steps
    height = rng.uniform(1.5, 3.5) * ANGSTROM if height is None else height
    angle = _step_angle(rng) if angle is None else angle
    cx = cy = fov / 2
    s = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)  # along the edges
    d = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)  # across them
    corners = np.array([[0, 0], [fov, 0], [0, fov], [fov, fov]]) - fov / 2
    dc = -corners[:, 0] * np.sin(angle) + corners[:, 1] * np.cos(angle)
    lo, hi = dc.min() + 0.04 * fov, dc.max() - 0.04 * fov
    min_gap = 0.035 * fov
    pos = np.sort(rng.uniform(lo, hi, n_steps))
    for _ in range(200):  # spread edges at least min_gap apart
        if n_steps < 2 or np.diff(pos).min() >= min_gap:
            break
        pos = np.sort(rng.uniform(lo, hi, n_steps))
    gap = float(np.diff(pos).min()) if n_steps > 1 else fov
    mixed_signs = rng.random() < 0.25
    curved = rng.random() < 0.6
    width = rng.uniform(0.12, 0.5)  # nm: tip-limited edge width scale
    frizzy = rng.uniform(0.05, 0.3) if rng.random() < 0.15 else 0.0
    img = np.zeros_like(x)
    for k, p in enumerate(pos):
        meander = np.zeros_like(s)
        if curved:
            meander = _smooth_curve(rng, s, min(_logu(rng, 0.005, 0.06) * fov, 0.3 * gap), fov)
            meander += _smooth_curve(rng, s, rng.uniform(0.0, 0.12), 8.0, n_terms=4)  # kinks, nm wavelengths
        if frizzy:  # at room temperature edges fluctuate while the tip passes: the edge jitters line by line
            meander = meander + rng.normal(0.0, frizzy, (grid.n, 1))
        sign = rng.choice([-1.0, 1.0]) if mixed_signs else -1.0
        h = height * (2.0 if rng.random() < 0.08 else 1.0)
        img += sign * h * _sigmoid_step(d - p - meander, width)
    info = {
        "n_steps": n_steps,
        "step_height_A": round(height / ANGSTROM, 3),
        "edge_angle_deg": round(float(np.degrees(angle)), 2),
        "curved": bool(curved),
        "mixed_signs": bool(mixed_signs),
        "frizzy_nm": round(frizzy, 3),
    }
    return img - img.mean(), info


# ----------------------------------------------------------------------------------------------------------------
# molecules
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class _Molecule:
    kind: str
    fn: Callable[[Array, Array], Array]  # normalised apparent height (max 1) in the molecule's frame, nm
    extent: float  # nm, radius beyond which the molecule is ~0
    length: float  # nm, along its axis
    width: float  # nm, across


def _draw_molecule(rng: np.random.Generator, kind: str | None = None) -> _Molecule:
    if kind is None:
        kind = str(rng.choice(["blob", "rod", "trilobe", "fourlobe"]))
    if kind == "blob":  # C60-, metal-cluster- or small-molecule-like
        r = rng.uniform(0.4, 1.2)
        p = float(rng.choice([2.0, 3.0, 4.0]))

        def fn(u: Array, v: Array) -> Array:
            return np.exp(-((np.hypot(u, v) / r) ** p))

        extent, length, width = 2.2 * r, 2 * r, 2 * r
    elif kind == "rod":  # alkane / oligomer-like: a capsule, sometimes with lobes along it
        length = rng.uniform(1.5, 4.0)
        sig = rng.uniform(0.2, 0.35)
        n_lobes = int(rng.integers(2, 6)) if rng.random() < 0.5 else 0
        mod = rng.uniform(0.15, 0.35)
        half = max(length / 2 - sig, 0.0)

        def fn(u: Array, v: Array) -> Array:
            du = np.maximum(np.abs(u) - half, 0.0)
            base = np.exp(-0.5 * (du**2 + v**2) / sig**2)
            if n_lobes:
                base = base * (1 - mod + mod * np.cos(np.pi * n_lobes * np.clip(u / (2 * half), -0.5, 0.5)) ** 2)
            return base

        extent, width = length / 2 + 3 * sig, 2 * sig * 1.5
    elif kind in ("trilobe", "fourlobe"):  # triangular (e.g. TMA-like) or cross-shaped (phthalocyanine-like)
        n = 3 if kind == "trilobe" else 4
        size = rng.uniform(1.2, 2.6)
        dist = size * rng.uniform(0.28, 0.36)
        sr, st = size * rng.uniform(0.12, 0.18), size * rng.uniform(0.09, 0.14)
        centre = rng.uniform(0.0, 0.7) if n == 3 else rng.uniform(0.2, 1.2)
        csig = size * rng.uniform(0.1, 0.16)

        def fn(u: Array, v: Array) -> Array:
            out = centre * np.exp(-0.5 * (u**2 + v**2) / csig**2)
            for j in range(n):
                ang = 2 * np.pi * j / n
                c, s = np.cos(ang), np.sin(ang)
                ru, rv = u * c + v * s - dist, -u * s + v * c
                out = out + np.exp(-0.5 * (ru**2 / sr**2 + rv**2 / st**2))
            return out

        extent, length, width = dist + 3 * sr, 2 * (dist + sr), 2 * (dist + sr)
    else:
        raise ValueError(kind)
    uu, vv = np.meshgrid(np.linspace(-extent, extent, 81), np.linspace(-extent, extent, 81))
    peak = float(fn(uu, vv).max())

    def norm(u: Array, v: Array, _f=fn, _p=peak) -> Array:
        return _f(u, v) / _p

    return _Molecule(kind, norm, extent, length, width)


def _stamp_molecules(grid: _Grid, mol: _Molecule, centres: Array, angles: Array, heights: Array, layer: Array | None = None) -> Array:
    """Molecules at ``centres`` (nm, N x 2) combined by maximum (they do not stack) into ``layer`` (metres)."""
    layer = np.zeros((grid.n, grid.n)) if layer is None else layer
    r_px = int(np.ceil(mol.extent / grid.pix)) + 1
    for (cx, cy), ang, h in zip(centres, angles, heights):
        ci, cj = cy / grid.pix + grid.pad, cx / grid.pix + grid.pad
        i0, i1 = max(int(ci) - r_px, 0), min(int(ci) + r_px + 2, grid.n)
        j0, j1 = max(int(cj) - r_px, 0), min(int(cj) + r_px + 2, grid.n)
        if i0 >= i1 or j0 >= j1:
            continue
        jj, ii = np.meshgrid(np.arange(j0, j1), np.arange(i0, i1))
        dx, dy = (jj - cj) * grid.pix, (ii - ci) * grid.pix
        u, v = dx * np.cos(ang) + dy * np.sin(ang), -dx * np.sin(ang) + dy * np.cos(ang)
        layer[i0:i1, j0:j1] = np.maximum(layer[i0:i1, j0:j1], h * mol.fn(u, v))
    return layer


def _molecule_layer(
    rng: np.random.Generator, grid: _Grid, mol: _Molecule, arrangement: str | None = None, coverage: float | None = None
) -> tuple[Array, dict[str, Any]]:
    """Molecules scattered or self-assembled into a 2-D crystal (heights in metres, 0 on the bare substrate)."""
    fov, n = grid.fov, grid.n
    lo_nm, hi_nm = -grid.pad * grid.pix, (grid.size + grid.pad) * grid.pix
    height = rng.uniform(50, 300) * PM
    arrangement = arrangement or ("scattered" if rng.random() < 0.45 else "assembled")
    info: dict[str, Any] = {"molecule": mol.kind, "molecule_nm": round(max(mol.length, mol.width), 2), "height_pm": round(height / PM, 1)}
    info["arrangement"] = arrangement
    if arrangement == "scattered":
        area = max(mol.length * mol.width, 0.3)
        cover = rng.uniform(0.03, 0.3) if coverage is None else coverage
        count = int(np.clip(cover * fov**2 / area, 2, 4000))
        count = int(rng.integers(max(1, count // 2), count + 1))
        sym = rng.random() < 0.5  # orientations locked to three substrate directions
        base_angle = rng.uniform(0, np.pi)
        centres: list[tuple[float, float]] = []
        min_d = 0.9 * max(mol.length, mol.width)
        pts = rng.uniform(lo_nm, hi_nm, (count * 6, 2))
        for p in pts:  # hard-core: a new molecule does not overlap earlier ones
            if len(centres) >= count:
                break
            if centres and np.min(np.hypot(*(np.asarray(centres) - p).T)) < min_d:
                continue
            centres.append((float(p[0]), float(p[1])))
        c = np.asarray(centres).reshape(-1, 2)
        if sym:
            angles = base_angle + np.pi / 3 * rng.integers(0, 6, len(c))
        else:
            angles = rng.uniform(0, 2 * np.pi, len(c))
        heights = height * rng.normal(1.0, 0.06, len(c))
        info["count"] = len(c)
        return _stamp_molecules(grid, mol, c, angles, heights), info
    # self-assembled: one or two domains of a 2-D molecular crystal, over the whole frame or an island
    layer = np.zeros((n, n))
    x, y = grid.coords()
    domains = 2 if rng.random() < 0.25 else 1
    split_angle = rng.uniform(0, np.pi)
    split_off = rng.uniform(-0.25, 0.25) * fov
    side = -(x - fov / 2) * np.sin(split_angle) + (y - fov / 2) * np.cos(split_angle) - split_off
    whole = rng.random() < 0.45
    region = np.ones((n, n)) if whole else _blob_mask(rng, grid, rng.uniform(0.3, 0.8))
    mol_angle_in_cell = rng.uniform(0, np.pi)
    if mol.kind == "rod":
        a_len = mol.width * rng.uniform(1.1, 1.6)
        b_len = mol.length * rng.uniform(1.05, 1.3)
        shear = rng.uniform(-0.5, 0.5)
        mol_angle_in_cell = np.pi / 2  # rods lie along the second cell vector
        cell_a, cell_b = np.array([a_len, 0.0]), np.array([shear * a_len, b_len])
    else:
        spacing = max(mol.length, mol.width) * rng.uniform(0.95, 1.35)
        if rng.random() < 0.5:
            cell_a, cell_b = np.array([spacing, 0.0]), np.array([spacing / 2, spacing * np.sqrt(3) / 2])
        else:
            cell_a, cell_b = np.array([spacing, 0.0]), np.array([0.0, spacing * rng.uniform(1.0, 1.2)])
    vac = rng.uniform(0.0, 0.05)
    total = 0
    for dom in range(domains):
        theta = rng.uniform(0, np.pi)
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        a1, a2 = rot @ cell_a, rot @ cell_b
        inv = np.linalg.inv(np.column_stack([a1, a2]))
        corners = np.array([[lo_nm, lo_nm], [hi_nm, lo_nm], [lo_nm, hi_nm], [hi_nm, hi_nm]])
        fr = corners @ inv.T
        i1 = np.arange(np.floor(fr[:, 0].min()) - 1, np.ceil(fr[:, 0].max()) + 2)
        i2 = np.arange(np.floor(fr[:, 1].min()) - 1, np.ceil(fr[:, 1].max()) + 2)
        g1, g2 = np.meshgrid(i1, i2)
        offset = rng.uniform(0, 1, 2)
        pts = np.stack([g1.ravel() + offset[0], g2.ravel() + offset[1]], 1) @ np.column_stack([a1, a2]).T
        inside = (pts[:, 0] > lo_nm) & (pts[:, 0] < hi_nm) & (pts[:, 1] > lo_nm) & (pts[:, 1] < hi_nm)
        pts = pts[inside]
        pi = np.clip((pts[:, 1] / grid.pix + grid.pad).astype(int), 0, n - 1)
        pj = np.clip((pts[:, 0] / grid.pix + grid.pad).astype(int), 0, n - 1)
        keep = region[pi, pj] > 0.5
        if domains == 2:
            keep &= (side[pi, pj] > 0) == (dom == 0)
        keep &= rng.random(len(pts)) >= vac
        pts = pts[keep]
        angles = np.full(len(pts), theta + mol_angle_in_cell)
        heights = height * rng.normal(1.0, 0.04, len(pts))
        _stamp_molecules(grid, mol, pts, angles, heights, layer)
        total += len(pts)
    if not whole:  # a few loose molecules beside the island
        gas = int(rng.integers(0, 12))
        pts = rng.uniform(lo_nm, hi_nm, (gas, 2))
        pi = np.clip((pts[:, 1] / grid.pix + grid.pad).astype(int), 0, n - 1)
        pj = np.clip((pts[:, 0] / grid.pix + grid.pad).astype(int), 0, n - 1)
        pts = pts[region[pi, pj] < 0.5]
        _stamp_molecules(grid, mol, pts, rng.uniform(0, 2 * np.pi, len(pts)), np.full(len(pts), height), layer)
        total += len(pts)
    info.update(domains=domains, whole_frame=bool(whole), count=total)
    return layer, info


def _herringbone(rng: np.random.Generator, grid: _Grid) -> tuple[Array, dict[str, Any]]:
    """Au(111)-like herringbone: pairs of soliton ridges ~6.3 nm apart, zigzagging every ~25 nm (metres)."""
    x, y = grid.coords()
    ang = rng.uniform(0, np.pi)
    s = x * np.cos(ang) + y * np.sin(ang)
    d = -x * np.sin(ang) + y * np.cos(ang)
    zig_period = rng.uniform(20, 32)
    tri = 2 * np.abs((s / zig_period) % 1.0 - 0.5) - 0.5  # triangle wave, -0.5..0.5
    d = d + tri * zig_period * np.tan(np.radians(rng.uniform(25, 35)))
    period, pair = rng.uniform(6.0, 6.6), rng.uniform(2.0, 2.6)
    w = rng.uniform(0.4, 0.7)
    phase = d % period
    ridges = np.exp(-0.5 * (phase / w) ** 2) + np.exp(-0.5 * ((phase - period) / w) ** 2)
    ridges += np.exp(-0.5 * ((phase - pair) / w) ** 2)
    amp = rng.uniform(8, 20) * PM
    return amp * ridges, {"substrate": "herringbone", "herringbone_pm": round(amp / PM, 1)}


# ----------------------------------------------------------------------------------------------------------------
# adatoms and standing waves
# ----------------------------------------------------------------------------------------------------------------


def _waves_layer(
    rng: np.random.Generator, grid: _Grid, n_scatterers: int | None = None, step: bool | None = None
) -> tuple[Array, dict[str, Any]]:
    """Adatoms and point defects on a (111) noble-metal terrace, with Friedel oscillations around each and standing
    waves parallel to a step edge (heights in metres)."""
    x, y = grid.coords()
    fov = grid.fov
    period = rng.uniform(1.0, 3.0)  # nm: the standing waves' wavelength
    amp = rng.uniform(1.0, 6.0) * PM
    coherence = rng.uniform(5.0, 40.0)
    img = np.zeros_like(x)
    waves = np.zeros_like(x)
    n_scatterers = int(np.round(_logu(rng, 1, 25))) if n_scatterers is None else n_scatterers
    kinds = {"adatom": 0, "depression": 0, "subsurface": 0}
    for _ in range(n_scatterers):
        px, py = rng.uniform(-0.05, 1.05, 2) * fov
        r = np.hypot(x - px, y - py)
        u = rng.random()
        if u < 0.55:
            kind, h, w = "adatom", rng.uniform(40, 150) * PM, rng.uniform(0.3, 0.6)
        elif u < 0.8:
            kind, h, w = "depression", -rng.uniform(5, 30) * PM, rng.uniform(0.4, 0.9)
        else:
            kind, h, w = "subsurface", rng.uniform(3, 15) * PM, rng.uniform(0.6, 1.2)
        kinds[kind] += 1
        img += h * np.exp(-0.5 * (r / w) ** 2)
        strength = rng.uniform(0.5, 1.5) * rng.choice([-1.0, 1.0])
        phase = rng.uniform(0, 2 * np.pi)
        # 2-D Friedel oscillation of the surface-state LDOS: cos(2 k_F r + phase) / (k_F r), damped by decoherence
        rr = np.sqrt(r**2 + (0.5 * period) ** 2)
        waves += strength * amp * np.cos(2 * np.pi * r / period + phase) * (period / rr) * np.exp(-r / coherence)
    info: dict[str, Any] = {
        "wave_period_nm": round(period, 3),
        "wave_amp_pm": round(amp / PM, 2),
        "coherence_nm": round(coherence, 1),
        "scatterers": kinds,
    }
    if step is None:
        step = bool(rng.random() < 0.6)
    if step:
        angle = _step_angle(rng)
        s = (x - fov / 2) * np.cos(angle) + (y - fov / 2) * np.sin(angle)
        d = -(x - fov / 2) * np.sin(angle) + (y - fov / 2) * np.cos(angle)
        p = rng.uniform(-0.3, 0.3) * fov
        dist = d - p - _smooth_curve(rng, s, rng.uniform(0, 0.015) * fov, fov)
        height = rng.uniform(1.5, 3.5) * ANGSTROM
        img += -height * _sigmoid_step(dist, rng.uniform(0.12, 0.4))
        for side in (-1.0, 1.0):
            a_side = amp * rng.uniform(1.0, 2.5)
            ad = np.abs(dist)
            # 1-D standing wave reflected at the edge: decays roughly as 1/sqrt(distance)
            ws = a_side * np.cos(2 * np.pi * ad / period + rng.uniform(0, 2 * np.pi))
            ws *= np.sqrt(period / (ad + 0.5 * period)) * np.exp(-ad / coherence)
            waves += np.where(side * dist > 0, ws, 0.0)
        info.update(step=True, step_height_A=round(height / ANGSTROM, 3), edge_angle_deg=round(float(np.degrees(angle)), 2))
    else:
        info["step"] = False
    return img + waves, info


# ----------------------------------------------------------------------------------------------------------------
# islands
# ----------------------------------------------------------------------------------------------------------------


def _stamp(mask: Array, ci: float, cj: float, r: float, inside: Callable[[Array, Array], Array]) -> None:
    """OR into ``mask`` the shape ``inside(dx, dy)`` (pixels from the centre) over a box of radius ``r`` pixels."""
    n = mask.shape[0]
    i0, i1 = max(int(ci - r) - 1, 0), min(int(ci + r) + 2, n)
    j0, j1 = max(int(cj - r) - 1, 0), min(int(cj + r) + 2, n)
    if i0 >= i1 or j0 >= j1:
        return
    jj, ii = np.meshgrid(np.arange(j0, j1), np.arange(i0, i1))
    mask[i0:i1, j0:j1] |= inside(jj - cj, ii - ci)


def _compact_shape(rng: np.random.Generator, radius: float) -> tuple[Callable[[Array, Array], Array], float]:
    coeff = rng.normal(0, 1, 5) * np.array([0.12, 0.08, 0.05, 0.04, 0.03])
    phases = rng.uniform(0, 2 * np.pi, 5)

    def inside(dx: Array, dy: Array) -> Array:
        phi = np.arctan2(dy, dx)
        rr = radius * (1 + sum(c * np.cos((k + 2) * phi + p) for k, (c, p) in enumerate(zip(coeff, phases))))
        return np.hypot(dx, dy) <= rr

    return inside, radius * 1.6


def _polygon_shape(rng: np.random.Generator, radius: float, kind: str, orient: float) -> tuple[Callable[[Array, Array], Array], float]:
    if kind == "hexagon":  # (111) islands: hexagons to truncated triangles
        t = rng.uniform(0.0, 0.45)
        normals = [orient + k * np.pi / 3 for k in range(6)]
        dists = [radius * (1 + t if k % 2 else 1 - t) for k in range(6)]
    else:  # (100)/(110) islands: rectangles aligned with the substrate
        aspect = _logu(rng, 1.0, 3.0)
        rx, ry = radius * np.sqrt(aspect), radius / np.sqrt(aspect)
        normals = [orient + k * np.pi / 2 for k in range(4)]
        dists = [rx, ry, rx, ry]

    def inside(dx: Array, dy: Array) -> Array:
        ok = np.ones(dx.shape, dtype=bool)
        for ang, dd in zip(normals, dists):
            ok &= dx * np.cos(ang) + dy * np.sin(ang) <= dd
        return ok

    return inside, radius * 2.0


def _dendrite(rng: np.random.Generator, mask: Array, ci: float, cj: float, radius: float, width: float, sym: bool) -> None:
    """A fractal/dendritic island (as grown by hit-and-stick aggregation): branched arms of ``width`` pixels."""
    n_arms = int(rng.choice([3, 6])) if sym else int(rng.integers(3, 7))
    base = rng.uniform(0, 2 * np.pi)
    stack = []
    for k in range(n_arms):
        ang = base + 2 * np.pi * k / n_arms if sym else rng.uniform(0, 2 * np.pi)
        stack.append((ci, cj, ang, radius * rng.uniform(0.6, 1.0), 0))
    segs: list[tuple[float, float, float, float, float]] = []
    while stack and len(segs) < 600:
        i, j, ang, length, depth = stack.pop()
        step = width * 1.1
        for m in range(max(1, int(length / step))):
            ang += rng.normal(0, 0.18)
            ni, nj = i + step * np.sin(ang), j + step * np.cos(ang)
            segs.append((i, j, ni, nj, width * rng.uniform(0.75, 1.25)))
            if depth < 3 and rng.random() < 0.3:
                turn = (np.pi / 3 if sym else rng.uniform(0.5, 1.3)) * rng.choice([-1.0, 1.0])
                stack.append((ni, nj, ang + turn, (length - m * step) * rng.uniform(0.3, 0.7), depth + 1))
            i, j = ni, nj
    for i0, j0, i1, j1, w in segs:
        di, dj = i1 - i0, j1 - j0
        ln2 = di * di + dj * dj

        def inside(dx: Array, dy: Array, i0=i0, j0=j0, di=di, dj=dj, ln2=ln2, w=w, ci=(i0 + i1) / 2, cj=(j0 + j1) / 2) -> Array:
            py, px = dy + ci - i0, dx + cj - j0  # from the segment's start
            t = np.clip((py * di + px * dj) / ln2, 0, 1)
            return np.hypot(py - t * di, px - t * dj) <= w / 2

        _stamp(mask, (i0 + i1) / 2, (j0 + j1) / 2, np.sqrt(ln2) / 2 + w, inside)


def _islands_mask(
    rng: np.random.Generator, grid: _Grid, coverage: float, shape: str, radius_nm: float, within: Array | None = None
) -> Array:
    """A boolean mask of islands of ``shape`` covering about ``coverage`` of the frame (or of ``within``)."""
    n, pad, size = grid.n, grid.pad, grid.size
    mask = np.zeros((n, n), dtype=bool)
    centre = (slice(pad, pad + size), slice(pad, pad + size))
    target_area = coverage * (within[centre].mean() if within is not None else 1.0)
    orient = rng.uniform(0, np.pi)
    sym = rng.random() < 0.6
    r_px = max(radius_nm / grid.pix, 3.0)
    for _ in range(400):
        if mask[centre].mean() >= target_area:
            break
        ci, cj = rng.uniform(0, n, 2)
        if within is not None and not within[int(ci), int(cj)]:
            continue
        r = r_px * float(np.exp(rng.normal(0, 0.35)))
        if shape == "compact":
            inside, ext = _compact_shape(rng, r)
            _stamp(mask, ci, cj, ext, inside)
        elif shape in ("hexagon", "rectangle"):
            inside, ext = _polygon_shape(rng, r, shape, orient + rng.normal(0, 0.03))
            _stamp(mask, ci, cj, ext, inside)
        else:
            _dendrite(rng, mask, ci, cj, r, max(3.0, r * rng.uniform(0.07, 0.16)), sym)
    if within is not None:
        mask &= within
    return mask


def _islands_layer(rng: np.random.Generator, grid: _Grid, coverage: float | None = None) -> tuple[Array, dict[str, Any]]:
    """Monatomic islands (compact, dendritic, hexagonal or rectangular) and/or vacancy islands (metres)."""
    fov = grid.fov
    height = rng.uniform(1.5, 3.5) * ANGSTROM
    shape = str(rng.choice(["compact", "dendritic", "hexagon", "rectangle"], p=[0.35, 0.25, 0.25, 0.15]))
    coverage = rng.uniform(0.1, 0.6) if coverage is None else coverage
    kind = str(rng.choice(["adatom", "vacancy", "both"], p=[0.6, 0.25, 0.15]))
    if shape == "dendritic":
        radius = fov * _logu(rng, 0.08, 0.3)
    else:
        radius = fov * _logu(rng, 0.03, 0.15)
    tip = rng.uniform(0.15, 0.5) / grid.pix  # edge width in pixels
    up = np.zeros((grid.n, grid.n))
    down = np.zeros((grid.n, grid.n))
    if kind in ("adatom", "both"):
        m = _islands_mask(rng, grid, coverage if kind == "adatom" else coverage * 0.6, shape, radius)
        up = m.astype(np.float64)
        if rng.random() < 0.25:  # second-layer islands on some islands
            up += _islands_mask(rng, grid, coverage * 0.15, shape, radius * 0.4, within=ndimage.binary_erosion(m, iterations=3))
    if kind in ("vacancy", "both"):
        m = _islands_mask(
            rng, grid, coverage if kind == "vacancy" else coverage * 0.4, "compact" if shape == "dendritic" else shape, radius * 0.7
        )
        down = m.astype(np.float64) * (up < 0.5)
    img = height * ndimage.gaussian_filter(up - down, max(tip, 0.5))
    info = {
        "islands": shape,
        "island_kind": kind,
        "coverage_target": round(coverage, 3),
        "step_height_A": round(height / ANGSTROM, 3),
        "radius_nm": round(radius, 2),
    }
    return img, info


# ----------------------------------------------------------------------------------------------------------------
# families: each draws a field of view and renders the true surface on the padded grid
# ----------------------------------------------------------------------------------------------------------------


def _atomic(rng: np.random.Generator, size: int, pad: int) -> tuple[Array, _Grid, dict[str, Any]]:
    a, pix = _lattice_scale(rng, size)
    grid = _Grid(size, pad, pix)
    corr = _logu(rng, 5, 100) * PM
    img, info = _lattice_layer(rng, grid, a, corr)
    info["feature_scale_pm"] = corr / PM
    return img, grid, info


def _steps(rng: np.random.Generator, size: int, pad: int) -> tuple[Array, _Grid, dict[str, Any]]:
    with_lattice = rng.random() < 0.35
    if with_lattice:
        a, pix = _lattice_scale(rng, size, superstructure_p=0.25, fov_range=(6.0, 40.0))
    else:
        pix = _logu(rng, 10, 100) / size
    grid = _Grid(size, pad, pix)
    img, info = _steps_layer(rng, grid)
    info["feature_scale_pm"] = info["step_height_A"] * 100
    if with_lattice:
        corr = _logu(rng, 5, 50) * PM
        lat, linfo = _lattice_layer(rng, grid, a, corr, n_defects=rng.uniform(0, 3), moire=False)
        img = img + lat
        info["lattice"] = linfo
    return img, grid, info


def _molecules(rng: np.random.Generator, size: int, pad: int) -> tuple[Array, _Grid, dict[str, Any]]:
    mol = _draw_molecule(rng)
    small = min(mol.length, mol.width)
    fov_hi = min(60.0, size * small / 5.0)  # a molecule spans at least ~5 pixels across its narrow side
    fov = _logu(rng, min(5.0, fov_hi), fov_hi)
    pix = fov / size
    grid = _Grid(size, pad, pix)
    layer, info = _molecule_layer(rng, grid, mol)
    sub, sinfo = _substrate(rng, grid)
    info["substrate"] = sinfo
    info["feature_scale_pm"] = info["height_pm"]
    return sub + layer, grid, info


def _substrate(rng: np.random.Generator, grid: _Grid) -> tuple[Array, dict[str, Any]]:
    """Flat, herringbone-reconstructed, atomically corrugated or stepped substrate under adsorbates (metres)."""
    u = rng.random()
    if u < 0.4:
        return np.zeros((grid.n, grid.n)), {"substrate": "flat"}
    if u < 0.6 and grid.fov > 15:
        return _herringbone(rng, grid)
    if u < 0.8 and 0.3 / grid.pix >= 3.0:
        a = rng.uniform(0.25, 0.4)
        img, info = _lattice_layer(rng, grid, a, _logu(rng, 3, 20) * PM, n_defects=0.0, moire=False)
        info["substrate"] = "lattice"
        return img, info
    img, info = _steps_layer(rng, grid, n_steps=int(rng.integers(1, 3)))
    info["substrate"] = "steps"
    return img, info


def _adatoms_and_waves(rng: np.random.Generator, size: int, pad: int) -> tuple[Array, _Grid, dict[str, Any]]:
    pix = _logu(rng, 6, 50) / size
    grid = _Grid(size, pad, pix)
    img, info = _waves_layer(rng, grid)
    info["feature_scale_pm"] = 4 * info["wave_amp_pm"]
    return img, grid, info


def _islands(rng: np.random.Generator, size: int, pad: int) -> tuple[Array, _Grid, dict[str, Any]]:
    pix = _logu(rng, 10, 100) / size
    grid = _Grid(size, pad, pix)
    img, info = _islands_layer(rng, grid)
    if rng.random() < 0.2:
        st, sinfo = _steps_layer(rng, grid, n_steps=1)
        img = img + st
        info["substrate_step"] = sinfo
    info["feature_scale_pm"] = info["step_height_A"] * 100
    return img, grid, info


def _mixed(rng: np.random.Generator, size: int, pad: int) -> tuple[Array, _Grid, dict[str, Any]]:
    combo = str(rng.choice(["lattice_steps_adsorbates", "islands_waves", "molecules_on_steps", "lattice_islands"]))
    info: dict[str, Any] = {"combination": combo}
    if combo in ("lattice_steps_adsorbates", "lattice_islands"):
        a, pix = _lattice_scale(rng, size, superstructure_p=0.15, fov_range=(5.0, 40.0))
        grid = _Grid(size, pad, pix)
        corr = _logu(rng, 5, 60) * PM
        lat, info["lattice"] = _lattice_layer(rng, grid, a, corr, n_defects=rng.uniform(0, 4))
        if combo == "lattice_steps_adsorbates":
            st, info["steps"] = _steps_layer(rng, grid, n_steps=int(rng.integers(1, 4)))
            mol = _draw_molecule(rng)
            ads, info["adsorbates"] = _molecule_layer(rng, grid, mol, "scattered", coverage=rng.uniform(0.01, 0.06))
            img = st + lat + ads
            info["feature_scale_pm"] = max(corr / PM, 100.0)
        else:
            isl, info["islands"] = _islands_layer(rng, grid, coverage=rng.uniform(0.1, 0.5))
            img = isl + lat
            info["feature_scale_pm"] = max(corr / PM, info["islands"]["step_height_A"] * 100)
        return img, grid, info
    if combo == "islands_waves":
        pix = _logu(rng, 10, 50) / size
        grid = _Grid(size, pad, pix)
        isl, info["islands"] = _islands_layer(rng, grid, coverage=rng.uniform(0.1, 0.35))
        wav, info["waves"] = _waves_layer(rng, grid, n_scatterers=int(rng.integers(2, 15)), step=False)
        info["feature_scale_pm"] = info["islands"]["step_height_A"] * 100
        return isl + wav, grid, info
    mol = _draw_molecule(rng, str(rng.choice(["blob", "trilobe", "fourlobe", "rod"])))
    small = min(mol.length, mol.width)
    fov_hi = min(50.0, size * small / 5.0)
    pix = _logu(rng, min(10.0, fov_hi), fov_hi) / size
    grid = _Grid(size, pad, pix)
    st, info["steps"] = _steps_layer(rng, grid, n_steps=int(rng.integers(1, 4)))
    ml, info["molecules"] = _molecule_layer(rng, grid, mol, "assembled")
    info["feature_scale_pm"] = info["molecules"]["height_pm"]
    return st + ml, grid, info


_FAMILY_FUNCS: dict[str, Callable[[np.random.Generator, int, int], tuple[Array, _Grid, dict[str, Any]]]] = {
    "atomic": _atomic,
    "steps": _steps,
    "molecules": _molecules,
    "adatoms_and_waves": _adatoms_and_waves,
    "islands": _islands,
    "mixed": _mixed,
}


# ----------------------------------------------------------------------------------------------------------------
# the instrument
# ----------------------------------------------------------------------------------------------------------------


def _draw_instrument(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """The scan's instrument: timing, geometry errors and noise strengths (metres, seconds, pixels)."""
    g = 10 ** rng.uniform(-0.8, 0.6)  # overall noisiness of this session: quiet ... very noisy
    p: dict[str, Any] = {"noisiness": g}
    p["line_time_s"] = _logu(rng, 0.1, 2.0)  # trace + retrace
    # lateral geometry (pixels): thermal drift over the scan, slow-axis piezo creep, fast-axis lag at line start
    p["drift_px"] = (float(rng.normal(0, 1.5)), float(rng.normal(0, 1.5)))
    p["creep_px"] = float(rng.uniform(-6, 6)) if rng.random() < 0.3 else 0.0
    p["creep_tau"] = rng.uniform(0.03, 0.3)  # fraction of the scan time
    p["xlag_px"] = float(rng.uniform(0.5, 4)) if rng.random() < 0.3 else 0.0
    p["xlag_tau_px"] = rng.uniform(4, 30)
    # z: tilt, absolute offset, creep
    tilt = np.radians(_logu(rng, 0.02, 2.0))
    direction = rng.uniform(0, 2 * np.pi)
    p["slope"] = (float(np.tan(tilt) * np.cos(direction)), float(np.tan(tilt) * np.sin(direction)))
    p["z_offset"] = rng.uniform(-20, 20) * NM
    p["z_creep"] = (rng.choice([-1, 1]) * _logu(rng, 10, 500) * PM) if rng.random() < 0.3 else 0.0
    p["z_creep_tau"] = rng.uniform(0.03, 0.3)
    # feedback loop: second-order, natural frequency in cycles per sample, damping ratio
    p["fb_fn"] = _logu(rng, 0.05, 0.35)
    p["fb_zeta"] = rng.uniform(0.2, 1.0)
    # random noise (metres)
    p["white"] = g * _logu(rng, 0.3, 6) * PM
    p["corr"] = g * _logu(rng, 0.3, 6) * PM if rng.random() < 0.8 else 0.0
    p["corr_alpha"] = rng.uniform(0.3, 0.92)
    p["flicker"] = g * _logu(rng, 0.3, 5) * PM if rng.random() < 0.7 else 0.0
    p["flicker_beta"] = rng.uniform(0.8, 1.5)
    p["line_offset"] = g * _logu(rng, 0.2, 10) * PM if rng.random() < 0.8 else 0.0
    p["line_walk"] = g * _logu(rng, 0.1, 3) * PM if rng.random() < 0.5 else 0.0
    p["mains"] = g * _logu(rng, 0.3, 8) * PM if rng.random() < 0.45 else 0.0
    p["mains_hz"] = float(rng.choice([50.0, 60.0]))
    p["mains_h3"] = rng.uniform(0.0, 0.5)
    p["vibration"] = g * _logu(rng, 0.5, 5) * PM if rng.random() < 0.2 else 0.0
    p["vibration_hz"] = rng.uniform(8, 40)
    # events
    n_tip = int(rng.integers(1, 3)) if rng.random() < 0.2 else 0
    p["tip_changes"] = [
        (
            int(rng.integers(size // 10, size)),
            int(rng.integers(0, size)),
            float(rng.choice([-1, 1]) * _logu(rng, 20, 200) * PM),
            rng.uniform(1.0, 2.5),
        )
        for _ in range(n_tip)
    ]
    n_scar = int(rng.integers(1, 9)) if rng.random() < 0.35 else 0
    p["scars"] = [
        (
            int(rng.integers(0, size)),
            int(rng.integers(0, size)),
            int(rng.integers(2, 41)),
            float((1 if rng.random() < 0.7 else -1) * _logu(rng, 20, 400) * PM),
        )
        for _ in range(n_scar)
    ]
    p["quantum"] = _logu(rng, 0.02, 2.0) * PM
    return p


def _max_displacement(p: dict[str, Any], size: int) -> float:
    return abs(p["drift_px"][0]) + abs(p["drift_px"][1]) + abs(p["creep_px"]) + p["xlag_px"] + 1.0


def _feedback_filter(fn: float, zeta: float) -> tuple[Array, Array]:
    """Unity-gain second-order low-pass (the closed z loop) at ``fn`` cycles per sample, by the bilinear transform."""
    w = 2.0 * np.tan(np.pi * fn)  # pre-warped analogue frequency, sample rate 1
    b, a = signal.bilinear([w * w], [1.0, 2 * zeta * w, w * w], fs=1.0)
    return np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64)


def _apply_instrument(
    rng: np.random.Generator, p: dict[str, Any], surface: Array, grid: _Grid, feature_scale: float
) -> tuple[Array, Array]:
    """Scan ``surface`` (the padded true topography, metres) along the raster; return (noisy, clean) trace images."""
    n, pad, pix_m = grid.size, grid.pad, grid.pix * NM
    # cap the random noise at a fraction of the features' height: nobody records, nor keeps, a scan of pure noise
    sigma = np.sqrt(p["white"] ** 2 + p["corr"] ** 2 + p["flicker"] ** 2 + p["line_offset"] ** 2)
    cap = 0.6 * feature_scale
    scale = min(1.0, cap / sigma) if sigma > 0 else 1.0
    p["noise_scale_cap"] = scale
    for key in ("white", "corr", "flicker", "line_offset", "line_walk", "mains", "vibration"):
        p[key] *= scale

    total = 2 * n * n
    k = np.arange(total)
    row = k // (2 * n)
    within = k % (2 * n)
    trace = within < n
    col = np.where(trace, within, 2 * n - 1 - within).astype(np.float64)
    dt = p["line_time_s"] / (2 * n)
    t = k * dt
    frac = k / total
    dx = p["drift_px"][0] * frac
    dy = p["drift_px"][1] * frac + p["creep_px"] * (1 - np.exp(-frac / p["creep_tau"]))
    lag = np.where(trace, -np.exp(-col / p["xlag_tau_px"]), np.exp(-(n - 1 - col) / p["xlag_tau_px"])) * p["xlag_px"]
    xs = col + lag + dx
    ys = row + dy
    z = ndimage.map_coordinates(surface, [ys + pad, xs + pad], order=3, mode="nearest")
    clean = z[trace].reshape(n, n)

    z = z + p["slope"][0] * xs * pix_m + p["slope"][1] * ys * pix_m + p["z_offset"]
    z = z + p["z_creep"] * np.exp(-frac / p["z_creep_tau"])
    b, a = _feedback_filter(p["fb_fn"], p["fb_zeta"])
    z, _ = signal.lfilter(b, a, z, zi=signal.lfilter_zi(b, a) * z[0])

    mult = np.ones(total)
    for r, c, jump, m in p["tip_changes"]:
        k0 = r * 2 * n + c
        z[k0:] += jump
        mult[k0:] *= m
    z += p["white"] * mult * rng.standard_normal(total)
    if p["corr"] > 0:
        al = p["corr_alpha"]
        cn = signal.lfilter([1 - al], [1, -al], rng.standard_normal(total))
        z += p["corr"] * mult * cn * np.sqrt(1 - al * al) / (1 - al)
    if p["flicker"] > 0:
        f = np.fft.rfftfreq(total)
        spec = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * np.where(f > 0, f, np.inf) ** (-p["flicker_beta"] / 2)
        fl = np.fft.irfft(spec, total)
        z += p["flicker"] * fl / (fl.std() or 1.0)
    offsets = p["line_offset"] * rng.standard_t(4, n) / np.sqrt(2.0)
    offsets += np.cumsum(p["line_walk"] * rng.standard_normal(n))
    z += offsets[row]
    if p["mains"] > 0:
        ph = rng.uniform(0, 2 * np.pi, 2)
        z += p["mains"] * (np.sin(2 * np.pi * p["mains_hz"] * t + ph[0]) + p["mains_h3"] * np.sin(6 * np.pi * p["mains_hz"] * t + ph[1]))
    if p["vibration"] > 0:
        ph = rng.uniform(0, 2 * np.pi, 2)
        env = 1 + 0.5 * np.sin(2 * np.pi * frac * rng.uniform(0.5, 4) + ph[1])
        z += p["vibration"] * env * np.sin(2 * np.pi * p["vibration_hz"] * t + ph[0])

    noisy = z[trace].reshape(n, n)
    for r, c, length, jump in p["scars"]:  # a short run of one line jumped (a picked-up adsorbate, a glitch)
        c1 = min(c + length, n)
        ramp = np.exp(-np.arange(c1 - c) / max(length * rng.uniform(0.3, 3.0), 1.0))
        noisy[r, c:c1] += jump * (ramp if rng.random() < 0.5 else 1.0)
    noisy = np.round(noisy / p["quantum"]) * p["quantum"]
    return noisy, clean


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def draw(family: str, seed: int, size: int = 256, noiseless: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """One scan of ``family``: ``(noisy, clean, info)``, heights in metres, ``size x size``, deterministic by seed.
    ``noiseless``: ``noisy`` without the noise, events and quantisation (``_without_noise``); ``clean`` is the same.

    ``clean`` is the true topography on the scan's (drifting) sample grid; ``noisy`` what the instrument records.
    ``info`` holds the drawn field of view, surface parameters and instrument parameters.
    """
    if family not in _FAMILY_FUNCS:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    if size < 16:
        raise ValueError(f"size must be at least 16, got {size}")
    seq = np.random.SeedSequence([int(seed), zlib.crc32(family.encode())])
    rng_surface, rng_instr, rng_noise = (np.random.default_rng(s) for s in seq.spawn(3))
    params = _draw_instrument(rng_instr, size)
    pad = int(np.ceil(_max_displacement(params, size))) + 4
    surface, grid, info = _FAMILY_FUNCS[family](rng_surface, size, pad)
    scanned = _without_noise(params) if noiseless else params
    noisy, clean = _apply_instrument(rng_noise, scanned, surface, grid, info.pop("feature_scale_pm") * PM)
    out = {"family": family, "seed": int(seed), "size": size, "fov_nm": grid.fov, "pixel_nm": grid.pix, "surface": info}
    instrument = {k: (v / PM if k in _PM_KEYS else v) for k, v in scanned.items()}
    instrument["z_offset_nm"] = instrument.pop("z_offset") / NM
    instrument["tip_changes"] = [{"row": r, "col": c, "jump_pm": j / PM, "noise_factor": m} for r, c, j, m in scanned["tip_changes"]]
    instrument["scars"] = [{"row": r, "col": c, "length": n, "jump_pm": j / PM} for r, c, n, j in scanned["scars"]]
    out["instrument"] = instrument
    return noisy, clean, _jsonable(out)


_PM_KEYS = {"white", "corr", "flicker", "line_offset", "line_walk", "mains", "vibration", "z_creep", "quantum"}
_NOISE_KEYS = ("white", "corr", "flicker", "line_offset", "line_walk", "mains", "vibration", "z_creep")
"""The instrument's noise and z artefacts, which ``draw(..., noiseless=True)`` leaves out."""


def _without_noise(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with no noise, tip changes, scars or quantisation (a quantum far below any height): the geometry
    and the feedback loop stay."""
    quiet = dict(params, tip_changes=[], scars=[], quantum=1e-9 * PM)
    quiet.update({key: 0.0 for key in _NOISE_KEYS})
    return quiet

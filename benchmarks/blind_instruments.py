"""Blind STM simulator, instrument first: constant-current topographs as real scanners record them.

Written blind on 2026-12-06 by a helper session that read nothing of this project except the calling convention
in ``benchmarks/blind_more.py`` (its first 40 lines). It is meant to differ from textbook simulators, which add
noise to a picture; here the picture is *measured*.

What a draw is
--------------
One of nine surface families (equal weights) is rendered as the true topography on a raster twice as fine as the
pixel grid, with a wide margin around the field of view (2 nm to 500 nm):

    terraces         monatomic steps: straight, curved, bunched, or closed (mounds); some nearly along the scan lines
    lattice          atomic lattice (hex, square, rect, oblique, honeycomb, dimer rows), 2 to 40 px,
                     sometimes with a commensurate superstructure or a moire, a few vacancies
    defects          adatoms, vacancies, clusters and charged dopants (broad halo) on a terrace
    molecular        self-assembled monolayer: elliptical molecules, 1 or 2 per cell, rotational domains,
                     domain boundaries, missing molecules, etch pits (one substrate layer deep)
    islands          2-D islands (compact, fractal, nucleated discs), second layers, a substrate step
    standing_waves   surface-state Friedel oscillations around point scatterers and at steps
    polycrystalline  grains as domes (max of paraboloids, grooved boundaries), sometimes terraced tops, roughness
    stepped_lattice  a lattice that continues over steps (fcc registry shift, or Si(001) rows turning 90 deg)
    herringbone      Au(111) 22 x sqrt3 ridges with zig-zag elbows, optional atoms, steps and elbow clusters

``clean`` is that raster at the pixel centres. ``noisy`` is what the instrument records, in scan-time order:
forward trace then retrace, line after line (only the forward trace is returned). The tip, which may be blunt
(grey dilation by a paraboloid) or double (two apexes sharing the current: a soft maximum), follows its real path
(thermal drift, x/y piezo creep, fast- and slow-axis piezo hysteresis, a stalled slow axis that repeats lines).
The gap sees sample tilt, 1/f noise, current noise, vibration bursts, tip changes (sometimes changing the imaging)
and scars; a discrete feedback loop (gain, loop delay, and optionally a linear current preamplifier that saturates)
turns it into z. The z channel then picks up mains hum with harmonics, lock-in modulation leakage, line offsets
(random walk and independent), a hook after each turnaround, z creep at the frame start, scanner bow, spikes,
ADC noise, and DAC/ADC quantisation with clipping at the end of the z range.

Noise amplitudes are absolute (pm) but scaled by the regime (quiet, normal, rough) and mildly by the relief of the
surface (an operator scans flat, atomically smooth samples more slowly and carefully), so the PSNR of the raw scan
against ``clean`` spans roughly 0 to 45 dB. Geometric artefacts (drift, creep, hysteresis, stall) move features off
the grid: no denoiser can put them back, so ``LAST`` also carries the surface sampled along the tip's real path.

``LAST`` describes the last draw: family, variant, artefacts (names, in the order applied), geometric (the subset
that moves the tip off the grid), regime, pixel_m, fov_nm, seed, size, and clean_on_path (the true surface sampled
where the tip really was, forward trace, no tip shape and no noise: a registered truth).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

NM = 1e-9
PM = 1e-12
TWO_KAPPA = 2.0e10
"""Twice the tunnelling decay constant (1/m): 1 per angstrom, so the current falls by e^2 per angstrom."""

LAST: dict = {}
FAMILIES = ("terraces", "lattice", "defects", "molecular", "islands", "standing_waves", "polycrystalline", "stepped_lattice", "herringbone")
GEOMETRIC = ("drift", "xy_creep", "fast_hysteresis", "slow_hysteresis", "stall")
"""Artefacts that move the tip off the nominal grid: no denoiser can undo them pixel by pixel."""
STEP_HEIGHTS = (0.204, 0.236, 0.227, 0.255, 0.314, 0.335)
"""Monatomic step heights in nm: Cu(111), Au(111), Pt(111), Ag-ish, Si(111) bilayer, graphite."""


# ----------------------------------------------------------------------------------------------------- helpers
def _logu(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _sigmoid(s):
    return 0.5 * (1.0 + np.tanh(s))


class Canvas:
    """A fine raster (``os`` samples per pixel) covering the field of view plus a margin of ``m`` pixels."""

    def __init__(self, n: int, pixel: float, os: int = 2):
        self.n, self.pixel, self.os = n, pixel, os
        self.m = int(0.25 * n) + 4
        self.pf = pixel / os
        self.k0 = os * self.m
        nf = os * (n + 2 * self.m)
        self.coord = (np.arange(nf) - self.k0) * self.pf
        self.X, self.Y = np.meshgrid(self.coord, self.coord)
        self.shape = self.X.shape

    @property
    def fov(self) -> float:
        return self.n * self.pixel

    @property
    def extent(self) -> float:
        return self.coord[-1] - self.coord[0]

    def view(self, H):
        """The raster at the pixel centres of the field of view."""
        stop = self.k0 + self.os * self.n
        return H[self.k0 : stop : self.os, self.k0 : stop : self.os]

    def points(self, rng, k):
        """k points uniform over the whole raster (margins included), physical coordinates."""
        lo, hi = self.coord[0], self.coord[-1]
        return rng.uniform(lo, hi, k), rng.uniform(lo, hi, k)

    def count(self, rng, per_nm2, cap, least=0):
        """A Poisson number of features over the raster; ``least`` on average inside the field of view."""
        area = (self.extent / NM) ** 2
        return int(min(max(rng.poisson(per_nm2 * area), round(least * (self.extent / self.fov) ** 2)), cap))


def _pixel_for(rng, n, fov_lo_nm, fov_hi_nm, pixel_max=None, pixel_min=None):
    """A pixel size giving a field of view log-uniform in [lo, hi] nm (within 2..500 nm) and the pixel bounds."""
    lo, hi = max(fov_lo_nm, 2.0) * NM / n, min(fov_hi_nm, 500.0) * NM / n
    if pixel_max is not None:
        hi = min(hi, pixel_max)
    if pixel_min is not None:
        lo = max(lo, pixel_min)
    hi = max(hi, 2.0 * NM / n)
    lo = min(lo, hi)
    return _logu(rng, lo, hi)


def _field(rng, shape, corr, beta=None, cut=0.0):
    """Zero-mean unit-std random field; ``corr`` in raster samples; Gaussian spectrum, or a power law ``beta``
    (rolled off below ``cut`` samples: nothing real is rough on a scale finer than atoms)."""
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k = np.hypot(kx, ky)
    amp = np.exp(-2.0 * (np.pi * k * corr) ** 2) if beta is None else (1.0 + (2 * np.pi * k * corr) ** 2) ** (-beta / 4)
    amp = amp * np.exp(-2.0 * (np.pi * k * cut) ** 2)
    F = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * amp, s=shape)
    F -= F.mean()
    return F / (F.std() + 1e-300)


def _staircase(phi, w):
    """Smooth staircase: integer levels, steps at half-integers of ``phi`` with width ``w`` (same units)."""
    r = np.round(phi)
    g = phi - r
    return r + 0.5 * np.tanh((g - 0.5) / w) + 0.5 * np.tanh((g + 0.5) / w)


def _grad_norm(cv, F):
    gy, gx = np.gradient(F, cv.pf)
    return np.hypot(gx, gy)


def _stairs(cv, phi, edge_m):
    """Staircase of ``phi`` whose steps are ``edge_m`` wide in space wherever they are."""
    w = np.maximum(edge_m * _grad_norm(cv, phi), 1e-3)
    return _staircase(phi, w)


def _blobs(cv, H, xs, ys, amps, sigmas):
    """Add Gaussian bumps (heights ``amps``, widths ``sigmas``, metres) at physical positions to raster H."""
    for x, y, a, s in zip(xs, ys, amps, sigmas):
        cx, cy = x / cv.pf + cv.k0, y / cv.pf + cv.k0
        r = int(np.ceil(4 * s / cv.pf)) + 1
        i0, i1 = max(int(cy) - r, 0), min(int(cy) + r + 1, H.shape[0])
        j0, j1 = max(int(cx) - r, 0), min(int(cx) + r + 1, H.shape[1])
        if i0 >= i1 or j0 >= j1:
            continue
        yy = (np.arange(i0, i1) - cy) * cv.pf
        xx = (np.arange(j0, j1) - cx) * cv.pf
        H[i0:i1, j0:j1] += a * np.exp(-(yy[:, None] ** 2 + xx[None, :] ** 2) / (2 * s * s))


def _rot(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


# ----------------------------------------------------------------------------------------------------- lattices
def _lattice_geom(rng, a, kind, angle=None):
    """Real-space basis (columns, metres), reciprocal vectors, weights and sign of a lattice kind."""
    b = rng.uniform(1.2, 1.9)
    gam = np.deg2rad(rng.uniform(62, 84))
    basis = {
        "hex": [(1, 0), (0.5, np.sqrt(3) / 2)],
        "honeycomb": [(1, 0), (0.5, np.sqrt(3) / 2)],
        "square": [(1, 0), (0, 1)],
        "rect": [(1, 0), (0, b)],
        "rows": [(1, 0), (0, 2)],
        "oblique": [(1, 0), (b * np.cos(gam), b * np.sin(gam))],
    }[kind]
    angle = rng.uniform(0, np.pi) if angle is None else angle
    A = _rot(angle) @ (a * np.array(basis, dtype=float).T)
    B = 2 * np.pi * np.linalg.inv(A).T
    G = [B[:, 0], B[:, 1], B[:, 0] + B[:, 1]]
    if kind in ("hex", "honeycomb"):
        w = [1.0, 1.0, 1.0]
    elif kind == "rows":
        w = [0.15, 1.0, 0.08]
    else:
        w = [1.0, rng.uniform(0.5, 1.0), 0.25]
    return {"A": A, "G": G, "w": w, "sign": -1.0 if kind == "honeycomb" else 1.0}


def _min_period(geom):
    """Shortest fringe period of the weighted Fourier components (metres)."""
    return min(2 * np.pi / np.linalg.norm(g) for g, w in zip(geom["G"], geom["w"]) if w >= 0.2)


def _lattice(cv, rng, geom, shift=None, sharp=None, X=None, Y=None):
    """Periodic pattern in [0, 1] (1 on the atoms) of a lattice geometry, optionally translated by ``shift``."""
    X = cv.X if X is None else X
    Y = cv.Y if Y is None else Y
    t = geom["A"] @ rng.random(2) if shift is None else shift
    p = np.zeros_like(X)
    for g, w in zip(geom["G"], geom["w"]):
        p += w * np.cos(g[0] * (X - t[0]) + g[1] * (Y - t[1]))
    p *= geom["sign"] / sum(geom["w"])
    if sharp is None:
        sharp = rng.uniform(0, 2.5) * min(1.0, _min_period(geom) / (4 * cv.pixel))
    p = np.exp(sharp * p)
    lo, hi = np.exp(-sharp), np.exp(sharp)
    return (p - lo) / (hi - lo + 1e-300)


# ----------------------------------------------------------------------------------------------------- families
def _terraces(rng, n):
    cv = Canvas(n, _pixel_for(rng, n, 15, 500))
    mode = str(rng.choice(["straight", "curved", "bunched", "mounds"]))
    step = rng.choice(STEP_HEIGHTS) * NM
    W = max(cv.fov / _logu(rng, 1.5, 14), 6 * cv.pixel)
    theta = np.deg2rad(rng.uniform(-8, 8) if rng.random() < 0.35 else rng.uniform(0, 180))
    phi = (-cv.X * np.sin(theta) + cv.Y * np.cos(theta)) / W + rng.random()
    if mode == "curved":
        phi += rng.uniform(0.3, 1.5) * _field(rng, cv.shape, W / cv.pf * rng.uniform(1, 4))
    elif mode == "bunched":
        k = rng.integers(2, 5)
        phi += rng.uniform(0.6, 0.95) * k / (2 * np.pi) * np.sin(2 * np.pi * phi / k)
        if rng.random() < 0.3:
            step *= 2
    elif mode == "mounds":
        phi = rng.uniform(1.5, 5) * _field(rng, cv.shape, cv.fov / cv.pf * rng.uniform(0.12, 0.35))
    phi += _logu(rng, 0.1, 2) * NM / W * _field(rng, cv.shape, _logu(rng, 0.5, 4) * NM / cv.pf)  # kinked edges
    H = step * _stairs(cv, phi, max(0.12 * NM, 0.6 * cv.pf))
    H += _logu(rng, 0.5, 4) * PM * _field(rng, cv.shape, rng.uniform(1, 6))
    if rng.random() < 0.4:
        k = cv.count(rng, _logu(rng, 1e-5, 2e-3), 300)
        xs, ys = cv.points(rng, k)
        _blobs(cv, H, xs, ys, rng.uniform(0.05, 0.2, k) * NM, np.full(k, max(0.4 * NM, cv.pixel)))
    return cv, H, mode


def _lattice_family(rng, n):
    kind = str(rng.choice(["hex", "square", "rect", "oblique", "honeycomb", "rows"]))
    a = (_logu(rng, 0.24, 0.5) if kind != "rows" else 0.384) * NM
    geom = _lattice_geom(rng, a, kind)
    pmin = _min_period(geom)
    cv = Canvas(n, _pixel_for(rng, n, 2, 500, pixel_max=pmin / 2.05, pixel_min=a / 40))
    corr = _logu(rng, 3, 80) * PM
    atoms = _lattice(cv, rng, geom)
    H = corr * atoms
    variant = kind
    if rng.random() < 0.3:
        m = int(rng.choice([2, 3, 4, 7]))
        sup = _lattice_geom(rng, a * m, "hex" if kind in ("hex", "honeycomb") else kind, angle=np.arctan2(geom["A"][1, 0], geom["A"][0, 0]))
        H += corr * rng.uniform(0.2, 0.8) * _lattice(cv, rng, sup)
        variant += f"+({m}x{m})"
    elif rng.random() < 0.4:
        period = min(a * rng.uniform(5, 30), cv.fov / rng.uniform(1.5, 5))
        moire = _lattice(cv, rng, _lattice_geom(rng, period, str(rng.choice(["hex", "honeycomb"]))), sharp=1.0)
        H = corr * atoms * (1 + rng.uniform(0.2, 0.8) * (moire - 0.5)) + _logu(rng, 8, 80) * PM * moire
        variant += "+moire"
    if rng.random() < 0.5:
        k = cv.count(rng, _logu(rng, 1e-3, 2e-2), 200)
        xs, ys = cv.points(rng, k)
        _blobs(cv, H, xs, ys, -corr * rng.uniform(1, 2.5, k), np.full(k, 0.45 * a))
    return cv, H, variant


def _defects(rng, n):
    cv = Canvas(n, _pixel_for(rng, n, 4, 60))
    H = np.zeros(cv.shape)
    a = rng.uniform(0.25, 0.4) * NM
    if rng.random() < 0.4 and a * 0.85 / cv.pixel >= 2.2:
        H += _logu(rng, 2, 10) * PM * _lattice(cv, rng, _lattice_geom(rng, a, "hex"))
    kinds = [k for k in ("adatoms", "vacancies", "clusters", "dopants") if rng.random() < 0.5] or ["adatoms"]
    wmin = 0.8 * cv.pixel
    for kind in kinds:
        if kind in ("adatoms", "vacancies"):
            k = cv.count(rng, _logu(rng, 2e-3, 4e-2), 800, least=4)
            xs, ys = cv.points(rng, k)
            sign = 1 if kind == "adatoms" else -1
            amp = (_logu(rng, 0.05, 0.25) if sign > 0 else rng.uniform(0.03, 0.12)) * NM
            amps = sign * amp * rng.choice([1.0, rng.uniform(0.4, 0.8)], k, p=[0.7, 0.3])
            sig = max(_logu(rng, 0.4, 1.5) * NM / 2.355, wmin)
            _blobs(cv, H, xs, ys, amps, sig * rng.uniform(0.9, 1.1, k))
        elif kind == "clusters":
            k = cv.count(rng, _logu(rng, 5e-4, 5e-3), 150, least=2)
            px, py = cv.points(rng, k)
            spread = rng.uniform(0.4, 2.0) * NM
            for x0, y0 in zip(px, py):
                m = 2 + rng.poisson(6)
                _blobs(
                    cv,
                    H,
                    x0 + spread * rng.standard_normal(m),
                    y0 + spread * rng.standard_normal(m),
                    rng.uniform(0.05, 0.15, m) * NM,
                    np.full(m, max(0.3 * NM, wmin)),
                )
        else:
            k = cv.count(rng, _logu(rng, 5e-4, 5e-3), 100, least=3)
            xs, ys = cv.points(rng, k)
            signs = rng.choice([-1.0, 1.0], k)
            _blobs(cv, H, xs, ys, signs * _logu(rng, 10, 60) * PM, np.full(k, _logu(rng, 1, 3) * NM))
            _blobs(cv, H, xs, ys, -signs * rng.uniform(5, 30) * PM, np.full(k, max(0.3 * NM, wmin)))
    return cv, H, "+".join(kinds)


def _molecular(rng, n):
    a1 = _logu(rng, 0.5, 1.8) * NM
    cv = Canvas(n, _pixel_for(rng, n, 4, 80, pixel_max=a1 / 3, pixel_min=a1 / 40))
    ratio, gam = rng.uniform(1.0, 1.8), np.deg2rad(rng.uniform(60, 100))
    A0 = a1 * np.array([[1.0, ratio * np.cos(gam)], [0.0, ratio * np.sin(gam)]])
    sl = rng.uniform(0.22, 0.35) * a1
    ss = rng.uniform(0.35, 0.8) * sl
    two = rng.random() < 0.5
    orient, orient2 = rng.uniform(0, np.pi), rng.uniform(np.pi / 3, 2 * np.pi / 3)
    amp = _logu(rng, 0.04, 0.2) * NM
    p_missing = _logu(rng, 1e-3, 0.05)
    table = rng.random((97, 97))
    k = 1 + min(rng.poisson(cv.fov / (18 * NM)), 10)
    seeds = np.column_stack(cv.points(rng, k))
    pts = np.column_stack([cv.X.ravel(), cv.Y.ravel()])
    if k > 1:
        d, lab = cKDTree(seeds).query(pts, k=2)
        gap, lab = (d[:, 1] - d[:, 0]).reshape(cv.shape), lab[:, 0].reshape(cv.shape)
    else:
        gap, lab = np.full(cv.shape, np.inf), np.zeros(cv.shape, int)
    base = rng.uniform(0, 2 * np.pi)
    H = np.zeros(cv.shape)
    for dom in range(k):
        mask = lab == dom
        rot = base + rng.integers(0, 6) * np.pi / 3 + rng.uniform(-0.05, 0.05)
        A = _rot(rot) @ A0
        if rng.random() < 0.5:  # mirror domain
            A = A @ np.array([[1, 0], [0, -1]])
        r = np.vstack([cv.X[mask], cv.Y[mask]]) - (A @ rng.random(2))[:, None]
        frac = np.linalg.solve(A, r)
        h = np.zeros(mask.sum())
        for offset, ang in ((0.0, rot + orient), (0.5, rot + orient + orient2)):
            if offset and not two:
                continue
            f = frac - offset
            site = np.round(f)
            d = _rot(-ang) @ (A @ (f - site))
            g = np.exp(-(d[0] ** 2) / (2 * sl * sl) - d[1] ** 2 / (2 * ss * ss))
            miss = table[site[0].astype(int) % 97, site[1].astype(int) % 97] < p_missing
            h += np.where(miss, 0.0, g)
        H[mask] = amp * h
    H -= rng.uniform(0.2, 0.6) * amp * np.exp(-((gap / (0.5 * NM)) ** 2))
    variant = "SAM" + ("-2mol" if two else "")
    if rng.random() < 0.6:
        F = _field(rng, cv.shape, _logu(rng, 0.8, 3) * NM / cv.pf)
        thr = np.quantile(F, 1 - rng.uniform(0.03, 0.15))
        S = (F - thr) / np.maximum(_grad_norm(cv, F), 1e-300)
        H -= 0.236 * NM * _sigmoid(S / max(0.12 * NM, 0.6 * cv.pf))
        variant += "+pits"
    return cv, H, variant


def _islands(rng, n):
    cv = Canvas(n, _pixel_for(rng, n, 15, 300))
    kind = str(rng.choice(["compact", "fractal", "discs"]))
    h = rng.uniform(0.15, 0.45) * NM
    cover = rng.uniform(0.08, 0.6)
    edge = max(0.15 * NM, 0.7 * cv.pf)
    if kind == "discs":
        R = _logu(rng, 2, max(3, 0.08 * cv.fov / NM)) * NM
        k = max(1, int(cover * cv.extent**2 / (np.pi * R * R)))
        k = min(k, 2000)
        c = np.column_stack(cv.points(rng, k))
        radii = R * rng.lognormal(0, 0.3, k)
        d, idx = cKDTree(c).query(np.column_stack([cv.X.ravel(), cv.Y.ravel()]), k=min(6, k))
        d, idx = d.reshape(d.shape[0], -1), idx.reshape(idx.shape[0], -1)
        S = (radii[idx] - d).max(axis=1).reshape(cv.shape)
        S2 = (radii[idx] * rng.uniform(0.35, 0.65) - d).max(axis=1).reshape(cv.shape)
    else:
        corr = cv.fov / cv.pf * rng.uniform(0.03, 0.1)
        F = _field(rng, cv.shape, corr)
        if kind == "fractal":  # ragged, branched edges
            F += rng.uniform(0.2, 0.5) * _field(rng, cv.shape, corr / 4, beta=3.0, cut=max(0.3 * NM, cv.pixel) / cv.pf)
        thr = np.quantile(F, 1 - cover)
        g = np.maximum(_grad_norm(cv, F), 1e-300)
        S = (F - thr) / g
        S2 = (F - np.quantile(F, 1 - cover * rng.uniform(0.1, 0.4))) / g
    mask = _sigmoid(S / edge)
    H = h * mask
    if rng.random() < 0.4:
        H += h * mask * _sigmoid(S2 / edge)
        kind += "+2nd"
    if rng.random() < 0.35:
        th = rng.uniform(0, np.pi)
        phi = (cv.X * np.cos(th) + cv.Y * np.sin(th)) / (cv.fov * rng.uniform(0.3, 1.0)) + rng.random()
        H += rng.choice(STEP_HEIGHTS) * NM * _stairs(cv, phi, edge)
        kind += "+step"
    return cv, H, kind


def _standing_waves(rng, n):
    half = _logu(rng, 1.2, 4.0) * NM  # half the Fermi wavelength: the LDOS period
    cv = Canvas(n, _pixel_for(rng, n, 8, 70, pixel_max=half / 3))
    k2 = 2 * np.pi / half
    amp = _logu(rng, 2, 15) * PM
    lphi = _logu(rng, 5, 40) * NM
    edge = max(0.12 * NM, 0.6 * cv.pf)
    H = np.zeros(cv.shape)
    n_steps = int(rng.choice([0, 1, 2], p=[0.3, 0.45, 0.25]))
    th = rng.uniform(0, np.pi)
    u = cv.X * np.cos(th) + cv.Y * np.sin(th)
    for x0 in rng.uniform(-0.4, 0.4, n_steps) * cv.fov + cv.fov / 2:
        d = u - x0
        H += rng.choice(STEP_HEIGHTS) * NM * _sigmoid(d / edge)
        ad = np.abs(d)
        H += 1.5 * amp * np.cos(k2 * ad + rng.uniform(0, 2 * np.pi)) / np.sqrt(1 + k2 * ad) * np.exp(-ad / lphi)
    k = cv.count(rng, _logu(rng, 2e-3, 2e-2), 40, least=3)
    xs, ys = cv.points(rng, k)
    win = int(min(3 * lphi + 5 * NM, cv.extent) / cv.pf)
    for x0, y0 in zip(xs, ys):
        cx, cy = int(x0 / cv.pf + cv.k0), int(y0 / cv.pf + cv.k0)
        sl = (slice(max(cy - win, 0), cy + win), slice(max(cx - win, 0), cx + win))
        r = np.sqrt((cv.X[sl] - x0) ** 2 + (cv.Y[sl] - y0) ** 2 + (0.2 * NM) ** 2)
        H[sl] += amp * rng.uniform(0.5, 1.5) * np.cos(k2 * r + rng.uniform(0, 2 * np.pi)) / (1 + 0.5 * k2 * r) * np.exp(-r / lphi)
    signs = rng.choice([1.0, -0.5], k, p=[0.7, 0.3])
    _blobs(cv, H, xs, ys, signs * rng.uniform(0.05, 0.15, k) * NM, np.full(k, max(0.35 * NM, 0.8 * cv.pixel)))
    return cv, H, f"{n_steps}steps+{k}scatterers"


def _polycrystalline(rng, n):
    cv = Canvas(n, _pixel_for(rng, n, 30, 500))
    D = max(cv.fov / _logu(rng, 3, 18), 6 * cv.pixel)
    k = int(min(max(rng.poisson((cv.extent / D) ** 2), 4), 1500))
    c = np.column_stack(cv.points(rng, k))
    sig_h, dome = _logu(rng, 0.3, 3) * NM, _logu(rng, 0.3, 3) * NM
    tops = sig_h * rng.standard_normal(k)
    R = D * D / (8 * dome) * rng.lognormal(0, 0.3, k)
    d, idx = cKDTree(c).query(np.column_stack([cv.X.ravel(), cv.Y.ravel()]), k=min(8, k))
    H = (tops[idx] - d * d / (2 * R[idx])).max(axis=1).reshape(cv.shape)
    variant = "domes"
    if rng.random() < 0.4:
        step = 0.236 * NM
        H = step * _stairs(cv, H / step + rng.random(), max(0.15 * NM, 0.6 * cv.pf))
        variant = "terraced-grains"
    H += (
        _logu(rng, 0.02, 0.2)
        * NM
        * _field(rng, cv.shape, rng.uniform(1, 4), beta=rng.uniform(2, 3), cut=max(0.3 * NM, 0.7 * cv.pixel) / cv.pf)
    )
    return cv, H, variant


def _stepped_lattice(rng, n):
    variant = str(rng.choice(["fcc111", "si001"]))
    if variant == "fcc111":
        a, kind, step, nclass = rng.uniform(0.25, 0.29) * NM, "hex", rng.choice([0.204, 0.236, 0.227]) * NM, 3
    else:
        a, kind, step, nclass = 0.384 * NM, "rows", 0.136 * NM, 2
    angle = rng.uniform(0, np.pi)
    geoms = [_lattice_geom(rng, a, kind, angle + (np.pi / 2 if variant == "si001" and c % 2 else 0)) for c in range(nclass)]
    pmin = min(_min_period(g) for g in geoms)
    cv = Canvas(n, _pixel_for(rng, n, 4, 500, pixel_max=pmin / 2.3, pixel_min=pmin / 20))
    W = max(cv.fov / rng.uniform(1.5, 5), 20 * cv.pixel)
    th = rng.uniform(0, np.pi)
    phi = (cv.X * np.cos(th) + cv.Y * np.sin(th)) / W + rng.random()
    if rng.random() < 0.5:
        phi += rng.uniform(0.2, 0.8) * _field(rng, cv.shape, W / cv.pf * rng.uniform(1, 3))
    level = _stairs(cv, phi, max(0.12 * NM, 0.6 * cv.pf))
    t0 = geoms[0]["A"] @ rng.random(2)
    reg = (geoms[0]["A"][:, 0] + geoms[0]["A"][:, 1]) / 3
    sharp = rng.uniform(0, 2) * min(1.0, pmin / (4 * cv.pixel))
    pats = [_lattice(cv, rng, g, shift=t0 + (c * reg if variant == "fcc111" else 0), sharp=sharp) for c, g in enumerate(geoms)]
    low = np.floor(level)
    frac = level - low
    lat = np.zeros(cv.shape)
    for c in range(nclass):
        lat += pats[c] * ((np.mod(low, nclass) == c) * (1 - frac) + (np.mod(low + 1, nclass) == c) * frac)
    H = step * level + _logu(rng, 5, 50) * PM * lat
    return cv, H, variant


def _herringbone(rng, n):
    P = 6.34 * NM
    cv = Canvas(n, _pixel_for(rng, n, 12, 150))
    th = rng.uniform(0, 2 * np.pi)
    nA = np.array([np.cos(th), np.sin(th)])
    nB = _rot(2 * np.pi / 3) @ nA
    straight = rng.random() < 0.25
    if straight:
        v = cv.X * nA[0] + cv.Y * nA[1]
    else:
        dl = nA - nB
        c, m = dl / np.linalg.norm(dl), (nA + nB) / 2
        Wd = rng.uniform(10, 30) * NM
        s = cv.X * c[0] + cv.Y * c[1] + rng.uniform(0, 2 * Wd)
        tri = Wd - np.abs(np.mod(s, 2 * Wd) - Wd)
        v = cv.X * m[0] + cv.Y * m[1] + np.linalg.norm(dl) / 2 * tri
    phase = np.mod(v + rng.uniform(0, P), P)
    sig = rng.uniform(0.5, 0.8) * NM
    H = np.zeros(cv.shape)
    for c0 in (0.3 * P, 0.3 * P + rng.uniform(0.35, 0.45) * P):
        dd = np.abs(phase - c0)
        dd = np.minimum(dd, P - dd)
        H += _logu(rng, 8, 25) * PM * np.exp(-(dd**2) / (2 * sig * sig))
    variant = "striped" if straight else "herringbone"
    a = 0.288 * NM
    if a * np.sqrt(3) / 2 / cv.pixel >= 2.2:
        H += _logu(rng, 3, 15) * PM * _lattice(cv, rng, _lattice_geom(rng, a, "hex"))
        variant += "+atoms"
    if rng.random() < 0.5:
        t2 = rng.uniform(0, np.pi)
        phi = (cv.X * np.cos(t2) + cv.Y * np.sin(t2)) / (cv.fov * rng.uniform(0.25, 0.8)) + rng.random()
        phi += rng.uniform(0, 0.6) * _field(rng, cv.shape, cv.fov / cv.pf * 0.2)
        H += 0.236 * NM * _stairs(cv, phi, max(0.12 * NM, 0.6 * cv.pf))
        variant += "+steps"
    if rng.random() < 0.3:
        k = cv.count(rng, _logu(rng, 2e-4, 2e-3), 100)
        xs, ys = cv.points(rng, k)
        _blobs(cv, H, xs, ys, rng.uniform(0.1, 0.25, k) * NM, np.full(k, max(0.8 * NM, cv.pixel)))
        variant += "+clusters"
    return cv, H, variant


RENDER = {
    "terraces": _terraces,
    "lattice": _lattice_family,
    "defects": _defects,
    "molecular": _molecular,
    "islands": _islands,
    "standing_waves": _standing_waves,
    "polycrystalline": _polycrystalline,
    "stepped_lattice": _stepped_lattice,
    "herringbone": _herringbone,
}


# ----------------------------------------------------------------------------------------------------- the tip
def _blunt_tip(cv, H, rng):
    """A blunt tip: a paraboloid of radius R carrying one apex atom that sticks out by ``lead``.

    Relief smaller than ``lead`` (atoms, molecules) is imaged by the apex atom; higher relief (steps, islands,
    grains) meets the flank first, so the image is the grey dilation by the paraboloid (separable) there.
    Sometimes the apex is a little diffuse as well (a slight electronic blur).
    """
    R = _logu(rng, 0.5, 30) * NM
    lead = _logu(rng, 0.05, 0.4) * NM
    relief = max(np.ptp(H), 1e-12)
    R = min(R, (30 * cv.pf) ** 2 / (2 * relief))  # the flanks are steep: keep the whole contact in the window
    half = int(np.clip(np.sqrt(2 * R * relief) / cv.pf, 1, 30))
    u = np.arange(-half, half + 1) * cv.pf
    se = -u * u / (2 * R)
    out = ndimage.grey_dilation(H, structure=se[None, :], mode="nearest")
    out = np.maximum(H, ndimage.grey_dilation(out, structure=se[:, None], mode="nearest") - lead)
    blur = rng.uniform(0.02, 0.08) * NM / cv.pf
    return ndimage.gaussian_filter(out, blur) if rng.random() < 0.5 and blur > 0.3 else out


def _double_tip(cv, H, rng):
    """Two apexes share the current: z is a soft maximum (scale 1/2kappa) of the surface and a shifted copy."""
    d = _logu(rng, 1, 12) * cv.os
    ang = rng.uniform(0, 2 * np.pi)
    H2 = ndimage.shift(H, (d * np.sin(ang), d * np.cos(ang)), order=1, mode="nearest")
    H2 = H2 - rng.uniform(0, 0.08) * NM + np.log(rng.uniform(0.3, 1.0)) / TWO_KAPPA
    m = np.maximum(H, H2)
    return m + np.log(np.exp((H - m) * TWO_KAPPA) + np.exp((H2 - m) * TWO_KAPPA)) / TWO_KAPPA


def _tip(cv, H, rng, kind):
    return {"blunt_tip": _blunt_tip, "double_tip": _double_tip}[kind](cv, H, rng) if kind else H


# ----------------------------------------------------------------------------------------------------- the loop
def _feedback(s, gain, delay, saturate):
    """Discrete integral loop on the gap error, rows (lines) in parallel, time along axis 1.

    With a loop delay the response overshoots and rings; with ``saturate`` the error is measured by a linear
    current preamplifier: exponential in the gap (fast on up-steps, slow on down-steps) and clipped at its range.
    """
    rows, L = s.shape
    z0 = np.concatenate([s[:1, 0], s[:-1, -1]])  # the tip arrives from the end of the previous retrace
    hist = [z0.copy() for _ in range(delay + 1)]
    out = np.empty_like(s)
    cap = np.log(saturate) if saturate else None
    for c in range(L):
        e = s[:, c] - hist[0]
        if saturate:
            e = (np.exp(np.minimum(e * TWO_KAPPA, cap)) - 1.0) / TWO_KAPPA
        z = hist[-1] + gain * e
        out[:, c] = z
        hist.append(z)
        hist.pop(0)
    return out


def _pink(rng, total, alpha):
    """Unit-rms noise with a 1/f^alpha power spectrum, ``total`` samples."""
    f = np.fft.rfftfreq(total)
    f[0] = f[1]
    spec = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) * f ** (-alpha / 2)
    spec[0] = 0
    x = np.fft.irfft(spec, total)
    return x / (x.std() + 1e-300)


# ----------------------------------------------------------------------------------------------------- instrument
def _instrument(cv, H, rng):
    """Scan the raster H as an STM would; returns the forward trace (metres), the artefact list and the regime."""
    n = cv.n
    regime = str(rng.choice(["quiet", "normal", "rough"], p=[0.15, 0.62, 0.23]))
    q = {"quiet": rng.uniform(0.1, 0.4), "normal": rng.uniform(0.5, 1.5), "rough": rng.uniform(1.5, 3.5)}[regime]
    # the operator sets up for the sample: slower scans, lower gains and more care on flat, atomically smooth ones
    sens = float(np.clip(np.ptp(cv.view(H)) / (200 * PM), 0.01, 3.0)) ** 0.85
    q *= sens
    arts: list[str] = []

    def on(p, name):
        hit = rng.random() < p * (0.35 if regime == "quiet" else 1.0)
        if hit:
            arts.append(name)
        return hit

    # time: forward n samples, turnaround, retrace n samples, turnaround; line rate for the full trace+retrace
    gap = max(2, int(0.03 * n))
    per_line = 2 * n + 2 * gap
    dt = 1.0 / (_logu(rng, 0.5, 12) * per_line)
    cols = np.arange(2 * n)
    ctime = cols + (cols >= n) * gap
    t = (np.arange(n)[:, None] * per_line + ctime[None, :]) * dt
    frame = n * per_line * dt
    xs = np.broadcast_to(np.where(cols < n, cols, 2 * n - 1 - cols).astype(float), (n, 2 * n))
    ys = np.broadcast_to(np.arange(n, dtype=float)[:, None], (n, 2 * n))
    fwd = cols < n

    # where the tip really is (pixel units)
    xa, ya = xs.copy(), ys.copy()
    if on(0.5, "drift"):
        v = rng.uniform(-1, 1, 2) * np.array([_logu(rng, 0.004, 0.08), _logu(rng, 0.004, 0.08)]) * n / frame
        xa += v[0] * t
        ya += v[1] * t
    if on(0.3, "xy_creep"):
        c = rng.choice([-1, 1], 2) * np.array([_logu(rng, 0.004, 0.05), _logu(rng, 0.004, 0.05)]) * n
        decay = np.exp(-t / (rng.uniform(0.03, 0.3) * frame))
        xa -= c[0] * decay
        ya -= c[1] * decay
    if on(0.3, "fast_hysteresis"):
        u = xs / (n - 1)
        bulge = 4 * u * (1 - u) * (1 + rng.uniform(-0.6, 0.6) * (2 * u - 1))
        xa += np.where(fwd, 1.0, -1.0) * _logu(rng, 0.004, 0.04) * n * bulge
    if on(0.2, "slow_hysteresis"):
        v = ys / (n - 1)
        ya += _logu(rng, 0.004, 0.04) * n * 4 * v * (1 - v)
    if n >= 32 and on(0.08, "stall"):
        i0, k = int(rng.integers(n // 8, n - 12)), int(rng.integers(2, 10))
        ya[i0 : i0 + k] = ya[i0 : i0 + 1]

    # the tip: possibly blunt or double, possibly changing during the scan
    tip = None
    if on(0.25, "blunt_tip"):
        tip = "blunt_tip"
    elif on(0.17, "double_tip"):
        tip = "double_tip"
    coords = [(ya + cv.m) * cv.os, (xa + cv.m) * cv.os]
    on_path = ndimage.map_coordinates(H, [c[:, :n] for c in coords], order=3, mode="nearest")
    s = ndimage.map_coordinates(_tip(cv, H, rng, tip), coords, order=3, mode="nearest")

    order = np.arange(n)[:, None] * 2 * n + cols[None, :]
    if on(0.25, "tip_change"):
        jumps = np.zeros_like(s)
        for _ in range(int(rng.integers(1, 3))):
            after = order >= rng.integers(n * n // 10, 2 * n * n)
            jumps += rng.choice([-1, 1]) * _logu(rng, 0.01, 0.3) * NM * q * after
            if rng.random() < 0.4:
                other = [k for k in ("blunt_tip", "double_tip", None) if k != tip][int(rng.integers(0, 2))]
                alt = ndimage.map_coordinates(_tip(cv, H, rng, other), coords, order=3, mode="nearest")
                s = np.where(after, alt, s)
                arts.append(f"tip_change_to_{other or 'sharp'}")
        s = s + jumps
    if on(0.85, "tilt"):
        g = rng.standard_normal(2) * _logu(rng, 0.002, 0.02)
        s = s + (g[0] * xa + g[1] * ya) * cv.pixel
    if on(0.6, "one_over_f"):
        pink = _pink(rng, n * per_line, rng.uniform(0.8, 1.6)).reshape(n, per_line)[:, ctime]
        s = s + _logu(rng, 0.5, 20) * PM * q * pink
    if on(0.6, "current_noise"):
        s = s + _logu(rng, 0.5, 25) * PM * q * rng.standard_normal(s.shape)
    if on(0.2, "vibration"):
        for _ in range(int(rng.integers(1, 4))):
            tb, f = rng.uniform(0, frame), _logu(rng, 20, 800)
            env = np.exp(-np.clip(t - tb, 0, None) / (_logu(rng, 0.005, 0.08) * frame)) * (t >= tb)
            s = s + _logu(rng, 2, 50) * PM * q * np.sinc(f * dt) * env * np.sin(2 * np.pi * f * (t - tb))
    if on(0.35, "scars"):
        for _ in range(int(_logu(rng, 1, 30))):
            i, c, length = int(rng.integers(0, n)), int(rng.integers(0, 2 * n)), int(rng.integers(3, 40))
            s[i, c : c + length] += rng.choice([-1, 1]) * _logu(rng, 0.03, 0.5) * NM * q

    # the feedback loop turns the gap into z
    if on(0.75, "feedback"):
        delay = int(rng.choice([0, 1, 2], p=[0.4, 0.4, 0.2]))
        hi = {0: 1.0, 1: 0.65, 2: 0.42}[delay]
        sat = _logu(rng, 3, 30) if on(0.15, "preamp_saturation") else None
        hi = hi if sat is None else min(hi, 0.35)
        gain = _logu(rng, 0.06, 0.15) if rng.random() < 0.1 else _logu(rng, 0.15, hi)  # 1 in 10 loops too slow
        z = _feedback(s, gain, delay, sat)
    else:
        z = s

    # the z channel
    if on(0.35, "mains"):
        f0 = rng.choice([50.0, 60.0]) * (1 + 2e-4 * rng.standard_normal())
        a1 = _logu(rng, 0.3, 10) * PM * q
        for h, rel in ((1, 1.0), (2, rng.uniform(0, 0.5)), (3, rng.uniform(0, 0.3))):
            z = z + a1 * rel * np.sinc(h * f0 * dt) * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 2 * np.pi))
    if on(0.12, "lockin_leak"):
        fm = rng.uniform(400, 5000)
        z = z + _logu(rng, 2, 30) * PM * q * np.sinc(fm * dt) * np.sin(2 * np.pi * fm * t)
    if on(0.6, "line_offsets"):
        walk = np.cumsum(rng.standard_normal(n)) * _logu(rng, 0.1, 3) * PM * q
        z = z + (walk + rng.standard_normal(n) * _logu(rng, 0.3, 15) * PM * q)[:, None]
    if on(0.25, "turnaround_hook"):
        amp = _logu(rng, 2, 40) * PM * q * (1 + 0.2 * rng.standard_normal(n))[:, None]
        z = z + rng.choice([-1, 1]) * amp * np.exp(-xs / (rng.uniform(0.01, 0.08) * n)) * fwd
    if on(0.3, "z_creep"):
        z = z + rng.choice([-1, 1]) * _logu(rng, 0.02, 0.8) * NM * sens * np.exp(-t / (rng.uniform(0.02, 0.12) * frame))
    if on(0.3, "bow"):
        r2 = ((xs - n / 2) ** 2 + (ys - n / 2) ** 2) / (n / 2) ** 2
        z = z + rng.choice([-1, 1]) * rng.uniform(0.5, 3) * NM * (cv.fov / (500 * NM)) ** 2 * r2  # tube sag ~ fov^2
    if on(0.25, "spikes"):
        for _ in range(int(rng.integers(1, 30))):
            i, c = int(rng.integers(0, n)), int(rng.integers(0, 2 * n))
            z[i, c : c + int(rng.integers(1, 3))] += rng.choice([-1, 1]) * _logu(rng, 0.05, 1.5) * NM * sens
    arts.append("white")
    floor = np.ptp(cv.view(H)) / rng.uniform(150, 400)  # HV amplifier and ADC noise: no scan is perfect
    z = z + max(_logu(rng, 0.2, 10) * PM * q, floor) * rng.standard_normal(z.shape)
    if on(0.5, "quantisation"):
        bits = int(rng.choice([16, 18, 20]))
        zr = min(_logu(rng, 20, 1000) * NM, np.ptp(cv.view(H)) / 3 * 2 ** (bits - 1))  # LSB <= relief / 3
        lsb = 2 * zr / 2**bits
        off = rng.uniform(-0.5, 0.5) * zr
        z = np.clip(np.round((z + off) / lsb) * lsb, -zr, zr) - off
    return np.ascontiguousarray(z[:, :n]), arts, regime, on_path


# ----------------------------------------------------------------------------------------------------- entry
def draw(seed: int, size: int = 256) -> tuple[np.ndarray, np.ndarray, float]:
    """One scan: (noisy, clean, pixel size), heights in metres, rows are scan lines (axis 1 fast, left to right)."""
    rng = np.random.default_rng(seed)
    family = FAMILIES[int(rng.integers(0, len(FAMILIES)))]
    cv, H, variant = RENDER[family](rng, size)
    clean = np.ascontiguousarray(cv.view(H), dtype=np.float64)
    noisy, arts, regime, on_path = _instrument(cv, H, rng)
    noisy = np.nan_to_num(noisy.astype(np.float64))
    LAST.clear()
    LAST.update(
        family=family,
        variant=variant,
        artefacts=arts,
        regime=regime,
        pixel_m=cv.pixel,
        fov_nm=cv.fov / NM,
        seed=seed,
        size=size,
        geometric=[a for a in arts if a in GEOMETRIC],
        clean_on_path=on_path,
    )
    return noisy, clean, float(cv.pixel)

"""Independent simulator of constant-current STM topographs.

Surfaces are continuous height functions h(x, y) (x = fast-axis column, y = row,
both in pixel units of the intended scan grid, heights in metres).  ``clean`` is
h sampled on the intended grid.  The instrument then scans the surface in time
order (row 0 first, each row left to right = the trace), with the tip at the
positions actually reached by the piezo (thermal drift, start-of-frame creep,
fast-axis hysteresis), a tip that may be blunt or multi-apex (log-sum-exp of
the tunnelling current over the tip lobes), a z feedback loop of first or second
order with saturated error signal, and a long list of noise sources laid out on
the true time axis of the raster (including the retrace time between lines).

Public interface::

    FAMILIES: tuple[str, ...]
    draw(family, seed, size=256, noiseless=False) -> (noisy, clean, info)

Only numpy and scipy are used.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, signal, special
from scipy.spatial import cKDTree

__all__ = ["FAMILIES", "draw"]

FAMILIES: tuple[str, ...] = (
    "atomic_lattice",  # simple lattices of several symmetries + point defects (+ a step)
    "reconstruction",  # 7x7-like, herringbone, CDW, moire, dimer rows
    "stepped_terrace",  # single / bunched / meandering steps, islands, screw dislocations
    "molecular_assembly",  # molecular monolayers with domains, boundaries, vacancies
    "adsorbate_friedel",  # adatoms, molecules, clusters, standing-wave rings
    "rough_mixed",  # amorphous / granular / rippled / mounded films, or mixed scenes
)

_PM = 1e-12
_NM = 1e-9
_TWO_KAPPA = 2.05e10  # 2*kappa of the tunnelling decay (1/m), ~4.0 eV barrier


# --------------------------------------------------------------------------- helpers
def _lu(rng, a, b):
    """log-uniform draw in [a, b]"""
    return float(math.exp(rng.uniform(math.log(a), math.log(b))))


def _pick(rng, items, p=None):
    if p is not None:
        p = np.asarray(p, float)
        p = p / p.sum()
    return items[int(rng.choice(len(items), p=p))]


def _js(v):
    """make an object JSON-able"""
    if isinstance(v, dict):
        return {str(k): _js(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_js(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_js(x) for x in v.tolist()]
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if v is None or isinstance(v, (int, str)):
        return v
    return str(v)


def _rot(v, ang):
    c, s = math.cos(ang), math.sin(ang)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _plane_off(a):
    """remove the least-squares plane (a is square, full grid)"""
    n0, n1 = a.shape
    y = np.arange(n0) - (n0 - 1) / 2.0
    x = np.arange(n1) - (n1 - 1) / 2.0
    r = a - a.mean()
    r = r - np.outer(y, np.ones(n1)) * (r.sum(axis=1) @ y / (n1 * (y @ y)))
    r = r - np.outer(np.ones(n0), x) * (r.sum(axis=0) @ x / (n0 * (x @ x)))
    return r


def psnr(noisy, clean):
    """raw PSNR (dB): peak = ptp(clean), least-squares plane of the difference removed"""
    r = _plane_off(np.asarray(noisy, float) - np.asarray(clean, float))
    mse = float(np.mean(r * r))
    peak = float(clean.max() - clean.min())
    return 10.0 * math.log10(peak * peak / max(mse, 1e-300))


# --------------------------------------------------------------------------- scene primitives
class _Field:
    """band-limited random field with unit std, evaluable anywhere (cubic spline)."""

    def __init__(self, rng, N, M, corr, hurst=None, aniso=1.0, ang=0.0):
        g = float(np.clip(corr / 3.0, 0.5, 8.0))
        n = int(math.ceil((N + 2 * M) / g)) + 10
        n = int(max(16, n))
        w = rng.standard_normal((n, n))
        ky = np.fft.fftfreq(n, d=g)[:, None]
        kx = np.fft.rfftfreq(n, d=g)[None, :]
        if aniso != 1.0:
            c, s = math.cos(ang), math.sin(ang)
            kp = c * kx + s * ky
            kq = -s * kx + c * ky
            k2 = kp * kp + (kq * aniso) ** 2
        else:
            k2 = kx * kx + ky * ky
        if hurst is None:
            S = np.exp(-2.0 * math.pi**2 * corr * corr * k2)
        else:
            S = (1.0 + (2 * math.pi * corr) ** 2 * k2) ** (-(1.0 + hurst) / 2.0)
        f = np.fft.irfft2(np.fft.rfft2(w) * S, s=(n, n))
        f -= f.mean()
        f /= f.std() + 1e-30
        self.coef = ndimage.spline_filter(f, order=3, mode="grid-wrap")
        self.g, self.M = g, M

    def __call__(self, X, Y):
        c = [((Y + self.M) / self.g + 4.0).ravel(), ((X + self.M) / self.g + 4.0).ravel()]
        return ndimage.map_coordinates(self.coef, c, order=3, mode="grid-wrap", prefilter=False).reshape(np.shape(X))


class _Raster:
    """oversampled canvas covering [-M, N+M)^2 for splatted features."""

    def __init__(self, N, M, os=2):
        self.N, self.M, self.os = N, M, os
        self.n = (N + 2 * M) * os
        self.a = np.zeros((self.n, self.n))
        self._coef = None
        self.count = 0

    def splat(self, xs, ys, radius, fn, budget=2.5e6):
        xs = np.atleast_1d(np.asarray(xs, float))
        ys = np.atleast_1d(np.asarray(ys, float))
        if xs.size == 0:
            return
        os, n = self.os, self.n
        K = int(math.ceil(2 * radius * os)) + 3
        off = np.arange(K) - K // 2
        ch = max(1, int(budget // (K * K)))
        flat = self.a.ravel()
        for s0 in range(0, xs.size, ch):
            sl = slice(s0, min(xs.size, s0 + ch))
            cx = (xs[sl] + self.M) * os
            cy = (ys[sl] + self.M) * os
            i0 = np.floor(cy).astype(np.int64)
            j0 = np.floor(cx).astype(np.int64)
            ii = i0[:, None, None] + off[None, :, None]
            jj = j0[:, None, None] + off[None, None, :]
            dy = (ii - cy[:, None, None]) / os
            dx = (jj - cx[:, None, None]) / os
            v = fn(dx, dy, sl)
            ok = (ii >= 0) & (ii < n) & (jj >= 0) & (jj < n)
            ok = np.broadcast_to(ok, v.shape)
            idx = np.broadcast_to(ii * n + jj, v.shape)
            flat += np.bincount(idx[ok], weights=v[ok], minlength=n * n)
        self.count += xs.size
        self._coef = None

    def add_canvas(self, arr):
        self.a += arr
        self._coef = None

    def grid(self):
        t = np.arange(self.n) / self.os - self.M
        return np.meshgrid(t, t)

    def __call__(self, X, Y):
        if self._coef is None:
            self._coef = ndimage.spline_filter(self.a, order=3, mode="mirror")
        c = [((Y + self.M) * self.os).ravel(), ((X + self.M) * self.os).ravel()]
        return ndimage.map_coordinates(self._coef, c, order=3, mode="mirror", prefilter=False).reshape(np.shape(X))


class _Motif:
    """periodic lattice with a basis of (anisotropic) gaussian lobes, tabulated over one cell."""

    def __init__(self, a1, a2, origin, lobes, normalise=True):
        a1 = np.asarray(a1, float)
        a2 = np.asarray(a2, float)
        self.a1, self.a2 = a1, a2
        self.A = np.array([[a1[0], a2[0]], [a1[1], a2[1]]])
        self.Ainv = np.linalg.inv(self.A)
        self.origin = np.asarray(origin, float)
        smin = min(max(l[4], 0.3) for l in lobes)
        amax = max(np.hypot(*a1), np.hypot(*a2))
        R = int(np.clip(math.ceil(3.0 * amax / smin), 24, 160))
        u = np.arange(R) / R
        U, V = np.meshgrid(u, u, indexing="ij")
        T = np.zeros((R, R))
        for fu, fv, amp, sa, sb, ang in lobes:
            du = (U - fu + 0.5) % 1.0 - 0.5
            dv = (V - fv + 0.5) % 1.0 - 0.5
            ca, sn = math.cos(ang), math.sin(ang)
            for m in (-1, 0, 1):
                for k in (-1, 0, 1):
                    ex = (du + m) * a1[0] + (dv + k) * a2[0]
                    ey = (du + m) * a1[1] + (dv + k) * a2[1]
                    p = ca * ex + sn * ey
                    q = -sn * ex + ca * ey
                    T += amp * np.exp(-0.5 * (p * p / (sa * sa) + q * q / (sb * sb)))
        lo, hi = float(T.min()), float(T.max())
        self.scale = (hi - lo) if normalise else 1.0
        if self.scale <= 0:
            self.scale = 1.0
        T = (T - lo) / self.scale if normalise else T
        self.R = R
        self.lobes = lobes
        self.coef = ndimage.spline_filter(T, order=3, mode="grid-wrap")

    def frac(self, X, Y):
        dx = X - self.origin[0]
        dy = Y - self.origin[1]
        U = self.Ainv[0, 0] * dx + self.Ainv[0, 1] * dy
        V = self.Ainv[1, 0] * dx + self.Ainv[1, 1] * dy
        return U, V

    def __call__(self, X, Y):
        U, V = self.frac(X, Y)
        U = (U % 1.0) * self.R
        V = (V % 1.0) * self.R
        return ndimage.map_coordinates(self.coef, [U.ravel(), V.ravel()], order=3, mode="grid-wrap", prefilter=False).reshape(np.shape(X))

    def sites(self, lo, hi, basis=((0.0, 0.0),)):
        return _lattice_sites(self.a1, self.a2, self.origin, lo, hi, basis)


def _lattice_sites(a1, a2, origin, lo, hi, basis=((0.0, 0.0),)):
    A = np.array([[a1[0], a2[0]], [a1[1], a2[1]]], float)
    Ai = np.linalg.inv(A)
    cor = np.array([[lo, lo], [hi, lo], [lo, hi], [hi, hi]], float) - origin
    uv = cor @ Ai.T
    m0, m1 = int(math.floor(uv[:, 0].min())) - 1, int(math.ceil(uv[:, 0].max())) + 1
    n0, n1 = int(math.floor(uv[:, 1].min())) - 1, int(math.ceil(uv[:, 1].max())) + 1
    m, n = np.meshgrid(np.arange(m0, m1 + 1), np.arange(n0, n1 + 1), indexing="ij")
    m = m.ravel().astype(float)
    n = n.ravel().astype(float)
    out = []
    bid = []
    for b, (fu, fv) in enumerate(basis):
        P = origin[None, :] + (m + fu)[:, None] * np.asarray(a1)[None, :] + (n + fv)[:, None] * np.asarray(a2)[None, :]
        ok = (P[:, 0] >= lo) & (P[:, 0] < hi) & (P[:, 1] >= lo) & (P[:, 1] < hi)
        out.append(P[ok])
        bid.append(np.full(int(ok.sum()), b))
    return np.concatenate(out), np.concatenate(bid)


class _Stairs:
    """terraced surface: height = h * (number of level lines of phi below the point)."""

    def __init__(
        self,
        rng,
        N,
        M,
        h,
        mode="vicinal",
        n_across=3.0,
        meander=0.2,
        mcorr=40.0,
        bunch=None,
        spiral=0,
        hill_levels=3.0,
        hill_corr=80.0,
        edge_px=0.6,
    ):
        self.h = float(h)
        self.N, self.M = N, M
        self.edge = float(edge_px)
        self.mode = mode
        self.alpha = rng.uniform(0, 2 * math.pi)
        self.off = rng.uniform(0, 1)
        self.field = None
        self.lam = N / max(n_across, 0.2)
        self.mamp = 0.0
        self.hill = 0.0
        if mode == "hills":
            self.field = _Field(rng, N, M, hill_corr)
            self.hill = hill_levels / 4.0  # field spans ~ +-2 std
            self.lam = N * _lu(rng, 2.0, 12.0)  # very weak underlying slope
        else:
            if meander > 0:
                self.field = _Field(rng, N, M, mcorr)
                self.mamp = meander
        self.spirals = []
        for _ in range(int(spiral)):
            self.spirals.append((rng.uniform(0.1 * N, 0.9 * N), rng.uniform(0.1 * N, 0.9 * N), float(rng.choice([-1.0, 1.0]))))
        # level positions
        g = np.linspace(-M, N + M, 48)
        GX, GY = np.meshgrid(g, g)
        ph = self.phi(GX, GY)
        lo, hi = math.floor(ph.min()) - 3, math.ceil(ph.max()) + 3
        if bunch is None or spiral:
            self.levels = np.arange(lo, hi + 1, dtype=float)
            self.bunch = None
        else:
            nb, e = bunch
            ks = np.arange(lo - nb, hi + nb + 1)
            lv = np.floor(ks / nb) * nb + (ks % nb) * e
            self.levels = np.unique(lv[(lv >= lo) & (lv <= hi)]).astype(float)
            self.bunch = (int(nb), float(e))

    def phi_plain(self, X, Y):
        p = ((X - self.N / 2) * math.cos(self.alpha) + (Y - self.N / 2) * math.sin(self.alpha)) / self.lam + self.off
        if self.field is not None:
            f = self.field(X, Y)
            p = p + (self.hill * f if self.mode == "hills" else self.mamp * f)
        return p

    def phi(self, X, Y):
        p = self.phi_plain(X, Y)
        for x0, y0, b in self.spirals:
            p = p + b * np.arctan2(Y - y0, X - x0) / (2 * math.pi)
        return p

    def grad(self, X, Y):
        d = 0.5
        gx = self.phi(X + d, Y) - self.phi(X - d, Y)
        gy = self.phi(X, Y + d) - self.phi(X, Y - d)
        gx = (gx + 0.5) % 1.0 - 0.5
        gy = (gy + 0.5) % 1.0 - 0.5
        return np.hypot(gx, gy) / (2 * d) + 1e-6

    def evaluate(self, X, Y):
        """returns height (m), signed distance (px) to nearest edge, terrace index"""
        ck = getattr(self, "_cache", None)
        if ck is not None and ck[0] is X and ck[1] is Y:
            return ck[2]
        res = self._evaluate(X, Y)
        self._cache = (X, Y, res)
        return res

    def _evaluate(self, X, Y):
        p = self.phi(X, Y)
        G = self.grad(X, Y)
        w = self.edge * G
        lv = self.levels
        pad = max(1.0, 12.0 * float(w.max()))
        lo, hi = float(p.min()) - pad, float(p.max()) + pad
        sel = lv[(lv >= lo) & (lv <= hi)]
        base = float(np.sum(lv < lo))
        H = np.full(p.shape, base)
        for c in sel:
            H += special.expit((p - c) / w)
        idx = np.searchsorted(lv, p)
        idx = np.clip(idx, 1, len(lv) - 1)
        dlo = p - lv[idx - 1]
        dhi = p - lv[idx]
        dn = np.where(np.abs(dlo) < np.abs(dhi), dlo, dhi)
        dist = dn / G
        terr = np.floor(H + 0.5)
        for x0, y0, b in self.spirals:
            H = H - b * np.arctan2(Y - y0, X - x0) / (2 * math.pi)
        return self.h * H, dist, terr

    def __call__(self, X, Y):
        return self.evaluate(X, Y)[0]


class _Threshold:
    """soft island mask from a thresholded random field"""

    def __init__(self, rng, N, M, coverage, corr, edge_px=0.6):
        self.f = _Field(rng, N, M, corr)
        self.t = float(special.ndtri(1.0 - coverage))
        self.edge = edge_px
        self.corr = corr

    def mask(self, X, Y):
        ck = getattr(self, "_cache", None)
        if ck is not None and ck[0] is X and ck[1] is Y:
            return ck[2]
        res = self._mask(X, Y)
        self._cache = (X, Y, res)
        return res

    def _mask(self, X, Y):
        v = self.f(X, Y)
        d = 0.5
        gx = self.f(X + d, Y) - self.f(X - d, Y)
        gy = self.f(X, Y + d) - self.f(X, Y - d)
        G = np.hypot(gx, gy) / (2 * d) + 1e-3 / self.corr
        return special.expit((v - self.t) / (self.edge * G))

    def inside(self, xs, ys, margin=0.0):
        return self.f(np.asarray(xs), np.asarray(ys)) > self.t + margin


def _polygon_islands(raster, rng, xs, ys, R, heights, nside, trunc, orient, edge):
    """regular / truncated polygons (triangles to hexagons), heights in metres"""
    xs = np.asarray(xs, float)
    R = np.asarray(R, float)
    heights = np.asarray(heights, float)
    trunc = np.asarray(trunc, float)
    orient = np.asarray(orient, float)
    nside = np.asarray(nside, int)
    if xs.size == 0:
        return

    def fn(dx, dy, sl):
        r = R[sl][:, None, None]
        t = trunc[sl][:, None, None]
        o = orient[sl][:, None, None]
        ns = nside[sl][:, None, None]
        pd = np.zeros_like(dx)
        for k in range(6):
            ang = o + k * math.pi / 3.0
            proj = dx * np.cos(ang) + dy * np.sin(ang)
            # six normals: for 'triangles' the odd ones get a larger inradius (trunc)
            rk = np.where((ns == 6) | (k % 2 == 0), r, r * t)
            pd = np.maximum(pd, proj / rk)
        return heights[sl][:, None, None] * special.expit((1.0 - pd) * r / edge)

    raster.splat(xs, ys, float(R.max() * trunc.max()) * 1.25 + 4 * edge + 2, fn)


def _gauss_splat(raster, xs, ys, amp, sig, ring=None):
    """isotropic gaussians (optionally with a dark 'sombrero' ring)"""
    xs = np.asarray(xs, float)
    if xs.size == 0:
        return
    amp = np.broadcast_to(np.asarray(amp, float), xs.shape).copy()
    sig = np.broadcast_to(np.asarray(sig, float), xs.shape).copy()
    if ring is None:
        rq = np.zeros_like(xs)
    else:
        rq = np.broadcast_to(np.asarray(ring, float), xs.shape).copy()

    def fn(dx, dy, sl):
        s = sig[sl][:, None, None]
        r2 = (dx * dx + dy * dy) / (s * s)
        v = np.exp(-0.5 * r2)
        q = rq[sl][:, None, None]
        if np.any(q != 0):
            r = np.sqrt(r2)
            v = v - q * np.exp(-0.5 * ((r - 2.3) / 0.7) ** 2)
        return amp[sl][:, None, None] * v

    rad = float(sig.max()) * (4.5 if ring is not None else 3.8) + 1
    raster.splat(xs, ys, rad, fn)


def _cluster_splat(raster, xs, ys, heights, R, power, facet, orient):
    xs = np.asarray(xs, float)
    if xs.size == 0:
        return
    heights = np.asarray(heights, float)
    R = np.asarray(R, float)
    power = np.asarray(power, float)
    facet = np.asarray(facet, float)
    orient = np.asarray(orient, float)

    def fn(dx, dy, sl):
        r = np.sqrt(dx * dx + dy * dy)
        o = orient[sl][:, None, None]
        hexd = np.zeros_like(dx)
        for k in range(6):
            ang = o + k * math.pi / 3.0
            hexd = np.maximum(hexd, (dx * np.cos(ang) + dy * np.sin(ang)) / math.cos(math.pi / 6))
        f = facet[sl][:, None, None]
        d = ((1 - f) * r + f * hexd) / R[sl][:, None, None]
        core = np.clip(1.0 - d * d, 0.0, None) ** power[sl][:, None, None]
        return heights[sl][:, None, None] * core

    raster.splat(xs, ys, float(R.max()) * 1.2 + 2, fn)


class _Friedel:
    """sum of circular standing waves around point scatterers, via FFT convolution."""

    def __init__(self, N, M, lam_half, ell, alpha):
        self.N, self.M = N, M
        self.os = 2 if lam_half < 7 else 1
        self.n = (N + 2 * M) * self.os
        self.wc = np.zeros((self.n, self.n))
        self.ws = np.zeros((self.n, self.n))
        self.lam, self.ell, self.alpha = lam_half, ell, alpha
        self._r = None
        self.count = 0

    def add(self, xs, ys, amp, phase):
        xs = np.atleast_1d(np.asarray(xs, float))
        ys = np.atleast_1d(np.asarray(ys, float))
        if xs.size == 0:
            return
        amp = np.broadcast_to(np.asarray(amp, float), xs.shape)
        phase = np.broadcast_to(np.asarray(phase, float), xs.shape)
        cx = (xs + self.M) * self.os
        cy = (ys + self.M) * self.os
        j0 = np.floor(cx).astype(int)
        i0 = np.floor(cy).astype(int)
        fx = cx - j0
        fy = cy - i0
        for di, dj, w in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            ii = i0 + di
            jj = j0 + dj
            ok = (ii >= 0) & (ii < self.n) & (jj >= 0) & (jj < self.n)
            np.add.at(self.wc, (ii[ok], jj[ok]), (w * amp * np.cos(phase))[ok])
            np.add.at(self.ws, (ii[ok], jj[ok]), (w * amp * np.sin(phase))[ok])
        self.count += xs.size
        self._r = None

    def _build(self):
        os = self.os
        Rk = int(min(4.0 * self.ell, 0.75 * self.N + self.M, 160) * os)
        t = np.arange(-Rk, Rk + 1) / os
        XX, YY = np.meshgrid(t, t)
        r = np.hypot(XX, YY)
        lam = self.lam
        env = (1.0 / (1.0 + r / (0.6 * lam))) ** self.alpha * np.exp(-r / self.ell)
        env *= 1.0 - np.exp(-((r / (0.45 * lam)) ** 2))
        env *= np.clip((Rk / os - r) / (0.15 * Rk / os + 1), 0, 1)  # soft cut
        kc = env * np.cos(2 * math.pi * r / lam)
        ks = env * np.sin(2 * math.pi * r / lam)
        nrm = float(np.abs(kc).max()) + 1e-30
        res = signal.fftconvolve(self.wc, kc / nrm, mode="same") - signal.fftconvolve(self.ws, ks / nrm, mode="same")
        self._r = ndimage.spline_filter(res, order=3, mode="mirror")

    def __call__(self, X, Y):
        if self._r is None:
            self._build()
        c = [((Y + self.M) * self.os).ravel(), ((X + self.M) * self.os).ravel()]
        return ndimage.map_coordinates(self._r, c, order=3, mode="mirror", prefilter=False).reshape(np.shape(X))


class _Scene:
    def __init__(self, N, M):
        self.N, self.M = N, M
        self.base = []
        self.tex = []
        self.info = {}
        self.pixel = 1e-10

    def add_tex(self, name, fn, ratio, lo, hi):
        self.tex.append({"name": name, "fn": fn, "ratio": float(ratio), "lo": float(lo), "hi": float(hi)})

    def eval_base(self, X, Y):
        out = np.zeros(np.shape(X))
        for f in self.base:
            out = out + f(X, Y)
        return out

    def eval_tex(self, X, Y):
        return [t["fn"](X, Y) for t in self.tex]


def _uniform_positions(rng, n, lo, hi):
    return rng.uniform(lo, hi, n), rng.uniform(lo, hi, n)


def _count_ext(N, M, per_fov):
    """number of objects in the extended area for a density given per field of view"""
    return (N + 2 * M) ** 2 / float(N * N) * per_fov


def _hexv(a, th):
    return np.array([a * math.cos(th), a * math.sin(th)]), np.array([a * math.cos(th + math.pi / 3), a * math.sin(th + math.pi / 3)])


def _rectv(a, b, th, gamma=math.pi / 2):
    return np.array([a * math.cos(th), a * math.sin(th)]), np.array([b * math.cos(th + gamma), b * math.sin(th + gamma)])


# --------------------------------------------------------------------------- families
def _simple_lattice(rng, a_px, sym, th, origin):
    """returns (motif, description)"""
    if sym in ("hexagonal",):
        a1, a2 = _hexv(a_px, th)
        s = max(0.6, _lu(rng, 0.17, 0.30) * a_px)
        lobes = [(0.0, 0.0, 1.0, s, s, 0.0)]
    elif sym in ("honeycomb", "graphite"):
        a1, a2 = _hexv(a_px, th)
        s = max(0.6, _lu(rng, 0.12, 0.2) * a_px)
        amp2 = 1.0 if sym == "honeycomb" else _lu(rng, 0.1, 0.6)
        lobes = [(1 / 3, 1 / 3, 1.0, s, s, 0.0), (2 / 3, 2 / 3, amp2, s, s, 0.0)]
    elif sym == "square":
        a1, a2 = _rectv(a_px, a_px, th)
        s = max(0.6, _lu(rng, 0.17, 0.3) * a_px)
        lobes = [(0.0, 0.0, 1.0, s, s, 0.0)]
    elif sym == "rectangular":
        r = _lu(rng, 1.25, 1.8)
        a1, a2 = _rectv(a_px, a_px * r, th)
        sa = max(0.6, _lu(rng, 0.17, 0.3) * a_px)
        sb = max(0.6, _lu(rng, 0.17, 0.3) * a_px * r)
        lobes = [(0.0, 0.0, 1.0, sa, sb, th)]
    elif sym == "centered_rectangular":
        r = _lu(rng, 1.2, 2.2)
        a1, a2 = _rectv(a_px, a_px * r, th)
        s = max(0.6, _lu(rng, 0.15, 0.25) * a_px)
        lobes = [(0.0, 0.0, 1.0, s, s, 0.0), (0.5, 0.5, _lu(rng, 0.4, 1.0), s, s, 0.0)]
    else:  # row
        r = _lu(rng, 1.6, 3.0)
        a1, a2 = _rectv(a_px, a_px * r, th)
        sa = max(0.7, _lu(rng, 0.35, 0.7) * a_px)
        sb = max(0.6, _lu(rng, 0.13, 0.25) * a_px * r)
        lobes = [(0.0, 0.0, 1.0, sa, sb, th)]
    return _Motif(a1, a2, origin, lobes)


def _build_atomic_lattice(rng, N, M):
    sc = _Scene(N, M)
    sym = _pick(
        rng,
        ["hexagonal", "honeycomb", "graphite", "square", "rectangular", "centered_rectangular", "row"],
        [0.22, 0.1, 0.12, 0.16, 0.12, 0.12, 0.16],
    )
    a_phys = {
        "hexagonal": [0.249, 0.255, 0.271, 0.277, 0.288, 0.289],
        "honeycomb": [0.246, 0.25],
        "graphite": [0.246],
        "square": [0.255, 0.277, 0.289, 0.392],
        "rectangular": [0.255, 0.277, 0.289],
        "centered_rectangular": [0.36, 0.41, 0.51],
        "row": [0.296, 0.361, 0.384],
    }[sym]
    a_nm = float(rng.choice(a_phys)) * rng.uniform(0.97, 1.03)
    a_px = _lu(rng, 3.0, 40.0)
    pixel = a_nm * _NM / a_px
    sc.pixel = pixel
    th = rng.uniform(0, 2 * math.pi)
    motif = _simple_lattice(rng, a_px, sym, th, rng.uniform(0, a_px, 2))
    lo, hi = -M, N + M
    tex_r = _Raster(N, M, 2)
    base_r = _Raster(N, M, 2)
    lob = motif.lobes[0]
    s_atom = float(math.sqrt(lob[3] * lob[4]))
    sites, _ = motif.sites(lo, hi)
    # vacancies (remove atom in texture, add a small relaxation dip in base)
    n_vac = rng.poisson(_count_ext(N, M, _lu(rng, 0.5, 20.0))) if rng.random() < 0.8 else 0
    n_vac = min(n_vac, len(sites) // 8)
    vi = rng.choice(len(sites), n_vac, replace=False) if n_vac else np.zeros(0, int)
    _gauss_splat(tex_r, sites[vi, 0], sites[vi, 1], -1.0 / motif.scale, s_atom)
    dips = -np.array([_lu(rng, 4, 40) for _ in vi]) * _PM
    _gauss_splat(base_r, sites[vi, 0], sites[vi, 1], dips, max(0.8, 0.7 * s_atom + 0.3 * a_px))
    # substitutional atoms: bright/dark contrast with halo (texture)
    n_sub = rng.poisson(_count_ext(N, M, _lu(rng, 0.5, 15.0))) if rng.random() < 0.5 else 0
    n_sub = min(n_sub, len(sites) // 8)
    si = rng.choice(len(sites), n_sub, replace=False) if n_sub else np.zeros(0, int)
    _gauss_splat(
        tex_r,
        sites[si, 0],
        sites[si, 1],
        rng.choice([-1, 1], len(si)) * rng.uniform(0.3, 1.0, len(si)),
        max(0.8, _lu(rng, 0.5, 1.0) * a_px),
    )
    # adatoms (base, physical height)
    n_ad = rng.poisson(_count_ext(N, M, _lu(rng, 0.5, 25.0)))
    n_ad = max(n_ad, 0)
    xs, ys = _uniform_positions(rng, n_ad, lo, hi)
    ad_h = np.array([_lu(rng, 30, 160) for _ in range(n_ad)]) * _PM
    ad_s = max(0.8, min(12.0, _lu(rng, 0.35, 0.7) * a_px))
    _gauss_splat(base_r, xs, ys, ad_h, ad_s)
    inside = int(np.sum((xs >= 0) & (xs < N) & (ys >= 0) & (ys < N)))
    inside += int(np.sum((sites[vi, 0] >= 0) & (sites[vi, 0] < N) & (sites[vi, 1] >= 0) & (sites[vi, 1] < N)))
    if inside == 0:
        k = int(rng.integers(1, 4))
        _gauss_splat(base_r, rng.uniform(0, N, k), rng.uniform(0, N, k), np.array([_lu(rng, 30, 160) for _ in range(k)]) * _PM, ad_s)
        n_ad += k
    sc.base.append(base_r)
    step_info = None
    step_h = {
        "hexagonal": 0.236,
        "honeycomb": 0.335,
        "graphite": 0.335,
        "square": 0.18,
        "rectangular": 0.128,
        "centered_rectangular": 0.2,
        "row": 0.325,
    }[sym] * rng.uniform(0.95, 1.05)
    if rng.random() < 0.4 or (n_ad == 0 and n_vac == 0):
        n_st = int(rng.choice([1, 1, 2]))
        st = _Stairs(
            rng,
            N,
            M,
            step_h * _NM,
            mode="vicinal",
            n_across=n_st * rng.uniform(0.7, 1.2),
            meander=_lu(rng, 0.02, 0.3),
            mcorr=_lu(rng, 20, 90),
            edge_px=_lu(rng, 0.4, 1.2),
        )
        sc.base.append(st)
        step_info = {"steps_across": n_st, "height_m": step_h * _NM}
    if rng.random() < 0.15:
        isl = _Raster(N, M, 2)
        ni = int(rng.integers(1, 4))
        ix, iy = _uniform_positions(rng, ni, 0, N)
        _polygon_islands(
            isl,
            rng,
            ix,
            iy,
            [_lu(rng, 0.05, 0.2) * N for _ in range(ni)],
            np.full(ni, step_h * _NM) * rng.choice([-1, 1], ni),
            np.full(ni, 6),
            np.full(ni, _lu(rng, 1.0, 1.8)),
            np.full(ni, th),
            0.6,
        )
        sc.base.append(isl)
    sc.add_tex("atomic_lattice", lambda X, Y: motif(X, Y) + tex_r(X, Y), _lu(rng, 0.3, 3.0), 0.5 * _PM, 200 * _PM)
    sc.info = {
        "kind": "atomic_lattice",
        "symmetry": sym,
        "lattice_constant_m": a_nm * _NM,
        "period_px": a_px,
        "rotation_deg": math.degrees(th),
        "n_vacancies": int(n_vac),
        "n_substitutional": int(n_sub),
        "n_adatoms": int(n_ad),
        "step": step_info,
    }
    return sc


def _build_reconstruction(rng, N, M):
    sc = _Scene(N, M)
    sub = _pick(rng, ["7x7", "herringbone", "cdw", "moire", "dimer_rows"], [0.24, 0.2, 0.2, 0.2, 0.16])
    lo, hi = -M, N + M
    th = rng.uniform(0, 2 * math.pi)
    info = {"kind": sub}
    base_r = _Raster(N, M, 2)
    if sub == "7x7":
        cell = _lu(rng, 16.0, 80.0)
        b = cell / 7.0
        sc.pixel = 2.688 * _NM * rng.uniform(0.98, 1.02) / cell
        a1, a2 = _hexv(cell, th)
        fa = _lu(rng, 0.02, 0.25)  # faulted-half contrast
        ca = _lu(rng, 0.02, 0.25)  # corner adatom contrast
        sa = max(0.7, _lu(rng, 0.35, 0.55) * b)
        lobes = []
        for (u, v), corner in zip([(1, 1), (3, 1), (5, 1), (1, 3), (3, 3), (1, 5)], [1, 0, 1, 0, 0, 1]):
            lobes.append((u / 7, v / 7, (1 + fa) * (1 + ca * corner), sa, sa, 0.0))
        for (u, v), corner in zip([(6, 6), (4, 6), (2, 6), (6, 4), (4, 4), (6, 2)], [1, 0, 1, 0, 0, 1]):
            lobes.append((u / 7, v / 7, (1 + ca * corner), sa, sa, 0.0))
        sh = max(0.8, _lu(rng, 0.5, 0.85) * b)
        lobes.append((0.0, 0.0, -_lu(rng, 0.6, 1.6), sh, sh, 0.0))
        if rng.random() < 0.5:
            ra = _lu(rng, 0.1, 0.35)
            for u, v in [(5 / 3, 5 / 3), (11 / 3, 5 / 3), (5 / 3, 11 / 3), (16 / 3, 16 / 3), (10 / 3, 16 / 3), (16 / 3, 10 / 3)]:
                lobes.append((u / 7, v / 7, ra, max(0.6, 0.3 * b), max(0.6, 0.3 * b), 0.0))
        motif = _Motif(a1, a2, rng.uniform(0, cell, 2), lobes)
        amp = _lu(rng, 40, 130) * _PM
        sc.base.append(lambda X, Y, m=motif, a=amp: a * m(X, Y))
        # missing / extra adatoms
        basis = [(l[0], l[1]) for l in lobes[:12]]
        sites, _ = motif.sites(lo, hi, basis)
        nm_ = rng.poisson(len(sites) * _lu(rng, 0.003, 0.04))
        idx = rng.choice(len(sites), min(nm_, len(sites)), replace=False)
        _gauss_splat(base_r, sites[idx, 0], sites[idx, 1], -amp / motif.scale * 1.05, sa)
        nb_ = rng.poisson(len(sites) * _lu(rng, 0.001, 0.01))
        idx2 = rng.choice(len(sites), min(nb_, len(sites)), replace=False)
        _gauss_splat(base_r, sites[idx2, 0], sites[idx2, 1], amp * rng.uniform(0.3, 0.9, len(idx2)), sa * 1.3)
        info.update({"cell_px": cell, "adatom_amp_m": amp, "missing_adatoms": int(len(idx)), "bright_defects": int(len(idx2))})
        if rng.random() < 0.35:
            st = _Stairs(
                rng,
                N,
                M,
                0.314 * _NM,
                mode="vicinal",
                n_across=rng.uniform(0.6, 2.5),
                meander=_lu(rng, 0.02, 0.2),
                mcorr=_lu(rng, 30, 90),
                edge_px=_lu(rng, 0.5, 1.5),
            )
            sc.base.append(st)
            info["steps"] = True
    elif sub == "herringbone":
        resolved = rng.random() < 0.6
        if resolved:
            a_px = _lu(rng, 3.0, 6.5)
            sc.pixel = 0.2884 * _NM / a_px
            Pr = 6.34 * _NM / sc.pixel
        else:
            Pr = _lu(rng, 14.0, 60.0)
            sc.pixel = 6.34 * _NM / Pr
        D = Pr * _lu(rng, 1.6, 4.5)  # length of one zig-zag segment
        rho = rng.uniform(0.94, 0.995)
        dfcc = rng.uniform(0.54, 0.62)
        rs = _lu(rng, 0.065, 0.11) * Pr
        ang = th
        t30 = math.tan(math.radians(30.0))
        cz = t30 * D / (math.pi * rho)
        ph0 = rng.uniform(0, 1)
        ridge_amp = _lu(rng, 8, 28) * _PM

        def hb(X, Y):
            q = X * math.cos(ang) + Y * math.sin(ang)
            w = -X * math.sin(ang) + Y * math.cos(ang)
            Z = cz * np.arcsin(rho * np.sin(math.pi * q / D))
            s = (w - Z) * math.cos(math.radians(30.0)) / Pr + ph0
            f1 = (s % 1.0 - 0.5) * Pr
            f2 = ((s - dfcc) % 1.0 - 0.5) * Pr
            return np.exp(-0.5 * (f1 / rs) ** 2) + np.exp(-0.5 * (f2 / rs) ** 2)

        sc.base.append(lambda X, Y: ridge_amp * hb(X, Y))
        info.update({"ridge_pair_period_px": Pr, "segment_px": D, "ridge_amp_m": ridge_amp, "atoms_resolved": resolved})
        if resolved:
            motif = _simple_lattice(rng, a_px, "hexagonal", th + math.pi / 6 + rng.normal(0, 0.02), rng.uniform(0, 3, 2))
            sc.add_tex("atomic_lattice", motif, _lu(rng, 0.3, 3.0), 0.5 * _PM, 60 * _PM)
            info["period_px"] = a_px
        if rng.random() < 0.3:
            st = _Stairs(
                rng,
                N,
                M,
                0.236 * _NM,
                mode="vicinal",
                n_across=rng.uniform(0.6, 2.0),
                meander=_lu(rng, 0.05, 0.4),
                mcorr=_lu(rng, 30, 90),
                edge_px=_lu(rng, 0.5, 1.5),
            )
            sc.base.append(st)
            info["steps"] = True
    elif sub == "cdw":
        variant = _pick(rng, ["sqrt13", "3x3", "incommensurate", "stripe"], [0.3, 0.3, 0.2, 0.2])
        a_px = _lu(rng, 3.0, 12.0)
        sc.pixel = 0.336 * _NM * rng.uniform(0.97, 1.05) / a_px
        a1, a2 = _hexv(a_px, th)
        if variant == "sqrt13":
            A1 = 3 * a1 + a2
            A2 = -a1 + 4 * a2
        elif variant == "3x3":
            A1, A2 = 3 * a1, 3 * a2
        else:
            f = rng.uniform(3.05, 4.6)
            rot = rng.normal(0, 0.04)
            A1, A2 = _rot(a1, rot) * f, _rot(a2, rot) * f
        Am = np.array([[A1[0], A2[0]], [A1[1], A2[1]]])
        Bm = 2 * math.pi * np.linalg.inv(Am)  # rows = reciprocal vectors
        G = [Bm[0], Bm[1], -(Bm[0] + Bm[1])]
        if variant == "stripe":
            G = [G[int(rng.integers(0, 3))]]
        phs = rng.uniform(0, 2 * math.pi, len(G))
        if len(G) == 3:
            phs[2] = -phs[0] - phs[1] + (0.0 if rng.random() < 0.7 else math.pi)
        cdw_amp = _lu(rng, 15, 90) * _PM
        sharp = rng.uniform(1.0, 2.5)
        span = 3.0 if len(G) == 3 else 2.0
        lo_v = -1.5 if len(G) == 3 else -1.0

        def cdw(X, Y):
            s = 0.0
            for g, p in zip(G, phs):
                s = s + np.cos(g[0] * X + g[1] * Y + p)
            return np.clip((s - lo_v) / (span + 1.5 if len(G) == 3 else span), 0.0, 1.0) ** sharp

        sc.base.append(lambda X, Y: cdw_amp * cdw(X, Y))
        motif = _simple_lattice(rng, a_px, "hexagonal", th, rng.uniform(0, 3, 2))
        mod = rng.uniform(0.0, 0.8)
        sc.add_tex("atomic_lattice", lambda X, Y: motif(X, Y) * (1 + mod * (cdw(X, Y) - 0.5)), _lu(rng, 0.3, 3.0), 0.5 * _PM, 80 * _PM)
        info.update({"variant": variant, "period_px": a_px, "cdw_amp_m": cdw_amp, "cdw_period_px": float(np.hypot(*A1))})
        nd = rng.poisson(_count_ext(N, M, _lu(rng, 0.5, 8)))
        xs, ys = _uniform_positions(rng, nd, lo, hi)
        _gauss_splat(base_r, xs, ys, rng.choice([-1, 1], nd) * cdw_amp * rng.uniform(0.3, 1.0, nd), max(0.8, 0.8 * a_px))
    elif sub == "moire":
        a_px = _lu(rng, 3.0, 9.0)
        sc.pixel = 0.2461 * _NM / a_px
        Lm = _lu(rng, max(15.0, 4 * a_px), 140.0)
        eps = a_px / Lm
        psi = rng.uniform(0, math.pi / 2)
        delta = eps * math.cos(psi)
        twist = eps * math.sin(psi) * rng.choice([-1, 1])
        a1, a2 = _hexv(a_px, th)
        Am = np.array([[a1[0], a2[0]], [a1[1], a2[1]]])
        Bt = 2 * math.pi * np.linalg.inv(Am)
        Gt = [Bt[0], Bt[1], -(Bt[0] + Bt[1])]
        Q = [g - _rot(g, twist) / (1 + delta) for g in Gt]
        phs = rng.uniform(0, 2 * math.pi, 3)
        pw = rng.uniform(0.7, 2.5)
        sign = 1.0 if rng.random() < 0.7 else -1.0

        def moire(X, Y):
            s = 0.0
            for q, p in zip(Q, phs):
                s = s + np.cos(q[0] * X + q[1] * Y + p)
            u = np.clip((s + 1.5) / 4.5, 0.0, 1.0)
            return u**pw if sign > 0 else 1 - u**pw

        m_amp = _lu(rng, 15, 140) * _PM
        sc.base.append(lambda X, Y: m_amp * moire(X, Y))
        sym = _pick(rng, ["honeycomb", "graphite", "hexagonal"], [0.35, 0.35, 0.3])
        motif = _simple_lattice(rng, a_px, sym, th, rng.uniform(0, 3, 2))
        mod = rng.uniform(0.0, 1.0)
        sc.add_tex("atomic_lattice", lambda X, Y: motif(X, Y) * (1 + mod * (moire(X, Y) - 0.5)), _lu(rng, 0.3, 3.0), 0.5 * _PM, 80 * _PM)
        info.update(
            {
                "period_px": a_px,
                "moire_period_px": float(2 * math.pi / np.hypot(*Q[0])),
                "mismatch": delta,
                "twist_deg": math.degrees(twist),
                "moire_amp_m": m_amp,
                "lattice": sym,
            }
        )
        if rng.random() < 0.4:
            nd = rng.poisson(_count_ext(N, M, _lu(rng, 1, 10)))
            xs, ys = _uniform_positions(rng, nd, lo, hi)
            _gauss_splat(base_r, xs, ys, np.array([_lu(rng, 40, 200) for _ in range(nd)]) * _PM, max(0.9, 1.3 * a_px))
    else:  # dimer rows, Si(100)-2x1 like with rotating domains on alternating terraces
        arow = _lu(rng, 6.0, 40.0)
        sc.pixel = 0.768 * _NM * rng.uniform(0.98, 1.02) / arow
        s_al = arow / 2.0
        buck = rng.random() < 0.4
        row_amp = _lu(rng, 20, 80) * _PM
        motifs = []
        for k in range(2):
            t = th + k * math.pi / 2
            if buck:
                a1, a2 = _rectv(2 * s_al, arow, t)
                d = 0.2
                sig_a = max(0.6, 0.14 * arow)
                sig_b = max(0.6, 0.3 * s_al)
                hb_ = rng.uniform(0.3, 0.8)
                lobes = [
                    (0.0, 0.5 - d, 1.0, sig_b, sig_a, t),
                    (0.0, 0.5 + d, hb_, sig_b, sig_a, t),
                    (0.5, 0.5 - d, hb_, sig_b, sig_a, t),
                    (0.5, 0.5 + d, 1.0, sig_b, sig_a, t),
                ]
            else:
                a1, a2 = _rectv(s_al, arow, t)
                lobes = [
                    (0.0, 0.5 - 0.2, 1.0, max(0.6, 0.35 * s_al), max(0.6, 0.14 * arow), t),
                    (0.0, 0.5 + 0.2, 1.0, max(0.6, 0.35 * s_al), max(0.6, 0.14 * arow), t),
                ]
            motifs.append(_Motif(a1, a2, rng.uniform(0, arow, 2), lobes))
        st = _Stairs(
            rng,
            N,
            M,
            0.136 * _NM,
            mode="vicinal",
            n_across=_lu(rng, 1.0, 6.0),
            meander=_lu(rng, 0.05, 0.5),
            mcorr=_lu(rng, 10, 50),
            edge_px=_lu(rng, 0.4, 1.2),
        )

        def rows(X, Y):
            H, _, terr = st.evaluate(X, Y)
            par = terr % 2 == 0
            return H + row_amp * np.where(par, motifs[0](X, Y), motifs[1](X, Y))

        sc.base.append(rows)
        nd = rng.poisson(_count_ext(N, M, _lu(rng, 2, 30)))
        sites, _ = motifs[0].sites(lo, hi)
        if len(sites) and nd:
            idx = rng.choice(len(sites), min(nd, len(sites)), replace=False)
            _gauss_splat(base_r, sites[idx, 0], sites[idx, 1], -row_amp * rng.uniform(0.6, 1.2, len(idx)), max(0.8, 0.4 * arow))
        info.update({"row_period_px": arow, "buckled": buck, "row_amp_m": row_amp})
    sc.base.append(base_r)
    sc.info = info
    return sc


_STEP_H = [0.136, 0.204, 0.208, 0.222, 0.226, 0.236, 0.314, 0.32, 0.335]


def _build_stepped(rng, N, M):
    sc = _Scene(N, M)
    h = float(rng.choice(_STEP_H)) * rng.uniform(0.96, 1.04) * _NM
    lattice = rng.random() < 0.35
    if lattice:
        a_nm = float(rng.choice([0.255, 0.277, 0.288, 0.246]))
        a_px = _lu(rng, 3.0, 10.0)
        sc.pixel = a_nm * _NM / a_px
    else:
        sc.pixel = _lu(rng, 0.1, 3.0) * _NM
    mode = _pick(rng, ["vicinal", "hills", "few"], [0.5, 0.3, 0.2])
    info = {"kind": mode, "step_height_m": h}
    bunch = None
    spiral = 0
    if mode == "vicinal":
        nmax = max(1.6, 2.2 * _NM / h)
        n_across = min(_lu(rng, 1.5, 9.0), nmax)
        if rng.random() < 0.35:
            nb = int(rng.integers(2, 6))
            bunch = (nb, _lu(rng, 0.04, 0.3))
            n_across = min(max(nb * _lu(rng, 0.8, 2.0), min(n_across, nmax)), 1.4 * nmax)
        elif rng.random() < 0.18:
            spiral = int(rng.integers(1, 3))
        st = _Stairs(
            rng,
            N,
            M,
            h,
            mode="vicinal",
            n_across=n_across,
            meander=_lu(rng, 0.02, 0.5),
            mcorr=_lu(rng, 8, 80),
            bunch=bunch,
            spiral=spiral,
            edge_px=_lu(rng, 0.3, 1.2),
        )
        info.update({"steps_across": n_across, "bunching": bunch, "screw_dislocations": spiral})
    elif mode == "hills":
        st = _Stairs(
            rng,
            N,
            M,
            h,
            mode="hills",
            hill_levels=_lu(rng, 1.5, min(6.0, 2.2 * _NM / h)),
            hill_corr=_lu(rng, 0.12, 0.5) * N,
            edge_px=_lu(rng, 0.3, 1.2),
        )
    else:
        st = _Stairs(
            rng,
            N,
            M,
            h,
            mode="vicinal",
            n_across=rng.uniform(0.5, 2.0),
            meander=_lu(rng, 0.2, 0.9),
            mcorr=_lu(rng, 20, 80),
            edge_px=_lu(rng, 0.3, 1.2),
        )
    deco = rng.random() < 0.25
    fr_step = rng.random() < 0.2
    rim_amp = _lu(rng, 8, 60) * _PM
    rim_w = _lu(rng, 0.6, 2.0)
    rim_off = rng.uniform(-1.0, 1.5)

    def stairs(X, Y):
        H, d, _ = st.evaluate(X, Y)
        if deco:
            H = H + rim_amp * np.exp(-0.5 * ((d - rim_off) / rim_w) ** 2)
        return H

    sc.base.append(stairs)
    info["edge_decoration"] = deco
    isl = _Raster(N, M, 2)
    lo, hi = -M, N + M
    for sign, name in ((-1, "vacancy_islands"), (1, "adatom_islands")):
        if rng.random() < 0.45:
            if rng.random() < 0.5:
                th_ = _Threshold(rng, N, M, _lu(rng, 0.02, 0.25), _lu(rng, 3.0, 25.0), edge_px=_lu(rng, 0.4, 1.0))
                sc.base.append(lambda X, Y, t=th_, s=sign: s * h * t.mask(X, Y))
                info[name] = "irregular"
            else:
                n = rng.poisson(_count_ext(N, M, _lu(rng, 2, 40)))
                xs, ys = _uniform_positions(rng, n, lo, hi)
                R = np.array([_lu(rng, 2.0, 0.08 * N + 2) for _ in range(n)])
                _polygon_islands(
                    isl,
                    rng,
                    xs,
                    ys,
                    R,
                    np.full(n, sign * h),
                    np.full(n, 6),
                    np.full(n, _lu(rng, 1.0, 2.0)),
                    np.full(n, rng.uniform(0, math.pi)),
                    _lu(rng, 0.4, 1.0),
                )
                info[name] = int(n)
    sc.base.append(isl)
    if lattice:
        motif = _simple_lattice(
            rng, a_px, _pick(rng, ["hexagonal", "square", "graphite"], [0.6, 0.2, 0.2]), rng.uniform(0, 2 * math.pi), rng.uniform(0, 3, 2)
        )
        sc.add_tex("atomic_lattice", motif, _lu(rng, 0.3, 3.0), 0.5 * _PM, 60 * _PM)
        info["lattice_period_px"] = a_px
    if fr_step:
        lam = _lu(rng, 4.0, 20.0)
        ell = lam * _lu(rng, 2.0, 10.0)
        ph = rng.uniform(0, 2 * math.pi)

        def fr(X, Y):
            _, d, _ = st.evaluate(X, Y)
            ad = np.abs(d)
            return (
                np.cos(2 * math.pi * ad / lam + ph) / np.sqrt(1 + ad / lam) * np.exp(-ad / ell) * (1 - np.exp(-((ad / (0.5 * lam)) ** 2)))
            )

        sc.add_tex("step_standing_waves", fr, _lu(rng, 0.3, 3.0), 0.3 * _PM, 30 * _PM)
        info["standing_wave_period_px"] = lam
    sc.info = info
    return sc


# molecule shapes, lobes in units of the molecular period: (x, y, amp, s_along, s_perp)
def _molecule_kind(rng, mtype, p):
    if mtype == "blob":
        lobes = [(0, 0, 1.0, 0.30, 0.30)]
        if rng.random() < 0.5:
            k = int(rng.choice([2, 3]))
            for j in range(k):
                a = 2 * math.pi * j / k
                lobes.append((0.13 * math.cos(a), 0.13 * math.sin(a), 0.25, 0.08, 0.08))
    elif mtype == "rod":
        nseg = int(rng.integers(3, 6))
        lobes = []
        for j in range(nseg):
            x = (j - (nseg - 1) / 2) / nseg * 0.85
            lobes.append((x, 0, 1.0, 0.55 / nseg, 0.22 / 1.0))
    elif mtype == "cross":
        cen = _lu(rng, 0.2, 1.3)
        lobes = [(0, 0, cen, 0.12, 0.12)]
        for j in range(4):
            a = math.pi / 2 * j
            lobes.append((0.27 * math.cos(a), 0.27 * math.sin(a), 1.0, 0.1, 0.1))
    elif mtype == "triangle":
        lobes = [(0, 0, 0.4, 0.15, 0.15)]
        for j in range(3):
            a = 2 * math.pi * j / 3
            lobes.append((0.28 * math.cos(a), 0.28 * math.sin(a), 1.0, 0.1, 0.1))
    else:  # dimer
        lobes = [(-0.22, 0, 1.0, 0.14, 0.14), (0.22, 0, 1.0, 0.14, 0.14)]
    return lobes


def _add_molecules(rng, raster, N, M, mtype, p, height, keep_fn=None, base_fn=None):
    """molecular monolayer with domains, boundaries, vacancies. p = molecular spacing in px."""
    lo, hi = -M, N + M
    lobes = _molecule_kind(rng, mtype, p)
    th0 = rng.uniform(0, 2 * math.pi)
    if mtype == "blob":
        a1, a2 = _hexv(p, 0.0)
        basis = [(0.0, 0.0, 0.0)]
        symang = math.pi / 3
    elif mtype == "rod":
        L2 = p * _lu(rng, 2.2, 3.4)
        gam = math.radians(rng.uniform(65, 90))
        a1, a2 = _rectv(p, L2, 0.0, gam)
        tilt = math.radians(rng.uniform(-25, 25))
        if rng.random() < 0.4:
            a1 = a1 * 2
            dt = math.radians(rng.uniform(15, 45))
            basis = [(0.0, 0.0, gam + tilt + dt), (0.5, 0.0, gam + tilt - dt)]
        else:
            basis = [(0.0, 0.0, gam + tilt)]
        lobes = [(x * L2, y, a, sa * L2, sb * p) for (x, y, a, sa, sb) in lobes]
        symang = math.pi / 3
    elif mtype == "cross":
        a1, a2 = _rectv(p, p * rng.uniform(1.0, 1.15), 0.0, math.radians(rng.uniform(80, 90)))
        basis = [(0.0, 0.0, math.radians(rng.uniform(0, 45)))]
        symang = math.pi / 2
    elif mtype == "triangle":
        a1, a2 = _hexv(p * math.sqrt(3), 0.0)
        basis = [(1 / 3, 1 / 3, 0.0), (2 / 3, 2 / 3, math.pi / 3)]
        symang = math.pi / 3
    else:
        r = rng.uniform(1.3, 2.0)
        a1, a2 = _rectv(p, p * r, 0.0, math.radians(rng.uniform(70, 90)))
        basis = [(0.0, 0.0, rng.uniform(0, math.pi))]
        symang = math.pi / 3
    if mtype != "rod":
        lobes = [(x * p, y * p, a, sa * p, sb * p) for (x, y, a, sa, sb) in lobes]
    lobes = [(x, y, a, max(sa, 0.7), max(sb, 0.7)) for (x, y, a, sa, sb) in lobes]
    # peak normalisation of one molecule
    ext = max(math.hypot(x, y) + 3.2 * max(sa, sb) for (x, y, a, sa, sb) in lobes)
    g = np.linspace(-ext, ext, 81)
    GX, GY = np.meshgrid(g, g)
    pk = sum(a * np.exp(-0.5 * ((GX - x) ** 2 / sa**2 + (GY - y) ** 2 / sb**2)) for (x, y, a, sa, sb) in lobes)
    lobes = [(x, y, a / pk.max(), sa, sb) for (x, y, a, sa, sb) in lobes]
    # domains
    n_dom = int(_pick(rng, [1, 2, 3, 4, 6], [0.25, 0.25, 0.2, 0.15, 0.15]))
    seeds = rng.uniform(lo, hi, (n_dom, 2))
    mirror_ok = mtype in ("rod", "cross", "dimer", "triangle")
    P_all, T_all, L_all = [], [], []
    for d in range(n_dom):
        rot = th0 + int(rng.integers(0, 6)) * symang + rng.normal(0, 0.01)
        mir = mirror_ok and rng.random() < 0.5

        def tf(v):
            v = np.array([v[0], -v[1]]) if mir else np.asarray(v)
            return _rot(v, rot)

        b1, b2 = tf(a1), tf(a2)
        org = rng.uniform(lo, hi, 2)
        P, bid = _lattice_sites(b1, b2, org, lo, hi, [(b[0], b[1]) for b in basis])
        ang = np.array([(-basis[k][2] if mir else basis[k][2]) + rot for k in bid])
        dd = ((P[:, None, :] - seeds[None, :, :]) ** 2).sum(-1)
        own = np.argmin(dd, axis=1) == d
        P_all.append(P[own])
        T_all.append(ang[own])
        L_all.append(np.full(int(own.sum()), d))
    P = np.concatenate(P_all)
    T = np.concatenate(T_all)
    Lb = np.concatenate(L_all)
    keep = np.ones(len(P), bool)
    if n_dom > 1 and len(P) > 1:
        dmin = 0.85 * min(np.hypot(*a1), np.hypot(*a2), p)
        pairs = cKDTree(P).query_pairs(dmin, output_type="ndarray")
        for i, j in pairs:
            if Lb[i] != Lb[j] and keep[i] and keep[j]:
                keep[i if rng.random() < 0.5 else j] = False
    f_vac = _lu(rng, 0.002, 0.07)
    keep &= rng.random(len(P)) > f_vac
    if keep_fn is not None:
        keep &= keep_fn(P[:, 0], P[:, 1])
    P, T, Lb = P[keep], T[keep], Lb[keep]
    n = len(P)
    jit = _lu(rng, 0.002, 0.05) * p
    P = P + rng.normal(0, jit, P.shape)
    T = T + rng.normal(0, math.radians(_lu(rng, 0.2, 8.0)), n)
    H = np.full(n, height)
    nb = rng.random(n) < _lu(rng, 0.001, 0.03)
    H[nb] *= rng.uniform(1.15, 1.6, int(nb.sum()))
    ndim = rng.random(n) < _lu(rng, 0.001, 0.05)
    H[ndim] *= rng.uniform(0.4, 0.8, int(ndim.sum()))
    n2 = 0
    if rng.random() < 0.3 and n:
        n2 = int(max(1, n * _lu(rng, 0.003, 0.02)))
        i2 = rng.choice(n, n2, replace=False)
        P = np.concatenate([P, P[i2] + 0.5 * (a1 + a2)[None, :] * rng.uniform(0.8, 1.2)])
        T = np.concatenate([T, T[i2] + rng.uniform(0, math.pi, n2)])
        H = np.concatenate([H, np.full(n2, height * rng.uniform(0.8, 1.1))])

    def fn(dx, dy, sl):
        c = np.cos(T[sl])[:, None, None]
        s = np.sin(T[sl])[:, None, None]
        u = c * dx + s * dy
        v = -s * dx + c * dy
        out = 0.0
        for x, y, a, sa, sb in lobes:
            out = out + a * np.exp(-0.5 * ((u - x) ** 2 / (sa * sa) + (v - y) ** 2 / (sb * sb)))
        return H[sl][:, None, None] * out

    raster.splat(P[:, 0], P[:, 1], ext, fn)
    return {
        "molecule": mtype,
        "spacing_px": p,
        "domains": n_dom,
        "vacancy_fraction": f_vac,
        "n_molecules_ext": int(n),
        "second_layer": int(n2),
        "height_m": height,
    }


def _build_molecular(rng, N, M):
    sc = _Scene(N, M)
    mtype = _pick(rng, ["blob", "rod", "cross", "triangle", "dimer"], [0.25, 0.2, 0.2, 0.2, 0.15])
    if mtype == "rod":
        p = _lu(rng, 5.0, 16.0)
        sp = _lu(rng, 0.45, 0.6)
    elif mtype == "blob":
        p = _lu(rng, 6.0, 40.0)
        sp = _lu(rng, 0.95, 1.05)
    elif mtype == "cross":
        p = _lu(rng, 8.0, 40.0)
        sp = _lu(rng, 1.3, 2.0)
    elif mtype == "triangle":
        p = _lu(rng, 8.0, 30.0)
        sp = _lu(rng, 0.9, 1.6)
    else:
        p = _lu(rng, 7.0, 30.0)
        sp = _lu(rng, 0.8, 1.4)
    sc.pixel = sp * _NM / p
    height = _lu(rng, 70, 300) * _PM
    r = _Raster(N, M, 2)
    cover = None
    info = {}
    if rng.random() < 0.5:
        cover = _Threshold(rng, N, M, rng.uniform(0.45, 0.9), _lu(rng, 0.08, 0.3) * N)
        info["partial_coverage"] = True
    keep = (lambda x, y: cover.inside(x, y)) if cover is not None else None
    info.update(_add_molecules(rng, r, N, M, mtype, p, height, keep_fn=keep))
    sc.base.append(r)
    if rng.random() < 0.4:
        st = _Stairs(
            rng,
            N,
            M,
            float(rng.choice([0.204, 0.236, 0.226, 0.335])) * _NM,
            mode="vicinal",
            n_across=rng.uniform(0.5, 3.0),
            meander=_lu(rng, 0.05, 0.5),
            mcorr=_lu(rng, 20, 90),
            edge_px=_lu(rng, 0.4, 1.2),
        )
        sc.base.append(st)
        info["substrate_steps"] = True
    if cover is not None and rng.random() < 0.5:
        # mobile / individual molecules in the bare area
        nd = rng.poisson(_count_ext(N, M, _lu(rng, 1, 15)))
        xs, ys = _uniform_positions(rng, nd, -M, N + M)
        ok = ~cover.inside(xs, ys, margin=-0.3)
        _gauss_splat(r, xs[ok], ys[ok], height * rng.uniform(0.6, 1.0, int(ok.sum())), max(0.8, 0.3 * p))
    sc.info = info
    return sc


def _build_adsorbate(rng, N, M):
    sc = _Scene(N, M)
    pixel = _lu(rng, 0.05, 0.45) * _NM
    sc.pixel = pixel
    lo, hi = -M, N + M
    info = {}
    st = None
    if rng.random() < 0.5:
        st = _Stairs(
            rng,
            N,
            M,
            float(rng.choice([0.204, 0.208, 0.236, 0.226])) * _NM,
            mode="vicinal",
            n_across=rng.uniform(0.5, 3.0),
            meander=_lu(rng, 0.05, 0.6),
            mcorr=_lu(rng, 15, 90),
            edge_px=_lu(rng, 0.4, 1.2),
        )
        sc.base.append(st)
        info["steps"] = True
    r = _Raster(N, M, 2)
    sc.base.append(r)
    lam_nm = _lu(rng, 1.2, 4.0)
    lam = float(np.clip(lam_nm * _NM / pixel, 3.5, 40.0))
    fr = _Friedel(N, M, lam, lam * _lu(rng, 2.0, 10.0), rng.uniform(0.5, 1.5))
    use_fr = rng.random() < 0.8
    species = []
    n_sp = int(rng.choice([1, 1, 2, 3]))
    all_x, all_y = [], []
    for k in range(n_sp):
        dens = _lu(rng, 2, 120)
        n = rng.poisson(_count_ext(N, M, dens))
        xs, ys = _uniform_positions(rng, n, lo, hi)
        if rng.random() < 0.15:
            hgt = -_lu(rng, 8, 50) * _PM
        else:
            hgt = _lu(rng, 25, 250) * _PM
        sig = max(0.8, _lu(rng, 0.18, 0.55) * _NM / pixel)
        sig = min(sig, 14.0)
        ring = _lu(rng, 0.1, 0.4) if rng.random() < 0.3 else None
        if rng.random() < 0.3 and n:
            nd = max(1, n // 3)
            ang = rng.uniform(0, 2 * math.pi, nd)
            dist = sig * rng.uniform(1.5, 3.0)
            xs = np.concatenate([xs, xs[:nd] + dist * np.cos(ang)])
            ys = np.concatenate([ys, ys[:nd] + dist * np.sin(ang)])
        _gauss_splat(r, xs, ys, hgt * rng.uniform(0.85, 1.15, len(xs)), sig, ring)
        species.append({"count_ext": int(len(xs)), "height_m": hgt, "sigma_px": sig, "sombrero": ring is not None})
        all_x.append(xs)
        all_y.append(ys)
        if use_fr:
            fr.add(xs, ys, rng.uniform(0.6, 1.2, len(xs)), rng.uniform(0, 2 * math.pi))
    info["species"] = species
    if rng.random() < 0.06:  # corral of adatoms
        R0 = lam * rng.uniform(3.0, 7.0)
        cx, cy = rng.uniform(0.3 * N, 0.7 * N, 2)
        sig = max(0.8, 0.3 * _NM / pixel)
        nat = int(2 * math.pi * R0 / (2.6 * sig))
        ang = np.linspace(0, 2 * math.pi, nat, endpoint=False)
        xs, ys = cx + R0 * np.cos(ang), cy + R0 * np.sin(ang)
        _gauss_splat(r, xs, ys, _lu(rng, 40, 150) * _PM, sig)
        fr.add(xs, ys, 1.0, rng.uniform(0, 2 * math.pi))
        info["corral_radius_px"] = R0
    if rng.random() < 0.6:
        nc = rng.poisson(_count_ext(N, M, _lu(rng, 1, 25)))
        xs, ys = _uniform_positions(rng, nc, lo, hi)
        if st is not None and rng.random() < 0.6 and nc:
            cx, cy = _uniform_positions(rng, 40 * nc, lo, hi)
            _, d, _ = st.evaluate(cx, cy)
            near = np.abs(d) < 3.0
            if near.sum() >= nc:
                sel = np.flatnonzero(near)[:nc]
                xs, ys = cx[sel], cy[sel]
                info["clusters_at_steps"] = True
        Rn = np.array([_lu(rng, 0.8, 5.0) * _NM / pixel for _ in range(nc)])
        Rn = np.clip(Rn, 2.0, 0.12 * N + 3)
        hts = np.array([_lu(rng, 0.25, 1.0) for _ in range(nc)]) * _NM
        _cluster_splat(r, xs, ys, hts, Rn, rng.uniform(0.5, 1.5, nc), rng.uniform(0, 0.8, nc), rng.uniform(0, math.pi, nc))
        if use_fr:
            fr.add(xs, ys, rng.uniform(0.8, 1.5, nc), rng.uniform(0, 2 * math.pi))
        info["clusters"] = int(nc)
    if use_fr and fr.count:
        sc.add_tex("friedel", fr, _lu(rng, 0.3, 3.0), 0.3 * _PM, 40 * _PM)
        info["friedel_half_wavelength_px"] = lam
        if st is not None and rng.random() < 0.6:
            ph = rng.uniform(0, 2 * math.pi)
            ell = fr.ell

            def frs(X, Y):
                _, d, _ = st.evaluate(X, Y)
                ad = np.abs(d)
                return (
                    np.cos(2 * math.pi * ad / lam + ph)
                    / np.sqrt(1 + ad / lam)
                    * np.exp(-ad / ell)
                    * (1 - np.exp(-((ad / (0.5 * lam)) ** 2)))
                )

            sc.tex[-1]["fn"] = lambda X, Y, f1=fr, f2=frs: f1(X, Y) + 0.8 * f2(X, Y)
    a_px = 0.27 * _NM / pixel
    if a_px >= 3.0 and rng.random() < 0.4:
        motif = _simple_lattice(rng, a_px, "hexagonal", rng.uniform(0, 2 * math.pi), rng.uniform(0, 3, 2))
        sc.add_tex("atomic_lattice", motif, _lu(rng, 0.3, 3.0), 0.5 * _PM, 40 * _PM)
        info["lattice_period_px"] = a_px
    sc.info = info
    return sc


def _build_rough_mixed(rng, N, M):
    sc = _Scene(N, M)
    kind = _pick(rng, ["amorphous", "granular", "ripple", "mounds", "mixed"], [0.16, 0.14, 0.14, 0.14, 0.42])
    info = {"kind": kind}
    lo, hi = -M, N + M
    if kind == "amorphous":
        sc.pixel = _lu(rng, 0.2, 5.0) * _NM
        rms = _lu(rng, 0.05, 0.35) * _NM
        f = _Field(rng, N, M, _lu(rng, 2.0, 40.0), hurst=rng.uniform(0.3, 0.95))
        sc.base.append(lambda X, Y: rms * f(X, Y))
        info["rms_m"] = rms
    elif kind == "granular":
        sc.pixel = _lu(rng, 0.3, 4.0) * _NM
        D = _lu(rng, 6.0, 40.0)
        n = int(((N + 2 * M) / D) ** 2)
        seeds = rng.uniform(lo, hi, (n, 2))
        tree = cKDTree(seeds)
        hg = rng.normal(0, _lu(rng, 0.04, 0.3), n) * _NM
        dome = _lu(rng, 0.05, 0.6) * _NM
        groove = _lu(rng, 0.03, 0.4) * _NM
        gw = _lu(rng, 0.6, 2.5)
        rough = _Field(rng, N, M, _lu(rng, 1.5, 6.0), hurst=0.6)
        ra = _lu(rng, 0.005, 0.05) * _NM

        def gran(X, Y):
            pts = np.stack([X.ravel(), Y.ravel()], 1)
            dd, ii = tree.query(pts, k=2)
            s1 = seeds[ii[:, 0]]
            s2 = seeds[ii[:, 1]]
            sep = np.linalg.norm(s2 - s1, axis=1) + 1e-9
            b = (dd[:, 1] ** 2 - dd[:, 0] ** 2) / (2 * sep)
            z = hg[ii[:, 0]] + dome * np.tanh(b / (0.35 * D)) - groove * np.exp(-0.5 * (b / gw) ** 2)
            return z.reshape(np.shape(X)) + ra * rough(X, Y)

        sc.base.append(gran)
        info.update({"grain_px": D, "dome_m": dome, "groove_m": groove})
    elif kind == "ripple":
        sc.pixel = _lu(rng, 0.5, 6.0) * _NM
        lam = _lu(rng, 10.0, 60.0)
        amp = _lu(rng, 0.08, 0.6) * _NM
        ang = rng.uniform(0, math.pi)
        pf = _Field(rng, N, M, lam * _lu(rng, 1.0, 4.0))
        pa = _lu(rng, 0.5, 3.0)
        af = _Field(rng, N, M, lam * 3)
        rough = _Field(rng, N, M, _lu(rng, 1.5, 6.0), hurst=0.5)
        ra = _lu(rng, 0.02, 0.25) * amp
        asym = rng.uniform(0, 0.5)

        def rip(X, Y):
            ph = 2 * math.pi * (X * math.cos(ang) + Y * math.sin(ang)) / lam + pa * pf(X, Y)
            return amp * (1 + 0.3 * af(X, Y)) * (np.cos(ph) + asym * np.sin(2 * ph)) / 2 + ra * rough(X, Y)

        sc.base.append(rip)
        info.update({"ripple_px": lam, "amp_m": amp})
    elif kind == "mounds":
        sc.pixel = _lu(rng, 0.3, 3.0) * _NM
        h = float(rng.choice(_STEP_H)) * _NM
        nm_ = int(rng.integers(2, 12))
        cx = rng.uniform(-0.1 * N, 1.1 * N, nm_)
        cy = rng.uniform(-0.1 * N, 1.1 * N, nm_)
        R = np.array([_lu(rng, 0.15, 0.6) * N for _ in range(nm_)])
        lev = np.array([rng.uniform(2.0, 6.5) for _ in range(nm_)])
        mf = _Field(rng, N, M, _lu(rng, 5, 30))
        ma = _lu(rng, 0.05, 0.4)

        class _MoundPhi:
            pass

        st = _Stairs(rng, N, M, h, mode="vicinal", n_across=0.01, meander=0.0, edge_px=_lu(rng, 0.3, 1.0))
        st.lam = 1e9

        def mphi(X, Y):
            out = np.zeros(np.shape(X))
            for k in range(nm_):
                r = np.hypot(X - cx[k], Y - cy[k])
                out = np.maximum(out, lev[k] * np.clip(1 - r / R[k], 0, None) ** 0.8)
            return out + ma * mf(X, Y) + 0.5

        st.phi = mphi
        g = np.linspace(-M, N + M, 48)
        GX, GY = np.meshgrid(g, g)
        pv = mphi(GX, GY)
        st.levels = np.arange(math.floor(pv.min()) - 3, math.ceil(pv.max()) + 4, dtype=float)
        sc.base.append(st)
        info.update({"n_mounds": nm_, "step_height_m": h})
    else:  # mixed
        pixel = _lu(rng, 0.05, 0.16) * _NM
        sc.pixel = pixel
        comps = []
        st = None
        if rng.random() < 0.7:
            st = _Stairs(
                rng,
                N,
                M,
                float(rng.choice([0.204, 0.236, 0.226, 0.335])) * _NM,
                mode="vicinal",
                n_across=rng.uniform(0.5, 3.5),
                meander=_lu(rng, 0.05, 0.6),
                mcorr=_lu(rng, 15, 90),
                edge_px=_lu(rng, 0.4, 1.2),
            )
            sc.base.append(st)
            comps.append("steps")
        r = _Raster(N, M, 2)
        sc.base.append(r)
        cover = None
        if rng.random() < 0.7:
            cover = _Threshold(rng, N, M, rng.uniform(0.15, 0.6), _lu(rng, 0.08, 0.3) * N)
            mtype = _pick(rng, ["blob", "cross", "triangle", "dimer"], [0.35, 0.25, 0.2, 0.2])
            sp = {"blob": 1.0, "cross": 1.6, "triangle": 1.2, "dimer": 1.0}[mtype] * rng.uniform(0.85, 1.2)
            p = sp * _NM / pixel
            minfo = _add_molecules(rng, r, N, M, mtype, p, _lu(rng, 80, 250) * _PM, keep_fn=lambda x, y: cover.inside(x, y))
            comps.append("molecular_island")
            info["molecules"] = minfo
        nads = rng.poisson(_count_ext(N, M, _lu(rng, 3, 60)))
        xs, ys = _uniform_positions(rng, nads, lo, hi)
        if cover is not None:
            ok = ~cover.inside(xs, ys, margin=-0.3)
            xs, ys = xs[ok], ys[ok]
        sig = max(0.8, _lu(rng, 0.2, 0.5) * _NM / pixel)
        _gauss_splat(r, xs, ys, np.array([_lu(rng, 30, 200) for _ in xs]) * _PM, sig)
        comps.append("adsorbates")
        if rng.random() < 0.4:
            nc = int(rng.integers(1, 8))
            cx_, cy_ = _uniform_positions(rng, nc, 0, N)
            _cluster_splat(
                r,
                cx_,
                cy_,
                np.array([_lu(rng, 0.3, 1.2) for _ in range(nc)]) * _NM,
                np.array([_lu(rng, 1.0, 3.5) * _NM / pixel for _ in range(nc)]),
                rng.uniform(0.5, 1.5, nc),
                rng.uniform(0, 0.8, nc),
                rng.uniform(0, math.pi, nc),
            )
            comps.append("clusters")
        if cover is not None:
            mask = lambda X, Y: 1.0 - cover.mask(X, Y)
        else:
            mask = lambda X, Y: 1.0
        if rng.random() < 0.6 and len(xs):
            lam = float(np.clip(_lu(rng, 1.3, 3.8) * _NM / pixel, 4.0, 40.0))
            fr = _Friedel(N, M, lam, lam * _lu(rng, 2.0, 8.0), rng.uniform(0.5, 1.5))
            fr.add(xs, ys, rng.uniform(0.6, 1.2, len(xs)), rng.uniform(0, 2 * math.pi))
            sc.add_tex("friedel", lambda X, Y: fr(X, Y) * mask(X, Y), _lu(rng, 0.3, 3.0), 0.3 * _PM, 30 * _PM)
            comps.append("friedel")
        a_px = float(rng.choice([0.255, 0.277, 0.288])) * _NM / pixel
        if a_px >= 3.0 and rng.random() < 0.6:
            motif = _simple_lattice(rng, a_px, "hexagonal", rng.uniform(0, 2 * math.pi), rng.uniform(0, 3, 2))
            sc.add_tex("atomic_lattice", lambda X, Y: motif(X, Y) * mask(X, Y), _lu(rng, 0.3, 3.0), 0.5 * _PM, 50 * _PM)
            comps.append("atomic_lattice")
        info["components"] = comps
    sc.info = info
    return sc


_BUILDERS = {
    "atomic_lattice": _build_atomic_lattice,
    "reconstruction": _build_reconstruction,
    "stepped_terrace": _build_stepped,
    "molecular_assembly": _build_molecular,
    "adsorbate_friedel": _build_adsorbate,
    "rough_mixed": _build_rough_mixed,
}


# --------------------------------------------------------------------------- instrument
def _blunt_sigma(rng, pixel):
    """extra lateral blur of a blunt apex: gaussian current weight exp(-kappa s^2/R), R = apex radius"""
    R = _lu(rng, 0.3, 30.0) * _NM
    return float(np.clip(math.sqrt(R / _TWO_KAPPA) / pixel, 0.5, 3.5)), R


def _tip_kernel(rng, kind, pixel):
    if kind == "sharp":
        return []
    if kind == "blunt":
        s, R = _blunt_sigma(rng, pixel)
        return [{"w": 1.0, "dx": 0.0, "dy": 0.0, "s": s, "apex_radius_m": R}]
    main_s = _lu(rng, 0.35, 1.0) if kind == "double" else _blunt_sigma(rng, pixel)[0]
    d = float(np.clip(_lu(rng, 0.3, 5.0) * _NM / pixel, 1.5, 20.0)) if rng.random() < 0.7 else _lu(rng, 1.5, 15.0)
    a = rng.uniform(0, 2 * math.pi)
    dz = _lu(rng, 3.0, 120.0) * _PM
    lobes = [
        {"w": 1.0, "dx": 0.0, "dy": 0.0, "s": main_s},
        {"w": math.exp(-_TWO_KAPPA * dz), "dx": d * math.cos(a), "dy": d * math.sin(a), "s": _lu(rng, 0.4, 1.6), "recess_m": dz},
    ]
    return lobes


def _tip_pad(lobes):
    if not lobes:
        return 0
    return int(math.ceil(max(math.hypot(l["dx"], l["dy"]) + 4 * l["s"] for l in lobes))) + 1


def _draw_instrument(rng, N, pixel):
    I = {}
    over = rng.uniform(0.0, 0.25)
    L = int(round(N * (2.0 + over)))
    I["samples_per_line"] = L
    mains = (50.0 if rng.random() < 0.55 else 60.0) * rng.uniform(0.997, 1.003)
    f_raw = _lu(rng, 0.4, 12.0)
    k = max(1, int(round(mains / f_raw)))
    f_line = mains / (k + rng.uniform(0.08, 0.92))
    I["line_rate_hz"] = f_line
    I["mains_hz"] = mains
    dt = 1.0 / (f_line * L)
    I["sample_time_s"] = dt
    I["frame_time_s"] = N / f_line
    # geometry: thermal drift, creep, fast-axis hysteresis, bow
    dtot = _lu(rng, 0.02, 0.035 * N)
    da = rng.uniform(0, 2 * math.pi)
    I["drift_total_px"] = dtot
    I["drift_dir_deg"] = math.degrees(da)
    I["drift_v"] = [dtot * math.cos(da), dtot * math.sin(da)]
    I["drift_acc"] = list(dtot * rng.uniform(-0.8, 0.8, 2))
    wav = []
    for _ in range(3):
        wav.append(
            [
                dtot * _lu(rng, 0.01, 0.15),
                dtot * _lu(rng, 0.01, 0.15),
                rng.uniform(0.5, 4.0),
                rng.uniform(0, 2 * math.pi),
                rng.uniform(0, 2 * math.pi),
            ]
        )
    I["drift_wander"] = wav
    if rng.random() < 0.55:
        I["creep"] = {
            "cy": float(rng.choice([-1, 1]) * _lu(rng, 0.3, 0.04 * N)),
            "cx": float(rng.choice([-1, 1]) * _lu(rng, 0.1, 0.03 * N)) if rng.random() < 0.6 else 0.0,
            "tau_frac": _lu(rng, 0.02, 0.25),
        }
    else:
        I["creep"] = None
    if rng.random() < 0.4:
        I["fast_hysteresis"] = {"c": _lu(rng, 0.2, 0.015 * N + 0.5), "tau_px": _lu(rng, 0.03, 0.25) * N}
    else:
        I["fast_hysteresis"] = None
    I["bow_px"] = float(rng.uniform(-1, 1) * _lu(rng, 0.002, 0.012) * N) if rng.random() < 0.3 else 0.0
    # tip
    tk = _pick(rng, ["sharp", "blunt", "double", "blunt_double"], [0.5, 0.25, 0.2, 0.05])
    I["tip"] = {"kind": tk, "lobes": _tip_kernel(rng, tk, pixel)}
    # feedback
    if rng.random() < 0.55:
        tau = _lu(rng, 0.12, 2.5)
        I["feedback"] = {"order": 1, "omega": 1.0 / tau, "tau_px": tau}
    else:
        I["feedback"] = {"order": 2, "omega": _lu(rng, 0.5, 4.0), "zeta": _lu(rng, 0.18, 1.1)}
    sat = _lu(rng, 0.08, 2.0) * _NM
    I["feedback"]["sat_up_m"] = sat
    I["feedback"]["sat_down_m"] = sat * _lu(rng, 0.1, 1.0)
    # plane tilt of the sample relative to the scan plane (deterministic)
    if rng.random() < 0.6:
        I["tilt"] = {"rel": _lu(rng, 0.05, 2.0), "dir": rng.uniform(0, 2 * math.pi)}
    else:
        I["tilt"] = None
    # target raw PSNR and noise mixture (variance shares)
    I["psnr_target_db"] = rng.uniform(12.0, 36.0)
    comps = {
        "white": (1.0, (0.25, 1.0)),
        "fast_correlated": (0.65, (0.05, 1.0)),
        "flicker_1f": (0.8, (0.05, 1.2)),
        "line_offsets": (0.7, (0.03, 1.0)),
        "pickup": (0.5, (0.02, 0.6)),
        "telegraph": (0.2, (0.02, 0.5)),
        "z_creep": (0.3, (0.05, 0.8)),
    }
    w = {}
    for name, (p, (a, b)) in comps.items():
        if rng.random() < p:
            w[name] = _lu(rng, a, b)
    tot = sum(w.values())
    I["noise_shares"] = {k2: v / tot for k2, v in w.items()}
    # quantisation
    # DAC / ADC quantisation step, relative to the noise unit (set once the scene is known)
    I["dac_lsb_rel"] = _lu(rng, 0.08, 1.6) if rng.random() < 0.35 else None
    return I


def _draw_events(rng, N, L, I, pixel):
    """random tip events / bursts; all amplitudes relative to the noise unit sigma0"""
    T = N * L
    E = {}
    ntc = int(_pick(rng, [0, 1, 2, 3], [0.6, 0.25, 0.11, 0.04]))
    tcs = []
    for t in sorted(rng.uniform(0.03, 0.97, ntc) * T):
        ev = {
            "t": float(t),
            "row": int(t // L),
            "col": int(t % L),
            "dz_rel": float(rng.choice([-1, 1]) * _lu(rng, 0.4, 3.0)),
            "revert_after_lines": float(_lu(rng, 1.0, 30.0)) if rng.random() < 0.3 else None,
            "noise_mult": float(_lu(rng, 0.4, 2.5)) if rng.random() < 0.4 else 1.0,
            "new_tip": None,
        }
        if rng.random() < 0.4:
            kk = _pick(rng, ["sharp", "blunt", "double"], [0.35, 0.4, 0.25])
            ev["new_tip"] = {"kind": kk, "lobes": _tip_kernel(rng, kk, pixel)}
        tcs.append(ev)
    E["tip_changes"] = tcs
    scars = []
    if rng.random() < 0.5:
        ns = int(_lu(rng, 1, 30))
        for _ in range(ns):
            row = int(rng.integers(0, N))
            j0 = int(rng.integers(0, N))
            ln = int(_lu(rng, 3, 40))
            amp = float((1 if rng.random() < 0.75 else -1) * _lu(rng, 1.5, 10.0))
            nl = int(_pick(rng, [1, 2, 3], [0.75, 0.17, 0.08]))
            for m in range(nl):
                if row + m < N:
                    scars.append(
                        {
                            "row": row + m,
                            "col": int(np.clip(j0 + rng.integers(-3, 4), 0, N - 1)),
                            "len": max(2, int(ln * rng.uniform(0.6, 1.2))),
                            "amp_rel": amp * rng.uniform(0.6, 1.1),
                            "decay_px": float(_lu(rng, 0.5, 15.0)),
                            "noisy": bool(rng.random() < 0.3),
                        }
                    )
    E["scars"] = scars
    vib = []
    if rng.random() < 0.35:
        for _ in range(int(rng.integers(1, 4))):
            f = _lu(rng, 8.0, 400.0) * I["sample_time_s"]
            f = abs(((f + 0.5) % 1.0) - 0.5)
            vib.append(
                {
                    "t0": float(rng.uniform(0, 1) * T),
                    "freq_cyc_per_sample": float(f),
                    "decay_samples": float(_lu(rng, 0.02, 1.0) / I["sample_time_s"]),
                    "amp_rel": float(_lu(rng, 0.5, 4.0)),
                    "phase": float(rng.uniform(0, 2 * math.pi)),
                }
            )
    E["vibration_bursts"] = vib
    sp = None
    if rng.random() < 0.45:
        sp = {"density": _lu(rng, 1e-5, 1.5e-3), "amp_rel": [1.5, 12.0]}
    E["spikes"] = sp
    return E


def _positions(I, N, p):
    """tip positions (x, y) in pixel units for the extended grid rows/cols -p..N+p-1"""
    L = I["samples_per_line"]
    T = float(N * L)
    ii, jj = np.mgrid[-p : N + p, -p : N + p].astype(float)
    t = ii * L + jj
    tau = t / T - 0.5
    vx, vy = I["drift_v"]
    ax, ay = I["drift_acc"]
    dx = vx * tau + ax * (tau * tau - 1.0 / 12.0)
    dy = vy * tau + ay * (tau * tau - 1.0 / 12.0)
    for wx, wy, f, px, py in I["drift_wander"]:
        dx = dx + wx * (np.sin(2 * math.pi * f * tau + px) - math.sin(px))
        dy = dy + wy * (np.sin(2 * math.pi * f * tau + py) - math.sin(py))
    cr = I["creep"]
    if cr is not None:
        e = np.exp(-np.clip(t, 0, None) / (cr["tau_frac"] * T))
        dx = dx - cr["cx"] * e
        dy = dy - cr["cy"] * e
    fh = I["fast_hysteresis"]
    if fh is not None:
        dx = dx - fh["c"] * np.exp(-np.clip(jj, 0, None) / fh["tau_px"])
    if I["bow_px"]:
        u = jj / N
        dx = dx + I["bow_px"] * (4 * u * (1 - u) - 2.0 / 3.0)
    return jj + dx, ii + dy, t


def _tip_image(H, lobes):
    if not lobes:
        return H
    hm = float(H.max())
    E = np.exp(_TWO_KAPPA * (H - hm))
    acc = np.zeros_like(H)
    wsum = 0.0
    for lb in lobes:
        kx = _k1d(lb["dx"], lb["s"])
        ky = _k1d(lb["dy"], lb["s"])
        tmp = ndimage.correlate1d(E, kx, axis=1, mode="nearest")
        tmp = ndimage.correlate1d(tmp, ky, axis=0, mode="nearest")
        acc += lb["w"] * tmp
        wsum += lb["w"]
    return hm + np.log(np.maximum(acc / wsum, 1e-300)) / _TWO_KAPPA


def _k1d(d, s):
    R = int(math.ceil(abs(d) + 4 * s))
    m = np.arange(-R, R + 1)
    k = np.exp(-0.5 * ((m - d) / s) ** 2)
    return k / k.sum()


def _feedback(h, fb):
    """z response of the constant-current loop along each trace (rows in parallel)."""
    N0, N1 = h.shape
    w = fb["omega"]
    up, dn = fb["sat_up_m"], fb["sat_down_m"]
    out = np.empty_like(h)
    z = h[:, 0].copy()
    prev = h[:, 0]
    if fb["order"] == 1:
        m = 3
        g = 1.0 - math.exp(-w / m)
        for j in range(N1):
            cur = h[:, j]
            acc = 0.0
            for k in range(1, m + 1):
                e = prev + (cur - prev) * (k / m) - z
                s = np.where(e > 0, up, dn)
                z = z + g * s * np.tanh(e / s)
                acc = acc + z
            out[:, j] = acc / m
            prev = cur
    else:
        zeta = fb["zeta"]
        m = max(4, int(math.ceil(1.6 * w * max(1.0, zeta))))
        dt = 1.0 / m
        v = np.zeros_like(z)
        for j in range(N1):
            cur = h[:, j]
            acc = 0.0
            for k in range(1, m + 1):
                e = prev + (cur - prev) * (k / m) - z
                s = np.where(e > 0, up, dn)
                v = (v + dt * w * w * s * np.tanh(e / s)) / (1 + 2 * zeta * w * dt)
                z = z + dt * v
                acc = acc + z
            out[:, j] = acc / m
            prev = cur
    return out


def _unit(a):
    a = a - a.mean()
    s = a.std()
    return a / s if s > 0 else a


def _noise_components(rng, N, I, shares):
    """post-feedback additive noise, each component with unit rms over the trace samples"""
    L = I["samples_per_line"]
    T = N * L
    comps = {}
    par = {}
    tr = np.arange(N)[:, None] * L + np.arange(N)[None, :]
    comps["white"] = rng.standard_normal((N, N))
    if "fast_correlated" in shares:
        tau = _lu(rng, 0.7, 5.0)
        x = rng.standard_normal(T)
        a = math.exp(-1.0 / tau)
        y = signal.lfilter([1 - a], [1, -a], x)
        comps["fast_correlated"] = _unit(y[tr])
        par["fast_corr_tau_px"] = tau
    if "flicker_1f" in shares:
        beta = rng.uniform(0.7, 1.6)
        n = T
        f = np.fft.rfftfreq(n)
        S = np.zeros_like(f)
        S[1:] = f[1:] ** (-beta / 2)
        z = (rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))) * S
        y = np.fft.irfft(z, n)
        comps["flicker_1f"] = _unit(y[tr])
        par["flicker_exponent"] = beta
    if "line_offsets" in shares:
        rw = np.cumsum(rng.standard_normal(N)) * _lu(rng, 0.05, 1.0)
        pj = _lu(rng, 0.005, 0.1)
        jumps = np.where(rng.random(N) < pj, rng.laplace(0, 1.5, N), 0.0)
        ind = rng.standard_normal(N) * rng.uniform(0.0, 1.0) if rng.random() < 0.5 else np.zeros(N)
        off = rw + jumps + ind
        slope = np.zeros(N)
        if rng.random() < 0.3:
            slope = rng.standard_normal(N) * _lu(rng, 0.1, 0.5)
        xx = np.linspace(-1, 1, N)
        comps["line_offsets"] = _unit(off[:, None] + slope[:, None] * xx[None, :])
        par["line_jump_prob"] = pj
    if "pickup" in shares:
        dt = I["sample_time_s"]
        y = np.zeros((N, N))
        lines = []
        amps = [1.0, _lu(rng, 0.01, 0.5), _lu(rng, 0.01, 0.3)]
        for hmul, a in zip((1, 2, 3), amps):
            f = I["mains_hz"] * hmul * dt
            f = abs(((f + 0.5) % 1.0) - 0.5)
            ph = rng.uniform(0, 2 * math.pi)
            y += a * np.cos(2 * math.pi * f * tr + ph)
            lines.append([I["mains_hz"] * hmul, f, a])
        for _ in range(int(rng.integers(0, 3))):
            fh = _lu(rng, 5.0, 20000.0)
            f = abs(((fh * dt + 0.5) % 1.0) - 0.5)
            a = _lu(rng, 0.1, 1.5)
            beat = _lu(rng, 1e-5, 1e-3)
            ph = rng.uniform(0, 2 * math.pi, 2)
            y += a * (np.cos(2 * math.pi * f * tr + ph[0]) + 0.7 * np.cos(2 * math.pi * (f + beat) * tr + ph[1]))
            lines.append([fh, f, a])
        comps["pickup"] = _unit(y)
        par["pickup_lines_hz_cyc_amp"] = lines
    if "telegraph" in shares:
        m1, m2 = _lu(rng, 3, 200), _lu(rng, 3, 500)
        nseg = int(2 * T / (m1 + m2)) + 10
        dur = np.empty(nseg)
        dur[0::2] = rng.exponential(m1, len(dur[0::2]))
        dur[1::2] = rng.exponential(m2, len(dur[1::2]))
        edges = np.cumsum(dur)
        state = (np.searchsorted(edges, tr) % 2).astype(float)
        if rng.random() < 0.5:
            t1, t2 = sorted(rng.uniform(0, T, 2))
            state = state * ((tr >= t1) & (tr <= t2))
            par["telegraph_window"] = [float(t1 / T), float(t2 / T)]
        comps["telegraph"] = _unit(state) if state.std() > 0 else state
        par["telegraph_dwell"] = [m1, m2]
    if "z_creep" in shares:
        tz = _lu(rng, 0.02, 0.2) * T
        comps["z_creep"] = _unit(np.exp(-tr / tz))
        par["z_creep_tau_frac"] = tz / T
    return comps, par


def draw(family: str, seed: int, size: int = 256, noiseless: bool = False):
    """Draw one simulated STM topograph. Returns (noisy, clean, info); heights in metres."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    N = int(size)
    if N < 16:
        raise ValueError("size must be >= 16")
    fam_id = FAMILIES.index(family)
    ss = np.random.SeedSequence([0x5713C3, fam_id, int(seed) & 0xFFFFFFFFFFFFFFFF, N])
    r_scene, r_inst, r_noise, r_ev = [np.random.default_rng(s) for s in ss.spawn(4)]
    M = int(0.1 * N) + 44

    sc = _BUILDERS[family](r_scene, N, M)
    I = _draw_instrument(r_inst, N, sc.pixel)
    L = I["samples_per_line"]
    E = _draw_events(r_ev, N, L, I, sc.pixel)

    # ---- clean surface on the intended grid
    Xc, Yc = np.meshgrid(np.arange(N, dtype=float), np.arange(N, dtype=float))
    base_c = sc.eval_base(Xc, Yc)
    tex_c = sc.eval_tex(Xc, Yc)
    P = I["psnr_target_db"]
    ptp_base = float(base_c.max() - base_c.min())
    sw = math.sqrt(I["noise_shares"].get("white", 0.0))
    amps = []
    sigma_w = None
    for t, tc in zip(sc.tex, tex_c):
        tp = float(tc.max() - tc.min()) + 1e-30
        if ptp_base > 5 * _PM:
            a = float(np.clip(t["ratio"] * ptp_base * 10 ** (-P / 20) * sw, t["lo"], t["hi"]))
            if sigma_w is None:
                sigma_w = a / t["ratio"]  # white noise level set by the main texture's ratio
        else:  # texture is the only content: physical amplitude
            a = float(np.clip(0.3 * t["hi"], t["lo"], t["hi"]))
        amps.append(a / tp)
    clean = base_c.copy()
    for a, tc in zip(amps, tex_c):
        clean += a * tc
    c0 = float(clean.mean())
    clean -= c0
    ptp = float(clean.max() - clean.min())
    sigma0 = ptp * 10 ** (-P / 20)
    if sigma_w is None:
        sigma_w = sigma0 * sw

    # ---- recorded positions (extended by the tip pad)
    kernels = [I["tip"]["lobes"]] + [ev["new_tip"]["lobes"] for ev in E["tip_changes"] if ev["new_tip"]]
    pad = max(_tip_pad(k) for k in kernels)
    Xr, Yr, tr = _positions(I, N, pad)
    Xr = np.clip(Xr, -(M - 3), N + M - 3)
    Yr = np.clip(Yr, -(M - 3), N + M - 3)
    surf = sc.eval_base(Xr, Yr)
    for a, tf in zip(amps, sc.eval_tex(Xr, Yr)):
        surf += a * tf
    surf -= c0
    if I["tilt"] is not None:
        g = I["tilt"]["rel"] * ptp / N
        surf += g * ((Xr - N / 2) * math.cos(I["tilt"]["dir"]) + (Yr - N / 2) * math.sin(I["tilt"]["dir"]))
    crop = (slice(pad, pad + N), slice(pad, pad + N))
    t_tr = tr[crop]
    app0 = _tip_image(surf, I["tip"]["lobes"])[crop]
    rec_det = _feedback(app0, I["feedback"])

    # ---- noisy path: tip events, scars, vibrations (through the loop), then electronic noise
    seg = np.zeros((N, N), int)
    images = [app0]
    dz = np.zeros((N, N))
    nmult = np.ones((N, N))
    cur_mult = 1.0
    for ev in E["tip_changes"]:
        after = t_tr >= ev["t"]
        if ev["new_tip"] is not None:
            images.append(_tip_image(surf, ev["new_tip"]["lobes"])[crop])
            seg[after] = len(images) - 1
        step = ev["dz_rel"] * sigma0
        if ev["revert_after_lines"] is not None:
            after_r = after & (t_tr < ev["t"] + ev["revert_after_lines"] * L)
            dz += step * after_r
        else:
            dz += step * after
        cur_mult = ev["noise_mult"]
        nmult[after] = cur_mult
    h_in = images[0].copy()
    for k in range(1, len(images)):
        h_in[seg == k] = images[k][seg == k]
    h_in += dz
    jj = np.arange(N)
    for s in E["scars"]:
        j = jj - s["col"]
        prof = np.where((j >= 0) & (j < s["len"]), 1.0, 0.0)
        prof += np.where(j >= s["len"], np.exp(-(j - s["len"]) / s["decay_px"]), 0.0)
        if s["noisy"]:
            prof = prof * (1 + 0.5 * r_noise.standard_normal(N))
        h_in[s["row"]] += s["amp_rel"] * sigma0 * prof
    for v in E["vibration_bursts"]:
        dtm = t_tr - v["t0"]
        env = np.where(dtm >= 0, np.exp(-np.clip(dtm, 0, None) / v["decay_samples"]), 0.0)
        env *= 1 - np.exp(-np.clip(dtm, 0, None) / (0.05 * v["decay_samples"] + 1))
        h_in += v["amp_rel"] * sigma0 * env * np.sin(2 * math.pi * v["freq_cyc_per_sample"] * dtm + v["phase"])
    rec_pre = _feedback(h_in, I["feedback"])

    comps, npar = _noise_components(r_noise, N, I, I["noise_shares"])
    white = sigma_w * comps["white"] * nmult
    post = np.zeros((N, N))
    for name, share in I["noise_shares"].items():
        if name == "white":
            continue
        c = comps[name]
        if name == "fast_correlated":
            c = c * nmult
        post += math.sqrt(share) * c
    post *= sigma0
    n_spk = 0
    if E["spikes"] is not None:
        n_spk = int(r_noise.poisson(E["spikes"]["density"] * N * N))
        si = r_noise.integers(0, N, n_spk)
        sj = r_noise.integers(0, N, n_spk)
        lo_, hi_ = E["spikes"]["amp_rel"]
        sa = r_noise.choice([-1, 1], n_spk) * np.exp(r_noise.uniform(math.log(lo_), math.log(hi_), n_spk))
        post[si, sj] += sa * sigma0
    # scale the electronic noise to reach the target raw PSNR where the rest leaves room
    R0 = _plane_off(rec_pre + white - clean)
    R1 = _plane_off(post)
    a2 = float(np.mean(R1 * R1))
    b2 = float(np.mean(R0 * R1))
    c2 = float(np.mean(R0 * R0))
    m2 = sigma0 * sigma0
    s_floor = 0.3
    if a2 > 0 and c2 < m2:
        s = (-b2 + math.sqrt(max(b2 * b2 - a2 * (c2 - m2), 0.0))) / a2
        s = max(s, s_floor)
    else:
        s = s_floor
    noisy = rec_pre + white + s * post
    lsb = None
    if I["dac_lsb_rel"] is not None:
        lsb = float(np.clip(I["dac_lsb_rel"] * sigma0, 0.05 * _PM, 25 * _PM))
        I["dac_lsb_m"] = lsb
        noisy = np.round(noisy / lsb) * lsb

    white_sigma = sigma_w
    tex_info = []
    for t, a, tc in zip(sc.tex, amps, tex_c):
        cor = float(a * (tc.max() - tc.min()))
        tex_info.append(
            {"name": t["name"], "corrugation_m": cor, "corrugation_over_white_noise": cor / white_sigma if white_sigma > 0 else None}
        )
    info = {
        "family": family,
        "seed": int(seed),
        "size": N,
        "noiseless": bool(noiseless),
        "pixel_size_m": sc.pixel,
        "field_of_view_m": sc.pixel * N,
        "clean_ptp_m": ptp,
        "scene": sc.info,
        "textures": tex_info,
        "instrument": {k: v for k, v in I.items() if k not in ("drift_wander",)},
        "drift_wander": I["drift_wander"],
        "events": {
            "tip_changes": E["tip_changes"],
            "n_scars": len(E["scars"]),
            "scars": E["scars"][:40],
            "vibration_bursts": E["vibration_bursts"],
            "spikes": E["spikes"],
            "n_spikes": n_spk,
        },
        "noise": {"sigma0_m": sigma0, "scale": s, "white_sigma_m": white_sigma, **npar},
        "tip_pad_px": pad,
    }
    info = _js(info)
    if noiseless:
        return rec_det.astype(np.float64), clean.astype(np.float64), info
    return noisy.astype(np.float64), clean.astype(np.float64), info

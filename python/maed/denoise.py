"""Denoising whole scans of any size: normalise, run the network tile by tile, guard, undo the scale.

Scans larger than ``tile`` pixels are cut into overlapping tiles so memory stays bounded
whatever the scan size; overlapping results are blended with linear ramps so no seam shows.
Each tile is padded by reflection up to the back end's size multiple. An incomplete scan is
denoised over its measured rows only; the others stay empty (NaN).

``denoise_guarded`` is what ``maed denoise`` publishes (``maed.publish``): what the network took and should
not have (row levels, lattice peaks, compact features, the surroundings of point defects) given
back, and where its output fails the trust checks (``maed.trust``) the conservative result in its
place, with the verdict that says what was published and why (files: ``maed.denoise_files``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
from scipy import ndimage

from .classical import fit_plane, level_plane
from .engine import Backend
from .feature_keep import RemovedFeatures
from .lattice_keep import BOTH_PASSES, LatticePeaks
from .line_jumps import LineJump, find_line_jumps, take_off_line_jumps
from .normalise import Normalisation, denormalise, levelling_of, normalise, normalise_passes
from .publish import MIN_LATTICE_ROWS, publish
from .registration import two_pass_input
from .scanfiles import canonical_pass
from .tiles import tile_starts
from .trust import Thresholds, Verdict
from .z_creep import MIN_ROWS as CREEP_MIN_ROWS
from .z_creep import Creep, find_creep, left_in, within_factor
from .z_creep import record as z_creep_record

TILE = 384
OVERLAP = 128
"""Tiles of 384 with 128 pixels of overlap, where the rows are aligned: a scan up to 384 x 384 is denoised whole,
and tiles of larger ones agree with a whole-frame pass to 0.018-0.033 of the removed noise's rms (``rt-plane``:
simulated 640 and 768 pixels, the real 512 x 512 ``createc_scan_atomic_11nm``; tests/test_denoise.py); 512-pixel
tiles to 0.008-0.009, 256-pixel tiles with 48 of overlap to 0.035-0.093. A 384-pixel tile takes about 0.16 GB of
ONNX Runtime's working memory, a 512-pixel one 0.34 GB: with 512 the bridge's soak missed its 600 MB budget
(``docs/reliability.md``)."""
PLANE_TILE = 144
PLANE_OVERLAP = 16
"""A plane-levelled network whose scan's rows are not aligned sees the scan about as it saw its training
patches (128 pixels): 144-pixel tiles, each with its own plane removed. Whole 256 x 256 frames cost it 3 to
4.5 dB on quiet and foreign-noise scans (``docs/model.md``): its squeeze-and-excitation layers pool over the
whole input. 144 with 16 of overlap covers 256 pixels in 2 x 2 tiles (31 ms a frame on the 2-core CPU,
against 23 whole), within 0.3 to 0.6 dB of 128-pixel tiles, which take 3 x 3."""


SEAM_SMOOTHING = 32.0
"""Gaussian sigma, in pixels, of the level a tile is matched to its neighbours with (``run_tiled``)."""


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


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


def run_batch(tiles: list[np.ndarray], backend: Backend, own_plane: bool = False) -> list[np.ndarray]:
    """The network's output (2-D) for each of ``tiles`` (normalised arrays of one shape, 2-D, or (passes, H, W) for a
    two-pass model), in one call to the back end.

    Each is padded by reflection to the back end's size multiple; ``own_plane``: each goes in with its own best-fit
    plane (its first pass's, the trace's, taken off every pass alike) taken off, put back afterwards.
    """
    h, w = tiles[0].shape[-2:]
    m = backend.size_multiple
    stacks = [t.reshape(-1, h, w) for t in tiles]
    planes = [fit_plane(t[0]) if own_plane else 0.0 for t in stacks]
    pad = ((0, 0), (0, _round_up(h, m) - h), (0, _round_up(w, m) - w))
    batch = np.stack([np.pad((t - p).astype(np.float32), pad, mode="reflect") for t, p in zip(stacks, planes)])
    out = backend.denoise(batch)[:, 0, :h, :w]
    return [o + p for o, p in zip(out, planes)]


def run_padded(x: np.ndarray, backend: Backend) -> np.ndarray:
    """Run one 2-D normalised array through the back end, padding to its size multiple."""
    return run_batch([x], backend)[0]


def run_levelled(x: np.ndarray, backend: Backend) -> np.ndarray:
    """``run_padded`` on ``x`` with its own best-fit plane taken off and put back afterwards."""
    return run_batch([x], backend, own_plane=True)[0]


def _level_step(new: np.ndarray, old: np.ndarray, axis: int) -> np.ndarray:
    """How far ``new`` sits above ``old`` where two tiles overlap: the median over ``axis`` of their
    difference, smoothed along the other (a feature on the boundary or the few shared pixels' noise must not
    streak the whole tile)."""
    return ndimage.gaussian_filter1d(np.median(new - old, axis=axis), SEAM_SMOOTHING, mode="nearest")


BATCH_PIXELS = TILE * TILE
"""Tiles go through the back end together (``run_tiled``), as many as its ``max_batch`` and up to this many pixels a
call: no more memory than one tile of ``TILE`` pixels takes."""


def _tile_outputs(x: np.ndarray, starts: list[tuple[int, int]], tile: int, backend: Backend, own_plane: bool) -> Iterator[np.ndarray]:
    """The network's output for the tiles of ``x`` at ``starts``, in order, in batches (``BATCH_PIXELS``). Every
    tile has one shape: ``tiles.tile_starts`` keeps the last tile of a row or column whole."""
    per_call = max(1, min(getattr(backend, "max_batch", 1), BATCH_PIXELS // (tile * tile)))
    for i in range(0, len(starts), per_call):
        tiles = [x[..., r : r + tile, c : c + tile] for r, c in starts[i : i + per_call]]
        yield from run_batch(tiles, backend, own_plane)


def run_tiled(x: np.ndarray, backend: Backend, tile: int = TILE, overlap: int = OVERLAP, own_plane: bool = False) -> np.ndarray:
    """The network's output (2-D) for a normalised scan of any size (2-D, or (passes, H, W)), in bounded memory.

    Tiles go to the back end in batches (``BATCH_PIXELS``). ``own_plane``: each tile goes in with its own best-fit
    plane removed, and its
    output's level is matched to the tiles before it where they overlap (smoothed over ``SEAM_SMOOTHING``
    pixels): tiles levelled each on its own otherwise meet in visible seams, a block pattern over the scan.
    """
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return run_batch([x], backend, own_plane)[0]
    total = np.zeros((h, w))
    weight = np.zeros((h, 1))
    rows, cols = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    outputs = _tile_outputs(x, [(r, c) for r in rows for c in cols], tile, backend, own_plane)
    for r in rows:
        ph = min(tile, h - r)
        band, band_weight = np.zeros((ph, w)), np.zeros(w)
        for c in cols:
            out = next(outputs)
            pw = out.shape[1]
            shared = band_weight[c : c + pw] > 0
            shared[: overlap // 4] = False  # this tile's own edge, where its padding shows (``_ramp``)
            if own_plane and shared.any():  # each row's level matched to the tiles left of it
                left = band[:, c : c + pw][:, shared] / band_weight[c : c + pw][shared]
                out = out - _level_step(out[:, shared], left, axis=1)[:, None]
            wx = _ramp(pw, overlap, c == cols[0], c == cols[-1])
            band[:, c : c + pw] += out * wx
            band_weight[c : c + pw] += wx
        band /= band_weight
        shared = weight[r : r + ph, 0] > 0
        shared[: overlap // 4] = False
        if own_plane and shared.any():  # each column's level matched to the bands of rows above
            band -= _level_step(band[shared], total[r : r + ph][shared] / weight[r : r + ph][shared], axis=0)[None, :]
        wy = _ramp(ph, overlap, r == rows[0], r == rows[-1])[:, None]
        total[r : r + ph] += band * wy
        weight[r : r + ph] += wy
    return total / weight


def run_network(x: np.ndarray, norm: Normalisation, backend: Backend, tile: int = TILE) -> np.ndarray:
    """The network's output for a scan ``normalise`` prepared: rows aligned, whole (in ``tile``-pixel
    tiles); rows not aligned, in ``PLANE_TILE``-pixel tiles each with its own plane."""
    if norm.rows_aligned:
        return run_tiled(x, backend, tile)
    return run_tiled(x, backend, PLANE_TILE, PLANE_OVERLAP, own_plane=True)


def denoise_array(scan: np.ndarray, backend: Backend, tile: int = TILE) -> np.ndarray:
    """Denoised float32 copy of a 2-D scan, in the scan's units and shape, by a one-pass model."""
    one_pass_only(backend, "denoising one image")
    x, norm = normalise(scan, levelling_of(backend))
    return denormalise(run_network(x, norm, backend, tile), norm)


@dataclass(frozen=True, kw_only=True)
class GuardedResult:
    """What ``maed denoise`` publishes for one scan: the image, where it fell back, and why."""

    data: np.ndarray
    """float32 in the scan's units and shape; unmeasured rows NaN."""
    fallback: np.ndarray
    """Per pixel, the conservative result's weight (0: the network's output, 1: the conservative one)."""
    verdict: Verdict
    features: RemovedFeatures
    """Compact features given back to the network's output (``maed.feature_keep``)."""
    lattice: LatticePeaks | None = None
    """Lattice peaks given back to the network's output (``maed.lattice_keep``); None: too few rows to look."""
    lattice_windows: int = 0
    """Windows where a lattice over part of the scan, shown by both passes, was given back."""
    defects_beside: int = 0
    """Point defects whose surroundings were given back after the guard (``maed.feature_keep.keep_defect_surroundings``)."""
    defects_deepened: int = 0
    """Point defects whose depth was given back after the guard (``maed.feature_keep.keep_defect_depths``)."""
    spikes: int = 0
    """Pixels taken for spikes, which nothing after the network gives back (``maed.spikes``)."""
    creep: Creep | None = None
    """The creep of z taken off the published frame (``maed.z_creep``); None: none was found."""
    line_jumps: tuple[LineJump, ...] = ()
    """Jumps of whole lines (tip changes) the published frame kept, taken off the scan before the network
    (``maed.line_jumps``), rows of the scan."""
    passes_frame: str | None = None
    """A two-pass model's frame (``maed.registration.TwoPassInput``): ``midway``, where the tip really was, or
    ``trace``, the trace's as recorded; None for a one-pass model (the scan's own frame)."""
    rows_aligned: bool = False
    """Whether the rows were aligned before the network (``maed.normalise.level_rows``: line offsets dominate the
    scan, or the model's levelling always aligns them): the rows' slow profile across the frame is then the
    network's and the alignment's, not the scan's as measured, as a drift of the tip height that the offsets hide."""

    def upside_down(self) -> GuardedResult:
        """The result of the scan turned upside down (its rows in the other order), as it was found in the scan."""
        rows = self.data.shape[0]
        creep = self.creep and replace(
            self.creep, relaxation=self.creep.relaxation[::-1].copy(), from_row="last" if self.creep.from_row == "first" else "first"
        )
        return replace(
            self,
            data=self.data[::-1].copy(),
            fallback=self.fallback[::-1].copy(),
            lattice=self.lattice and self.lattice.upside_down(),
            creep=creep,
            line_jumps=tuple(replace(jump, start=rows - jump.stop, stop=rows - jump.start) for jump in self.line_jumps),
        )

    def lattice_record(self) -> dict:
        """The ``lattice`` entry of ``<stem>.json``."""
        if self.lattice is None:
            return {"checked": False, "why": f"fewer than {MIN_LATTICE_ROWS} rows measured in full"}
        record = {"checked": True, "evidence": self.lattice.evidence, "peaks_given_back": self.lattice.peaks}
        if self.lattice.evidence == BOTH_PASSES:  # windows are sought with the other pass only
            record["windows_given_back"] = self.lattice_windows
        else:
            record["removed_unconfirmed"] = [pattern.as_dict() for pattern in self.lattice.unconfirmed]
        return record

    def features_record(self) -> dict:
        """The ``features`` entry of ``<stem>.json``: compact features the network removed and got back."""
        return {
            "given_back": self.features.features,
            "share": round(self.features.share, 4),
            "defects_beside_given_back": self.defects_beside,
            "defect_depths_given_back": self.defects_deepened,
            "spike_pixels": self.spikes,
        }

    def creep_record(self) -> dict:
        """The ``z_creep`` entry of ``<stem>.json``."""
        return z_creep_record(self.creep)

    def line_jumps_record(self) -> list[dict]:
        """The ``line_jumps`` entry of ``<stem>.json``: each jump of whole lines taken off."""
        return [jump.as_dict() for jump in self.line_jumps]


BOTH = "both"
"""``--pass both``: the trace and the retrace into a two-pass model (``passes_of``), one frame out."""


def passes_of(backend: Backend) -> int:
    """How many passes of a scan the back end's model takes: 1, or 2 (both passes, ``maed.registration.two_pass_input``)."""
    return getattr(backend, "passes", 1)


def one_pass_only(backend: Backend, where: str) -> Backend:
    """``backend`` if its model takes one pass, else a one-line error naming ``where`` (what runs one-pass models)."""
    if passes_of(backend) != 1:
        raise ValueError(
            f"model {backend.model} takes both passes (trace and retrace); {where} runs one-pass models (maed denoise --pass both runs it)"
        )
    return backend


def check_pass(backend: Backend, pass_: str) -> str:
    """``pass_`` (``trace``, ``retrace``, their vendors' words, or ``both``) as the back end's model can take it,
    else a clear error: a two-pass model takes ``both`` and only that."""
    pass_ = pass_ if pass_ == BOTH else canonical_pass(pass_)
    if passes_of(backend) == 2 and pass_ != BOTH:
        raise ValueError(f"model {backend.model} takes both passes (trace and retrace): give --pass both")
    if passes_of(backend) == 1 and pass_ == BOTH:
        raise ValueError(f"--pass both needs a two-pass model (rt-both); {backend.model} takes one pass")
    return pass_


def _passes_judged(scan: np.ndarray, other_pass: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """The scans whose line offsets decide whether the rows of ``scan`` (its measured rows) are aligned: it and the
    other pass's measured rows where that has ``MIN_LATTICE_ROWS`` of them (``maed.normalise.level_rows``: both passes of
    a scan are levelled alike); ``scan`` alone otherwise."""
    if other_pass is None:
        return ()
    other = np.asarray(other_pass)[np.isfinite(other_pass).all(axis=1)]
    return (scan, other) if len(other) >= MIN_LATTICE_ROWS else ()


CREEP_LEFT = 0.15
"""Share of a creep of z found in the raw scan that its published frame must still hold, where no creep is found in
that frame, for the scan to be denoised again with the creep taken off first (``denoise_guarded``). Measured with
``rt-plane`` (2026-12-05) on the blind simulator's two draws of 72 scans: the raw scan shows a creep on 15; on 5 the
published frame shows it too and it is taken off there (0.97 to 1.06 of it left); on 6 the network had taken it off
with the line offsets (-0.10 to 0.02 left: denoised again, they lost up to 2.7 dB); on 4 a part is left and the
frame's bow no longer fits a relaxation (0.20 to 0.39 left: denoised again +0.1 to +11.5 dB)."""


CREEP_PASSES_FACTOR = 2.0
"""Where a scan has both passes, the other pass's raw creep must lie within this factor of this pass's (same sign)
for the creep to be taken off first. On the real scans one pass's raw scan shows a relaxation its other pass does not
(``example_FFT``'s trace, 86 pm over 97 rows: a bow of the surface, not of time), and taking it off the trace alone
worsened its whiteness (0.052 -> 0.059) and left the passes levelled unalike."""


def denoise_guarded(
    scan: np.ndarray,
    backend: Backend,
    tile: int = TILE,
    limits: Thresholds = Thresholds(),
    other_pass: np.ndarray | None = None,
    ratio: float = 1.0,
    scanned_up: bool = False,
    retrace: bool | None = None,
) -> GuardedResult:
    """The network's denoised scan where it passes the trust guard, the conservative result where not, with what
    the network took and should not have given back first (``maed.publish``): ``denoise_once``. One-pass models
    only: where that frame keeps jumps of whole lines that the raw scan makes at one moment of the tip
    (``maed.line_jumps``), the scan is denoised again with them taken off first; where it finds no creep of z in its
    frame but the raw scan shows one, part of which the frame still holds (``CREEP_LEFT``: the network or the rows'
    alignment took its steep start off and left its tail, which no longer fits a relaxation), the scan is denoised
    again with the creep taken off first (where there is an ``other_pass``, it must show the creep too:
    ``CREEP_PASSES_FACTOR``). ``scanned_up``: the scan's last row was scanned first; it is denoised in the order its
    rows were scanned (turned over, and its result turned back: ``GuardedResult.upside_down``), as the live bridge
    denoises it. ``retrace``: whether ``scan`` is a retrace, its lines scanned from the right (None: not known), which
    gives the order a tip change splits a line in (``find_line_jumps``)."""
    if scanned_up:
        # The network learned scans in the order their rows were taken, and the live bridge hands it an up scan's rows
        # so: a file of the same scan is denoised in that order too, and its result equals the live final frame.
        turned = None if other_pass is None else np.asarray(other_pass)[::-1]
        return denoise_guarded(np.asarray(scan)[::-1], backend, tile, limits, turned, ratio, retrace=retrace).upside_down()
    result = denoise_once(scan, backend, tile, limits, other_pass, ratio)
    if passes_of(backend) == 2:
        return result
    measured = np.isfinite(scan).all(axis=1)
    raw = np.asarray(scan, dtype=np.float64)
    jumps: tuple[LineJump, ...] = ()
    found = find_line_jumps(result.data[measured], raw[measured], _other_rows(other_pass, scan, measured), retrace)
    if found:
        raw = raw.copy()
        raw[measured], taken = take_off_line_jumps(raw[measured], found)
        jumps = tuple(_in_scan_rows(jump, measured) for jump in taken)
        result = replace(denoise_once(raw, backend, tile, limits, other_pass, ratio), line_jumps=jumps)
    if result.creep is not None or measured.sum() < CREEP_MIN_ROWS:  # no creep is sought there, and no plane fitted to no rows
        return result
    early = find_creep(level_plane(raw[measured]))
    if early is None or left_in(result.data[measured], early) < CREEP_LEFT or not _other_pass_creeps(other_pass, early):
        return result
    first = raw.copy()
    first[measured] -= early.profile[:, None]
    again = denoise_once(first, backend, tile, limits, other_pass, ratio, creep_first=replace(early, before_network=True))
    return replace(again, line_jumps=jumps)


def _other_pass_creeps(other_pass: np.ndarray | None, creep: Creep) -> bool:
    """Whether the scan's other pass (None: there is none) shows ``creep`` too, within ``CREEP_PASSES_FACTOR``: the
    z piezo relaxes in time, and the passes of a line are recorded one after the other."""
    if other_pass is None:
        return True
    other = np.asarray(other_pass, dtype=np.float64)
    other = other[np.isfinite(other).all(axis=1)]
    if len(other) < CREEP_MIN_ROWS:
        return True
    found = find_creep(level_plane(other))
    return found is not None and bool(within_factor(found.amplitude, creep.amplitude, CREEP_PASSES_FACTOR))


def denoise_once(
    scan: np.ndarray,
    backend: Backend,
    tile: int = TILE,
    limits: Thresholds = Thresholds(),
    other_pass: np.ndarray | None = None,
    ratio: float = 1.0,
    creep_first: Creep | None = None,
) -> GuardedResult:
    """The network's denoised scan where it passes the trust guard, the conservative result where not, with what
    the network took and should not have given back first (``maed.publish``).

    Rows not measured in full (NaN) stay NaN; the measured rows are denoised together, as one image, so a scan
    stopped early is denoised exactly as if it had been a smaller scan. ``other_pass`` (the scan's other pass, same
    shape and orientation) confirms lattice peaks over the rows both passes measured, and the rows are aligned before
    the network where the line offsets dominate either pass (``maed.normalise.level_rows``). A two-pass model
    (``passes_of``) takes ``scan`` as the trace and ``other_pass`` as the retrace (``ratio``: the retrace's speed over
    the trace's), over the rows both measured, both moved to where the tip really was where the registration is sure
    of it (``maed.registration.two_pass_input``; the published frame is then in that frame, ``passes_frame``); the
    guard judges its output against the frame its correction was added to.
    The creep of z at the start of the frame (its first row scanned first), where the published frame shows one, is
    taken off last (``maed.z_creep``); ``creep_first``: a creep taken off
    ``scan`` already, recorded as the one taken off, and none sought after.
    """
    two_pass = passes_of(backend) == 2
    if two_pass and np.shape(other_pass) != np.shape(scan):
        raise ValueError(
            f"a two-pass model needs the scan's retrace of the trace's shape {np.shape(scan)}, "
            f"got {None if other_pass is None else np.shape(other_pass)}"
        )
    measured = np.isfinite(scan).all(axis=1)
    if two_pass:
        measured &= np.isfinite(other_pass).all(axis=1)
    data = np.full(scan.shape, np.nan, dtype=np.float32)
    fallback = np.zeros(scan.shape, dtype=np.float32)
    passes_frame = None
    if two_pass:
        both = two_pass_input(scan[measured], other_pass[measured], ratio)
        judged = (scan[measured], other_pass[measured])
        passes_in, norm = normalise_passes(both.first, both.second, levelling_of(backend), judged_on=judged)
        x, y, passes_frame = passes_in[0], run_network(passes_in, norm, backend, tile), both.frame
    else:
        x, norm = normalise(scan[measured], levelling_of(backend), judged_on=_passes_judged(scan[measured], other_pass))
        y = run_network(x, norm, backend, tile)
    other, other_rows = None, None
    both = measured & np.isfinite(other_pass).all(axis=1) if np.shape(other_pass) == scan.shape else None
    if both is not None and both.sum() >= MIN_LATTICE_ROWS:  # else one pass's evidence (maed.publish)
        # Levelled as ``x`` is (its rows aligned where either pass's offsets dominate): the guard's conservative result
        # judges the rows of both passes together (``maed.trust.conservative_rows``).
        other = normalise(other_pass[both], levelling_of(backend), rows_aligned=norm.rows_aligned)[0]
        other_rows = both[measured]
    result = publish(x, y, rows_aligned=norm.rows_aligned, limits=limits, other=other, other_rows=other_rows)
    published = denormalise(result.image, norm)
    if creep_first is None:
        creep = find_creep(published)
        data[measured] = published if creep is None else published - creep.profile[:, None]
    else:
        creep, data[measured] = creep_first, published
    fallback[measured] = result.weight
    return GuardedResult(
        data=data,
        fallback=fallback,
        verdict=result.verdict,
        lattice=result.lattice,
        lattice_windows=result.lattice_windows,
        features=result.features,
        defects_beside=result.defects_beside,
        defects_deepened=result.defects_deepened,
        spikes=result.spikes,
        creep=creep,
        passes_frame=passes_frame,
        rows_aligned=norm.rows_aligned,
    )


def _in_scan_rows(jump: LineJump, measured: np.ndarray) -> LineJump:
    """``jump`` (rows counted over the measured rows) in the scan's rows."""
    rows = np.flatnonzero(measured)
    return replace(jump, start=int(rows[jump.start]), stop=int(rows[jump.stop - 1]) + 1)


def _other_rows(other_pass: np.ndarray | None, scan: np.ndarray, measured: np.ndarray) -> np.ndarray | None:
    """The other pass's ``measured`` rows (NaN where it has not measured them) where it has the scan's shape: it tells
    a surface's edges from the tip's moments (``maed.line_jumps``); else None."""
    if other_pass is None or np.shape(other_pass) != np.shape(scan):
        return None
    return np.asarray(other_pass, dtype=np.float64)[measured]

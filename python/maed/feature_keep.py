"""Compact features the network removed (pits, adatoms, a molecule's edge), given back from the scan itself.

A network trained to minimise the mean error learns to smooth what it cannot tell from noise: a
small pit loses depth, an adsorbate its height, and the mean error barely notices (a few hundred
pixels of a frame). The residual (levelled input minus output) shows it: removed noise is
featureless, removed structure is a blob that stands far above the noise once the residual is
smoothed to the blob's size. Where it does, the residual is given back, lightly smoothed
(``LIGHT_SIGMA``, as the conservative result smooths), so that the output there is what the
classical pipeline would show: the feature at its measured depth, with the noise of a 1-pixel
Gaussian around it.

Not every blob in the residual is a feature. Line noise (scars, streak segments, a tip that
jumps for part of a line) is the common impostor, and the network is right to remove it: it
lives on one row or two, along the fast axis. A feature is therefore given back only where

- the residual smoothed over ``s`` pixels (at each of ``SCALES``) stands ``THRESHOLD`` times above
  its own robust spread (1.4826 MAD over the frame, so removed noise of any colour sets the scale);
- the residual smoothed along the rows alone stands out too (``ROW_THRESHOLD``, same sign) on at
  least ``MIN_ROWS`` consecutive rows: a scar smoothed across rows is spread over its neighbours,
  but only its own row holds it;
- the blob, taken where it still stands out at all (``EXTENT_THRESHOLD``), is no longer along the rows
  than ``MAX_ASPECT`` times its height: a long blob along the rows is a scar of several lines (a tip
  that changed and changed back) or the rest of a line's offset.

A large, shallow feature under heavy line streaks escapes that search: the streaks the network rightly
removed set the residual's spread along the rows. So, second, the scan's point defects are sought as
``maed eval --real`` seeks them (the most isolated extrema of the input with its rows aligned the standard way
through the light Gaussian, ``maed.noreference.find_defects``), and where the output keeps less than
``DEFECT_DEPTH_KEPT`` of a compact one's depth (3x3 mean less its ring's median), the residual is given back over
its disc. Third, on what is published after the trust guard, a defect kept
shallower than the light Gaussian keeps it (the classical pipeline: a denoiser must not keep less of a defect than
a 1-pixel Gaussian) gets its depth given back, smoothed to its size (``keep_defect_depths``).

Where the scan has both passes, a compact feature the network removed that the other pass shows at the same place
is given back whatever its rows and shape among the streaks (``confirmed_features``): the other pass is the
evidence that one pass's tests stand in for. On the real ``createc_scan_close_100nm`` it gives back four of the six
pits a cold-eyes reading found erased, to their depth (the other two stand 4.1 and 4.9 spreads out of the residual,
under the bar), and nothing the other pass lacks (2026-12-07); on this simulator's two-pass scans (40 at 128
pixels, 24 at 256 with every family and noise up to 1.6 times the training ranges) it fired on 3 and moved the PSNR by
0 to +0.24 dB.

Measured on simulated scans under noise the simulator never draws (``benchmarks/foreign_noise.py``'s
kinds) and on this simulator's families, 256 x 256, 8 scans each: +0.0 to +1.3 dB mean, and no scan
more than 0.03 dB worse; on the real test scans the depth kept of the pit of ``createc_scan_atomic_11nm``
went from 0.81 to 0.94 and of the depression of ``createc_scan_molecular_30nm_pos`` from 0.75 to 0.92
(model card).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from .classical import PIPELINES, align_rows, robust_spread
from .noreference import ANNULUS, DEFECT_RADIUS, changes_beside, defect_depth, find_defects, match_rows, removed_rms
from .normalise import ROW_ALIGNMENT
from .registration import band_shift

SCALES = (1.0, 2.0, 4.0)
"""Gaussian widths (pixels) at which the residual is searched for blobs: point defects to small islands."""
THRESHOLD = 5.0
"""A blob's smoothed residual over its robust spread: 5 leaves white noise about one false pixel per 3 million."""
ROW_THRESHOLD = 2.5
"""The same along the rows alone, on each of ``MIN_ROWS`` consecutive rows."""
MIN_ROWS = 3
"""Rows a feature spans at least: a spike on a line or two is line noise (a longer scar is told by its length,
``MAX_ASPECT``). With 3, about one pure-noise frame of 256 x 256 in 80 gives a blob back; with 4, none, but
pits of three rows go."""
EXTENT_THRESHOLD = 2.0
"""Where a blob still stands out (its residual smoothed along the rows over their spread): its extent, and what is
given back."""
MAX_ASPECT = 3.0
"""A blob at most this many times longer along the rows than across them."""
DEFECT_SIGMAS = (1.0, 0.7, 0.5)
"""Gaussians (pixels, times the defect's scale) of the residual given back over a point defect published shallower
than the light Gaussian keeps it, the smoothest first (``keep_defect_depths``). Lighter ones (0.35, and the raw
residual) brought back the streaks over a large molecule's centre as a visible patch, and the raw residual over a
large disc cost up to 1.4 dB on the blind simulator (a defect of noise's, or one whose feedback smear the network had
undone)."""
DEFECT_SIGMA_FLOOR = 0.7
"""The lightest Gaussian (pixels) of the residual given back over a point defect: a little lighter than the
classical pipeline's, so that a small defect comes back at least as deep as that pipeline keeps it."""
DEPTH_MARGIN = 0.01
"""A defect published shallower than the light Gaussian keeps it is given back this share of its depth beyond that:
another classical pipeline (another row alignment, another edge mode) keeps a little more. Only a defect below the
bar is given back: a margin in that test too gave back the streaks over a large molecule that kept its depth within
1 % of the Gaussian's (``Au_mica``)."""
SMOOTH_SIGMA = 4.0
"""Gaussian (pixels) of the residual's smooth part given back around point defects (``maed.trust.SMOOTH_SIGMA``'s
width: it keeps 0.5 % of white noise's power)."""
LIGHT_SIGMA = 1.0
"""Gaussian (pixels) of the residual given back: the conservative result's on a noisy scan (``maed.trust``)."""
PRECISION = 1e-6
"""A residual (line offsets off) this small against the input is rounding: a network that removed nothing."""
DEFECT_DEPTH_KEPT = 0.9
"""A point defect whose depth the output keeps less of than this share of the input's is given back."""
CHANGE_BESIDE_LIMIT = 2.0
"""A point defect whose surroundings the output changed by more than this many times the rms it removed (largest
3x3 mean of the residual over the defect's ring, ``maed.noreference.change_beside``) is given back with them:
removed noise alone puts 1 to 1.7 there (white to correlated along the rows), more is a shoulder flattened, an edge
redrawn or a halo drawn beside the defect. The bar of ``maed eval --real``'s defect criterion: at 1.5, this simulator's
adsorbates lost 0.8 dB (its noise, coloured along the rows, reaches 1.5 beside them), at 2 they lose 0.1."""
LIGHT_SURROUNDINGS_SCALE = 2.8
"""The largest defect scale (``maed.noreference.SCALES``) whose surroundings come back smoothed as the classical
pipeline smooths where smoothing to the defect's size left them changed beyond ``CHANGE_BESIDE_LIMIT``: out to 39
pixels. A larger defect's surroundings are most of a 256-pixel frame, and giving them back so would publish the
classical pipeline's frame there (``Au_mica``: change beside 4.5 -> 2.4, still beyond 2, the network's frame gone)."""
DEFECTS_GUARDED = 10
"""Point defects looked at, the most isolated first: more than ``maed eval --real`` judges (3), as what the product
calls a scan's third defect need not be the evaluation's."""
SCALE_STEP = 1.4
"""A defect's size is known to one step of ``maed.noreference.SCALES``: what is given back beside it reaches the
ring of the next scale up in full, and fades out over as much again."""
CONFIRMED_SCALES = (1.0, 1.5)
"""Gaussian widths (pixels) at which the residual is searched for features the other pass confirms
(``confirmed_features``): pits and adatoms of a few pixels."""
CONFIRMED_THRESHOLD = 5.0
"""A confirmed feature's smoothed residual over its robust spread: well above the noise, but under ``THRESHOLD``'s
rows and shape tests (a pit of 2 to 3 rows in heavy line noise)."""
PASS_THRESHOLD = 5.0
"""The feature's band-passed height (``_band_passed``) over its robust spread, within ``CONFIRM_REACH`` of the blob,
in the pass itself and in the other pass moved onto it."""
CONFIRM_REACH = 2
"""Pixels: how far from the blob the passes' feature may lie (the passes' shift is one figure for the frame; the
feedback lag and drift move a feature a pixel or two more)."""
CONFIRMED_SIZE = 8.0
"""A confirmed feature spans at most this many pixels (times the scale) each way where it stands above half its
height: a step edge, which both passes show too, is a ridge far longer."""
MIN_FEATURE_ROWS = 16
"""Rows before a residual is searched: fewer give no robust spread at the widest scale."""


@lru_cache(maxsize=32)
def _edge_gain(length: int, scale: float) -> np.ndarray:
    """Per position, how much more a Gaussian of ``scale`` (reflected at the edges) keeps of independent noise
    than in the middle: near an edge it averages mirrored copies of fewer pixels."""
    reach = int(4.0 * scale + 0.5)  # gaussian_filter1d's radius at its default truncation
    if length > 4 * reach + 3:
        # Only the positions within the kernel's reach of an edge differ from the middle: those are taken from a short
        # frame (a long thin scan's length x length matrix took gigabytes).
        short, ends = _edge_gain(4 * reach + 3, scale), 2 * reach + 1
        gain = np.ones(length)
        gain[:ends], gain[-ends:] = short[:ends], short[-ends:]
        return gain
    weights = ndimage.gaussian_filter1d(np.eye(length), scale, axis=1, mode="reflect")
    spread = np.sqrt((weights**2).sum(axis=0))
    return spread / spread[length // 2]


def _compact_regions(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """The connected regions of ``weak`` that hold a pixel of ``strong`` and are compact (``MAX_ASPECT``)."""
    labels, count = ndimage.label(weak)
    if not count:
        return weak
    seeded = np.zeros(count + 1, dtype=bool)
    seeded[np.unique(labels[strong & weak])] = True
    extents = np.array([[s[0].stop - s[0].start, s[1].stop - s[1].start] for s in ndimage.find_objects(labels)], float)
    seeded[1:] &= extents[:, 1] <= MAX_ASPECT * extents[:, 0]
    seeded[0] = False
    return seeded[labels]


def _blobs(residual: np.ndarray, scale: float) -> np.ndarray:
    """Pixels of the residual's compact blobs at one scale (see the module docstring)."""
    # Each divided by its noise gain at the edges, so one spread holds for the whole frame.
    along = _edge_gain(residual.shape[1], scale)[None, :]
    smooth = ndimage.gaussian_filter(residual, scale, mode="reflect") / (along * _edge_gain(residual.shape[0], scale)[:, None])
    along_rows = ndimage.gaussian_filter1d(residual, scale, axis=1, mode="reflect") / along
    spread, row_spread = robust_spread(smooth), robust_spread(along_rows)
    if spread == 0 or row_spread == 0:
        return np.zeros(residual.shape, dtype=bool)
    rows = np.ones((MIN_ROWS, 1), dtype=bool)
    blobs = np.zeros(residual.shape, dtype=bool)
    for sign in (1, -1):
        spans_rows = ndimage.binary_opening(sign * along_rows > ROW_THRESHOLD * row_spread, rows)
        # A blob's extent is judged where each of its rows still stands out at all: a band's strongest stretch
        # can look compact, and smoothing across rows would make a scar look taller than it is.
        blobs |= _compact_regions(sign * along_rows > EXTENT_THRESHOLD * row_spread, (sign * smooth > THRESHOLD * spread) & spans_rows)
    return blobs


def _residual(levelled_input: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``levelled_input - output`` with each row's median off: line offsets are noise every levelling removes on
    purpose, never a feature."""
    residual = np.asarray(levelled_input, dtype=np.float64) - np.asarray(output, dtype=np.float64)
    residual -= np.median(residual, axis=1, keepdims=True)
    return residual


def _searchable(residual: np.ndarray, levelled_input: np.ndarray) -> bool:
    """Whether a residual can be searched: rows enough for the widest scale's spread, and more than rounding (a
    network that removed nothing)."""
    return residual.shape[0] >= MIN_FEATURE_ROWS and robust_spread(residual) > PRECISION * np.std(levelled_input)


@dataclass(frozen=True)
class RemovedFeatures:
    """Where the network removed compact features, as a weight per pixel (0: keep the output, 1: give back)."""

    weight: np.ndarray
    features: int
    """Blobs found, over all scales (one feature found at two scales counts twice), and point defects given back."""
    surroundings: np.ndarray
    """Per pixel, the weight of the residual's smooth part given back around point defects."""

    @property
    def share(self) -> float:
        """The share of the frame given back (weights summed)."""
        return float(self.weight.mean()) if self.weight.size else 0.0

    def give_back(self, levelled_input: np.ndarray, output: np.ndarray) -> np.ndarray:
        """``output`` with the lightly smoothed residual added where the features are, and the residual's smooth part
        around point defects."""
        output = np.asarray(output, dtype=np.float64)
        around = self.surroundings.any()
        if not self.features and not around:
            return output
        residual = _residual(levelled_input, output)
        given = self.weight * ndimage.gaussian_filter(residual, LIGHT_SIGMA, mode="reflect")
        if around:
            # A smooth change beside a defect (a halo the network drew, a shoulder it flattened) is structure, not
            # the line noise it rightly removed there, which the smoothing averages away across rows.
            given += (1 - self.weight) * self.surroundings * ndimage.gaussian_filter(residual, SMOOTH_SIGMA, mode="reflect")
        return output + given


def _compact_at(reference: np.ndarray, defect: dict) -> bool:
    """Whether the defect, where it stands above half its depth, is no longer along the rows than ``MAX_ASPECT``
    times its height: an isolated extremum can be a scar, a stretch of a line or two."""
    r, c = defect["row"], defect["col"]
    depth = defect_depth(reference, defect)
    above = np.sign(depth) * (reference - (reference[r, c] - depth)) > 0.5 * abs(depth)
    labels, _ = ndimage.label(above)
    if not labels[r, c]:
        return True
    rows, cols = ndimage.find_objects(labels)[labels[r, c] - 1]
    return cols.stop - cols.start <= MAX_ASPECT * (rows.stop - rows.start)


@dataclass(frozen=True)
class StandardFrame:
    """The frame in which point defects are found and their depth judged, as ``maed eval --real`` judges them: the
    input with its rows aligned the standard way (``normalise.ROW_ALIGNMENT``), whatever the network did with them,
    and the classical pipeline's output with its rows matched to that (``light``)."""

    aligned: np.ndarray
    light: np.ndarray


def standard_frame(levelled_input: np.ndarray) -> StandardFrame:
    """The ``StandardFrame`` of a levelled input: computed once per frame, it serves ``point_defects`` and
    ``keep_defect_depths`` alike. Its light Gaussian is the classical pipeline itself (plane, each row's median, a
    Gaussian of 1 pixel), its rows matched to the aligned input, as ``maed eval --real`` finds and judges defects:
    the Gaussian of the input aligned by the median of row differences, which it was before, put a wide molecule's
    extremum 16 pixels from the evaluation's on ``createc_scan_molecular_30nm_pos``, and its depth was kept there."""
    x = np.asarray(levelled_input, dtype=np.float64)
    aligned = align_rows(x, ROW_ALIGNMENT)
    return StandardFrame(aligned, match_rows(aligned, PIPELINES["level+gauss"](x)))


def point_defects(levelled_input: np.ndarray, standard: StandardFrame | None = None) -> list[dict]:
    """The scan's compact point defects: the most isolated extrema of the input with its rows aligned the standard way
    through the light Gaussian (the classical pipeline's output, in which ``maed eval --real`` finds them;
    ``maed.noreference.find_defects``, up to ``DEFECTS_GUARDED``), scars left out (``_compact_at``). They depend on the
    scan alone: found once, they serve ``removed_features`` and ``keep_defect_surroundings`` alike. ``standard``: the
    input's ``standard_frame``, where already made."""
    standard = standard_frame(levelled_input) if standard is None else standard
    reference = standard.light
    found = find_defects(reference, removed_rms(standard.aligned - reference), count=DEFECTS_GUARDED)
    compact = [defect for defect in found if _compact_at(reference, defect)]
    if not compact:
        return []
    along = ndimage.gaussian_filter1d(standard.aligned, 1.0, axis=1, mode="reflect")  # once for every defect
    return [defect for defect in compact if not _on_one_row(along, defect)]


ONE_ROW_SHARE = 0.25
"""A defect stands on one row only where both rows beside its extremum's hold less than this share of its height
there: a scar leaves the lines beside it at the level (3 to 8 % on the cases measured), while an adsorbate's own
rows beside its brightest one hold a good part of it (about 40 % on ``createc_scan_molecular_30nm_pos``'s molecule,
whose brightest row is a streak the tip dragged through it)."""
ROW_NOISE_MARGIN = 3.0
"""A defect is judged to stand on one row only where that row stands this many times the profile's row-to-row noise
above its level: where rows scatter as much (line offsets left after aligning), one row's excess says nothing."""


def _on_one_row(along: np.ndarray, defect: dict) -> bool:
    """Whether a defect stands above ``ONE_ROW_SHARE`` of its height on one row only of ``along``, the aligned input
    smoothed along the rows alone (averaged over the columns of the smallest scale's square at it), and that row
    clearly above the rows' own scatter: a stretch of one line where the tip jumped, a scar, which the light
    Gaussian spreads over three rows and ``_compact_at`` can take for compact where the stretch is short. Given back
    as a defect, its residual came back spread over the rows around it: on ``20201111--4_1.Z_mtrx`` a one-line
    streak of 187 pm became a bar of three rows (+42, +75, +36 pm) that neither pass shows. A pit or an adatom spans
    two rows or more."""
    r, c = defect["row"], defect["col"]
    # The columns of the smallest scale's square at the extremum: a wider band would average in what lies beside a
    # large defect (a streak the tip dragged from a molecule, which is the brightest row there).
    half = DEFECT_RADIUS
    level = along[r - 1 : r + 2, c - 1 : c + 2].mean() - defect_depth(along, defect)  # the ring's median
    sign = 1.0 if defect["kind"] == "bright" else -1.0
    profile = sign * (along[:, max(c - half, 0) : c + half + 1].mean(axis=1) - level)
    neighbours = profile[max(r - 1, 0) : r + 2]
    nearby = profile[max(r - 4 * half, 0) : r + 4 * half + 1]
    scatter = robust_spread(np.diff(nearby)) / np.sqrt(2)
    return int((neighbours > ONE_ROW_SHARE * profile[r]).sum()) < 2 and profile[r] > ROW_NOISE_MARGIN * scatter


def _disc(shape: tuple[int, int], defect: dict, radius: float) -> np.ndarray:
    """The pixels within ``radius`` of a defect's centre."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - defect["row"]) ** 2 + (cols - defect["col"]) ** 2 <= radius**2


def _taper(shape: tuple[int, int], defect: dict, radius: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """1 within ``radius`` of the defect, falling as a raised cosine to 0 at ``SCALE_STEP`` times it: what is given
    back beside a defect fades out, so it leaves no edge. Returned over the box that holds it, with the box."""
    reach = int(np.ceil(SCALE_STEP * radius))
    r0, r1 = max(0, defect["row"] - reach), min(shape[0], defect["row"] + reach + 1)
    c0, c1 = max(0, defect["col"] - reach), min(shape[1], defect["col"] + reach + 1)
    rows, cols = np.ogrid[r0:r1, c0:c1]
    distance = np.sqrt((rows - defect["row"]) ** 2 + (cols - defect["col"]) ** 2)
    t = np.clip((distance - radius) / ((SCALE_STEP - 1) * radius), 0, 1)
    return (slice(r0, r1), slice(c0, c1)), 0.5 * (1 + np.cos(np.pi * t))


def keep_defect_surroundings(levelled_input: np.ndarray, output: np.ndarray, defects: list[dict] | None = None) -> tuple[np.ndarray, int]:
    """``output`` given back the residual around each point defect whose surroundings it changed by more than
    ``CHANGE_BESIDE_LIMIT`` times the rms it removed, out to the ring of the next scale up and fading beyond;
    and how many such defects there were. The residual comes back smoothed to the defect's size (a Gaussian of
    ``LIGHT_SIGMA`` times its scale): beside a pit of a few pixels its rim, beside a large one its shoulder, not
    the noise or a fine lattice the network took off around it, which a disc of raw texture would show as a seam.
    Where that still leaves the change beyond the limit (a spot smaller than the defect, ``example_LineProfile2``'s
    first adsorbate: 3.0 -> 1.1), the surroundings of defects up to ``LIGHT_SURROUNDINGS_SCALE`` come back smoothed by
    ``LIGHT_SIGMA`` alone, as the classical pipeline smooths.

    What lies next to a defect is what a scientist measures the defect against. Run on what is published, after
    the trust guard: a large surrounding given back before it would hide from the guard a network that drew bands
    on the rest of the scan."""
    levelled_input = np.asarray(levelled_input, dtype=np.float64)
    output = np.asarray(output, dtype=np.float64)
    residual = _residual(levelled_input, output)
    if not _searchable(residual, levelled_input):
        return output, 0
    limit = CHANGE_BESIDE_LIMIT * removed_rms(residual)
    defects = point_defects(levelled_input) if defects is None else defects
    changed = [d for d, change in zip(defects, changes_beside(residual, defects)) if change > limit]
    if not changed:
        return output, 0
    # Where the surroundings of defects of two sizes meet, the nearer defect's (the larger weight) is given back.
    weight, size = np.zeros(residual.shape), np.zeros(residual.shape)
    for defect in changed:
        box, taper = _taper(residual.shape, defect, ANNULUS[1] * defect["scale"] * SCALE_STEP)
        nearer = taper > weight[box]
        weight[box][nearer], size[box][nearer] = taper[nearer], defect["scale"]
    given = np.zeros(residual.shape)
    for scale in {d["scale"] for d in changed}:
        smoothed = ndimage.gaussian_filter(residual, LIGHT_SIGMA * scale, mode="reflect")
        given += np.where(size == scale, weight, 0.0) * smoothed
    # Where that still leaves a change beyond the limit (a spot smaller than the defect), the residual comes back
    # smoothed as the classical pipeline smooths, over those defects' surroundings alone.
    kept = _residual(levelled_input, output + given)
    limit = CHANGE_BESIDE_LIMIT * removed_rms(kept)
    still = [
        d for d, change in zip(changed, changes_beside(kept, changed)) if change > limit and 1 < d["scale"] <= LIGHT_SURROUNDINGS_SCALE
    ]
    if still:
        light = ndimage.gaussian_filter(residual, LIGHT_SIGMA, mode="reflect")
        for defect in still:
            box, taper = _taper(residual.shape, defect, ANNULUS[1] * defect["scale"] * SCALE_STEP)
            given[box] = given[box] + taper * (light[box] - given[box])
    return output + given, len(changed)


def keep_defect_depths(
    levelled_input: np.ndarray, output: np.ndarray, defects: list[dict], standard: StandardFrame | None = None
) -> tuple[np.ndarray, int]:
    """``output`` given back the residual over each point defect it keeps shallower than the light Gaussian keeps it
    (the classical pipeline's smoothing: a denoiser must not keep less of a defect than a 1-pixel Gaussian does), and
    how many such defects there were. Run on what is published, after the trust guard: its blend and the lattice
    given back there can take some depth too.

    Over the defect's disc, fading out beyond it (``_taper``), the residual comes back smoothed by the first of
    ``DEFECT_SIGMAS`` (times the defect's scale, at least ``DEFECT_SIGMA_FLOOR``) that brings the defect ``DEPTH_MARGIN``
    beyond that depth, else by the first that brings it to that depth: smoothed to the defect's size, what comes back
    is the defect, not the line noise the network rightly removed over it. Last, over the defect's centre alone (the
    disc of scale 1, ``DEFECT_RADIUS`` pixels) smoothed by ``DEFECT_SIGMA_FLOOR``: a wide defect with a sharp bottom
    whose bottom the network rounded (``createc_scan_atomic_11nm``'s pit, 0.93 of its depth kept against the
    Gaussian's 0.95), which no smoothing to the defect's size brings back. Where none does, nothing is given back: a
    smooth give-back that stops short leaves a visible patch around the defect (a helper shown the figures saw one
    around a molecule of ``createc_scan_molecular_30nm_pos``) and not the depth. ``standard``: the input's
    ``standard_frame``, where already made."""
    levelled_input = np.asarray(levelled_input, dtype=np.float64)
    output = np.asarray(output, dtype=np.float64)
    if not defects:
        return output, 0
    residual = _residual(levelled_input, output)
    if not _searchable(residual, levelled_input):
        return output, 0
    standard = standard_frame(levelled_input) if standard is None else standard
    aligned = standard.aligned
    light = standard.light
    matched = match_rows(aligned, output)
    smoothed: dict[float, np.ndarray] = {}  # the residual through each Gaussian, once: defects share scales
    weight, given, deepened = np.zeros(output.shape), np.zeros(output.shape), 0
    for defect in defects:
        bar = max(DEFECT_DEPTH_KEPT, min(_kept(aligned, light, defect), 1.0))
        if _kept(aligned, matched, defect) >= bar:
            continue
        # Over the defect's disc, smoothed to its size, smoothest first; last, its centre alone, lightly smoothed.
        rungs = [(max(f * defect["scale"], DEFECT_SIGMA_FLOOR), DEFECT_RADIUS * defect["scale"]) for f in DEFECT_SIGMAS]
        rungs.append((DEFECT_SIGMA_FLOOR, DEFECT_RADIUS))
        back = None
        for sigma, radius in rungs:
            if sigma not in smoothed:
                smoothed[sigma] = ndimage.gaussian_filter(residual, sigma, mode="reflect")
            box, taper = _taper(output.shape, defect, radius)
            trial = taper * smoothed[sigma][box]
            kept = _kept_with(aligned, output, box, trial, defect)
            if kept >= bar and back is None:
                back = (box, taper, trial)
            if kept >= bar + DEPTH_MARGIN:
                back = (box, taper, trial)
                break
        if back is None:
            continue  # a give-back that cannot restore the depth would only leave a patch where it tried
        deepened += 1
        # Where two defects' tapers meet, the nearer defect's (the larger weight) is given back.
        box, taper, trial = back
        nearer = taper > weight[box]
        weight[box][nearer], given[box][nearer] = taper[nearer], trial[nearer]
    return output + given, deepened


def _kept_with(aligned: np.ndarray, output: np.ndarray, box: tuple[slice, slice], back: np.ndarray, defect: dict) -> float:
    """``_kept`` of ``output`` with ``back`` added over ``box``."""
    trial = output.copy()
    trial[box] += back
    return _kept(aligned, match_rows(aligned, trial), defect)


def _kept(aligned: np.ndarray, matched: np.ndarray, defect: dict) -> float:
    """The share of a defect's depth (3x3 mean less its ring's median) that an output keeps, its row offsets matched
    to the input with its rows aligned the standard way (``matched``: ``noreference.match_rows(aligned, output)``):
    the offsets a network takes out are line noise, and a large defect's depth must not hide in them."""
    return defect_depth(matched, defect) / defect_depth(aligned, defect)


def _defect_areas(levelled_input: np.ndarray, output: np.ndarray, defects: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The scan's compact point defects (``point_defects``) whose depth the output lost (it keeps less than
    ``DEFECT_DEPTH_KEPT`` of the input's: 3x3 mean less the ring's median): their discs, and their surroundings out
    to their ring (``ANNULUS``), where a network that flattened the defect often drew a halo."""
    shallow = np.zeros(levelled_input.shape, dtype=bool)
    around = np.zeros(levelled_input.shape, dtype=bool)
    for defect in defects:
        if defect_depth(output, defect) / defect_depth(levelled_input, defect) < DEFECT_DEPTH_KEPT:
            shallow |= _disc(shallow.shape, defect, DEFECT_RADIUS * defect["scale"])
            around |= _disc(around.shape, defect, ANNULUS[1] * defect["scale"])
    return shallow, around


def _band_passed(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` (each row's median off: line offsets are no feature) through a difference of Gaussians of ``scale``
    and three times it: a feature of about that size stands out of its surroundings."""
    image = image - np.median(image, axis=1, keepdims=True)
    return ndimage.gaussian_filter(image, scale, mode="reflect") - ndimage.gaussian_filter(image, 3 * scale, mode="reflect")


def _compact_feature(band: np.ndarray, peak: tuple[int, int], scale: float) -> np.ndarray | None:
    """The pixels of the feature of ``band`` (one sign, positive) nearest ``peak`` where it stands above half its
    height, where they span at most ``CONFIRMED_SIZE`` x ``scale`` pixels each way and are no longer along the rows
    than ``MAX_ASPECT`` times across them; None where they do not."""
    window = tuple(slice(max(p - CONFIRM_REACH, 0), p + CONFIRM_REACH + 1) for p in peak)
    r, c = np.unravel_index(np.argmax(band[window]), band[window].shape)
    top = (window[0].start + r, window[1].start + c)
    labels, _ = ndimage.label(band > 0.5 * band[top])
    rows, cols = ndimage.find_objects(labels)[labels[top] - 1]
    height, width = rows.stop - rows.start, cols.stop - cols.start
    if max(height, width) > CONFIRMED_SIZE * scale or width > MAX_ASPECT * height:
        return None
    return labels == labels[top]


def _beyond_near(img: np.ndarray, sign: int, reach: int, bar: float) -> np.ndarray:
    """Pixels within ``reach`` (a square's side) of one where ``sign * img`` exceeds ``bar``."""
    if sign > 0:
        return ndimage.maximum_filter(img, reach) > bar
    return ndimage.minimum_filter(img, reach) < -bar


def confirmed_features(residual: np.ndarray, levelled_input: np.ndarray, other: np.ndarray, other_rows: np.ndarray) -> np.ndarray:
    """Pixels of compact features the network removed that the scan's other pass shows at the same place.

    A pit of two or three rows under heavy line noise escapes ``_blobs`` (its rows and its shape among the streaks),
    and its depth over its ring's spread stays under the point defects' bar: on the real
    ``createc_scan_close_100nm`` the network took six such pits (-17 to -26 pm) down to a few pm, and the step-edge
    adsorbate of ``createc_scan_step_20nm`` to 0.22 of its height (a cold-eyes reading, 2026-12-07). Line noise
    cannot pass for one here: it is recorded at another moment in each pass, so it does not sit at the same place in
    both. A blob of the residual (``CONFIRMED_THRESHOLD``, at ``CONFIRMED_SCALES``) is a feature where the input and
    the other pass, moved onto it by their shift along the rows (``registration.band_shift``), both hold a compact
    feature of the same sign near it (``PASS_THRESHOLD``, ``CONFIRM_REACH``, ``_compact_feature``) spanning two rows
    or more in the input (``_one_row``: a tip that jumped for part of one line, the other pass jumping on that line
    too but elsewhere, was given back as a dash on the real ``createc_scan_close_100nm``, row 92, a second cold-eyes
    reading found).
    ``other``: the other pass levelled alike, over the rows ``other_rows`` (a mask over the input's rows)."""
    x = np.asarray(levelled_input, dtype=np.float64)
    every_row = bool(other_rows.all())
    shift = band_shift(x if every_row else x[other_rows], other, max_shift=x.shape[1] / 8)
    moved = ndimage.shift(np.asarray(other, dtype=np.float64), (0, -shift), order=1, mode="nearest")
    if not every_row:
        full = np.zeros_like(x)
        full[other_rows] = moved
        moved = full
    found = np.zeros(x.shape, dtype=bool)
    reach = 2 * CONFIRM_REACH + 1
    along = None  # figured at the first candidate: most frames have none
    for scale in CONFIRMED_SCALES:
        smooth = ndimage.gaussian_filter(residual, scale, mode="reflect")
        spread = robust_spread(smooth)
        own, theirs = _band_passed(x, scale), _band_passed(moved, scale)
        own_spread, their_spread = robust_spread(own), robust_spread(theirs[other_rows])
        if min(spread, own_spread, their_spread) == 0:
            continue
        for sign in (1, -1):
            # Each sign's extremes without a negated copy of the frame (negation is exact: the same pixels, the same order).
            labels, count = ndimage.label(smooth > CONFIRMED_THRESHOLD * spread if sign > 0 else smooth < -CONFIRMED_THRESHOLD * spread)
            near_own = _beyond_near(own, sign, reach, PASS_THRESHOLD * own_spread)
            near_theirs = _beyond_near(theirs, sign, reach, PASS_THRESHOLD * their_spread)
            extreme_position = ndimage.maximum_position if sign > 0 else ndimage.minimum_position
            for i, peak in enumerate(extreme_position(smooth, labels, range(1, count + 1)), start=1):
                peak = tuple(int(p) for p in peak)
                if not (other_rows[peak[0]] and near_own[peak] and near_theirs[peak]):
                    continue
                feature = _compact_feature(sign * own, peak, scale)
                if feature is None or _compact_feature(sign * theirs, peak, scale) is None:
                    continue
                if along is None:
                    along = ndimage.gaussian_filter1d(x - np.median(x, axis=1, keepdims=True), 1.0, axis=1, mode="reflect")
                if _one_row(sign * along, feature):
                    continue
                # The feature's own pixels and a pixel or two: the residual's blob can run on into a streak the
                # network rightly removed beside it, along the same rows, which must stay off.
                margin = int(np.ceil(scale))
                found |= ndimage.binary_dilation(feature, iterations=margin) & ndimage.binary_dilation(labels == i, iterations=margin)
    return found


def _one_row(along: np.ndarray, feature: np.ndarray) -> bool:
    """Whether the feature (its pixels in ``feature``) stands above half its height on one row only of ``along`` (the
    input smoothed along the rows alone, one sign, positive): a tip that jumped for part of a line, which the band-pass
    spreads over the rows around it. A pit or an adatom spans two rows or more."""
    top = np.unravel_index(np.argmax(np.where(feature, along, -np.inf)), along.shape)
    labels, _ = ndimage.label(along > 0.5 * along[top])
    rows = ndimage.find_objects(labels)[labels[top] - 1][0]
    return rows.stop - rows.start < 2


def removed_features(
    levelled_input: np.ndarray,
    output: np.ndarray,
    defects: list[dict] | None = None,
    other: np.ndarray | None = None,
    other_rows: np.ndarray | None = None,
) -> RemovedFeatures:
    """The compact features in the residual ``levelled_input - output`` (same shape, no NaN); ``defects``: the
    scan's ``point_defects``, where found already; ``other``: the scan's other pass levelled alike over the rows
    ``other_rows`` (a mask over the input's rows), whose features confirm smaller ones (``confirmed_features``)."""
    residual = _residual(levelled_input, output)
    if not _searchable(residual, levelled_input):
        return RemovedFeatures(np.zeros(residual.shape), 0, np.zeros(residual.shape))
    mask, count = np.zeros(residual.shape, dtype=bool), 0
    for scale in SCALES:
        blobs = _blobs(residual, scale)
        count += int(ndimage.label(blobs)[1])
        mask |= ndimage.binary_dilation(blobs, iterations=int(np.ceil(2 * scale)))
    if other is not None and other_rows is not None:
        confirmed = confirmed_features(residual, levelled_input, other, other_rows)
        count += int(ndimage.label(confirmed & ~mask)[1])
        mask |= confirmed
    levelled_input = np.asarray(levelled_input, dtype=np.float64)
    shallow, around = _defect_areas(
        levelled_input, np.asarray(output, dtype=np.float64), point_defects(levelled_input) if defects is None else defects
    )
    count += int(ndimage.label(shallow & ~mask)[1])
    mask |= shallow
    # Feathered so the give-back leaves no edge; full weight inside.
    weight = np.clip(1.5 * ndimage.gaussian_filter(mask.astype(float), 1.0, mode="reflect"), 0, 1)
    surroundings = np.clip(1.5 * ndimage.gaussian_filter(around.astype(float), SMOOTH_SIGMA, mode="reflect"), 0, 1)
    return RemovedFeatures(weight, count, surroundings)

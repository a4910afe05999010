"""Lattice peaks the network removed, given back from the scan itself where the other pass confirms them.

A network that damps or erases a lattice (softened atoms, a weaker superstructure) has taken
real, periodic structure into its residual. Periodic structure is what a Fourier peak is, and
the raw scan carries it with the noise of only a few bins, so the removed part can be given back
exactly: the residual's Fourier components in the bins around each lattice peak are added back
to the output, which then holds the input's lattice in full, with the network's denoising
everywhere else.

Periodic noise (mains pick-up, vibration) is a Fourier peak too, and must stay removed. Two kinds
of evidence tell them apart:

- **both passes** (``maed.noreference.classify_peaks``): a lattice peak sits at the same place in
  the trace's and the retrace's spectra, while pick-up in time lands elsewhere in a pass recorded
  the other way. The peaks that moved are kept too (``LatticePeaks.pickup``): the trust guard judges the residual
  across the rows without their bins (``maed.trust.guard_parts``), as pick-up taken off correlates it there.
- **a 2-D lattice in one pass**, where there is no other pass: among the peaks the network
  removed (the residual's), two that are not collinear and whose sum or difference is a removed
  peak too (G1, G2 and G1 +- G2) span a two-dimensional lattice; so do two of equal length at 60,
  90 or 120 degrees (a square lattice whose (1, 1) reflection is too weak to show). Pick-up is one
  time frequency and its harmonics, which the raster lays on one line of the spectrum (wrapped at
  its edge); two sources of it neither add to a third peak nor sit at a symmetry of each other.
  Peaks that are harmonics of one another on the wrapped spectral grid are therefore never taken
  as the two spanning vectors. A row lattice (peaks on one line through the centre), or an oblique
  lattice whose third peak is too weak, is left as the network made it: a single pass cannot tell
  it from pick-up (giving back every peak of one pass restores pick-up too, several dB worse on
  simulated scans). On the real scans of both passes (``rt-plane``, 2026-12-01), the one-pass rule
  takes peaks the two passes call pick-up on 2 of 25 (``A200518.231315.dat``, ``img_0071.sxm``);
  where a scan has both passes, their evidence is used instead. The strongest of the removed patterns left
  removed are named (``LatticePeaks.unconfirmed``: period and angle of their stripes; their bins in
  ``unconfirmed_mask``, without which the trust guard judges the residual's correlation across rows again,
  ``maed.trust.guard_parts``), so that ``maed denoise`` can say so: on this simulator's lattice family it is such
  row lattices (a row motif, or a lattice whose other reflections the noise hides) that pull the power kept to 0.70
  (2026-12-05: 5 of its 22 scans with a visible lattice keep 0.00 to 0.36 of it, each a pattern whose peaks lie on
  one line through the centre of the input's spectrum).

A lattice over part of a scan (a substrate's atoms around an island of molecules, a distorted domain) holds too
small a share of the whole scan's power to stand out in its spectrum. Where both passes are at hand,
``local_give_back`` looks again within half-overlapping windows of ``LOCAL_TILE`` pixels, and gives back there the
peaks both passes show that also span a 2-D lattice: a window sees few periods, and a pattern both passes share
(line-locked pick-up, a streak pattern) passes the passes' test alone. It costs 0.2 to 0.35 s per 256 x 256 frame
(2-core CPU), so it runs where a whole scan with both passes is published (``maed denoise``, the live scan's final
frame), not at the live guard's rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .classical import align_rows
from .lattice import MIN_RADIUS, Peaks, background_at, outside_centre, peaks_at, power_spectrum, significant_peaks
from .noreference import classify_peaks
from .normalise import ROW_ALIGNMENT
from .tiles import tile_starts

HALF_WIDTH = 2
"""Bins each side of a peak given back: a lattice between bins, drifting or creeping, spreads over them."""
CLOSING_BINS = 0.6
"""How far (bins) a removed peak's sub-bin centre may sit from G1 +- G2 and still close the triple. A lattice
closes to the centres' error (a tenth to a fifth of a bin each); among a dozen unrelated peaks a
looser rule is met by chance."""
MIN_SINE = np.sin(np.radians(15))
"""Two peaks this close to one line through the centre do not span two dimensions."""
POWER_SPREAD = 30.0
"""The three peaks of a triple lie within this factor in power. A strong pick-up peak and its weak sidebands a
lattice vector away (pick-up passed through a feedback loop that follows the lattice) close a triple too,
and giving the pick-up back costs far more than its sidebands are worth."""
CLOSING_CONTRAST = 3.0
"""Where no removed peak closes G1 +- G2, the input's 3x3 power there over its background's, to close it: a test
at one place, not a search, so a lower bar than a peak's (nine bins of noise pass it together about once in
50,000)."""
HARMONICS = 5
"""Two peaks p F and q F of one frequency F (p, q up to this) may be one pick-up source's harmonics."""
BOTH_PASSES = "both passes"
ONE_PASS = "a 2-D lattice in one pass"


def _symmetric_mask(shape: tuple[int, int], centred_peaks: np.ndarray) -> np.ndarray:
    """Bins within ``HALF_WIDTH`` of each peak and of its mirror image, in numpy's unshifted order, away from the
    centre."""
    rows, cols = shape
    mask = np.zeros(shape, dtype=bool)
    # Centred index i is frequency i - n // 2 (fftshift); unshifted, that frequency sits at (i - n // 2) % n.
    r = (centred_peaks[:, 0] - rows // 2) % rows
    c = (centred_peaks[:, 1] - cols // 2) % cols
    mask[r, c] = True
    mask[(-r) % rows, (-c) % cols] = True  # a real image's spectrum is symmetric: both halves or none
    size = 2 * HALF_WIDTH + 1
    mask = ndimage.binary_dilation(np.pad(mask, HALF_WIDTH, mode="wrap"), np.ones((size, size), bool))[
        HALF_WIDTH : HALF_WIDTH + rows, HALF_WIDTH : HALF_WIDTH + cols
    ]
    # Never the scan's overall shape (drift, bow: the bins near the centre), which a peak's neighbourhood
    # may reach and which holds far more power than any lattice. The column of zero frequency along x
    # stays: a lattice's rows (a hexagonal lattice's, seen along the slow axis) live there, beside the
    # line offsets, which a network levelling the rows itself takes for noise.
    fr, fc = np.fft.fftfreq(rows)[:, None] * rows, np.fft.fftfreq(cols)[None, :] * cols
    return mask & (np.hypot(fr, fc) >= MIN_RADIUS)


@dataclass(frozen=True)
class PeriodicPattern:
    """A periodic pattern of a scan, as a scientist reads stripes off the image (square pixels assumed)."""

    period_px: float
    """Distance between its stripes, in pixels."""
    angle_deg: float
    """Angle of its stripes from the fast-scan axis, -90 (exclusive) to 90 degrees, counter-clockwise as displayed
    (row 0 at the top): 0 for stripes along the scan lines, 90 for stripes across them."""
    share_of_removed: float
    """Its share of the power the network removed outside the spectrum's centre (``lattice.outside_centre``; the
    residual's, under the spectra's Hann window)."""

    @classmethod
    def at(cls, offset: np.ndarray, shape: tuple[int, int], share_of_removed: float) -> PeriodicPattern:
        """The pattern of a centred spectrum's peak ``offset`` bins (row, column; its sub-bin centre) from the centre."""
        ky, kx = np.asarray(offset, dtype=np.float64) / np.array(shape)  # cycles per pixel
        # Stripes run across their wave vector: along (x, y) = (ky, -kx), y counted downwards as the rows are.
        angle = (np.degrees(np.arctan2(kx, ky)) + 90) % 180 - 90
        return cls(float(1 / np.hypot(ky, kx)), float(angle), share_of_removed)

    def as_dict(self) -> dict:
        """As ``<stem>.json`` and ``meta.json`` hold it."""
        angle = round(self.angle_deg, 1)
        return {
            "period_px": round(self.period_px, 2),
            "angle_deg": angle + 180 if angle <= -90 else angle,
            "share_of_removed": round(self.share_of_removed, 3),
        }

    def upside_down(self) -> PeriodicPattern:
        """The pattern of the frame turned upside down (rows in the other order): its angle mirrored."""
        return PeriodicPattern(self.period_px, -self.angle_deg if self.angle_deg < 90 else self.angle_deg, self.share_of_removed)


NAMED_MOST = 3
"""The strongest removed patterns that one pass could not confirm, named in ``LatticePeaks.unconfirmed``."""
NAMED_SHARE = 0.02
"""Share of the power the network removed (outside the spectrum's centre) that such a pattern must carry to be named.
Measured with ``rt-plane`` (2026-12-05) on the traces of the 26 real scans, each alone: on 21 the network left such
patterns removed; the strongest carries 22.6 % on ``20201111--4_1`` (stripes of 3.5 px, 2 degrees from the scan
lines: its uploader's "strong horizontal streak noise"), 16 % on ``img_0071``, 5.5 % on ``example_TOPO`` and 1.9 %
or less on the other 18 (faint pick-up among the noise). On this simulator's lattice family the row lattices it
erased carry 1.3 to 12 % (4 of the 5 named)."""


@dataclass(frozen=True)
class LatticePeaks:
    """The Fourier bins of a scan's lattice peaks (confirmed by its other pass, or spanning a 2-D lattice in one), and
    with one pass the patterns it left removed."""

    mask: np.ndarray
    """Bins within ``HALF_WIDTH`` of each lattice peak and its mirror image, numpy's unshifted order."""
    peaks: int
    """Lattice peaks (a peak and its mirror image count as two)."""
    evidence: str
    """What told the peaks from pick-up: ``BOTH_PASSES`` or ``ONE_PASS``."""
    unconfirmed: tuple[PeriodicPattern, ...] = ()
    """With one pass: the strongest periodic patterns (``NAMED_MOST``) the network removed that span no 2-D
    lattice, left removed: pick-up, or a row lattice, which one pass cannot tell apart (the other pass can)."""
    unconfirmed_mask: np.ndarray | None = None
    """The bins of ``unconfirmed``'s peaks as ``mask`` holds a lattice's; None where none is named."""
    pickup: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    """With both passes: the frequencies (cycles per pixel along the rows' and the columns' axes, centred) of the
    input's peaks that the other pass shows moved (``noreference.classify_peaks``): pick-up in time, which the
    network should take off."""

    def upside_down(self) -> LatticePeaks:
        """The peaks of the frame turned upside down (rows in the other order): each frequency across the rows negated."""

        def turned(mask: np.ndarray) -> np.ndarray:
            return np.roll(mask[::-1], 1, axis=0)  # bin k to bin -k, numpy's unshifted order

        return replace(
            self,
            mask=turned(self.mask),
            unconfirmed=tuple(pattern.upside_down() for pattern in self.unconfirmed),
            unconfirmed_mask=None if self.unconfirmed_mask is None else turned(self.unconfirmed_mask),
            pickup=self.pickup * np.array([-1.0, 1.0]) if len(self.pickup) else self.pickup,
        )

    def pickup_mask(self, shape: tuple[int, int]) -> np.ndarray | None:
        """The bins of ``pickup`` in an image of ``shape`` (the passes may share fewer rows than the frame holds) as
        ``mask`` holds a lattice's; None where there is none."""
        if not len(self.pickup):
            return None
        return _symmetric_mask(shape, np.rint(self.pickup * np.array(shape)).astype(int) + np.array(shape) // 2)

    def give_back(self, levelled_input: np.ndarray, output: np.ndarray) -> np.ndarray:
        """``output`` with the input's Fourier components at the lattice bins in place of its own."""
        if not self.peaks:
            return np.asarray(output, dtype=np.float64)
        residual = np.asarray(levelled_input, dtype=np.float64) - output
        return output + np.fft.ifft2(np.fft.fft2(residual) * self.mask).real


def _wrapped(d: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bin offsets ``d`` brought into the spectrum's centred range, as the raster aliases a frequency."""
    n = np.array(shape)
    return (d + n // 2) % n - n // 2


def _harmonics(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per pair of rows of ``a`` and ``b``, whether they may be harmonics p F and q F of one frequency F:
    ``q a = p b`` on the wrapped grid for some coprime 0 < p, q <= ``HARMONICS``. The raster lays one time
    frequency's harmonics on lines that wrap at the spectrum's edge, so they need not look collinear. Multiples with a
    common factor g name no other pair (p F and q F are (p / g) and (q / g) times g F), and on the wrapped grid they
    only add chance matches: 5 a = 5 b holds wherever a - b is a fifth of the grid."""
    related = np.zeros(len(a), dtype=bool)
    for p in range(1, HARMONICS + 1):
        for q in range(1, HARMONICS + 1):
            if math.gcd(p, q) > 1:
                continue
            tolerance = 0.25 * (p + q)  # sub-bin centres, each good to a fraction of a bin, times the multiples
            for sign in (1, -1):
                related |= np.abs(_wrapped(q * a - sign * p * b, shape)).max(axis=1) <= tolerance
    return related


def _symmetric_pairs(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per pair, whether ``b`` is ``a`` turned by 60, 90 or 120 degrees (either way, to ``CLOSING_BINS``) in
    real-space frequency (square pixels): a square or hexagonal lattice's two first reflections."""
    n = np.array(shape, dtype=float)
    fa, fb = a / n, b / n
    found = np.zeros(len(a), dtype=bool)
    for degrees in (60, 90, 120):
        for sign in (1, -1):
            t = np.radians(sign * degrees)
            turned = np.stack([fa[:, 0] * np.cos(t) - fa[:, 1] * np.sin(t), fa[:, 0] * np.sin(t) + fa[:, 1] * np.cos(t)], axis=1)
            found |= np.abs((turned - fb) * n).max(axis=1) <= CLOSING_BINS
    return found


def _closes_on_row_axis(a: np.ndarray, b: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per pair, whether ``a + b`` or ``a - b`` (wrapped) lies within ``CLOSING_BINS`` of the spectrum's column of
    zero frequency along the rows, at least ``MIN_RADIUS`` from its centre: where a third peak cannot be sought, as
    the rows' alignment takes what a lattice holds there (a hexagonal lattice scanned along one of its rows has a
    reflection on that column)."""
    found = np.zeros(len(a), dtype=bool)
    for closing in (a + b, a - b):
        wrapped = _wrapped(closing, shape)
        found |= (np.abs(wrapped[:, 1]) <= CLOSING_BINS) & (np.abs(wrapped[:, 0]) >= MIN_RADIUS)
    return found


def _closing_in_input(closing: np.ndarray, pair_power: np.ndarray, input_spectrum: np.ndarray) -> np.ndarray:
    """Per closing vector (centred offsets), whether the input's own spectrum holds a peak there: its 3x3 power
    ``CLOSING_CONTRAST`` times the background's, and no more than ``POWER_SPREAD`` times the weaker of the pair's
    (``pair_power``: strong pick-up a lattice vector from its own sideband is no lattice). Returns the bins
    (centred positions), -1 where it does not."""
    shape = np.array(input_spectrum.shape)
    at = np.rint(_wrapped(closing, tuple(shape)) + shape // 2).astype(int) % shape
    offsets = np.arange(-1, 2)
    rows, cols = np.broadcast_arrays((at[:, 0, None, None] + offsets[:, None]) % shape[0], (at[:, 1, None, None] + offsets) % shape[1])
    power = input_spectrum[rows, cols].sum(axis=(1, 2))
    floor = background_at(input_spectrum, rows, cols).sum(axis=(1, 2))
    away = np.hypot(*(at - shape // 2).T) >= MIN_RADIUS
    found = (power > CLOSING_CONTRAST * floor) & (power <= POWER_SPREAD * pair_power) & away
    return np.where(found[:, None], at, -1)


def two_d_lattice(peaks: Peaks, shape: tuple[int, int], input_spectrum: np.ndarray | None = None, both_passes: bool = False) -> np.ndarray:
    """The ``peaks`` (their centred (row, column) bins) that close a triple G1, G2, G1 +- G2 of a 2-D lattice,
    with, where ``input_spectrum`` is given, the bins of closing peaks the input holds but the network left in
    place (a square lattice's weak (1, 1) reflection: G1 and G2 go, G1 + G2 stays, and is given back with them).
    ``both_passes``: the peaks are ones both passes show, and a pair whose third reflection would lie on the
    spectrum's column of zero frequency along the rows closes too (``_closes_on_row_axis``). Among one pass's removed
    peaks that rule took pick-up for a lattice: the blind simulator's atomic scans lost 0.08 dB on average."""
    offsets = peaks.centres - np.array(shape) // 2
    lattice = np.zeros(len(offsets), dtype=bool)
    # Every pair at once: a textured scan has hundreds of peaks, tens of thousands of pairs.
    first, second = np.triu_indices(len(offsets), k=1)
    a, b = offsets[first], offsets[second]
    sine = np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]) / (np.hypot(*a.T) * np.hypot(*b.T))
    spanning = sine >= MIN_SINE
    spanning[spanning] = ~_harmonics(a[spanning], b[spanning], shape)
    spanning &= np.maximum(peaks.power[first], peaks.power[second]) <= POWER_SPREAD * np.minimum(peaks.power[first], peaks.power[second])
    pairs, tree = np.flatnonzero(spanning), cKDTree(offsets)
    closed = np.zeros(len(first), dtype=bool)
    for closing in (a + b, a - b):
        for pair, near in zip(pairs, tree.query_ball_point(closing[pairs], CLOSING_BINS)):
            if not near:
                continue
            triple = [first[pair], second[pair], *near]
            power = peaks.power[triple]
            if power.max() <= POWER_SPREAD * power.min():
                lattice[triple] = True
                closed[pair] = True
    # A pair turned by a lattice's angle, as long as each other, is a square or hexagonal lattice without a third
    # peak: two pick-up sources land where the raster puts their time frequencies, not at a symmetry of each other.
    symmetric = _symmetric_pairs(a[pairs], b[pairs], shape)
    if both_passes:
        symmetric |= _closes_on_row_axis(a[pairs], b[pairs], shape)
    symmetric &= ~closed[pairs]
    lattice[first[pairs[symmetric]]] = lattice[second[pairs[symmetric]]] = True
    closed[pairs[symmetric]] = True
    extra = np.empty((0, 2), dtype=int)
    open_pairs = pairs[~closed[pairs]]
    if input_spectrum is not None and len(open_pairs):
        pair_power = np.minimum(peaks.power[first[open_pairs]], peaks.power[second[open_pairs]])
        # Both closings of every open pair in one call: the spectrum's background is found once for all of them.
        closings = np.concatenate([(a + b)[open_pairs], (a - b)[open_pairs]])
        at = _closing_in_input(closings, np.tile(pair_power, 2), input_spectrum)
        found = at[:, 0] >= 0
        pair = np.tile(open_pairs, 2)[found]
        lattice[first[pair]] = lattice[second[pair]] = True
        extra = at[found]
    return np.unique(np.vstack([peaks.positions[lattice], extra]), axis=0)


def lattice_peaks(
    levelled_input: np.ndarray,
    levelled_output: np.ndarray,
    levelled_other_pass: np.ndarray | None = None,
) -> LatticePeaks:
    """The lattice peaks among the input's: confirmed by the other pass where there is one, else a 2-D lattice
    among the peaks the network removed.

    ``levelled_other_pass``: the same rows of the other pass, in this pass's orientation (as the
    readers return a retrace); no registration is needed, as a shift does not move a peak. Peaks are
    sought with the line offsets off: an input that still has them (a network that levels the rows
    itself) holds their power along the spectrum's column of zero frequency along x, where it would
    hide a lattice's rows. On rows aligned already this changes nothing. The peaks found are given
    back from the input as it is (``LatticePeaks.give_back``).
    """
    x = align_rows(np.asarray(levelled_input, dtype=np.float64), ROW_ALIGNMENT)
    unconfirmed: tuple[PeriodicPattern, ...] = ()
    unconfirmed_mask = None
    pickup = np.zeros((0, 2))
    if levelled_other_pass is None:
        spectrum = power_spectrum(x - np.asarray(levelled_output, dtype=np.float64))
        removed = peaks_at(spectrum, significant_peaks(spectrum))
        lattice = two_d_lattice(removed, x.shape, power_spectrum(x))
        unconfirmed, named = _unconfirmed(removed, lattice, float(spectrum[outside_centre(x.shape)].sum()), x.shape)
        unconfirmed_mask = _symmetric_mask(x.shape, named) if len(named) else None
        evidence = ONE_PASS
    else:
        if np.shape(levelled_other_pass) != x.shape:
            raise ValueError(f"the other pass {np.shape(levelled_other_pass)} and this pass {x.shape} differ in shape")
        lattice, moving = classify_peaks(x, align_rows(np.asarray(levelled_other_pass, dtype=np.float64), ROW_ALIGNMENT))
        pickup = (moving - np.array(x.shape) // 2) / np.array(x.shape)
        evidence = BOTH_PASSES
    mask = _symmetric_mask(x.shape, lattice) if len(lattice) else np.zeros(x.shape, dtype=bool)
    return LatticePeaks(mask, len(lattice), evidence, unconfirmed, unconfirmed_mask, pickup)


def _unconfirmed(
    removed: Peaks, lattice: np.ndarray, removed_power: float, shape: tuple[int, int]
) -> tuple[tuple[PeriodicPattern, ...], np.ndarray]:
    """The strongest of the ``removed`` peaks (of a spectrum of ``removed_power`` outside its centre) that are not
    among the ``lattice`` ones and carry ``NAMED_SHARE`` of that power, one of each mirror pair; and their bins
    (centred positions)."""
    taken = {tuple(p) for p in lattice}
    offsets = removed.positions - np.array(shape) // 2
    mirrors = _wrapped(-offsets, shape)
    # A peak and its mirror image are one pattern, named once: the one that sorts after its mirror (a peak on an even
    # scan's Nyquist row has its mirror on that row too). A bin that is its own mirror holds the whole pattern's power.
    named = (offsets[:, 0] > mirrors[:, 0]) | ((offsets[:, 0] == mirrors[:, 0]) & (offsets[:, 1] >= mirrors[:, 1]))
    pair_power = np.where((offsets == mirrors).all(axis=1), 1, 2) * removed.power
    shares = pair_power / max(removed_power, np.finfo(float).tiny)
    left = [
        i for i in np.argsort(removed.power)[::-1] if named[i] and shares[i] >= NAMED_SHARE and tuple(removed.positions[i]) not in taken
    ]
    centres = removed.centres - np.array(shape) // 2
    named = left[:NAMED_MOST]
    return tuple(PeriodicPattern.at(centres[i], shape, float(shares[i])) for i in named), removed.positions[named]


LOCAL_TILE = 64
"""Side (pixels) of the windows in which ``local_give_back`` looks for a lattice that covers part of a scan only."""


FRAME_SUPPORT = 2.0
"""A window's lattice peak must show in the whole frame's spectrum of both passes too: there, at its frequency (the
strongest 3x3 bins within the window's bin), this many times the background's power. A test at a known place, not
a search: nine bins of noise pass it together about once in 200. A lattice over part of the frame passes it
(``example_FFT``'s substrate beside its island of molecules: 2.1 to 2.4 times); a broad bump of the noise's spectrum,
which a window's few bins show as a peak here and there, does not (``createc_scan_atomic_11nm``: 0.7 to 1.4, given
back in 6 windows of 64 pixels before, a pattern of 0.36 pm in squares where the rest of the frame held none). Not
every bump: a ring of the spectrum 4 bins wide (at 256 pixels) still passes in 3 to 12 windows of 6 noise frames (9
to 18 before); one 6 bins wide in 0 or 1 (1 to 5 before)."""


def _frame_spectra(*frames: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per frame, its centred power spectrum and each bin's 3x3 sum, as ``_frame_supports`` reads them: once a scan."""
    spectra = [power_spectrum(frame) for frame in frames]
    return tuple((spectrum, ndimage.uniform_filter(spectrum, size=3, mode="wrap") * 9) for spectrum in spectra)


def _frame_supports(lattice: np.ndarray, frame_spectra: tuple[tuple[np.ndarray, np.ndarray], ...]) -> np.ndarray:
    """Per window lattice peak (centred bins of a ``LOCAL_TILE`` window), whether every one of ``frame_spectra``
    (``_frame_spectra`` of whole frames) holds it ``FRAME_SUPPORT`` times above the background there."""
    supported = np.ones(len(lattice), dtype=bool)
    for spectrum, boxes in frame_spectra:
        shape = np.array(spectrum.shape)
        reach = np.ceil(shape / LOCAL_TILE / 2).astype(int)  # the window's bin, in the frame's bins
        for i, peak in enumerate(lattice):
            at = np.rint((np.asarray(peak) - LOCAL_TILE // 2) / LOCAL_TILE * shape).astype(int) + shape // 2
            rows = np.arange(at[0] - reach[0], at[0] + reach[0] + 1) % shape[0]
            cols = np.arange(at[1] - reach[1], at[1] + reach[1] + 1) % shape[1]
            near = boxes[np.ix_(rows, cols)]
            r, c = np.unravel_index(np.argmax(near), near.shape)
            box_rows = (rows[r] + np.arange(-1, 2)[:, None]) % shape[0]
            box_cols = (cols[c] + np.arange(-1, 2)[None, :]) % shape[1]
            box_rows, box_cols = np.broadcast_arrays(box_rows, box_cols)
            floor = background_at(spectrum, box_rows, box_cols).sum()
            supported[i] &= near[r, c] >= FRAME_SUPPORT * floor
    return supported


def local_give_back(levelled_input: np.ndarray, output: np.ndarray, levelled_other_pass: np.ndarray) -> tuple[np.ndarray, int]:
    """``output`` with the lattice peaks both passes show within windows of ``LOCAL_TILE`` pixels given back there,
    blended between overlapping windows; and in how many windows any were. A lattice on part of a scan (a substrate
    around an island of molecules) holds too little of the whole scan's power to stand out in its spectrum."""
    x = align_rows(np.asarray(levelled_input, dtype=np.float64), ROW_ALIGNMENT)
    other = align_rows(np.asarray(levelled_other_pass, dtype=np.float64), ROW_ALIGNMENT)
    output = np.asarray(output, dtype=np.float64)
    residual = np.asarray(levelled_input, dtype=np.float64) - output
    rows, cols = output.shape
    if min(rows, cols) < LOCAL_TILE:
        return output, 0
    hann = np.hanning(LOCAL_TILE + 2)[1:-1]  # no zero weight at a window's edge
    window = np.outer(hann, hann)
    frame_spectra = _frame_spectra(x, other)
    given, weight, windows = np.zeros(output.shape), np.zeros(output.shape), 0
    for r in tile_starts(rows, LOCAL_TILE, LOCAL_TILE // 2):
        for c in tile_starts(cols, LOCAL_TILE, LOCAL_TILE // 2):
            tile = np.s_[r : r + LOCAL_TILE, c : c + LOCAL_TILE]
            weight[tile] += window
            lattice, _ = classify_peaks(x[tile], other[tile])
            if len(lattice):
                # A window sees few periods, so a little pick-up can sit still in both passes by chance; a lattice
                # spans two dimensions as well.
                lattice = two_d_lattice(peaks_at(power_spectrum(x[tile]), lattice), (LOCAL_TILE, LOCAL_TILE), both_passes=True)
            supported = _frame_supports(lattice, frame_spectra) if len(lattice) else None
            if supported is not None and not supported.all():
                # What the frame supports must still span two dimensions on its own.
                lattice = two_d_lattice(peaks_at(power_spectrum(x[tile]), lattice[supported]), (LOCAL_TILE, LOCAL_TILE), both_passes=True)
            if not len(lattice):
                continue
            windows += 1
            mask = _symmetric_mask((LOCAL_TILE, LOCAL_TILE), lattice)
            given[tile] += window * np.fft.ifft2(np.fft.fft2(residual[tile]) * mask).real
    return output + given / np.maximum(weight, 1e-12), windows

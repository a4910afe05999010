"""What is published for a frame the network denoised: what it took and should not have, given back, then judged.

One chain, run on a whole scan by ``maed denoise`` (``maed.denoise.denoise_guarded``) and on the rows scanned so
far by the live bridge's guard (``bridge/streaming.judge``), so that the two cannot drift apart. In the frame the
network saw (levelled input ``x``, its output ``y``):

1. where the network levelled the rows itself, the scan's own row levels where it shows no line offsets, or their
   slow profile where the offsets are independent from line to line, and the surface's steps along the rows they
   hold (``maed.row_levels``);
2. the lattice peaks it removed (``maed.lattice_keep``): those the other pass confirms where it is at hand, else
   those spanning a 2-D lattice; with the other pass, also a 2-D lattice both passes show within windows of the
   scan (``local_give_back``: a lattice over part of it, too weak in the whole scan's spectrum);
3. the compact features it removed (``maed.feature_keep.removed_features``). From here on, what is given back is drawn
   from the input with its spikes taken off (``maed.spikes``: a pixel or three on one line that no tip can image,
   which the network rightly took off and a give-back would bring back as a point defect);
4. the trust guard (``maed.trust.guard_parts``): the smooth residual given back (its row levels too where step 1
   found no line offsets), or the conservative result over the whole frame or the failing blocks, told the periodic
   stripes the network took off that one pass cannot confirm (step 2 names them); the lattice peaks are given back
   once more to both;
5. the surroundings of point defects that what is published changed beyond noise
   (``maed.feature_keep.keep_defect_surroundings``), after the guard: given back before it, a large
   surrounding would hide from the guard a network that drew bands on the rest of the frame; then the depth of
   point defects that what is published keeps less of than a 1-pixel Gaussian would
   (``maed.feature_keep.keep_defect_depths``: the guard's blend and the lattice it gives back can take some).

numpy and scipy only: this runs on the acquisition side, live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .feature_keep import (
    RemovedFeatures,
    keep_defect_depths,
    keep_defect_surroundings,
    point_defects,
    removed_features,
    standard_frame,
)
from .lattice_keep import BOTH_PASSES, LatticePeaks, lattice_peaks, local_give_back
from .row_levels import keep_row_levels
from .spikes import spike_pixels, without_spikes
from .trust import Thresholds, Verdict, guard_parts

MIN_LATTICE_ROWS = 16
"""Rows (of one pass, or both passes share) before a spectrum is searched for lattice peaks: fewer give too
coarse a spectrum."""


@dataclass(frozen=True, kw_only=True)
class Published:
    """What ``publish`` decided for one frame, in the frame the network saw."""

    network: np.ndarray
    """The network's output with everything given back (row levels, lattice, features, smooth residual, defect
    surroundings)."""
    conservative: np.ndarray | None
    """The conservative result the guard blends in, with the lattice and the defect surroundings given back;
    None where the verdict trusts the network."""
    weight: np.ndarray
    """Per pixel, the conservative result's weight (0: ``network``, 1: ``conservative``)."""
    verdict: Verdict
    lattice: LatticePeaks | None
    """Lattice peaks given back; None: too few rows to look."""
    lattice_windows: int
    """Windows where a lattice both passes show over part of the scan was given back (``lattice_keep.local_give_back``)."""
    features: RemovedFeatures
    defects_beside: int
    """Point defects whose surroundings were given back."""
    defects_deepened: int
    """Point defects whose depth was given back after the guard."""
    spikes: int
    """Pixels taken for spikes (``maed.spikes``): what the give-backs and the guard drew from held the rows above
    and below there instead."""

    @property
    def image(self) -> np.ndarray:
        """What is published: ``network`` blended with ``conservative`` by ``weight``."""
        return _blend(self.network, self.conservative, self.weight)


def _blend(network: np.ndarray, conservative: np.ndarray | None, weight: np.ndarray) -> np.ndarray:
    return network if conservative is None else (1 - weight) * network + weight * conservative


def publish(
    x: np.ndarray,
    y: np.ndarray,
    *,
    rows_aligned: bool,
    limits: Thresholds = Thresholds(),
    other: np.ndarray | None = None,
    other_rows: np.ndarray | None = None,
) -> Published:
    """The chain of the module docstring on levelled input ``x`` and the network's output ``y`` (same shape, no NaN).

    ``rows_aligned``: whether the rows were aligned before the network (if not, it levelled them itself).
    ``other``: the other pass, levelled alike, over the rows ``other_rows`` (a mask over ``x``'s rows) both
    passes measured; its evidence is used where they are at least ``MIN_LATTICE_ROWS``.
    """
    x = np.asarray(x, dtype=np.float64)
    # The residual's row levels are offsets the alignment or the network took off, unless the scan shows none.
    y, row_offsets = (np.asarray(y, dtype=np.float64), True) if rows_aligned else keep_row_levels(x, y)
    lattice, rows, windows = None, slice(None), 0
    both_passes = other is not None and other_rows is not None and other_rows.sum() >= MIN_LATTICE_ROWS
    if both_passes:
        # A view where both passes measured every row (nearly always): each x[rows] of a mask is a frame-sized copy.
        rows = slice(None) if other_rows.all() else other_rows
        lattice = lattice_peaks(x[rows], y[rows], other)
    elif len(x) >= MIN_LATTICE_ROWS:
        lattice = lattice_peaks(x, y)
    if lattice is not None:
        y = y.copy()
        y[rows] = lattice.give_back(x[rows], y[rows])
        if lattice.evidence == BOTH_PASSES:
            y[rows], windows = local_give_back(x[rows], y[rows], other)
    spikes = spike_pixels(x)
    despiked = without_spikes(x, spikes)  # what the give-backs below draw from and are judged against
    standard = standard_frame(despiked)  # the frame point defects are found and judged in, once
    defects = point_defects(despiked, standard)
    features = removed_features(despiked, y, defects, other=other if both_passes else None, other_rows=other_rows)
    stripes = None
    if lattice is not None:
        stripes = lattice.pickup_mask(x.shape) if lattice.evidence == BOTH_PASSES else lattice.unconfirmed_mask
    network, weight, verdict, conservative = guard_parts(
        despiked, features.give_back(despiked, y), limits, stripes, row_offsets, other if both_passes else None
    )
    if lattice is not None:
        # Once more after what the features and the guard gave back (their lightly smoothed residual holds some of
        # the lattice's bins), and to the conservative result, whose Gaussian damps a fine lattice.
        network[rows] = lattice.give_back(x[rows], network[rows])
        if conservative is not None:
            conservative[rows] = lattice.give_back(x[rows], conservative[rows])
    blended = _blend(network, conservative, weight)
    kept, beside = keep_defect_surroundings(despiked, blended, defects)
    kept, deepened = keep_defect_depths(despiked, kept, defects, standard)
    if beside or deepened:
        given = kept - blended
        network = network + given
        conservative = None if conservative is None else conservative + given
    return Published(
        network=network,
        conservative=conservative,
        weight=weight,
        verdict=verdict,
        lattice=lattice,
        lattice_windows=windows,
        features=features,
        defects_beside=beside,
        defects_deepened=deepened,
        spikes=int(spikes.sum()),
    )

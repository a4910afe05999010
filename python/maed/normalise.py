"""Levelling and normalisation around the network, and its inverse.

The network sees a scan with its best-fit plane removed, scaled to zero mean and unit standard
deviation; its output is mapped back to the input's units by undoing the scale and adding the
plane back, so heights stay in metres (or whatever the input was in) and pixel-for-pixel
comparable to the raw scan. Line offsets are scan noise: they stay removed. Where the rows are aligned, the
surface's steps along the rows that the alignment took off with them (``line_offsets.surface_steps``) come back
with the plane: the network never sees them, so what it does with a scan does not change with them. On the blind
simulator (``benchmarks/blind_score.py``, 2026-12-03) that gained 28.06 -> 29.76 dB over its 72 scans (steps 32.89
-> 37.23, adatoms and waves 30.05 -> 34.45, mixed 26.96 -> 28.44, the other families unchanged), scans below the
raw one 12 -> 6.

Who removes the line offsets is a property of the weights, their **levelling**, recorded with
them (the checkpoint's ``levelling``, the ONNX file's ``maed.levelling``):

- ``plane+rows``: the rows are aligned by the median of their differences before the network
  (every model trained before the levelling was recorded). On a quiet scan that alignment does
  harm of its own: a lattice running along the fast axis turns into bands, and a row that a
  molecule or a terrace fills is shifted.
- ``plane``: the network takes the line offsets out itself, seeing the whole 2-D neighbourhood,
  except where they dominate the scan (``level_rows``): then its rows are aligned first as well.
  A network trained on plane-levelled input handles an aligned one as well as a ``plane+rows``
  network does, but with only the plane removed it loses up to 5 dB where the offsets' random walk
  is several times the surface's relief (``docs/model.md``); where it is not, aligning costs it 2
  to 4 dB on quiet scans. Training follows the same rule, so the network sees what it will get.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .classical import align_rows, fit_plane
from .line_offsets import keep_slow_profile, steps_aligned_away, strip_banding

PLANE_AND_ROWS = "plane+rows"
PLANE = "plane"
LEVELLINGS = (PLANE_AND_ROWS, PLANE)
ROW_ALIGNMENT = "median_diff"  # keeps slanted step edges, unlike plain row medians
"""How rows are aligned to judge whether line offsets dominate (``OFFSET_DOMINANCE``, measured with it), for the
conservative result (``maed.trust``) and to seek lattice peaks (``maed.lattice_keep``)."""
NETWORK_ALIGNMENT = "median_diff_lags"
"""How the rows handed to the network are aligned, where they are: against the rows 1, 2 and 4 before each, which does
not drift across the frame as each row aligned to the one before does (``classical.align_after``). Measured with
``rt-plane`` (twenty-first session, ``docs/model.md``): blind simulator 30.44 -> 30.49 and 29.13 -> 29.20 dB on two
draws, hand-built islands +1.5 to +1.8 dB; used also for the conservative result and the lattice peaks it gained
0.04 dB more on the blind simulator but turned a real scan's tie with the classical pipeline into a fail, so those
stay with ``ROW_ALIGNMENT``.
Whether to align at all is judged with ``ROW_ALIGNMENT``, as ``OFFSET_DOMINANCE`` was measured: blind scans near the
bar, with tip changes, flip either way with the alignment they are judged by, by 9 dB."""
OFFSET_DOMINANCE = 1.2
"""Line offsets dominate a plane-levelled scan when its standard deviation is this many times the
aligned scan's (aligned by ``ROW_ALIGNMENT``). Measured on rt-plane (``docs/model.md``): quiet and
foreign-noise scans sit at 0.6 to 1.1, where plane levelling wins; this simulator's heavy line noise at 1.3 to 5,
where aligning wins."""

OFFSETS_STRIP_BANDING = 1.25
"""The network's input is aligned only where no strip of columns (``line_offsets.STRIPS``) has its row medians spread
more than this many times what it was (``line_offsets.strip_banding``): offsets move every column of a line alike,
so where they dominate the scan, taking them off lowers that spread in every strip, and a strip whose spread rises
by a quarter has been given another strip's relief. The real ``STM_nanonis_generic_4_5`` (a terrace edge along the
rows over two thirds of its width, the offsets' spread 1.45 of the aligned scan's, no offsets between neighbouring
rows) measures 1.37 in both passes: its aligned input moved whole rows by up to 115 pm, and the published frame (the
guard's fallback on that input) lost most of the lower terrace's 170 pm step and drew a 113 pm plateau beside it (a
cold-eyes reading, 2026-12-07). The other real scans the offsets dominate measure 0.07 to 1.19 (``hopg_300k``);
the first blind simulator's draws 1 to 4 (288 scans): 30.09 -> 30.08 dB, no scan more below the classical pipeline
or raw. ``STRIP_BANDING`` (2) stays the bar of the conservative result, which aligns only where the rows agree
better for it too."""


@dataclass(frozen=True)
class Normalisation:
    """What was taken off a scan before the network, to be put back afterwards."""

    plane: np.ndarray
    centre: float
    scale: float
    rows_aligned: bool
    steps: np.ndarray
    """The surface's steps along the rows (a column: one level per row) that the row alignment took off with the
    offsets (``line_offsets.surface_steps``), given back after the network; zeros where the rows were not aligned.
    The network never sees them, so what it does with a scan cannot change with them."""


def levelling_of(backend: object) -> str:
    """The levelling a back end's weights were trained with; back ends that do not say align rows."""
    return getattr(backend, "levelling", PLANE_AND_ROWS)


def check_levelling(levelling: str) -> str:
    """``levelling`` if it is one this package knows, else a clear error."""
    if levelling not in LEVELLINGS:
        raise ValueError(f"unknown levelling {levelling!r}; known: {', '.join(LEVELLINGS)}")
    return levelling


def offsets_dominate(levelled: np.ndarray, dominance: float = OFFSET_DOMINANCE) -> bool:
    """Whether line offsets dominate a plane-levelled scan: its spread over the scan aligned by ``ROW_ALIGNMENT`` is
    above ``dominance``, and so is it over the scan with only what can be offsets taken off; and the alignment bands
    no strip of columns.

    The offsets must dominate as well where only what can be offsets is taken off (``line_offsets.keep_slow_profile``:
    with offsets independent from line to line, not the slow part): an island that fills most of its rows lowers
    the aligned scan's spread as strong offsets do, but aligning it draws it as a band, which the network then
    keeps (simulated islands with independent offsets, 2026-12-02). Nor may the alignment band any strip of columns
    (``line_offsets.strip_banding``, ``OFFSETS_STRIP_BANDING``): a feature or a terrace that fills part of its rows,
    beside flat ones, does that; offsets do not."""
    spread = float(levelled.std())
    judged = align_rows(levelled, ROW_ALIGNMENT)
    if not (spread > dominance * float(judged.std()) and spread > dominance * float(keep_slow_profile(levelled, judged).std())):
        return False
    return strip_banding(levelled, judged) <= OFFSETS_STRIP_BANDING


def level_rows(
    levelled: np.ndarray, levelling: str, dominance: float = OFFSET_DOMINANCE, judged_on: Sequence[np.ndarray] = ()
) -> tuple[np.ndarray, bool]:
    """A plane-levelled scan as ``levelling`` hands it to the network, and whether its rows were aligned (by
    ``NETWORK_ALIGNMENT``): always for ``plane+rows``; for ``plane`` where the line offsets dominate
    (``offsets_dominate``) any of ``judged_on``, plane-levelled scans of the same area (``levelled`` itself where
    empty): both passes of a scan are judged together, so that they are levelled alike."""
    if check_levelling(levelling) == PLANE_AND_ROWS:
        return align_rows(levelled, NETWORK_ALIGNMENT), True
    if any(offsets_dominate(judged, dominance) for judged in (judged_on or (levelled,))):
        return align_rows(levelled, NETWORK_ALIGNMENT), True
    return levelled, False


def normalise(
    image: np.ndarray, levelling: str = PLANE_AND_ROWS, judged_on: Sequence[np.ndarray] = (), rows_aligned: bool | None = None
) -> tuple[np.ndarray, Normalisation]:
    """Levelled (``levelling``), unit-variance float32 copy of ``image`` and how to undo it; whether the rows are
    aligned is judged on ``judged_on`` (scans of the same area, such as both passes: ``level_rows``; ``image`` itself
    where empty), unless ``rows_aligned`` says it already (another scan of the area levelled so, judged on both)."""
    image = np.asarray(image, dtype=np.float64)
    plane = fit_plane(image)
    levelled = image - plane
    if rows_aligned is None:
        judged = [np.asarray(j, dtype=np.float64) - fit_plane(j) for j in judged_on]
        network_input, rows_aligned = level_rows(levelled, levelling, judged_on=judged)
    else:
        network_input = align_rows(levelled, NETWORK_ALIGNMENT) if rows_aligned else levelled
    steps = np.zeros(len(image))
    if rows_aligned:
        steps = steps_aligned_away(levelled, network_input)
    centre = float(network_input.mean())
    scale = float(network_input.std())
    # A perfectly flat scan (a constant-height Z channel) has nothing to scale: it goes in as zeros
    # and, with scale 0, whatever the network answers comes back as the same flat scan.
    x = ((network_input - centre) / (scale or 1.0)).astype(np.float32)
    return x, Normalisation(plane, centre, scale, rows_aligned, steps[:, None])


def normalise_passes(
    trace: np.ndarray, retrace: np.ndarray, levelling: str = PLANE_AND_ROWS, judged_on: Sequence[np.ndarray] = ()
) -> tuple[np.ndarray, Normalisation]:
    """The two-pass network's (2, H, W) input: the trace as ``normalise`` gives it, and the retrace, already
    registered onto the trace (``maed.registration.align``), through the very same map (the trace's plane,
    row offsets, centre and scale), so that what differs between the two channels is what differs between
    the passes. The line offsets are the same in both passes (they live in time, per line).

    ``judged_on``: the scans whose line offsets decide whether the rows are aligned (``level_rows``): the raw trace
    and retrace where ``trace`` is the passes' mean (``maed.registration.two_pass_input``), so that the passes are
    levelled as the one-pass path levels either of them. Judged on the mean, whose independent noise is halved, the
    decision moved across its bar on one real scan of 26 (Au_mica_2023_Y_A_diPAMY_195, Current: 1.19 on the trace,
    1.23 on the mean, bar 1.2) and drew the molecule as a band across the frame."""
    trace = np.asarray(trace, dtype=np.float64)
    if np.shape(retrace) != trace.shape:
        raise ValueError(f"trace {trace.shape} and retrace {np.shape(retrace)} differ in shape")
    x, norm = normalise(trace, levelling, judged_on)
    # What normalise took off each row beyond the plane: zero where the rows were not aligned.
    offsets = (trace - norm.plane - norm.centre - x * (norm.scale or 1.0)).mean(axis=1, keepdims=True)
    second = (np.asarray(retrace, dtype=np.float64) - norm.plane - offsets - norm.centre) / (norm.scale or 1.0)
    return np.stack([x, second.astype(np.float32)]), norm


def denormalise(output: np.ndarray, norm: Normalisation) -> np.ndarray:
    """Network output back in the input's units, with the sample's plane and steps along the rows restored."""
    return (np.asarray(output, dtype=np.float64) * norm.scale + norm.centre + norm.plane + norm.steps).astype(np.float32)

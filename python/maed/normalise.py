"""Levelling and normalisation around the network, and its inverse.

The network sees a scan with its best-fit plane and its line offsets removed, scaled to
zero mean and unit standard deviation. Its output is mapped back to the input's units by
undoing the scale and adding the plane back, so heights stay in metres (or whatever the
input was in) and pixel-for-pixel comparable to the raw scan. Line offsets are scan noise:
they stay removed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classical import align_rows, fit_plane

ROW_ALIGNMENT = "median_diff"  # keeps slanted step edges, unlike plain row medians


@dataclass(frozen=True)
class Normalisation:
    """What was taken off a scan before the network, to be put back afterwards."""

    plane: np.ndarray
    centre: float
    scale: float


def normalise(image: np.ndarray) -> tuple[np.ndarray, Normalisation]:
    """Levelled, row-aligned, unit-variance float32 copy of ``image`` and how to undo it."""
    image = np.asarray(image, dtype=np.float64)
    plane = fit_plane(image)
    levelled = align_rows(image - plane, ROW_ALIGNMENT)
    centre = float(levelled.mean())
    scale = float(levelled.std())
    # A perfectly flat scan (a constant-height Z channel) has nothing to scale: it goes in as zeros
    # and, with scale 0, whatever the network answers comes back as the same flat scan.
    return ((levelled - centre) / (scale or 1.0)).astype(np.float32), Normalisation(plane, centre, scale)


def denormalise(output: np.ndarray, norm: Normalisation) -> np.ndarray:
    """Network output back in the input's units, with the sample's plane restored."""
    return (np.asarray(output, dtype=np.float64) * norm.scale + norm.centre + norm.plane).astype(np.float32)


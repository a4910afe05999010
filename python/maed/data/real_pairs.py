"""Trace/retrace pairs of real scans: training targets of real noise, with no clean reference needed.

Each scan line is recorded twice, left to right and right to left, over the same surface with
noise that is (apart from line offsets) independent between the passes. A network trained to
turn one pass into the other, registered, pass cannot learn the noise, which the target does not
share, only the surface: the expected target is the clean surface (Noise2Noise, Lehtinen et al.
2018). So the real scans of the training sources teach the model real STM noise, including the
noisy scans that are no use as clean references (``real_refs.NOISY``).

Like ``real_refs``, only the training sources are used: the test sources stay unseen. The
retrace is registered onto the trace (``maed.registration``: the feedback lag's all-pass and a
smooth x-warp per band of lines, from creep and hysteresis) and the columns that only one pass
covers are cut off. A sample is a crop at the same place of both passes, either pass the input and the other the target, flipped at random;
no zoom, because resampling would change the very noise the pairs are there to teach.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..noreference import slow_axis_whiteness
from ..registration import align, register
from ..scanfiles import ScanFileError
from .real_refs import SOURCES, TEST_SOURCES, level, readable_scans

TRAINING_PAIR_FILES = tuple(
    name for name, source in SOURCES.items() if source not in TEST_SOURCES and not name.endswith("_mtrx")
)


@dataclass(frozen=True, eq=False)
class PassPair:
    """Both passes of one real scan, levelled, the retrace registered onto the trace (metres)."""

    name: str
    trace: np.ndarray
    retrace: np.ndarray


MAX_SLOW_WHITENESS = 0.15
"""Largest slow-axis whiteness of a pair's difference that still counts as noise.

Noise differs independently from row to row (whiteness near 0). A difference structured across
rows is the surface itself differing: a tip change between the passes, or the opposite feedback
smear at edges that registration cannot undo. A network taught to reproduce that would learn to
blur edges into the average of both smears, so such scans are left out.
"""


def load_pass_pairs(real_dir: Path, min_size: int, names: tuple[str, ...] = TRAINING_PAIR_FILES) -> list[PassPair]:
    """The registered trace/retrace pair of the topograph of each scan of ``names`` in ``real_dir``
    that has both passes, at least ``min_size`` x ``min_size`` measured pixels in common, and a
    difference between them that is noise (``MAX_SLOW_WHITENESS``)."""
    pairs = []
    for name, scan in readable_scans(real_dir, names):
        try:
            trace, retrace = scan.channel(None, "trace"), scan.channel(None, "retrace")
        except ScanFileError:
            continue
        rows = trace.measured_rows & retrace.measured_rows
        a, b = trace.data[rows], retrace.data[rows]
        if not (np.isfinite(a).all() and np.isfinite(b).all()) or min(a.shape) < min_size:
            continue
        a, b = level(a), level(b)
        registration = register(a, b)
        cols = slice(registration.crop, a.shape[1] - registration.crop)
        moved = align(b, registration)
        if cols.stop - cols.start >= min_size and slow_axis_whiteness(a[:, cols] - moved[:, cols]) <= MAX_SLOW_WHITENESS:
            pairs.append(PassPair(name, a[:, cols], moved[:, cols]))
    return pairs


def pass_pair_crop(pair: PassPair, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(input, target): one pass and the other at the same random ``size`` x ``size`` place."""
    rows, cols = pair.trace.shape
    r, c = int(rng.integers(rows - size + 1)), int(rng.integers(cols - size + 1))
    a, b = pair.trace[r:r + size, c:c + size], pair.retrace[r:r + size, c:c + size]
    if rng.random() < 0.5:
        a, b = b, a
    # Flips only: a rotation would turn scan lines into columns, which real noise never does.
    if rng.random() < 0.5:
        a, b = a[::-1], b[::-1]
    if rng.random() < 0.5:
        a, b = a[:, ::-1], b[:, ::-1]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)

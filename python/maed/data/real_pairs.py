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
from .real_refs import SOURCES, TEST_SOURCES, level, readable_scans, reference_names

TRAINING_PAIR_FILES = tuple(name for name, source in SOURCES.items() if source not in TEST_SOURCES and not name.endswith("_mtrx"))


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


def make_pass_pair(name: str, trace: np.ndarray, retrace: np.ndarray, min_size: int, speed_ratio: float = 1.0) -> PassPair | str:
    """The registered pair of one scan's two passes (the rows both measured), or why it cannot teach.

    The passes are levelled, the retrace registered onto the trace (``speed_ratio``: the retrace's speed
    over the trace's, ``registration.speed_ratio``) and the columns only one pass covers cut off (and, where the
    slow axis moved during the lines, the lines the retrace is read beyond the frame: ``Registration.lines``). The
    reason (a string) where it is not finite, smaller than ``min_size`` x ``min_size`` in common, or its
    difference is not noise (``MAX_SLOW_WHITENESS``).
    """
    rows = np.isfinite(trace).all(axis=1) & np.isfinite(retrace).all(axis=1)
    a, b = trace[rows], retrace[rows]
    if min(a.shape) < min_size:
        return f"{a.shape[0]}x{a.shape[1]} pixels measured in both passes, fewer than {min_size}x{min_size}"
    a, b = level(a), level(b)
    registration = register(a, b, speed_ratio=speed_ratio)
    common = a.shape[1] - 2 * registration.crop
    if common < min_size:
        return f"registration leaves {common} columns in common, fewer than {min_size}"
    part = registration.lines(a.shape[0]), registration.columns(a.shape[1])
    lines = len(range(a.shape[0])[part[0]])
    if lines < min_size:
        return f"registration leaves {lines} lines in common, fewer than {min_size}"
    moved = align(b, registration)
    whiteness = slow_axis_whiteness(a[part] - moved[part])
    if whiteness > MAX_SLOW_WHITENESS:
        return (
            f"the passes differ by more than noise (slow-axis whiteness of their difference {whiteness:.2f} "
            f"> {MAX_SLOW_WHITENESS}: a tip change between them, or smear registration cannot undo)"
        )
    return PassPair(name, a[part], moved[part])


def load_pass_pairs(real_dir: Path, min_size: int) -> list[PassPair]:
    """The registered trace/retrace pair of the topograph of each scan of ``real_dir`` (``TRAINING_PAIR_FILES`` in this
    project's folder, every scan file in a lab's own: ``real_refs.reference_names``) that has both passes and makes a
    pair (``make_pass_pair``)."""
    pairs = []
    for name, scan in readable_scans(real_dir, reference_names(real_dir, TRAINING_PAIR_FILES)):
        try:
            trace, retrace = scan.channel(None, "trace"), scan.channel(None, "retrace")
        except ScanFileError:
            continue
        pair = make_pass_pair(name, trace.data, retrace.data, min_size)
        if isinstance(pair, PassPair):
            pairs.append(pair)
    return pairs


def pass_pair_crop(pair: PassPair, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(input, target): one pass and the other at the same random ``size`` x ``size`` place."""
    rows, cols = pair.trace.shape
    r, c = int(rng.integers(rows - size + 1)), int(rng.integers(cols - size + 1))
    a, b = pair.trace[r : r + size, c : c + size], pair.retrace[r : r + size, c : c + size]
    if rng.random() < 0.5:
        a, b = b, a
    # Flips only: a rotation would turn scan lines into columns, which real noise never does.
    if rng.random() < 0.5:
        a, b = a[::-1], b[::-1]
    if rng.random() < 0.5:
        a, b = a[:, ::-1], b[:, ::-1]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)

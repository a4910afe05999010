"""The columns of ``maed eval --families``: every surface family and two artefact columns, each drawn from seed blocks of its own.

``column_pairs`` gives a column's test scans; ``maed adapt``'s paint check draws from the same columns.
"""

from __future__ import annotations

from .pairs import HARD_FACTOR, TEST_SEED_BASE, ScanPair, make_pair
from .scan_noise import TRAIN_RANGES
from .surfaces import FAMILIES, TRAINING_FAMILIES

SEED_BASE = TEST_SEED_BASE + 2_000_000
BLOCKS = 3
ARTEFACT_COLUMNS = ("double_tip", "hard")
COLUMN_COUNT, COLUMN_SIZE = 51, 128
"""Scans per column and their size by default (``maed eval --families`` and ``--passes``)."""


def column_pairs(column: str, count: int, size: int, both_passes: bool = False, aligned_passes: bool = False) -> list[ScanPair]:
    """``count`` test scans of one column, drawn from ``BLOCKS`` seed blocks of their own; ``both_passes`` records
    each scan's trace and retrace, ``aligned_passes`` both at the trace's places (``make_pair``)."""
    index = (*FAMILIES, *ARTEFACT_COLUMNS).index(column)
    pairs = []
    for k in range(count):
        block, i = k % BLOCKS, k // BLOCKS
        seed = SEED_BASE + index * 10_000_000 + block * 1_000_000 + i
        if column == "double_tip":
            pairs.append(
                make_pair(seed, size, families=TRAINING_FAMILIES, double_tip=True, both_passes=both_passes, aligned_passes=aligned_passes)
            )
        elif column == "hard":
            pairs.append(
                make_pair(
                    seed,
                    size,
                    TRAIN_RANGES.scaled(HARD_FACTOR),
                    families=TRAINING_FAMILIES,
                    both_passes=both_passes,
                    aligned_passes=aligned_passes,
                )
            )
        else:
            pairs.append(make_pair(seed, size, families=(column,), both_passes=both_passes, aligned_passes=aligned_passes))
    return pairs

"""Lines lost or repeated, from the rows as they arrive: a row skipped along the slow axis, or a line
that holds exactly the data of the one before (a controller that sent one buffer twice)."""

from __future__ import annotations

import numpy as np


def skipped_rows(previous_row: int | None, row: int, slow_axis: str) -> list[int]:
    """The rows between ``previous_row`` and ``row`` that never came (in acquisition order)."""
    if previous_row is None:
        return []
    step = 1 if slow_axis == "down" else -1
    return list(range(previous_row + step, row, step))


def repeats(previous: np.ndarray | None, line: np.ndarray) -> bool:
    """Whether ``line`` is bit for bit the line before it (noise never draws that twice); a line of one
    value is not (a channel the controller holds still, Z with the feedback off, repeats by design)."""
    return previous is not None and bool(np.ptp(line) > 0) and bool(np.array_equal(previous, line))

"""How far each simulated scar stands out where it is: a ceiling for detectors that judge a line by its neighbours.

The detectors (``maed.bridge.alerts``) judge a line against the lines either side of it and must search the line for
the run. This module is told the scar's columns instead (the simulator's event list) and measures, on the residual
the detectors search (the row less the mean of the rows either side of it), how many of the scan's own spreads the
scar stands out there: the residual's mean over the scar's columns less its median elsewhere (a whole-line scar: its
median), against the same figure at the same columns on the scan's ordinary rows (``QUIET_ROWS`` or more from every
event; their median and robust spread, 1.4826 MAD).

A detector that must also find the columns needs about ``STANDS_OUT`` such spreads to keep ordinary lines under about
one candidate in 10^4 (the floors ``Z_STEP`` and ``Z_SCAR``), so the share of scars standing that far out bounds its
recall at that false-alarm rate from above, generously: it knows the columns. A scar is one pass's and one line's, so
no later line adds to it. Tip changes are not measured: they last, and the lines after them (and the other pass) add
evidence that no one-line figure holds.
"""

from __future__ import annotations

import numpy as np

from maed.data.scan_events import ScanEvent

STANDS_OUT = 5.0
"""Spreads a scar must stand out by where it is (the detectors' floor for a tip change; a scar's is 5.5)."""
QUIET_ROWS = 4
"""Rows an ordinary row keeps from every event."""


def _contrast(residual: np.ndarray, columns: tuple[int, int]) -> np.ndarray:
    """Per row: the residual's mean over ``columns`` less its median elsewhere (the whole line: its median)."""
    start, stop = columns
    if start == 0 and stop == residual.shape[1]:
        return np.median(residual, axis=1)
    outside = np.concatenate((residual[:, :start], residual[:, stop:]), axis=1)
    return residual[:, start:stop].mean(axis=1) - np.median(outside, axis=1)


def stands_out(events: list[ScanEvent], passes: dict[str, np.ndarray]) -> list[tuple[ScanEvent, float]]:
    """Each scar of ``events`` with the spreads it stands out by where it is (``passes``: the scan's passes by name,
    ``trace`` and, where recorded, ``retrace``, as the detectors receive them)."""
    event_rows = {e.row for e in events}
    out = []
    for event in events:
        if event.kind != "scar" or not 1 <= event.row < passes[event.pass_].shape[0] - 1:
            continue
        image = passes[event.pass_].astype(np.float64)
        statistic = _contrast(image[1:-1] - 0.5 * (image[:-2] + image[2:]), event.columns)  # row i + 1 at i
        ordinary = [i for i in range(statistic.size) if all(abs(i + 1 - r) >= QUIET_ROWS for r in event_rows)]
        typical = statistic[ordinary]
        centre = float(np.median(typical))
        spread = 1.4826 * float(np.median(np.abs(typical - centre)))
        out.append((event, abs(float(statistic[event.row - 1]) - centre) / max(spread, 1e-300)))
    return out

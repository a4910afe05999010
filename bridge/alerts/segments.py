"""The most anomalous run of a line's residual: local contrasts of window sums over a ladder of lengths.

A scar, or the part of a line after a tip change, is a run of pixels at another level. Over a window
of ``L`` pixels such a run adds ``L`` times its height to the residual's sum, while noise adds about
``sqrt(L)`` times its own rms, so window sums pick out runs far below the noise of one pixel. Each
window is compared with its neighbours, not with the whole line, so the slow wander that drift and
pick-up leave along a line's residual does not pass for a run:

- a **hat**: a window against the mean of the windows just left and right of it (a scar);
- a **step**: the window after a column against the window before it (a tip change's edge).

Each statistic is scaled by its spread over recent lines, per length (``spreads``), so a surface whose
rows differ in a correlated way (texture, a lattice) raises its own bar instead of passing for a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LENGTHS = (3, 4, 6, 8, 11, 16, 23, 32, 45, 64)
"""Window lengths tried (pixels), in steps of about sqrt 2."""


@dataclass(frozen=True)
class Segment:
    start: int
    stop: int
    z: float
    """The statistic over its typical spread."""
    shape: str
    """``hat`` or ``step``."""


def _statistics(residual: np.ndarray, lengths: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each length: (hat, step). ``hat[i]``: the window at ``i + L`` less the mean of its neighbours;
    ``step[i]``: the window at ``i + L`` less the window at ``i``."""
    cumulative = np.concatenate(([0.0], np.cumsum(residual)))
    out = []
    for length in lengths:
        windows = cumulative[length:] - cumulative[:-length]  # windows[i]: the sum over [i, i + L)
        step = windows[length:] - windows[:-length]
        hat = windows[length:-length] - 0.5 * (windows[: -2 * length] + windows[2 * length :])
        out.append((hat, step))
    return out


def spreads(residual: np.ndarray, lengths: tuple[int, ...]) -> np.ndarray:
    """Spread of each length's hat and step statistics over ``residual`` (rows: lengths; columns: hat,
    step): mean absolute value times sqrt(pi / 2), the rms of a normal variable (cheaper than a MAD;
    the history's median makes it robust)."""
    return np.array([[np.abs(h).sum() / h.size, np.abs(s).sum() / s.size] for h, s in _statistics(residual, lengths)]) * 1.2533


def candidates(
    residual: np.ndarray, bars: np.ndarray, lengths: tuple[int, ...], floor: float, most: int = 4
) -> tuple[list[Segment], float]:
    """Up to ``most`` runs whose hat or step stands out from its length's typical spread ``bars`` by at
    least ``floor``, strongest first, none overlapping a stronger one (a line may hold a surface feature
    that stands out as well as the event); and the line's largest statistic over its spread (``peak``, the
    scan statistic whose distribution over a scan's ordinary lines sets that scan's bar, ``monitor``)."""
    found = []
    peak = 0.0
    for length, (hat, step), (hat_bar, step_bar) in zip(lengths, _statistics(residual, lengths), bars):
        i = int(np.argmax(np.abs(hat)))
        z = float(abs(hat[i]) / max(hat_bar, 1e-300))
        peak = max(peak, z)
        if z >= floor:
            found.append(Segment(i + length, i + 2 * length, z, "hat"))
        i = int(np.argmax(np.abs(step)))
        z = float(abs(step[i]) / max(step_bar, 1e-300))
        peak = max(peak, z)
        if z >= floor:
            edge = i + length
            # The run is the side of the edge away from the line's usual level (the median, zero).
            left, right = residual[i:edge].sum(), residual[edge : edge + length].sum()
            found.append(Segment(edge, edge + length, z, "step") if abs(right) >= abs(left) else Segment(i, edge, z, "step"))
    chosen: list[Segment] = []
    for segment in sorted(found, key=lambda s: -s.z):
        if len(chosen) == most:
            break
        if all(segment.stop <= other.start or other.stop <= segment.start for other in chosen):
            chosen.append(segment)
    return chosen, peak


def run_z(residual: np.ndarray, start: int, stop: int, bars: np.ndarray, lengths: tuple[int, ...]) -> float:
    """The hat statistic of the run ``[start, stop)`` exactly (flanks as long as the run, or what the
    line holds of them), over the bar of the nearest length of the ladder scaled to the run's length; 0 for a
    run much longer than the ladder (scaling a bar that far would assume the noise white)."""
    length = stop - start
    if length > 1.5 * lengths[-1]:
        return 0.0
    flanks = np.concatenate((residual[max(0, start - length) : start], residual[stop : stop + length]))
    reference = float(np.mean(flanks)) if flanks.size else 0.0
    statistic = abs(float(np.sum(residual[start:stop])) - reference * length)
    k = int(np.argmin(np.abs(np.log(np.asarray(lengths) / length))))
    return float(statistic / max(float(bars[k, 0]) * np.sqrt(length / lengths[k]), 1e-300))

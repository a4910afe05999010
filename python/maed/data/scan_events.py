"""Scan-health events with their ground truth: tip changes, scars, feedback ringing, crashes, lost lines.

``scan_noise`` already draws tip changes and scars among its artefacts, but it keeps no list of
them, so a detector of them could only be eyeballed. This module puts known events into a scan
that was drawn without them (``NoiseRanges`` with ``tip_jump_rate`` and ``scar_rate`` zero) and
returns the list, so detectors are scored. It draws from its own generator: a seed's surface and
noise are the same with or without events (``make_pair(events=...)``).

Sizes are given in units of the scan's **line noise** (``line_noise``): the robust rms of a line's
pixels about the same line scanned again, i.e. the white and feedback noise along the fast axis,
measured on the scan before the events. The line offsets' random walk (``line_walk_m``) is not part
of it: it moves a whole line, and is what a step at a line's start must stand out from.

The events, in acquisition time (a line period is the trace, left to right, then the retrace):

- ``tip_change``: at an instant within a line, every later pixel of both passes moves by the step
  (``size``) and, for a share of them, gets extra white noise (a blunter or noisier tip).
  ``row``/``columns`` are where the trace first shows it: the rest of the trace line when the change
  came during the trace, the whole next line when it came during the retrace.
- ``scar``: one pass of one line jumps by ``size`` over 3 to cols/3 pixels, then comes back.
- ``ringing``: for 3 to 8 lines the feedback rings after an edge: a damped oscillation of ``size``
  that follows the edge in each pass's time order (to the right in the trace, mirrored in the retrace).
- ``crash``: from an instant on, Z sits at its limit (one constant value, beyond the scan's range).
- ``line_missing``: a row the controller never sent (NaN in the frames).
- ``line_repeated``: a row that holds the previous row's data again, both passes (a repeated buffer).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

EVENT_KINDS = ("tip_change", "scar", "ringing", "crash", "line_missing", "line_repeated")


@dataclass(frozen=True)
class ScanEvent:
    """One event as the scan shows it: ``columns`` is ``[start, stop)`` of frame row ``row``."""

    kind: str
    row: int
    columns: tuple[int, int]
    pass_: str
    """``trace`` or ``retrace`` for an event of one pass, ``both`` otherwise."""
    size_m: float
    """Height step, scar or ringing amplitude (metres); 0 for lost lines and crashes."""
    extra: dict

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EventSpec:
    """How many events of each kind a scan gets, and their size in units of its line noise."""

    tip_changes: int = 2
    scars: int = 4
    ringing: int = 0
    crashes: int = 0
    """0 or 1: a crash comes after every other event."""
    missing: int = 0
    repeated: int = 0
    size: float = 5.0
    """Step, scar and ringing amplitude, in line noise (the sign of steps and scars is random)."""
    noisy_tip_share: float = 0.3
    """Share of tip changes that also add white noise (of 1 to 2 line noise) from then on."""
    gap_rows: int = 8
    """Fewest rows between two events, and from the frame's first and last rows."""


def line_noise(image: np.ndarray) -> float:
    """Robust rms (metres) of a line's pixels about its neighbour, offsets aside: 1.4826 MAD / sqrt 2 of
    each row's difference from the row before, less that difference's median."""
    diff = np.diff(image, axis=0)
    diff = diff - np.nanmedian(diff, axis=1, keepdims=True)
    return float(1.4826 * np.nanmedian(np.abs(diff)) / np.sqrt(2.0))


def _rows(rng: np.random.Generator, count: int, rows: int, gap: int, taken: list[int]) -> list[int]:
    """``count`` rows at least ``gap`` apart from each other and from ``taken`` and the frame's edges."""
    chosen: list[int] = []
    for _ in range(100 * max(count, 1)):
        if len(chosen) == count:
            break
        row = int(rng.integers(gap, rows - gap))
        if all(abs(row - other) >= gap for other in taken + chosen):
            chosen.append(row)
    return sorted(chosen)


def add_events(
    trace: np.ndarray, retrace: np.ndarray | None, spec: EventSpec, rng: np.random.Generator, trace_share: float = 0.5
) -> tuple[np.ndarray, np.ndarray | None, list[ScanEvent]]:
    """Copies of ``trace`` (and ``retrace``, real-space orientation, or None) with ``spec``'s events,
    and the events sorted by row. ``trace_share``: the trace's share of a line period."""
    trace = np.array(trace, dtype=np.float64)
    retrace = None if retrace is None else np.array(retrace, dtype=np.float64)
    passes = {"trace": trace} | ({} if retrace is None else {"retrace": retrace})
    rows, cols = trace.shape
    sigma = line_noise(trace)
    amplitude = spec.size * sigma
    events: list[ScanEvent] = []
    taken: list[int] = []

    def rows_for(count: int) -> list[int]:
        found = _rows(rng, count, rows, spec.gap_rows, taken)
        taken.extend(found)
        return found

    for row in rows_for(spec.tip_changes):
        events.append(_tip_change(passes, row, amplitude * rng.choice([-1.0, 1.0]), rng, sigma, spec, trace_share))
    for row in rows_for(spec.scars):
        events.append(_scar(passes, row, amplitude * rng.choice([-1.0, 1.0]), rng))
    for row in rows_for(spec.ringing):
        events.append(_ringing(passes, row, amplitude, rng))
    for row in rows_for(spec.repeated):
        for image in passes.values():
            image[row] = image[row - 1]
        events.append(ScanEvent("line_repeated", row, (0, cols), "both", 0.0, {}))
    for row in rows_for(spec.missing):
        for image in passes.values():
            image[row] = np.nan
        events.append(ScanEvent("line_missing", row, (0, cols), "both", 0.0, {}))
    if spec.crashes:  # one, after every other event: nothing after a crash is a surface
        first = max(taken, default=0) + spec.gap_rows
        events.append(_crash(passes, int(rng.integers(first, rows - 1)) if first < rows - 1 else rows - 2, rng))
    return trace, retrace, sorted(events, key=lambda e: (e.row, e.kind))


def _tip_change(
    passes: dict[str, np.ndarray], row: int, step: float, rng: np.random.Generator, sigma: float, spec: EventSpec, trace_share: float
) -> ScanEvent:
    trace = passes["trace"]
    rows, cols = trace.shape
    instant = float(rng.random())  # within the line period of ``row``
    extra_noise = float(rng.uniform(1.0, 2.0)) * sigma if rng.random() < spec.noisy_tip_share else 0.0
    if instant < trace_share:  # during the trace: the rest of this trace line, then everything after
        start = int(instant / trace_share * cols)
        where = {"trace": (row, start, cols)}
        if "retrace" in passes:
            where["retrace"] = (row, 0, cols)
        shown = (row, (start, cols))
    else:  # during the retrace, which runs right to left: its columns left of the tip's position
        done = int((instant - trace_share) / (1 - trace_share) * cols)
        where = {"trace": (row + 1, 0, cols)}
        if "retrace" in passes:
            where["retrace"] = (row, 0, cols - done)
        shown = (row + 1, (0, cols))
    for name, (first, lo, hi) in where.items():
        image = passes[name]
        image[first, lo:hi] += step
        image[first + 1 :] += step
        if extra_noise:
            image[first, lo:hi] += rng.standard_normal(hi - lo) * extra_noise
            image[first + 1 :] += rng.standard_normal(image[first + 1 :].shape) * extra_noise
    return ScanEvent("tip_change", shown[0], shown[1], "both", float(step), {"instant": instant, "extra_noise_m": extra_noise})


def _scar(passes: dict[str, np.ndarray], row: int, height: float, rng: np.random.Generator) -> ScanEvent:
    name = str(rng.choice(sorted(passes)))
    cols = passes[name].shape[1]
    length = int(rng.integers(3, max(4, cols // 3)))  # the lengths scan_noise.scars draws
    start = int(rng.integers(0, cols - length + 1))
    passes[name][row, start : start + length] += height
    return ScanEvent("scar", row, (start, start + length), name, float(height), {})


def _ringing(passes: dict[str, np.ndarray], row: int, amplitude: float, rng: np.random.Generator) -> ScanEvent:
    trace = passes["trace"]
    rows, cols = trace.shape
    lines = int(rng.integers(3, 9))
    period = float(rng.uniform(4.0, 12.0))
    decay = float(rng.uniform(15.0, 40.0))
    # After the line's strongest edge (away from the ends, so the oscillation has room).
    smooth = np.convolve(np.nan_to_num(trace[row]), np.ones(3) / 3, mode="same")
    edge = int(np.argmax(np.abs(np.diff(smooth[cols // 10 : cols // 2])))) + cols // 10
    n = np.arange(cols - edge)
    wave = amplitude * np.exp(-n / decay) * np.sin(2 * np.pi * n / period)
    stop = min(cols, edge + int(3 * decay))
    for r in range(row, min(rows, row + lines)):
        trace[r, edge:] += wave
        if "retrace" in passes:  # mirrored: the retrace meets the edge from the right
            passes["retrace"][r, : edge + 1] += wave[: edge + 1][::-1]
    return ScanEvent("ringing", row, (edge, stop), "both", float(amplitude), {"lines": lines, "period_px": period, "decay_px": decay})


def _crash(passes: dict[str, np.ndarray], row: int, rng: np.random.Generator) -> ScanEvent:
    trace = passes["trace"]
    cols = trace.shape[1]
    rail = float(np.nanmax(trace) + np.nanmax(trace) - np.nanmin(trace) + 1e-9)  # far beyond the surface
    start = int(rng.integers(0, cols - 16))
    trace[row, start:] = rail
    trace[row + 1 :] = rail
    if "retrace" in passes:
        passes["retrace"][row:] = rail
    return ScanEvent("crash", row, (start, cols), "both", 0.0, {"rail_m": rail})

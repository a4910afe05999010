"""The scan inside the simulated Nanonis controller: which pixels of the frame exist at a given moment.

The scan runs on the clock, not on requests: a frame starts at ``t0`` and acquisition step ``i``
(frame row ``i`` of a down scan, row ``lines - 1 - i`` of an up scan) records its trace during
the first half of line period ``i`` and its retrace during the second half, as the existing
simulated controller sends them; in a continuous scan the next frame starts one line period
after the last line. Pixels arrive in packets of 16 (as Nanonis moves scan data from
its real-time engine to the host), so a grab in the middle of a line returns that line partly
filled: the trace from the left, the retrace from the right. What is not scanned yet is NaN.

Frames are kept in image order (row 0 at the top, column 0 at the left) for both passes;
the server turns them into the controller's layout (``client.scan_layout``) when it answers.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from maed.data import make_pair

PACKET = 16
SIM_CHANNELS = ((0, "Current (A)"), (14, "Z (m)"))
"""Signal slots of the simulated buffer: the topograph is not slot 0, so a client must look it up."""
SETPOINT_A = 100e-12


@dataclass(frozen=True)
class SimChannel:
    index: int
    name: str
    """As Nanonis names signals: ``Z (m)``, ``Current (A)``."""
    forward: np.ndarray
    backward: np.ndarray
    """Both ``(lines, pixels)`` float32 in image order."""


@dataclass(frozen=True)
class SimFrame:
    """One frame to scan: every acquired channel and the frame's size in metres."""

    channels: tuple[SimChannel, ...]
    width: float
    height: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.channels[0].forward.shape


FrameMaker = Callable[[int, int, bool], SimFrame]
"""Makes frame number ``k`` (0, 1, ...) of ``size`` pixels, for an up scan or a down scan."""


def simulated_frames(seed: int) -> FrameMaker:
    """Frames of simulated surfaces: frame ``k`` is the simulated pair of seed ``seed + k``."""

    def make(k: int, size: int, up: bool) -> SimFrame:
        pair = make_pair(seed + k, size, both_passes=True)
        trace, retrace = pair.noisy, pair.retrace
        # The feedback's error signal follows the slope along the line: a plausible current image.
        slope = np.gradient(trace, axis=1)
        current = SETPOINT_A * (1 + 0.2 * np.tanh(slope / (slope.std() or 1.0)))
        images = {"Z (m)": (trace, retrace), "Current (A)": (current, current)}
        # Rows are in acquisition order; an up scan acquires the bottom row first.
        order = slice(None, None, -1) if up else slice(None)
        channels = tuple(
            SimChannel(index, name, *(np.ascontiguousarray(im[order], np.float32) for im in images[name])) for index, name in SIM_CHANNELS
        )
        side = size * pair.pixel_m
        return SimFrame(channels, side, side)

    return make


class Scanner:
    """Scans frames from ``make_frame`` at ``line_rate`` lines per second (trace + retrace).

    ``scans`` frames follow each start (0: scan on for ever, as Nanonis' continuous scan does);
    ``slow_axis`` ``alternate`` turns the slow axis round after each frame (a bouncy scan).
    Scanning starts at once. Thread-safe: every client connection reads the same scan.
    """

    def __init__(self, make_frame: FrameMaker, size: int = 256, line_rate: float = 20.0, slow_axis: str = "down", scans: int = 0) -> None:
        if not 1 <= size <= 4096:
            raise ValueError(f"scan size must be 1 to 4096 pixels, got {size}")
        if not line_rate > 0:
            raise ValueError(f"line rate must be positive, got {line_rate}")
        if slow_axis not in ("down", "up", "alternate"):
            raise ValueError(f"slow axis must be down, up or alternate, got {slow_axis!r}")
        if scans < 0:
            raise ValueError("scans must be 0 (no end) or more")
        self._make, self._size, self.period = make_frame, size, 1.0 / line_rate
        self._slow_axis, self._scans = slow_axis, scans
        self._lock = threading.Lock()
        self._k = -1
        self._paused_at: float | None = None
        self.withdrawn = False
        """Whether ``ZCtrl.Withdraw`` pulled the tip up (the scan stopped with it)."""
        self.start(up=slow_axis == "up")

    # --- actions ------------------------------------------------------------------------------

    def start(self, up: bool) -> None:
        """Start a new frame from its first line (``Scan.Action`` start), also in the middle of one."""
        with self._lock:
            self._done = 0
            self._begin(time.monotonic(), up)

    def stop(self) -> None:
        """Stop the scan; the frame keeps what was scanned (``Scan.Action`` stop)."""
        with self._lock:
            now = self._advance()
            if self._running:
                self._running, self._stopped_at, self._paused_at = False, now, None

    def pause(self) -> None:
        """Hold the scan where it is (``Scan.Action`` pause): no pixel is added until ``resume``; it still runs."""
        with self._lock:
            now = self._advance()
            if self._running and self._paused_at is None:
                self._paused_at = now

    def resume(self) -> None:
        """Go on from where the scan was paused (``Scan.Action`` resume)."""
        with self._lock:
            if self._paused_at is not None:
                self._t0 += time.monotonic() - self._paused_at
                self._paused_at = None

    def withdraw(self) -> None:
        """Pull the tip up (``ZCtrl.Withdraw``): the scan stops, keeping what was scanned."""
        with self._lock:
            now = self._advance()
            self.withdrawn = True
            if self._running:
                self._running, self._stopped_at, self._paused_at = False, now, None

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._paused_at is not None

    def resize(self, size: int) -> None:
        """Scan frames of ``size`` pixels from now on; a running scan starts a new frame at once."""
        with self._lock:
            self._size = size
            now = self._advance()
            if self._running:
                self._begin(now, self._up)

    def _begin(self, t0: float, up: bool) -> None:
        self._k += 1
        self._frame = self._make(self._k, self._size, up)
        self._up, self._t0, self._running, self._stopped_at, self._paused_at = up, t0, True, None, None

    def _advance(self) -> float:
        """Bring the scan to now (frames ended, next frames begun) and return now (a paused scan's clock
        stands at the pause)."""
        now = time.monotonic() if self._paused_at is None else self._paused_at
        while self._running:
            end = self._t0 + self._frame.shape[0] * self.period
            if now < end:
                break
            if self._scans and self._done + 1 >= self._scans:
                self._done += 1
                self._running, self._stopped_at = False, end
            elif now >= end + self.period:
                # One line period between frames (the tip going back to the start): the finished
                # frame stays in the buffer meanwhile, so its last lines can be read.
                self._done += 1
                self._begin(end + self.period, not self._up if self._slow_axis == "alternate" else self._up)
            else:
                break
        return now

    # --- what the controller reports ------------------------------------------------------------

    def status(self) -> bool:
        with self._lock:
            self._advance()
            return self._running

    def buffer(self) -> tuple[tuple[int, ...], int, int]:
        """Acquired channel indexes, pixels per line, lines."""
        with self._lock:
            self._advance()
            lines, pixels = self._frame.shape
            return tuple(c.index for c in self._frame.channels), pixels, lines

    def frame(self) -> tuple[float, float, float, float, float]:
        """Centre x, centre y, width, height (metres), angle (degrees)."""
        with self._lock:
            self._advance()
            return 0.0, 0.0, self._frame.width, self._frame.height, 0.0

    def speed(self) -> tuple[float, float, float, float]:
        """Forward and backward linear speed (m/s), forward and backward time per line (s)."""
        with self._lock:
            self._advance()
            half = self.period / 2
            return self._frame.width / half, self._frame.width / half, half, half

    def grab(self, index: int, forward: bool) -> tuple[str, np.ndarray, bool]:
        """Channel name, the frame as scanned so far (NaN elsewhere), and whether the scan is up.

        Raises ``KeyError`` when ``index`` is not an acquired channel.
        """
        with self._lock:
            now = self._advance()
            channel = next((c for c in self._frame.channels if c.index == index), None)
            if channel is None:
                raise KeyError(index)
            image = channel.forward if forward else channel.backward
            # Line periods elapsed (a hair more, so that a frame ended at t0 + lines * period counts
            # as whole despite rounding); the retrace of a step starts half a period after its trace.
            elapsed = ((self._stopped_at if self._stopped_at is not None else now) - self._t0) / self.period + 1e-6
            elapsed -= 0.0 if forward else 0.5
            up = self._up
        lines, pixels = image.shape
        data = np.full((lines, pixels), np.nan, np.float32)
        done = min(max(math.floor(elapsed - 0.5) + 1, 0), lines)  # steps whose half period is over
        rows = slice(lines - done, lines) if up else slice(0, done)
        data[rows] = image[rows]
        if done < lines and elapsed > done:
            filled = min(int((elapsed - done) * 2 * pixels) // PACKET * PACKET, pixels)
            row = lines - 1 - done if up else done
            cols = slice(0, filled) if forward else slice(pixels - filled, pixels)
            data[row, cols] = image[row, cols]
        return channel.name, data, up

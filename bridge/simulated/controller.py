"""A simulated STM controller: scans simulated surfaces line by line at a set line rate.

Each scan is a ``maed.data`` pair drawn with both passes (``make_pair(both_passes=True)``): the
trace and the retrace of one surface, each with its artefacts in its own scan-time order (what the
passes share, pick-up and drift at each pass's own instants, what differs, the opposite feedback
lag and the x-warp; ``docs/simulator.md``). Pick-up in time therefore lands elsewhere in the
retrace's spectrum than in the trace's, as on an instrument, and a lattice at the same place.
A line period is the trace plus the retrace: at ``line_rate`` lines per second, row ``i``'s trace
is sent half a period after the scan's start plus ``i`` periods, its retrace half a period later.
The noise amplitudes are those of a real scan whatever the replay rate.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from maed.data import TEST_SEED_BASE, ScanPair, make_pair

from ..keys import ClientKeys
from ..sources.base import LinePusher

SIM_SEED_BASE = TEST_SEED_BASE + 900_000
"""Surfaces the shipped model never trained on, apart from the evaluation set's seeds."""


def trace_and_retrace(seed: int, size: int) -> tuple[ScanPair, np.ndarray, np.ndarray]:
    """A simulated pair and its trace and retrace images, rows in acquisition order."""
    pair = make_pair(seed, size, both_passes=True)
    return pair, pair.noisy, pair.retrace


@dataclass(frozen=True)
class SimScan:
    """One scan the simulator sent: its id, slow axis and the simulated pair."""

    scan: str
    slow_axis: str
    pair: ScanPair

    def frame(self, image: np.ndarray) -> np.ndarray:
        """An acquisition-order image of the pair (``pair.noisy``, ``pair.clean``) as the bridge's frame."""
        return image if self.slow_axis == "down" else image[::-1]


@dataclass
class SimulatedController:
    """Scans ``scans`` simulated surfaces (0: until stopped), on a fixed or alternating slow axis."""

    size: int = 256
    line_rate: float = 20.0
    scans: int = 1
    seed: int = SIM_SEED_BASE
    slow_axis: str = "down"
    """``down``, ``up``, or ``alternate`` (down, up, down, ... as a real STM often does)."""
    retrace: bool = True
    acks: str | None = None
    """The bridge's ack endpoint: keep each line until journaled and resend it after a restart (``LinePusher``)."""
    name: str = "sim"
    scanned: list[SimScan] = field(default_factory=list)
    """The scans sent so far, with their clean surfaces (for reports)."""

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 4096:
            raise ValueError(f"scan size must be 1 to 4096 pixels, got {self.size}")
        if not self.line_rate > 0:
            raise ValueError(f"line rate must be positive, got {self.line_rate}")
        if self.slow_axis not in ("down", "up", "alternate"):
            raise ValueError(f"slow axis must be down, up or alternate, got {self.slow_axis!r}")

    def run(self, endpoint: str, stop: threading.Event, keys: ClientKeys | None = None) -> None:
        pusher = LinePusher(endpoint, acks=self.acks, keys=keys)
        try:
            k = 0
            while (self.scans == 0 or k < self.scans) and not stop.is_set():
                self._scan(pusher, k, stop)
                k += 1
        finally:
            pusher.close()

    def _slow_axis(self, k: int) -> str:
        if self.slow_axis == "alternate":
            return "down" if k % 2 == 0 else "up"
        return self.slow_axis

    def _scan(self, pusher: LinePusher, k: int, stop: threading.Event) -> None:
        seed = self.seed + k
        pair, trace, retrace = trace_and_retrace(seed, self.size)
        slow_axis = self._slow_axis(k)
        scan_id = f"sim-{seed}"
        self.scanned.append(SimScan(scan_id, slow_axis, pair))
        side = self.size * pair.pixel_m
        pusher.start(scan_id, self.size, self.size, (side, side), slow_axis=slow_axis, line_rate=self.line_rate)
        period = 1.0 / self.line_rate
        t0 = time.perf_counter()
        for i in range(self.size):
            # Acquisition step i fills frame row i of a down scan, row size-1-i of an up scan.
            row = i if slow_axis == "down" else self.size - 1 - i
            if stop.wait(max(0.0, t0 + (i + 0.5) * period - time.perf_counter())):
                pusher.end(scan_id, complete=False)
                return
            pusher.line(scan_id, row, trace[i], pass_="trace")
            if self.retrace:
                stop.wait(max(0.0, t0 + (i + 1) * period - time.perf_counter()))
                pusher.line(scan_id, row, retrace[i], pass_="retrace")
        pusher.end(scan_id, complete=True)
